//! IPv6 on the loopback: btvod downloads from a libtorrent seed listening on [::1] only, and
//! libtorrent downloads from a btvod seed that listens on `::` (dual-stack) over IPv6.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btvod::engine::torrent::TorrentConfig;
use common::cli::{assert_exits_ok, btvod};
use common::external::{LibtorrentPeer, LtOptions, make_torrent_with_libtorrent};
use common::movie_dir::MovieDir;
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
    let (torrent, out_text, peer) = (
        torrent.display().to_string(),
        out.display().to_string(),
        peer.to_string(),
    );
    let get = btvod(
        &[
            "get", &torrent, "--out", &out_text, "--port", "0", "--peer", &peer,
        ],
        &out,
    );
    assert_exits_ok(&get, BOUND, "btvod get from [::1]", &seed.report());
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
