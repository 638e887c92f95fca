//! Nutella's LAN search on 127.0.0.1: two btvod seeds with different torrents and one that does
//! not answer (`--no-lan-search`); `btvod search` finds exactly the matching one and its magnet
//! downloads; nobody answers a name nobody has; a flood of 1,000 queries in a second gets a
//! bounded number of answers.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use btvod::proto::search::{Answer, Query, SEARCH_GROUP_V4, SEARCH_PORT};
use common::cli::{assert_exits_ok, btvod_get, make_and_seed};
use common::content::deterministic_content;
use common::process::ProcessGuard;

const BOUND: Duration = Duration::from_secs(60);
const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");

/// A file called `name` with its torrent, seeded on 127.0.0.1, answering searches unless
/// `answers` is false.
fn seed_named(dir: &Path, name: &str, seed: u64, answers: bool) -> ProcessGuard {
    let content = dir.join(name);
    std::fs::write(&content, deterministic_content(300_000, seed)).unwrap();
    make_and_seed(&content, "64KiB", answers, &[]).0
}

fn search(words: &str) -> String {
    let out = Command::new(BTVOD)
        .args(["search", words, "--bind", "127.0.0.1", "--wait", "1.5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn search_finds_exactly_the_matching_seed_and_its_magnet_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let walk = seed_named(dir.path(), "nutella-walk-movie.txt", 121, true);
    let _other = seed_named(dir.path(), "other-film.bin", 122, true);
    let _quiet = seed_named(dir.path(), "walk-quietly.txt", 123, false);
    let found = search("WALK");
    let lines: Vec<&str> = found.lines().collect();
    assert_eq!(lines.len(), 1, "one answer: {found}\n{}", walk.report());
    assert!(lines[0].starts_with("nutella-walk-movie.txt "), "{found}");
    let magnet = lines[0]
        .split_whitespace()
        .find(|t| t.starts_with("magnet:?"))
        .unwrap_or_else(|| panic!("no magnet token in {found}"));
    assert!(magnet.contains("&x.pe=127.0.0.1:"), "{magnet}");
    let out = dir.path().join("got");
    let get = btvod_get(magnet, &out, &["--no-dht"]);
    assert_exits_ok(&get, BOUND, "btvod get of the found magnet", &walk.report());
    let want = std::fs::read(dir.path().join("nutella-walk-movie.txt")).unwrap();
    assert_eq!(
        std::fs::read(out.join("nutella-walk-movie.txt")).unwrap(),
        want
    );

    assert!(search("nobody has this").starts_with("nobody answered"));
}

#[test]
fn a_flood_of_queries_gets_a_bounded_number_of_answers() {
    let dir = tempfile::tempdir().unwrap();
    let _seed = seed_named(dir.path(), "flood-target-movie.txt", 124, true);
    let asker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sock = socket2::SockRef::from(&asker);
    sock.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sock.set_multicast_loop_v4(true).unwrap();
    asker
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let group = SocketAddr::from((SEARCH_GROUP_V4, SEARCH_PORT));
    let started = Instant::now();
    for id in 0..1000u64 {
        let query = Query {
            id: 0xf100d000 + id,
            words: "flood target".into(),
        };
        asker.send_to(&query.encode(), group).unwrap();
        std::thread::sleep(Duration::from_micros(900));
    }
    let sent_in = started.elapsed();
    let (mut answers, mut buf) = (0, [0u8; 1024]);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Ok((n, _)) = asker.recv_from(&mut buf)
            && Answer::parse(&buf[..n]).is_ok()
        {
            answers += 1;
        }
    }
    let seconds = (sent_in + Duration::from_secs(2)).as_secs() + 1;
    eprintln!("1000 queries in {sent_in:?}: {answers} answers");
    assert!(answers >= 1, "the seed answered nothing");
    assert!(
        answers as u64 <= 10 * seconds,
        "{answers} answers to a flood over {seconds} s"
    );
}
