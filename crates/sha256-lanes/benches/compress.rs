//! Four blocks into four states: `sha2`'s compression one block after the other against
//! [`compress_each`] with all four at once, and one block known ahead into four states
//! ([`compress_known`]).
//!
//! `cargo bench -p avp-sha256-lanes`
use avp_sha256_lanes::{compress_each, compress_known, KnownBlock, BLOCK};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::block_api::compress256;
use std::hint::black_box;

fn four_blocks(c: &mut Criterion) {
    let blocks: [[u8; BLOCK]; 4] = std::array::from_fn(|i| [i as u8; BLOCK]);
    let refs: [&[u8; BLOCK]; 4] = std::array::from_fn(|i| &blocks[i]);
    let mut g = c.benchmark_group("four_blocks");
    g.throughput(Throughput::Elements(4));
    let mut states = [[1u32; 8]; 4];
    g.bench_function("sha2_one_by_one", |b| {
        b.iter(|| {
            for (state, block) in states.iter_mut().zip(&blocks) {
                compress256(state, std::slice::from_ref(black_box(block)));
            }
        })
    });
    g.bench_function("compress_each", |b| {
        b.iter(|| compress_each(&mut states, black_box(&refs)))
    });
    let known = KnownBlock::new(&blocks[0]);
    g.bench_function("compress_known", |b| {
        b.iter(|| compress_known(&mut states, black_box(&known)))
    });
    g.finish();
    black_box(states);
}

criterion_group!(benches, four_blocks);
criterion_main!(benches);
