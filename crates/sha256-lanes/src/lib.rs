//! SHA-256's compression function over several independent chaining values at once.
//!
//! [`compress_each`] takes unrelated blocks, one per state, and runs their rounds interleaved,
//! [`LANES`] at a time, where x86-64's SHA extensions are present; elsewhere it calls `sha2`'s
//! compression once per block. Both give the same results. The unsafe code (the intrinsics)
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
