//! HMAC-SHA256 (RFC 2104) over SHA-256's compression function, for frames that are signed
//! with part of themselves taken as a fill.
//!
//! The key's inner and outer pad blocks are compressed once, when the key is made; a frame then
//! costs its own blocks and one outer block, with no buffering and no copy of a hasher's
//! state beyond the two 32-byte chaining values. Frames of one length can be taken a few at a
//! time ([`HmacKey::macs`]): each of their blocks goes through `avp_sha256_lanes` together
//! with the others', whose compressions interleave. A message whose bytes after its last whole
//! block are all fill (a frame that ends with its AUTHENTICATOR) ends in padding blocks that
//! depend on its length alone: their message schedule is worked out once per length
//! ([`KnownTail`]). The tests check it against the `hmac` crate.

use avp_sha256_lanes::{compress_each, compress_known, KnownBlock, BLOCK};
use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// SHA-256's digest, in bytes.
pub(crate) const DIGEST: usize = 32;
/// Most messages [`HmacKey::macs`] takes at once: a few more than interleave, so that the
/// work around the compressions is shared too.
pub(crate) const LANES: usize = 4;
/// SHA-256's initial chaining value.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Messages shorter than this have their [`KnownTail`] kept once worked out.
const KNOWN_TAILS: usize = 3 * BLOCK;

/// The padding blocks (one or two) that end every message of one length whose bytes after
/// its last whole block are all one fill byte.
struct KnownTail {
    fill: u8,
    blocks: Vec<KnownBlock>,
}

/// Per message length below [`KNOWN_TAILS`], its [`KnownTail`], worked out when first needed.
static TAILS: [OnceLock<KnownTail>; KNOWN_TAILS] = [const { OnceLock::new() }; KNOWN_TAILS];

impl KnownTail {
    /// The tail of a message of `len` bytes whose bytes `fill_at..fill_at + fill_len` are
    /// `fill`, when those cover every byte after its last whole block and `len` is below
    /// [`KNOWN_TAILS`].
    fn of(len: usize, fill_at: usize, fill_len: usize, fill: u8) -> Option<&'static KnownTail> {
        let whole = len / BLOCK * BLOCK;
        let covered = fill_at <= whole && fill_at + fill_len >= len;
        let slot = TAILS.get(len).filter(|_| covered)?;
        let tail = slot.get_or_init(|| {
            let mut blocks = [[0u8; BLOCK]; 2];
            let rest = len - whole;
            blocks.as_flattened_mut()[..rest].fill(fill);
            let used = pad(blocks.as_flattened_mut(), rest, BLOCK + len);
            KnownTail {
                fill,
                blocks: blocks[..used].iter().map(KnownBlock::new).collect(),
            }
        });
        (tail.fill == fill).then_some(tail)
    }
}

/// A secret's HMAC-SHA256 key schedule: the chaining values after its inner and outer pads.
#[derive(Clone, Copy)]
pub(crate) struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacKey {
    /// The schedule of `secret` (a secret longer than a block is hashed first, as RFC 2104
    /// says).
    pub(crate) fn new(secret: &[u8]) -> HmacKey {
        let mut block = [0u8; BLOCK];
        if secret.len() > BLOCK {
            block[..DIGEST].copy_from_slice(&Sha256::digest(secret));
        } else {
            block[..secret.len()].copy_from_slice(secret);
        }
        let padded = |pad: u8| {
            let mut state = IV;
            compress256(&mut state, &[block.map(|b| b ^ pad)]);
            state
        };
        HmacKey {
            inner: padded(0x36),
            outer: padded(0x5c),
        }
    }

    /// The HMAC of `message` with its bytes `fill_at..fill_at + fill_len` taken as `fill`.
    pub(crate) fn mac(
        &self,
        message: &[u8],
        fill_at: usize,
        fill_len: usize,
        fill: u8,
    ) -> [u8; DIGEST] {
        let mut mac = [[0; DIGEST]];
        self.macs(&[message], fill_at, fill_len, fill, &mut mac);
        mac[0]
    }

    /// Writes into `macs` the HMAC of each of `messages` (at most [`LANES`], all of one
    /// length) with its bytes `fill_at..fill_at + fill_len` taken as `fill`. The messages go
    /// through each step together: a message's compressions wait for each other, and those of
    /// different messages interleave.
    pub(crate) fn macs(
        &self,
        messages: &[&[u8]],
        fill_at: usize,
        fill_len: usize,
        fill: u8,
        macs: &mut [[u8; DIGEST]],
    ) {
        let n = messages.len();
        assert!(
            n <= LANES && macs.len() == n,
            "one MAC per message, {LANES} at most"
        );
        let len = messages.first().map_or(0, |m| m.len());
        assert!(
            messages.iter().all(|m| m.len() == len),
            "messages of one length"
        );
        let mut inner = [self.inner; LANES];
        let inner = &mut inner[..n];
        let mut blocks = [[[0u8; BLOCK]; 2]; LANES];
        let whole = len / BLOCK * BLOCK;
        for offset in (0..whole).step_by(BLOCK) {
            for (block, message) in blocks.iter_mut().zip(messages) {
                block[0].copy_from_slice(&message[offset..offset + BLOCK]);
                fill_range(&mut block[0], offset, fill_at, fill_len, fill);
            }
            compress_each(inner, &nth(&blocks, 0)[..n]);
        }
        if let Some(tail) = KnownTail::of(len, fill_at, fill_len, fill) {
            for block in &tail.blocks {
                compress_known(inner, block);
            }
        } else {
            let mut used = 1;
            for (block, message) in blocks.iter_mut().zip(messages) {
                let rest = &message[whole..];
                *block = [[0; BLOCK]; 2];
                let tail = block.as_flattened_mut();
                tail[..rest.len()].copy_from_slice(rest);
                fill_range(&mut tail[..rest.len()], whole, fill_at, fill_len, fill);
                used = pad(tail, rest.len(), BLOCK + len);
            }
            compress_each(inner, &nth(&blocks, 0)[..n]);
            if used == 2 {
                compress_each(inner, &nth(&blocks, 1)[..n]);
            }
        }
        for (block, state) in blocks.iter_mut().zip(inner.iter()) {
            block[0] = [0; BLOCK];
            block[0][..DIGEST].copy_from_slice(&digest_bytes(state));
            pad(&mut block[0], DIGEST, BLOCK + DIGEST);
        }
        let mut outer = [self.outer; LANES];
        compress_each(&mut outer[..n], &nth(&blocks, 0)[..n]);
        for (mac, state) in macs.iter_mut().zip(&outer) {
            *mac = digest_bytes(state);
        }
    }
}

