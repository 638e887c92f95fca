//! Local service discovery (BEP 14) with libtorrent on 127.0.0.1, no tracker and no `--peer`:
//! btvod hears a libtorrent peer's announce and dials it, libtorrent hears btvod's and dials
//! it, and btvod ignores its own announces. Each side announces when it starts (then every
//! five minutes), so the one started second is the one heard. Over IPv6, two btvods on
//! hosts of a namespace LAN with no IPv4 find each other in the IPv6 group.

mod common;

use std::time::{Duration, Instant};

use common::cli::{assert_exits_ok, btvod};
use common::content::free_port;
use common::external::{LibtorrentPeer, LtOptions, wait_listening};
use common::movie_dir::MovieDir;
use common::netns::Lan;
use common::process::ProcessGuard;

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(60);

/// `btvod ARGS...` for the world's torrent on 127.0.0.1 with LSD on (the default), nothing
/// else to find peers with.
fn btvod_lsd(
    world: &MovieDir,
    command: &str,
    port: u16,
    extra: &[&str],
) -> common::process::ProcessGuard {
    let torrent = world.torrent_path().display().to_string();
    let port = port.to_string();
    let mut args = vec![
        command,
        &torrent,
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--no-dht",
    ];
    args.extend_from_slice(extra);
    btvod(&args, world.root())
}

#[test]
fn btvod_hears_a_libtorrent_leecher_announce_itself_and_serves_it() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 111);
    let port = free_port();
    let content = world.content_path().display().to_string();
    let seed = btvod_lsd(&world, "seed", port, &["--content", &content]);
    wait_listening(port, BOUND, &seed).unwrap_or_else(|e| panic!("{e}"));
    let leech = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            lsd: true,
            exit_when_complete: true,
            max_seconds: Some(BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    leech
        .wait_complete(BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.report()));
    world.assert_downloaded(0);
}

#[test]
fn libtorrent_hears_btvods_announce_and_gives_it_the_movie() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 112);
    let seed = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.seed_dir(),
        &LtOptions {
            lsd: true,
            ..LtOptions::seed()
        },
    );
    seed.wait_port(BOUND).unwrap_or_else(|e| panic!("{e}"));
    let out = world.leech_dir(0);
    std::fs::create_dir_all(&out).unwrap();
    let out_text = out.display().to_string();
    let get = btvod_lsd(&world, "get", 0, &["--out", &out_text]);
    assert_exits_ok(&get, BOUND, "btvod get, found by LSD", &seed.report());
    world.assert_downloaded(0);
}

/// A lone btvod hears its own announce come back from the group and drops it by its cookie:
/// no dial to itself.
#[test]
fn btvod_ignores_its_own_announce() {
    let world = MovieDir::new(MIB, 64 * 1024, 113);
    let content = world.content_path().display().to_string();
    let seed = btvod_lsd(&world, "seed", 0, &["--content", &content, "-v"]);
    let deadline = Instant::now() + BOUND;
    while !seed.report().contains("LSD: our own announce, ignored") {
        assert!(Instant::now() < deadline, "{}", seed.report());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = seed.report();
    assert!(!log.contains("connection failed"), "{log}");
    assert!(!log.contains("LSD: a peer of this torrent"), "{log}");
}

/// Two hosts (network namespaces on one bridge) with IPv6 addresses only: a btvod seed on one
/// and `btvod get` on the other find each other in BEP 14's IPv6 group (ff15::efc0:988f), the
/// only way they can, and the movie arrives.
#[test]
fn two_btvods_on_an_ipv6_only_lan_find_each_other_in_the_ipv6_group() {
    let lan = match Lan::try_new(2, false) {
        Ok(lan) => lan,
        Err(e) => {
            eprintln!("SKIPPED: network namespaces cannot be made here ({e})");
            return;
        }
    };
    let world = MovieDir::new(2 * MIB, 64 * 1024, 114);
    let torrent = world.torrent_path().display().to_string();
    let content = world.content_path().display().to_string();
    let out = world.leech_dir(0);
    std::fs::create_dir_all(&out).unwrap();
    let out_text = out.display().to_string();
    let run = |k: usize, tail: &[&str]| {
        let bind = lan.hosts[k].v6.to_string();
        let mut args = lan.hosts[k].command(env!("CARGO_BIN_EXE_btvod"));
        args.extend_from_slice(tail);
        args.extend_from_slice(&["--bind", &bind, "--no-dht", "--no-lan-search", "-v"]);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        ProcessGuard::spawn("btvod", "ip", &args, world.root(), |_| {})
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let seed = run(
        0,
        &["seed", &torrent, "--content", &content, "--port", "6881"],
    );
    let deadline = Instant::now() + BOUND;
    while !seed.report().contains("LSD: our own announce, ignored") {
        assert!(Instant::now() < deadline, "{}", seed.report());
        std::thread::sleep(Duration::from_millis(50));
    }
    let get = run(1, &["get", &torrent, "--out", &out_text, "--port", "0"]);
    assert_exits_ok(&get, BOUND, "btvod get, found by IPv6 LSD", &seed.report());
    world.assert_downloaded(0);
    let log = seed.report();
    assert!(log.contains("LSD: a peer of this torrent"), "{log}");
    assert!(log.contains("fd77::2"), "not heard over IPv6: {log}");
}
