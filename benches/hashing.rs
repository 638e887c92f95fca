//! Hashing speed: SHA-1 of whole pieces in memory, and `Storage::recheck` of a 256 MiB file
//! that sits in the page cache (1 and 2 hashing threads). Results are in BENCHMARKS.md.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use btvod::engine::storage::{Storage, StorageLayout};
use btvod::proto::geometry::Geometry;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha1::{Digest, Sha1};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Deterministic, incompressible-looking bytes (xorshift), so nothing is special-cased.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha1_pieces(c: &mut Criterion) {
    let mut group = c.benchmark_group("sha1_piece");
    for (name, len) in [("256KiB", 256 * KIB), ("1MiB", MIB), ("4MiB", 4 * MIB)] {
        let data = pseudo_random(len, len as u64);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let digest: [u8; 20] = Sha1::digest(black_box(&data)).into();
                digest
            })
        });
    }
    group.finish();
}

fn recheck_file(c: &mut Criterion) {
    const TOTAL: usize = 256 * MIB;
    const PIECE: usize = MIB;
    let dir = tempfile::tempdir().expect("temporary directory for the benchmark file");
    let path = dir.path().join("movie.bin");
    let mut file = std::fs::File::create(&path).expect("create benchmark file");
    let mut hashes = Vec::with_capacity(TOTAL / PIECE);
    for i in 0..TOTAL / PIECE {
        let piece = pseudo_random(PIECE, i as u64 + 1);
        hashes.push(Sha1::digest(&piece).into());
        file.write_all(&piece).expect("write benchmark file");
    }
    drop(file);
    let geometry = Geometry::new(PIECE as u32, &[TOTAL as u64]).expect("geometry");
    let layout = StorageLayout::new(
        dir.path(),
        vec![(PathBuf::from("movie.bin"), TOTAL as u64)],
        geometry,
        hashes,
    );
    let storage = Storage::open_existing(layout).expect("open benchmark file");
    // Warm the page cache and check the setup once.
    let present = storage.recheck(&mut |_, _| {}).expect("recheck");
    assert!(
        present.is_complete(),
        "benchmark file does not match its hashes"
    );

    let mut group = c.benchmark_group("recheck_256MiB_1MiB_pieces");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(TOTAL as u64));
    for threads in [1, 2] {
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter(|| {
                storage
                    .recheck_with_threads(threads, &mut |_, _| {})
                    .expect("recheck")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sha1_pieces, recheck_file);
criterion_main!(benches);
