//! CI's short run of the fuzz targets: the very checks libFuzzer runs (`fuzz/src/checks`,
//! compiled into this test), fed the committed seeds (`fuzz/seeds/<target>/`) and a few
//! thousand seeded mutations of them, without libFuzzer or a nightly toolchain. Each target
//! stops after `CASES` inputs or `BUDGET`, whichever comes first. A failing input is printed as
//! hex so it can become a regression test in `tests/fuzz_regressions.rs`. The long runs are
//! `scripts/fuzz.sh`.

#[allow(dead_code, unused_imports)]
#[path = "../fuzz/src/checks/mod.rs"]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CASES: usize = 50_000;
const BUDGET: Duration = Duration::from_millis(1500);

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("a seed file"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One libFuzzer-style mutation: flip, overwrite with an interesting byte, insert, delete,
/// duplicate a run, truncate, or splice in part of another seed.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    const INTERESTING: &[u8] = b"\x00\x01\x7f\x80\xff0123456789:ilde-";
    let len = input.len();
    match rng.random_range(0..7) {
        0 if len > 0 => input[rng.random_range(0..len)] ^= 1 << rng.random_range(0..8),
        1 if len > 0 => {
            input[rng.random_range(0..len)] = INTERESTING[rng.random_range(0..INTERESTING.len())]
        }
        2 => input.insert(rng.random_range(0..=len), rng.random()),
        3 if len > 0 => {
            input.remove(rng.random_range(0..len));
        }
        4 if len > 0 => {
            let start = rng.random_range(0..len);
            let end = rng.random_range(start..=len.min(start + 32));
            let run = input[start..end].to_vec();
            let at = rng.random_range(0..=len);
            input.splice(at..at, run);
        }
        5 if len > 0 => input.truncate(rng.random_range(0..len)),
        _ => {
            let other = &seeds[rng.random_range(0..seeds.len())];
            if !other.is_empty() {
                let start = rng.random_range(0..other.len());
                let end = rng.random_range(start..=other.len());
                let at = rng.random_range(0..=len);
                input.splice(at..at, other[start..end].iter().copied());
            }
        }
    }
}

fn run(target: &str, check: fn(&[u8])) {
    let seeds = seeds(target);
    let mut rng = StdRng::seed_from_u64(0x5eed ^ target.len() as u64);
    let started = Instant::now();
    let mut cases = 0;
    let try_one = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            panic!("{target}: the check failed on input {}", hex(input));
        }
    };
    for seed in &seeds {
        try_one(seed);
        cases += 1;
    }
    while cases < CASES && started.elapsed() < BUDGET {
        let mut input = if rng.random_bool(0.1) {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            seeds[rng.random_range(0..seeds.len())].clone()
        };
        for _ in 0..rng.random_range(1..=8) {
            mutate(&mut rng, &mut input, &seeds);
        }
        try_one(&input);
        cases += 1;
    }
    eprintln!("{target}: {cases} inputs in {:?}", started.elapsed());
    assert!(
        cases >= seeds.len() + 100,
        "{target}: only {cases} inputs ran"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn bencode() {
    run("bencode", checks::bencode);
}

#[test]
fn metainfo() {
    run("metainfo", checks::metainfo);
}

#[test]
fn wire_stream() {
    run("wire_stream", checks::wire_stream);
}

#[test]
fn peer_messages() {
    run("peer_messages", checks::peer_messages);
}

#[test]
fn tracker_response() {
    run("tracker_response", checks::tracker_response);
}

#[test]
fn announce_query() {
    run("announce_query", checks::announce_query);
}

#[test]
fn magnet() {
    run("magnet", checks::magnet);
}

#[test]
fn extension() {
    run("extension", checks::extension);
}

#[test]
fn lan() {
    run("lan", checks::lan);
}

#[test]
fn mse_handshake() {
    run("mse_handshake", checks::mse_handshake);
}

#[test]
fn pex() {
    run("pex", checks::pex);
}

#[test]
fn udp_tracker() {
    run("udp_tracker", checks::udp_tracker);
}

#[test]
fn picker_events() {
    run("picker_events", checks::picker_events);
}

/// The seeds reach past the parsers' first checks, so the mutations start from deep inputs.
#[test]
fn seeds_are_valid_inputs() {
    use btvod::proto::metainfo::Metainfo;
    use btvod::proto::tracker::AnnounceResponse;
    for seed in seeds("metainfo") {
        Metainfo::from_bytes(&seed).expect("a metainfo seed is a valid torrent");
    }
    let replies = seeds("tracker_response");
    assert!(
        replies
            .iter()
            .any(|r| AnnounceResponse::parse(r).is_ok_and(|r| r.peers.len() >= 2))
    );
}
