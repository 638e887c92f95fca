//! The VoD client (`btvod [OPTIONS] FILE.torrent`) played against local swarms of btvod peers
//! and the metered origin (`btvod origin`), scored by the contract (`vod-scoring.md`): the
//! report's keys and meanings, the penalty equal to the origin's own meter to the byte, the
//! movie byte-identical; a fast swarm costs nothing, a slow one costs what it must, the
//! deadline policy is no worse than rarest-first, a distant server is asked early enough with
//! prefetch, and in a multi-file torrent only the movie's pieces are ever bought.

mod common;
mod vod_support;

use std::time::Duration;

use vod_support::{
    KIB, Movie, Origin, PlayArgs, Swarm, assert_consistent, movie_pieces, play, some_pieces,
};

const MIB: usize = 1024 * 1024;
const PIECE: u32 = 64 * 1024;
/// Longest any one client run may take (the movies here play for well under 20 s).
const RUN_BOUND: Duration = Duration::from_secs(60);

/// The whole world of the issue: the built-in tracker, the origin as the torrent's web seed, a
/// capped seed and three partial peers with capped upload; the client finds them all through
/// the tracker, and the swarm alone is too slow, so both the peers and the server contribute.
#[test]
fn btvod_world_plays_the_movie_with_penalty_equal_to_the_origin_meter() {
    let mut movie = Movie::single(2 * MIB + 5000, 11, PIECE);
    let origin = Origin::start(&movie.content_path, 0);
    // No --server: the client must use the torrent's url-list.
    movie.set_web_seed(&origin.url());
    let mut swarm = Swarm::new(true);
    swarm.seed(&movie, 64 * KIB);
    let mut partial_pieces = 0;
    for k in 0..3 {
        let (_, have) = swarm.partial(&movie, some_pieces(k, 0.35), 32 * KIB, 0);
        assert!(have > 0, "partial peer {k} verified none of its pieces");
        assert!(have < movie.piece_count(), "partial peer {k} is complete");
        partial_pieces += have;
    }
    assert!(partial_pieces > 0);
    let mut args = PlayArgs::new(256, 3.0, 1.0);
    args.tracker = swarm.tracker.clone();
    args.upload_kib = 64;
    let p = play(&movie, &args, "world", RUN_BOUND);
    let stats = origin.stats();
    assert_consistent(&p, &movie, &args, &stats);
    let r = &p.report;
    eprintln!("world: {r:?}\norigin: {stats:?}");
    assert!(
        r.peers_seen >= 2,
        "the tracker introduced the seed and the partial peers: {r:?}"
    );
    assert!(r.peer_bytes > 0, "the swarm delivered nothing: {r:?}");
    // ~200 KiB/s of upload in the swarm against R = 256 KiB/s: the server must have helped.
    assert!(
        r.penalty_bytes > 0,
        "a swarm slower than R cost nothing: {r:?}"
    );
    assert!(r.pieces_from_server as u64 <= movie_pieces(&movie));
    // The partial peers want what the client has, and its --max-upload-rate 64 holds.
    assert!(r.uploaded_bytes > 0, "nothing uploaded to the swarm: {r:?}");
    let cap = 64.0 * 1024.0 * (p.elapsed.as_secs_f64() * 1.1) + 64.0 * 1024.0;
    assert!(
        (r.uploaded_bytes as f64) <= cap,
        "uploaded {} bytes in {:?} at --max-upload-rate 64: {r:?}",
        r.uploaded_bytes,
        p.elapsed
    );
}

