//! The interleaved compression on x86-64's SHA extensions (`sha256rnds2`, `sha256msg1/2`).
//!
//! The layout of the state in registers (ABEF and CDGH) and the round structure are the ones of
//! Intel's SHA extensions reference and of `sha2`'s own backend; what is new is that every step
//! is taken for each lane before the next step, so that the lanes' round chains overlap.

use core::arch::x86_64::*;

use crate::{BLOCK, K, LANES};

/// True when this processor has the extensions [`compress`] uses (the answer is cached by
/// the standard library after the first call).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse4.1")
        && is_x86_feature_detected!("ssse3")
}

/// [`crate::compress_each`] for a processor where [`available`] is true: [`LANES`] blocks at a
/// time, then any left over one by one.
pub(crate) fn compress_each(states: &mut [[u32; 8]], blocks: &[&[u8; BLOCK]]) {
    let mut states = states.chunks_exact_mut(LANES);
    let mut blocks = blocks.chunks_exact(LANES);
    for (states, blocks) in (&mut states).zip(&mut blocks) {
        // SAFETY: the caller checked `available()`, the features `compress` is compiled for.
        unsafe { compress::<LANES>(states.try_into().unwrap(), blocks.try_into().unwrap()) }
    }
    for (state, block) in states.into_remainder().iter_mut().zip(blocks.remainder()) {
        // SAFETY: as above.
        unsafe { compress::<1>(std::array::from_mut(state), &[*block]) }
    }
}

/// [`crate::compress_known`] for a processor where [`available`] is true.
pub(crate) fn compress_known(states: &mut [[u32; 8]], wk: &[[u32; 4]; 16]) {
    let mut states = states.chunks_exact_mut(LANES);
    for states in &mut states {
        // SAFETY: the caller checked `available()`, the features `known` is compiled for.
        unsafe { known::<LANES>(states.try_into().unwrap(), wk) }
    }
    for state in states.into_remainder() {
        // SAFETY: as above.
        unsafe { known::<1>(std::array::from_mut(state), wk) }
    }
}

/// Compresses `blocks[i]` into `states[i]` for the `N` lanes, their rounds interleaved.
///
/// # Safety
/// The processor must have the `sha`, `sse4.1` and `ssse3` extensions.
#[target_feature(enable = "sha,sse4.1,ssse3")]
unsafe fn compress<const N: usize>(states: &mut [[u32; 8]; N], blocks: &[&[u8; BLOCK]; N]) {
    let mut abef = [_mm_setzero_si128(); N];
    let mut cdgh = [_mm_setzero_si128(); N];
    let mut w = [[_mm_setzero_si128(); 4]; N];
    // Big-endian words from the block's bytes.
    let swap = _mm_set_epi64x(0x0C0D_0E0F_0809_0A0B, 0x0405_0607_0001_0203);
    for l in 0..N {
        (abef[l], cdgh[l]) = load(&states[l]);
        let block: *const __m128i = blocks[l].as_ptr().cast();
        for (i, word) in w[l].iter_mut().enumerate() {
            // SAFETY: a block is 64 bytes, four unaligned 16-byte loads.
            *word = _mm_shuffle_epi8(unsafe { _mm_loadu_si128(block.add(i)) }, swap);
        }
    }
    let (abef_in, cdgh_in) = (abef, cdgh);
    // Written out, not a loop: with every `r` a constant, the message words stay in registers.
    let (a, c, w) = (&mut abef, &mut cdgh, &mut w);
    rounds(0, false, a, c, w);
    rounds(1, false, a, c, w);
    rounds(2, false, a, c, w);
    rounds(3, false, a, c, w);
    rounds(4, true, a, c, w);
    rounds(5, true, a, c, w);
    rounds(6, true, a, c, w);
    rounds(7, true, a, c, w);
    rounds(8, true, a, c, w);
    rounds(9, true, a, c, w);
    rounds(10, true, a, c, w);
    rounds(11, true, a, c, w);
    rounds(12, true, a, c, w);
    rounds(13, true, a, c, w);
    rounds(14, true, a, c, w);
    rounds(15, true, a, c, w);
    finish(states, abef, cdgh, abef_in, cdgh_in);
}

