//! Picker decision cost: one `next_requests` call plus the block arrivals it leads to, as the
//! torrent task does on every block; rarest-first and sequential at 100k pieces and 200 peers,
//! the deadline policy on a long movie among 1,000 peers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use btvod::policy::picker::{
    BlockOutcome, DeadlineConfig, DeadlinePicker, Picker, RarestFirst, Sequential,
};
use btvod::policy::vod::{Schedule, VodParams};
use btvod::policy::{PeerKey, PeerView};
use btvod::proto::bitfield::Bitfield;
use btvod::proto::geometry::{BLOCK_LEN, BlockRef, Geometry};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PIECES: u32 = 100_000;
const PEERS: u64 = 200;
const SLOTS: usize = 4;

#[derive(Clone, Copy)]
enum Swarm {
    /// 100 seeds and 100 peers holding a random half each.
    Mixed,
    /// No seeds; even peers hold a fifth of the first half, odd peers most of the second: odd
    /// peers lack every one of the rarest pieces (the scan's worst case).
    Split,
}

fn geometry() -> Geometry {
    let piece_len = 16 * BLOCK_LEN;
    Geometry::new(piece_len, &[u64::from(piece_len) * u64::from(PIECES)]).unwrap()
}

fn ours(g: &Geometry) -> Bitfield {
    let mut b = Bitfield::empty(g.piece_count());
    for p in g.pieces().take(4) {
        b.set(p);
    }
    b
}

fn bitfields(g: &Geometry, swarm: Swarm) -> Vec<Bitfield> {
    let mut rng = StdRng::seed_from_u64(1);
    (0..PEERS)
        .map(|peer| {
            let mut b = Bitfield::empty(g.piece_count());
            let (range, share) = match swarm {
                Swarm::Mixed if peer < PEERS / 2 => return Bitfield::full(g.piece_count()),
                Swarm::Mixed => (0..PIECES, 0.5),
                Swarm::Split if peer % 2 == 0 => (0..PIECES / 2, 0.2),
                Swarm::Split => (PIECES / 2..PIECES, 0.9),
            };
            for i in range {
                if rng.random_bool(share) {
                    b.set(g.piece(i).unwrap());
                }
            }
            b
        })
        .collect()
}

fn build(g: &Geometry, rarest: bool, fields: &[Bitfield]) -> Box<dyn Picker> {
    let mut picker: Box<dyn Picker> = if rarest {
        Box::new(RarestFirst::new(g.clone(), &ours(g), StdRng::seed_from_u64(7)).unwrap())
    } else {
        Box::new(Sequential::new(g.clone(), &ours(g)).unwrap())
    };
    for (peer, b) in fields.iter().enumerate() {
        picker.on_peer_bitfield(PeerKey(peer as u64), b);
    }
    picker
}

/// The blocks asked for arrive at once, and completed pieces pass their hash check.
fn deliver(picker: &mut dyn Picker, now: Duration, key: PeerKey, blocks: &[BlockRef]) {
    for &b in blocks {
        if let BlockOutcome::New {
            piece_complete: true,
        } = picker.on_block(now, key, b)
        {
            picker.on_piece_verified(b.piece());
        }
    }
    black_box(picker.cancellations());
}

/// A picker in steady state, kept across samples so its one-second setup is paid once.
struct Steady {
    rarest: bool,
    picker: Box<dyn Picker>,
    round: u64,
}

impl Steady {
    fn new(rarest: bool, fields: &[Bitfield]) -> Self {
        Self {
            rarest,
            picker: build(&geometry(), rarest, fields),
            round: 0,
        }
    }

    /// `iters` rounds of: ask one peer (round robin) for SLOTS blocks, deliver them, verify
    /// completed pieces. The picker is rebuilt (untimed) when it runs dry.
    fn run(&mut self, fields: &[Bitfield], iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let now = Duration::from_secs(1);
        for _ in 0..iters {
            let key = PeerKey(self.round % PEERS);
            self.round += 1;
            let start = Instant::now();
            let blocks = self.picker.next_requests(now, &PeerView::new(key), SLOTS);
            deliver(self.picker.as_mut(), now, key, &blocks);
            total += start.elapsed();
            if blocks.is_empty() && self.picker.book().is_endgame() {
                self.picker = build(&geometry(), self.rarest, fields);
            }
        }
        total
    }
}