/// Block `i` (0 or 1) of each lane's two.
fn nth(blocks: &[[[u8; BLOCK]; 2]; LANES], i: usize) -> [&[u8; BLOCK]; LANES] {
    std::array::from_fn(|l| &blocks[l][i])
}

/// Sets the bytes of `block` (the message's bytes from `offset`) that fall in
/// `at..at + len` to `fill`.
fn fill_range(block: &mut [u8], offset: usize, at: usize, len: usize, fill: u8) {
    let start = at.max(offset).min(offset + block.len());
    let end = (at + len).min(offset + block.len()).max(start);
    block[start - offset..end - offset].fill(fill);
}

/// Writes SHA-256's padding after the `used` bytes at the front of `tail` (a message of
/// `total` bytes in all): returns how many blocks of `tail` it fills, one or two.
fn pad(tail: &mut [u8], used: usize, total: usize) -> usize {
    tail[used] = 0x80;
    let blocks = if used + 1 + 8 <= BLOCK { 1 } else { 2 };
    let end = blocks * BLOCK;
    tail[end - 8..end].copy_from_slice(&((total as u64) * 8).to_be_bytes());
    blocks
}

fn digest_bytes(state: &[u32; 8]) -> [u8; DIGEST] {
    let mut out = [0u8; DIGEST];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// True when `mac` and `claimed` are the same bytes, in time that does not depend on where
/// they differ.
pub(crate) fn same_mac(mac: &[u8; DIGEST], claimed: &[u8]) -> bool {
    if claimed.len() != DIGEST {
        return false;
    }
    let diff = mac
        .iter()
        .zip(claimed)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use proptest::prelude::*;

    fn reference(secret: &[u8], message: &[u8]) -> [u8; DIGEST] {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn rfc_4231_test_cases() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        // Test cases 1, 2 and 6 (a key longer than a block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (secret, message, want) in cases {
            let got = HmacKey::new(secret).mac(message, 0, 0, 0);
            assert_eq!(got.to_vec(), hex(want));
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_hmac_crate(
            secret in proptest::collection::vec(any::<u8>(), 0..150),
            message in proptest::collection::vec(any::<u8>(), 0..300),
            at in 0usize..300,
            len in 0usize..80,
            fill in any::<u8>(),
        ) {
            let at = at.min(message.len());
            let len = len.min(message.len() - at);
            let mut filled = message.clone();
            filled[at..at + len].fill(fill);
            let got = HmacKey::new(&secret).mac(&message, at, len, fill);
            prop_assert_eq!(got, reference(&secret, &filled));
        }
    }

    #[test]
    fn every_length_around_the_block_edges_agrees() {
        let key = HmacKey::new(b"k");
        for n in 0..200 {
            let message: Vec<u8> = (0..n).map(|i| i as u8).collect();
            assert_eq!(key.mac(&message, 0, 0, 0), reference(b"k", &message), "{n}");
        }
    }

    #[test]
    fn messages_that_end_in_fill_agree_at_every_length_and_fill() {
        let key = HmacKey::new(b"k");
        for n in 0..KNOWN_TAILS + BLOCK {
            let message: Vec<u8> = (0..n).map(|i| i as u8 | 1).collect();
            let at = (n / BLOCK * BLOCK).saturating_sub(n % 3);
            // The second fill of one length is not the one its tail was worked out with.
            for fill in [0, b'0'] {
                let mut filled = message.clone();
                filled[at..].fill(fill);
                let got = key.mac(&message, at, n - at, fill);
                assert_eq!(got, reference(b"k", &filled), "{n} bytes, fill {fill}");
            }
        }
    }

    #[test]
    fn messages_taken_together_have_their_own_macs() {
        let key = HmacKey::new(b"k");
        for len in [0, 20, 64, 75, 130] {
            let messages: Vec<Vec<u8>> = (0..LANES as u8)
                .map(|i| (0..len).map(|b| b as u8 ^ i).collect())
                .collect();
            let parts: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let mut macs = [[0; DIGEST]; LANES];
            let at = len / 2;
            let fill_len = (len - at).min(32);
            key.macs(&parts, at, fill_len, 0, &mut macs);
            for (message, mac) in messages.iter().zip(&macs) {
                let mut filled = message.clone();
                filled[at..at + fill_len].fill(0);
                assert_eq!(*mac, reference(b"k", &filled), "{len}");
            }
        }
    }

    #[test]
    fn macs_are_compared_whole() {
        let mac = [7u8; DIGEST];
        assert!(same_mac(&mac, &[7; DIGEST]));
        let mut other = mac;
        other[31] = 8;
        assert!(!same_mac(&mac, &other));
        assert!(!same_mac(&mac, &mac[..31]));
    }
}