/// Compresses the one block whose message words plus round constants are `wk` (four per
/// group of rounds, [`crate::KnownBlock`]'s) into each of the `N` states, their rounds
/// interleaved: the rounds of [`compress`] without the message schedule.
///
/// # Safety
/// The processor must have the `sha`, `sse4.1` and `ssse3` extensions.
#[target_feature(enable = "sha,sse4.1,ssse3")]
unsafe fn known<const N: usize>(states: &mut [[u32; 8]; N], wk: &[[u32; 4]; 16]) {
    let mut abef = [_mm_setzero_si128(); N];
    let mut cdgh = [_mm_setzero_si128(); N];
    for l in 0..N {
        (abef[l], cdgh[l]) = load(&states[l]);
    }
    let (abef_in, cdgh_in) = (abef, cdgh);
    for wk in wk {
        // SAFETY: four words, one unaligned 16-byte load.
        let wk = unsafe { _mm_loadu_si128(wk.as_ptr().cast()) };
        let hi = _mm_shuffle_epi32(wk, 0x0E);
        for l in 0..N {
            cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], hi);
        }
    }
    finish(states, abef, cdgh, abef_in, cdgh_in);
}

/// A state as the extensions take it: its words in the registers ABEF and CDGH.
#[inline]
#[target_feature(enable = "sha,sse4.1,ssse3")]
fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
    let state: *const __m128i = state.as_ptr().cast();
    // SAFETY: a state is 32 bytes, two unaligned 16-byte loads.
    let (dcba, hgfe) = unsafe { (_mm_loadu_si128(state), _mm_loadu_si128(state.add(1))) };
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    (
        _mm_alignr_epi8(cdab, efgh, 8),
        _mm_blend_epi16(efgh, cdab, 0xF0),
    )
}

/// Ends a compression of every lane: its rounds' result added to the state it started from
/// (`abef_in`, `cdgh_in`), written back into its state.
#[inline]
#[target_feature(enable = "sha,sse4.1,ssse3")]
fn finish<const N: usize>(
    states: &mut [[u32; 8]; N],
    abef: [__m128i; N],
    cdgh: [__m128i; N],
    abef_in: [__m128i; N],
    cdgh_in: [__m128i; N],
) {
    for l in 0..N {
        store(
            &mut states[l],
            _mm_add_epi32(abef[l], abef_in[l]),
            _mm_add_epi32(cdgh[l], cdgh_in[l]),
        );
    }
}

/// Writes the registers ABEF and CDGH back into `state`, the inverse of [`load`].
#[inline]
#[target_feature(enable = "sha,sse4.1,ssse3")]
fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
    let feba = _mm_shuffle_epi32(abef, 0x1B);
    let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    let state: *mut __m128i = state.as_mut_ptr().cast();
    // SAFETY: a state is 32 bytes, two unaligned 16-byte stores.
    unsafe {
        _mm_storeu_si128(state, _mm_blend_epi16(feba, dchg, 0xF0));
        _mm_storeu_si128(state.add(1), _mm_alignr_epi8(dchg, feba, 8));
    }
}

/// Rounds `4r..4r + 4` of every lane, the message words for them first (from round 16 on,
/// `schedule`).
#[inline]
#[target_feature(enable = "sha,sse4.1,ssse3")]
fn rounds<const N: usize>(
    r: usize,
    schedule: bool,
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    w: &mut [[__m128i; 4]; N],
) {
    let i = r % 4;
    // SAFETY: r < 16, so the four constants from 4r are in K.
    let k = unsafe { _mm_loadu_si128(K.as_ptr().add(4 * r).cast()) };
    for l in 0..N {
        let w = &mut w[l];
        if schedule {
            let t1 = _mm_sha256msg1_epu32(w[i], w[(i + 1) % 4]);
            let t2 = _mm_alignr_epi8(w[(i + 3) % 4], w[(i + 2) % 4], 4);
            w[i] = _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), w[(i + 3) % 4]);
        }
        let wk = _mm_add_epi32(w[i], k);
        cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
        abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk, 0x0E));
    }
}
