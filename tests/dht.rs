//! The DHT (BEP 5) with libtorrent on a loopback DHT: `btvod get MAGNET` finds a libtorrent
//! seed through libtorrent nodes with no tracker and no peer named, and libtorrent given only a
//! magnet joins the DHT through btvod's node (its only bootstrap) and finds btvod's seed. The
//! second needs btvod's node to answer libtorrent's 2-byte transaction ids
//! (vendor/mainline/PATCHED.md).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cli::{assert_exits_ok, btvod, btvod_get};
use common::content::free_port;
use common::external::{LibtorrentPeer, LtOptions};
use common::movie_dir::MovieDir;

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(90);

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A libtorrent session that only serves as a DHT node (it waits for an unknown torrent),
/// bootstrapping from `peer_node`.
fn dht_router(world: &MovieDir, port: u16, peer_node: u16) -> LibtorrentPeer {
    LibtorrentPeer::start(
        &world.torrent_path(),
        &world.root().join("router"),
        &LtOptions {
            listen_port: port,
            magnet: Some(format!("magnet:?xt=urn:btih:{}", "5".repeat(40))),
            dht_bootstrap: Some(localhost(peer_node)),
            ..LtOptions::default()
        },
    )
}

#[test]
fn btvod_gets_a_magnet_from_a_libtorrent_seed_found_through_the_dht() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 71);
    let (router_port, seed_port) = (free_port(), free_port());
    let _router = dht_router(&world, router_port, seed_port);
    let seed = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.seed_dir(),
        &LtOptions {
            listen_port: seed_port,
            dht_bootstrap: Some(localhost(router_port)),
            ..LtOptions::seed()
        },
    );
    seed.wait_port(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = world.leech_dir(0);
    // Only the info-hash: no tracker, no peer. btvod looks the DHT up every 10 s until the
    // seed has announced itself there.
    let link = format!("magnet:?xt=urn:btih:{}", world.meta.info_hash);
    let router = localhost(router_port).to_string();
    let get = btvod_get(&link, &out, &["--dht-bootstrap", &router]);
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get MAGNET through the DHT",
        &seed.report(),
    );
    world.assert_downloaded(0);
}

#[test]
fn libtorrent_given_only_a_magnet_joins_the_dht_through_btvods_node_and_finds_its_seed() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 72);
    let (router_port, dht_port) = (free_port(), free_port());
    // The router knows btvod's node; the leecher knows nothing but btvod's node.
    let _router = dht_router(&world, router_port, dht_port);
    let (router, dht_port_text) = (localhost(router_port).to_string(), dht_port.to_string());
    let (torrent, content) = (world.torrent_path(), world.content_path());
    let (torrent, content) = (torrent.display().to_string(), content.display().to_string());
    let seed = btvod(
        &[
            "seed",
            &torrent,
            "--content",
            &content,
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--dht-port",
            &dht_port_text,
            "--dht-server",
            "--dht-bootstrap",
            &router,
        ],
        world.root(),
    );
    let leech = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            magnet: Some(format!("magnet:?xt=urn:btih:{}", world.meta.info_hash)),
            dht_bootstrap: Some(localhost(dht_port)),
            exit_when_complete: true,
            max_seconds: Some(BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    leech
        .wait_metadata(BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.report()));
    leech
        .wait_complete(BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.report()));
    world.assert_downloaded(0);
}