/// The deadline policy at scale: a 2,000-piece movie of 256 KiB pieces played at 512 KiB/s
/// (about 17 minutes), 1,000 peers (50 seeds, the rest a random half each) at measured rates
/// of 64 KiB/s to 1 MiB/s. The clock moves 5 ms a round, so the urgent window slides.
const CROWD: u64 = 1_000;
const MOVIE_PIECES: u32 = 2_000;

fn movie() -> (Geometry, Schedule) {
    let piece_len = 16 * BLOCK_LEN;
    let g = Geometry::new(piece_len, &[u64::from(piece_len) * u64::from(MOVIE_PIECES)]).unwrap();
    let params =
        VodParams::new(512 * 1024, Duration::from_secs(6), Duration::from_secs(2)).unwrap();
    let schedule = Schedule::new(params, &g, 0..g.total_len()).unwrap();
    (g, schedule)
}

fn crowd_fields(g: &Geometry) -> Vec<Bitfield> {
    let mut rng = StdRng::seed_from_u64(2);
    (0..CROWD)
        .map(|peer| {
            if peer < 50 {
                return Bitfield::full(g.piece_count());
            }
            let mut b = Bitfield::empty(g.piece_count());
            for p in g.pieces() {
                if rng.random_bool(0.5) {
                    b.set(p);
                }
            }
            b
        })
        .collect()
}

fn crowd_view(key: PeerKey) -> PeerView {
    PeerView {
        key,
        download_rate: f64::from(64 * 1024 * (1 + (key.0 % 16) as u32)),
        rtt: Some(Duration::from_millis(50)),
    }
}

/// A deadline picker among the crowd, rebuilt (untimed) when the movie is fetched.
struct DeadlineSteady {
    picker: DeadlinePicker,
    /// Rounds since the picker was built: its clock.
    round: u64,
}

impl DeadlineSteady {
    fn new(g: &Geometry, schedule: &Schedule, fields: &[Bitfield]) -> Self {
        let config = DeadlineConfig::default();
        let ours = Bitfield::empty(g.piece_count());
        let rng = StdRng::seed_from_u64(7);
        let mut picker = DeadlinePicker::for_schedule(g.clone(), &ours, schedule, rng, config)
            .expect("a valid schedule");
        for (peer, b) in fields.iter().enumerate() {
            picker.on_peer_bitfield(PeerKey(peer as u64), b);
        }
        Self { picker, round: 0 }
    }

    fn run(
        &mut self,
        g: &Geometry,
        schedule: &Schedule,
        fields: &[Bitfield],
        iters: u64,
    ) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let key = PeerKey(self.round % CROWD);
            let now = Duration::from_millis(5 * self.round);
            self.round += 1;
            let start = Instant::now();
            let blocks = self.picker.next_requests(now, &crowd_view(key), SLOTS);
            deliver(&mut self.picker, now, key, &blocks);
            total += start.elapsed();
            if blocks.is_empty() && self.picker.book().is_endgame() {
                *self = Self::new(g, schedule, fields);
            }
        }
        total
    }
}

fn bench(c: &mut Criterion) {
    let g = geometry();
    let mixed = bitfields(&g, Swarm::Mixed);
    let split = bitfields(&g, Swarm::Split);
    let mut group = c.benchmark_group("picker_100k_pieces_200_peers");
    group.sample_size(20);
    for (name, rarest, fields) in [
        ("rarest_mixed_request_and_deliver", true, &mixed),
        ("rarest_split_request_and_deliver", true, &split),
        ("sequential_mixed_request_and_deliver", false, &mixed),
    ] {
        let mut steady = Steady::new(rarest, fields);
        group.bench_function(name, |b| b.iter_custom(|iters| steady.run(fields, iters)));
    }
    group.bench_function("rarest_setup_with_200_bitfields", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                black_box(build(&g, true, &mixed));
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();

    let (g, schedule) = movie();
    let crowd = crowd_fields(&g);
    let mut group = c.benchmark_group("deadline_2k_piece_movie_1000_peers");
    group.sample_size(20);
    let mut steady = DeadlineSteady::new(&g, &schedule, &crowd);
    group.bench_function("request_and_deliver", |b| {
        b.iter_custom(|iters| steady.run(&g, &schedule, &crowd, iters))
    });
    group.bench_function("setup_with_1000_bitfields", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                black_box(DeadlineSteady::new(&g, &schedule, &crowd));
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
