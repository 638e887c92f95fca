//! IPv6 on the loopback: btvod downloads from a libtorrent seed listening on [::1] only, and
//! libtorrent downloads from a btvod seed that listens on `::` (dual-stack) over IPv6.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btvod::engine::torrent::TorrentConfig;
use common::external::{LibtorrentPeer, LtOptions, make_torrent_with_libtorrent};
use common::movie_dir::MovieDir;
use common::process::ProcessGuard;
use common::session::{options, runtime};

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(60);

#[test]
fn btvod_downloads_from_a_libtorrent_seed_on_ipv6_loopback() {
    let world = MovieDir::new(3 * MIB, 64 * 1024, 61);
    let (torrent, _) = make_torrent_with_libtorrent(&world.content_path(), 64 * 1024, &[]);
    let seed = LibtorrentPeer::start(
        &torrent,
        &world.seed_dir(),
        &LtOptions {
            listen_host: Some("::1".into()),
            ..LtOptions::seed()
        },
    );
    let peer = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, seed.port()));
    let out = world.leech_dir(0);
    std::fs::create_dir_all(&out).unwrap();
    // The default --bind (`::`) listens on both families.
    let args: Vec<String> = [
        "get",
        &torrent.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--port",
        "0",
        "--peer",
        &peer.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let get = ProcessGuard::spawn(
        "btvod get",
        env!("CARGO_BIN_EXE_btvod"),
        &args,
        &out,
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let status = get
        .wait_exit(BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.report()));
    assert!(status.success(), "{}\n{}", get.report(), seed.report());
    world.assert_downloaded(0);
}

#[test]
fn libtorrent_downloads_from_a_dual_stack_btvod_seed_over_ipv6() {
    let world = MovieDir::new(3 * MIB, 64 * 1024, 62);
    let rt = runtime();
    let mut opts = options(9, vec![], TorrentConfig::default());
    opts.listen = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    let seed = rt.block_on(world.seed(opts));
    let port = seed.torrent.listen_addr.expect("the seed listens").port();
    let leech = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            listen_host: Some("::1".into()),
            max_seconds: Some(BOUND.as_secs()),
            ..LtOptions::download_from(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))
        },
    );
    leech
        .wait_complete(BOUND)
        .unwrap_or_else(|e| panic!("{e}\nbtvod seed: {:?}", seed.torrent.stats.borrow()));
    world.assert_downloaded(0);
    rt.block_on(seed.shutdown());
}
