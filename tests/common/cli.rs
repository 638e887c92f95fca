//! The `btvod` binary as tests run it: a child process stopped on drop, the wait for it to
//! succeed, and magnet links for a test torrent.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use btvod::proto::InfoHash;

use super::external::{LibtorrentPeer, LtOptions, OpenTracker};
use super::movie_dir::MovieDir;
use super::process::ProcessGuard;

/// `btvod ARGS...` in `dir` (its output kept for failure messages).
pub fn btvod(args: &[&str], dir: &Path) -> ProcessGuard {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    ProcessGuard::spawn("btvod", env!("CARGO_BIN_EXE_btvod"), &args, dir, |_| {})
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `btvod get LINK --out OUT` on 127.0.0.1, any port, no LSD (tests that run at once share
/// content), plus `extra` (logs at info on stderr); OUT is made first.
pub fn btvod_get(link: &str, out: &Path, extra: &[&str]) -> ProcessGuard {
    std::fs::create_dir_all(out).expect("make the download directory");
    let out_text = out.display().to_string();
    let mut args = vec![
        "get",
        link,
        "--out",
        &out_text,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--no-lsd",
    ];
    args.extend_from_slice(extra);
    btvod(&args, out)
}

/// `btvod seed` of `world`'s content on 127.0.0.1 without LSD or LAN search answers, plus `extra` (`--no-dht` unless
/// `extra` speaks of the DHT); with a `port`, once it listens there (0: any port, not waited
/// for).
pub fn btvod_seed(world: &MovieDir, port: u16, extra: &[&str]) -> ProcessGuard {
    let (torrent, content) = (world.torrent_path(), world.content_path());
    let (torrent, content) = (torrent.display().to_string(), content.display().to_string());
    let port_text = port.to_string();
    let mut args = vec![
        "seed",
        &torrent,
        "--content",
        &content,
        "--bind",
        "127.0.0.1",
        "--port",
        &port_text,
        "--no-lsd",
        "--no-lan-search",
    ];
    if !extra.iter().any(|a| a.starts_with("--dht")) {
        args.push("--no-dht");
    }
    args.extend_from_slice(extra);
    let seed = btvod(&args, world.root());
    if port != 0 {
        super::external::wait_listening(port, Duration::from_secs(30), &seed)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    seed
}

/// A libtorrent leecher of `world` (leech dir 0) that dials `from` with `options` (transport,
/// encryption) completes within `bound`; panics with `other`'s report if not.
pub fn assert_libtorrent_downloads(
    world: &MovieDir,
    from: std::net::SocketAddr,
    options: LtOptions,
    bound: Duration,
    other: &ProcessGuard,
) {
    let leech = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            max_seconds: Some(bound.as_secs()),
            ..LtOptions {
                connect: vec![from],
                exit_when_complete: true,
                ..options
            }
        },
    );
    leech
        .wait_complete(bound)
        .unwrap_or_else(|e| panic!("{e}\n{}", other.report()));
    world.assert_downloaded(0);
}

/// `btvod make-torrent` of `content` (pieces of `piece_len`, e.g. `16KiB`) beside it, then
/// `btvod seed` of it on 127.0.0.1 with no DHT or LSD, answering LAN searches only if
/// `lan_search`, plus `extra`; once it listens. Returns the seed, its address, the torrent.
pub fn make_and_seed(
    content: &Path,
    piece_len: &str,
    lan_search: bool,
    extra: &[&str],
) -> (ProcessGuard, String, std::path::PathBuf) {
    let torrent = content.with_extension("torrent");
    let dir = content.parent().unwrap_or(Path::new("."));
    let content_text = content.display().to_string();
    let torrent_text = torrent.display().to_string();
    let made = btvod(
        &[
            "make-torrent",
            &content_text,
            "-o",
            &torrent_text,
            "--piece-length",
            piece_len,
        ],
        dir,
    );
    assert_exits_ok(&made, Duration::from_secs(30), "btvod make-torrent", "");
    let port = super::content::free_port();
    let port_text = port.to_string();
    let mut args = vec![
        "seed",
        &torrent_text,
        "--content",
        &content_text,
        "--bind",
        "127.0.0.1",
        "--port",
        &port_text,
        "--no-dht",
        "--no-lsd",
    ];
    if !lan_search {
        args.push("--no-lan-search");
    }
    args.extend_from_slice(extra);
    let seed = btvod(&args, dir);
    super::external::wait_listening(port, Duration::from_secs(30), &seed)
        .unwrap_or_else(|e| panic!("{e}"));
    (seed, format!("127.0.0.1:{port}"), torrent)
}

/// Waits up to `bound` for `process` to exit, and fails the test unless it succeeded;
/// `other` is added to the failure message (a peer's or tracker's report).
pub fn assert_exits_ok(process: &ProcessGuard, bound: Duration, what: &str, other: &str) {
    let status = process
        .wait_exit(bound)
        .unwrap_or_else(|e| panic!("{what}: {e}\n{other}"));
    assert!(
        status.success(),
        "{what} failed: {status}\n{}\n{other}",
        process.report()
    );
}

/// `magnet:?xt=urn:btih:HASH` with `(key, value)` hints, values percent-encoded but for
/// `x.pe`'s `HOST:PORT`, which libtorrent reads only as written.
pub fn magnet_link(info_hash: InfoHash, hints: &[(&str, &str)]) -> String {
    let mut link = format!("magnet:?xt=urn:btih:{info_hash}");
    for (key, value) in hints {
        let value: String = match *key {
            "x.pe" => value.to_string(),
            _ => url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        };
        link.push_str(&format!("&{key}={value}"));
    }
    link
}

/// A libtorrent seed of `world` announced to a fresh opentracker (which the torrent names over
/// HTTP), once the tracker has answered it.
pub fn seed_behind_opentracker(world: &mut MovieDir) -> (OpenTracker, LibtorrentPeer) {
    let tracker = OpenTracker::start(&[world.meta.info_hash.to_hex()]);
    world.retorrent(&[tracker.announce_url()]);
    let seed = LibtorrentPeer::start(&world.torrent_path(), &world.seed_dir(), &LtOptions::seed());
    seed.wait_tracker_reply(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", tracker.report()));
    (tracker, seed)
}
