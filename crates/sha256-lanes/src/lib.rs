//! SHA-256's compression function over several independent chaining values at once.
//!
//! [`compress_each`] takes unrelated blocks, one per state, and runs their rounds interleaved,
//! [`LANES`] at a time, where x86-64's SHA extensions are present; elsewhere it calls `sha2`'s
//! compression once per block. Both give the same results. [`compress_known`] does the same
//! with one block for every state whose message schedule was worked out ahead
//! ([`KnownBlock`]), such as the padding block that ends every message of one length. The unsafe code (the intrinsics)
//! is in one module here, so that its users need none.
#![deny(missing_docs)]
#![deny(unsafe_code)]

// One compression is a chain of 64 rounds, each waiting for the one before: on the SHA
// extensions a block costs that chain's latency, whatever else the processor could do beside
// it. Two chains interleaved make the most of it: four need more than the sixteen registers
// the instructions can use, and measured slower than two pairs.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

use sha2::block_api::compress256;

/// SHA-256's block, in bytes.
pub const BLOCK: usize = 64;
/// The blocks [`compress_each`] interleaves at most; more are taken this many at a time.
pub const LANES: usize = 2;

/// SHA-256's round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// A block known before the states it is compressed into: its message schedule, with the
/// round constants added, is worked out once, and each compression of it
/// ([`compress_known`]) runs only the rounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownBlock {
    block: [u8; BLOCK],
    /// Message word plus round constant of every round, four rounds to an entry.
    wk: [[u32; 4]; 16],
}

impl KnownBlock {
    /// `block` with its schedule worked out.
    pub fn new(block: &[u8; BLOCK]) -> KnownBlock {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes(bytes.try_into().expect("four bytes"));
        }
        for t in 16..64 {
            let s0 = w[t - 15].rotate_right(7) ^ w[t - 15].rotate_right(18) ^ (w[t - 15] >> 3);
            let s1 = w[t - 2].rotate_right(17) ^ w[t - 2].rotate_right(19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16]
                .wrapping_add(s0)
                .wrapping_add(w[t - 7])
                .wrapping_add(s1);
        }
        KnownBlock {
            block: *block,
            wk: std::array::from_fn(|r| {
                std::array::from_fn(|i| w[4 * r + i].wrapping_add(K[4 * r + i]))
            }),
        }
    }

    /// The block's bytes.
    pub fn bytes(&self) -> &[u8; BLOCK] {
        &self.block
    }
}

/// Compresses `block` into every one of `states`: what [`compress_each`] does with that block
/// for each state, without its message schedule.
pub fn compress_known(states: &mut [[u32; 8]], block: &KnownBlock) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        return x86::compress_known(states, &block.wk);
    }
    for state in states {
        compress256(state, std::slice::from_ref(&block.block));
    }
}

/// Compresses `blocks[i]` into `states[i]`, for every `i`: what `sha2`'s `compress256` does to
/// each pair, with the pairs' rounds interleaved.
///
/// # Panics
/// When `states` and `blocks` differ in length.
pub fn compress_each(states: &mut [[u32; 8]], blocks: &[&[u8; BLOCK]]) {
    assert_eq!(states.len(), blocks.len(), "one block per state");
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        return x86::compress_each(states, blocks);
    }
    one_by_one(states, blocks);
}

/// `sha2`'s compression, one block after the other: the fallback, and the tests' reference.
fn one_by_one(states: &mut [[u32; 8]], blocks: &[&[u8; BLOCK]]) {
    for (state, block) in states.iter_mut().zip(blocks) {
        compress256(state, std::slice::from_ref(*block));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agrees_with_sha2_for_any_count(
            pairs in proptest::collection::vec(
                (any::<[u32; 8]>(), proptest::collection::vec(any::<u8>(), BLOCK)),
                0..11,
            ),
        ) {
            let mut want: Vec<[u32; 8]> = pairs.iter().map(|(s, _)| *s).collect();
            let blocks: Vec<[u8; BLOCK]> =
                pairs.iter().map(|(_, b)| b.as_slice().try_into().unwrap()).collect();
            let refs: Vec<&[u8; BLOCK]> = blocks.iter().collect();
            one_by_one(&mut want, &refs);
            let mut got: Vec<[u32; 8]> = pairs.iter().map(|(s, _)| *s).collect();
            compress_each(&mut got, &refs);
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #[test]
        fn a_known_block_compresses_as_itself(
            states in proptest::collection::vec(any::<[u32; 8]>(), 0..7),
            block in proptest::collection::vec(any::<u8>(), BLOCK),
        ) {
            let block: [u8; BLOCK] = block.as_slice().try_into().unwrap();
            let mut want = states.clone();
            one_by_one(&mut want, &vec![&block; states.len()]);
            let mut got = states;
            compress_known(&mut got, &KnownBlock::new(&block));
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn the_empty_message_hashes_to_its_known_digest() {
        let mut block = [0u8; BLOCK];
        block[0] = 0x80;
        let iv = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut states = [iv; 3];
        compress_each(&mut states, &[&block; 3]);
        for state in states {
            assert_eq!(
                state,
                [
                    0xe3b0c442, 0x98fc1c14, 0x9afbf4c8, 0x996fb924, 0x27ae41e4, 0x649b934c,
                    0xa495991b, 0x7852b855
                ]
            );
        }
    }

    #[test]
    #[should_panic(expected = "one block per state")]
    fn a_block_missing_is_refused() {
        compress_each(&mut [[0; 8]; 2], &[&[0; BLOCK]]);
    }
}