/// A swarm far faster than R: every piece arrives before its deadline, under the deadline and
/// the sequential policy alike, so nothing is bought.
#[test]
fn a_swarm_far_faster_than_r_costs_nothing() {
    let movie = Movie::single(2 * MIB, 12, PIECE);
    let origin = Origin::start(&movie.content_path, 0);
    let mut swarm = Swarm::new(false);
    let seed = swarm.seed(&movie, 0);
    for policy in ["deadline", "sequential"] {
        let mut args = PlayArgs::new(256, 4.0, 1.0);
        args.policy = policy;
        args.server = Some(origin.url());
        args.peers = vec![seed];
        let p = play(&movie, &args, policy, RUN_BOUND);
        let stats = origin.stats();
        assert_consistent(&p, &movie, &args, &stats);
        let r = &p.report;
        eprintln!("fast swarm, {policy}: {r:?}");
        assert_eq!(r.penalty_bytes, 0, "{policy}: {r:?}");
        assert_eq!(r.pieces_from_server, 0, "{policy}: {r:?}");
        assert_eq!(r.peer_bytes, movie.len(), "{policy}: {r:?}");
        assert_eq!(r.stall_s, 0.0, "{policy}: {r:?}");
        // Done long before the first deadline (D - P = 3 s) would have bought anything.
        assert!(r.complete_at_s.unwrap() < 3.0, "{policy}: {r:?}");
    }
}

/// Starts a swarm slower than R = 256 KiB/s: a seed capped at 64 KiB/s and three partial peers
/// capped at 32 KiB/s each (~160 KiB/s in all). Returns the swarm and its addresses.
fn slow_swarm(movie: &Movie) -> Swarm {
    let mut swarm = Swarm::new(false);
    swarm.seed(movie, 64 * KIB);
    for k in 0..3 {
        swarm.partial(movie, some_pieces(k + 10, 0.4), 32 * KIB, 0);
    }
    swarm
}

/// A swarm slower than R: the server must cover the gap, its meter agrees with the report, and
/// the deadline policy buys no more than rarest-first does from the same (fresh) swarm.
#[test]
fn a_swarm_slower_than_r_costs_penalty_and_deadline_is_no_worse_than_rarest() {
    let movie = Movie::single(2 * MIB, 13, PIECE);
    let mut penalties = Vec::new();
    for policy in ["deadline", "rarest"] {
        let origin = Origin::start(&movie.content_path, 0);
        let swarm = slow_swarm(&movie);
        let mut args = PlayArgs::new(256, 3.0, 1.0);
        args.policy = policy;
        args.server = Some(origin.url());
        args.peers = swarm.addrs();
        let p = play(&movie, &args, policy, RUN_BOUND);
        let stats = origin.stats();
        assert_consistent(&p, &movie, &args, &stats);
        let r = p.report.clone();
        eprintln!("slow swarm, {policy}: {r:?}");
        assert!(r.penalty_bytes > 0, "{policy}: {r:?}");
        assert!(
            r.peer_bytes > 0,
            "{policy}: the swarm delivered nothing: {r:?}"
        );
        penalties.push(r.penalty_bytes);
        drop(swarm);
    }
    let (deadline, rarest) = (penalties[0], penalties[1]);
    eprintln!("penalty deadline {deadline} / rarest {rarest}");
    // Same swarm, same deadlines: racing for the earliest deadline must not buy more than
    // fetching the rarest pieces first (10% tolerance for the swarm's timing noise).
    assert!(
        deadline <= rarest + rarest / 10,
        "deadline policy bought {deadline} bytes, rarest-first {rarest}"
    );
}

/// A distant server (300 ms before each answer) behind a slow swarm. With P = 0 a piece is due
/// the moment it plays, so whatever the server lands late stalls playback; with P = 2 the
/// client asks early (the lead is learnt from the server's answers) and playback does not wait.
#[test]
fn a_distant_server_stalls_playback_without_prefetch_and_not_with_it() {
    let movie = Movie::single(2 * MIB, 14, PIECE);
    let mut stalls = Vec::new();
    for prefetch in [0.0, 2.0] {
        let origin = Origin::start(&movie.content_path, 300);
        let mut swarm = Swarm::new(false);
        let seed = swarm.seed(&movie, 64 * KIB);
        let mut args = PlayArgs::new(256, 3.0, prefetch);
        args.server = Some(origin.url());
        args.peers = vec![seed];
        let p = play(&movie, &args, &format!("p{prefetch}"), RUN_BOUND);
        let stats = origin.stats();
        assert_consistent(&p, &movie, &args, &stats);
        let r = p.report.clone();
        eprintln!("latency 300 ms, P = {prefetch}: {r:?}");
        assert!(r.penalty_bytes > 0, "P = {prefetch}: {r:?}");
        stalls.push(r.stall_s);
    }
    let (without, with) = (stalls[0], stalls[1]);
    eprintln!("stall P = 0: {without} s, P = 2: {with} s");
    // Without prefetch a piece is due when it plays: the server's bytes and the hash check
    // land after that, and playback waits.
    assert!(without > 0.0, "P = 0 reported no stall");
    // The fetch is issued a learnt lead (~300 ms) before the deadline: without it each
    // bought piece would land ~300 ms late.
    assert!(
        without < 0.3,
        "P = 0 stalled {without} s: the lead did not hide the server's 300 ms"
    );
    assert!(
        with <= 0.05 && with < without,
        "P = 2 still stalled {with} s"
    );
}

/// The movie is the middle file of four; its first and last pieces straddle into the files
/// around it. With no peer at all every movie piece is bought, so the origin's per-file meter
/// shows exactly which bytes were fetched: whole movie pieces, and never a piece without a
/// movie byte. `--file` by index, by path, and the default (the largest file) all pick it.
#[test]
fn in_a_multi_file_torrent_only_the_movie_pieces_are_bought() {
    let files = [
        ("a-intro.bin", 200_000),
        ("b-movie.bin", 600_000),
        ("c-outro.bin", 150_000),
        ("d-extra.bin", 100_000),
    ];
    let movie = Movie::multi(&files, 1, 15, PIECE);
    let names: Vec<String> = movie.meta.files.iter().map(|f| f.path.join("/")).collect();
    assert_eq!(
        names,
        files.map(|(n, _)| n.to_string()),
        "torrent file order"
    );
    let pl = movie.piece_len();
    // Movie bytes [200000, 800000): pieces 3..=12 (196608..851968).
    let (first, last) = (200_000 / pl, (800_000 - 1) / pl);
    assert_eq!((first, last), (3, 12));
    assert_eq!(movie_pieces(&movie), 10);
    let bought_start = first * pl;
    let bought_end = (last + 1) * pl;
    for (tag, file) in [
        ("index", Some("1")),
        ("path", Some("b-movie.bin")),
        ("largest", None),
    ] {
        let origin = Origin::start(&movie.content_path, 0);
        let mut args = PlayArgs::new(512, 1.0, 0.5);
        args.server = Some(origin.url());
        args.file = file.map(str::to_string);
        let p = play(&movie, &args, tag, RUN_BOUND);
        let stats = origin.stats();
        assert_consistent(&p, &movie, &args, &stats);
        let r = &p.report;
        eprintln!("multi-file, --file {file:?}: {r:?}\norigin: {stats:?}");
        assert_eq!(r.file, "pack/b-movie.bin", "{tag}: {r:?}");
        assert_eq!(r.peers_seen, 0);
        assert_eq!(r.peer_bytes, 0, "{tag}: {r:?}");
        assert_eq!(r.pieces_from_server, 10, "{tag}: {r:?}");
        assert_eq!(r.penalty_bytes, bought_end - bought_start, "{tag}: {r:?}");
        let served = |name: &str| {
            stats
                .files
                .iter()
                .filter(|(k, _)| k.ends_with(name))
                .map(|(_, f)| f.bytes_served)
                .sum::<u64>()
        };
        assert_eq!(
            served("a-intro.bin"),
            200_000 - bought_start,
            "{tag}: {stats:?}"
        );
        assert_eq!(served("b-movie.bin"), 600_000, "{tag}: {stats:?}");
        assert_eq!(
            served("c-outro.bin"),
            bought_end - 800_000,
            "{tag}: {stats:?}"
        );
        assert_eq!(served("d-extra.bin"), 0, "no movie byte there: {stats:?}");
        let sum: u64 = stats.files.values().map(|f| f.bytes_served).sum();
        assert_eq!(sum, stats.bytes_served, "{stats:?}");
    }
}

/// A magnet's `so` (BEP 53) picks the movie when `--file` is not given: the largest file it
/// selects, not the torrent's largest. The metadata comes from the `.torrent` an earlier fetch
/// would have saved beside the download, so no peer is needed.
#[test]
fn a_magnets_file_selection_picks_the_movie() {
    let files = [
        ("a-intro.bin", 200_000),
        ("b-movie.bin", 600_000),
        ("c-outro.bin", 150_000),
        ("d-extra.bin", 100_000),
    ];
    let movie = Movie::multi(&files, 2, 17, PIECE);
    let hash = movie.meta.info_hash;
    let out = movie.scratch("play-so");
    std::fs::copy(&movie.torrent, out.join(format!("{hash}.torrent"))).unwrap();
    let origin = Origin::start(&movie.content_path, 0);
    let mut args = PlayArgs::new(512, 1.0, 0.5);
    args.server = Some(origin.url());
    args.source = Some(format!("magnet:?xt=urn:btih:{hash}&so=2-3"));
    args.extra = vec!["--no-dht".into()];
    let p = play(&movie, &args, "so", RUN_BOUND);
    assert_eq!(
        p.report.file, "pack/c-outro.bin",
        "{:?}\n{}",
        p.report, p.log
    );
    assert_consistent(&p, &movie, &args, &origin.stats());
}

/// The origin goes away in the middle of a body and comes back on the same port only after the
/// fetch has given up: the bytes of the cut body were received (and metered by the origin) but
/// complete no block, and the piece is bought again. They still count as penalty, so the
/// report equals both origins' meters together, and the movie is intact.
#[test]
fn bytes_of_a_fetch_cut_short_still_count_as_penalty() {
    let movie = Movie::single(4 * PIECE as usize, 16, PIECE);
    let port = common::external::free_port();
    // 16 KiB/s: one piece takes the server 4 s.
    let slow = Origin::start_on(&movie.content_path, port, &["--rate", "16KiB"]);
    let mut args = PlayArgs::new(64, 1.0, 0.0);
    args.server = Some(slow.url());
    std::thread::scope(|scope| {
        let client = scope.spawn(|| play(&movie, &args, "cut", RUN_BOUND));
        // Wait for the first body to be under way, then stop the origin mid-body.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while slow.stats().bytes_served < 16 * 1024 {
            assert!(std::time::Instant::now() < deadline, "no fetch began");
            std::thread::sleep(Duration::from_millis(50));
        }
        let first = slow.stop();
        assert!(
            !first.is_multiple_of(u64::from(PIECE)),
            "the stop did not cut a body ({first} bytes served)"
        );
        // Down long enough for the fetcher's own retries (~1.4 s of backoff) to give up: the
        // partial body is then lost to the fetch, and the piece is asked for again.
        std::thread::sleep(Duration::from_millis(2500));
        let back = Origin::start_on(&movie.content_path, port, &[]);
        let p = client.join().expect("the client run");
        let second = back.stats().bytes_served;
        let r = &p.report;
        eprintln!("cut: first origin {first}, second {second}: {r:?}");
        assert_eq!(
            r.penalty_bytes,
            first + second,
            "penalty is not every byte received from both origins: {r:?}"
        );
        let saved = std::fs::read(&p.saved).expect("read the saved movie");
        assert!(saved == movie.movie(), "saved movie differs");
        assert!(
            r.penalty_bytes > movie.len(),
            "nothing was bought twice: {r:?}"
        );
    });
}
