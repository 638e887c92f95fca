//! Peer exchange (BEP 11) with libtorrent, no tracker: a peer learns a third only from what the
//! second tells it, both ways (btvod hears libtorrent's `ut_pex`, libtorrent hears btvod's). The
//! second peer downloads at 1 KiB/s, so the first can only complete from the third. Then hostile
//! PEX messages against a btvod seed.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btvod::proto::extension::pex::{OUR_UT_PEX_ID, PexFlags, PexMessage};
use btvod::proto::wire::Message;
use common::cli::{assert_exits_ok, btvod, btvod_get, btvod_seed};
use common::content::free_port;
use common::external::{LibtorrentPeer, LtOptions};
use common::movie_dir::MovieDir;
use common::process::ProcessGuard;
use common::raw_peer::RawPeer;

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(60);

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `btvod seed` on 127.0.0.1:`port`, dialling `peers`; with `pex` off when the peer under test
/// must be the only one to use what it hears.
fn seed_dialling(world: &MovieDir, port: u16, peers: &[SocketAddr], pex: bool) -> ProcessGuard {
    let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    let mut args: Vec<&str> = peers.iter().flat_map(|p| ["--peer", p.as_str()]).collect();
    if !pex {
        args.push("--no-pex");
    }
    btvod_seed(world, port, &args)
}

#[test]
fn btvod_finds_a_seed_it_was_never_given_through_libtorrents_pex() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 81);
    // The middle peer: libtorrent with nothing, downloading at 1 KiB/s.
    let middle = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(1),
        &LtOptions {
            download_limit: 1024,
            ..LtOptions::default()
        },
    );
    let middle_addr = localhost(middle.wait_port(BOUND).unwrap_or_else(|e| panic!("{e}")));
    // The seed dials the middle peer, whose PEX will name it by the port of its handshake.
    let seed_port = free_port();
    let seed = seed_dialling(&world, seed_port, &[middle_addr], false);
    middle
        .wait_status(BOUND, |s| s.peers >= 1)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.report()));
    let get = btvod_get(
        &world.torrent_path().display().to_string(),
        &world.leech_dir(0),
        &["--peer", &middle_addr.to_string(), "--no-dht"],
    );
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get, given only the libtorrent peer",
        &format!("{}\n{}", middle.report(), seed.report()),
    );
    world.assert_downloaded(0);
}

#[test]
fn libtorrent_finds_a_seed_it_was_never_given_through_btvods_pex() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 82);
    let seed = LibtorrentPeer::start(&world.torrent_path(), &world.seed_dir(), &LtOptions::seed());
    // The middle peer: btvod with nothing, dialling the seed, downloading at 1 KiB/s.
    let middle_port = free_port();
    let out = world.leech_dir(1);
    std::fs::create_dir_all(&out).unwrap();
    let (torrent, out_text) = (world.torrent_path(), out.display().to_string());
    let (port_text, seed_addr) = (middle_port.to_string(), seed.addr().to_string());
    let middle = btvod(
        &[
            "get",
            &torrent.display().to_string(),
            "--out",
            &out_text,
            "--bind",
            "127.0.0.1",
            "--port",
            &port_text,
            "--peer",
            &seed_addr,
            "--max-download-rate",
            "1",
            "--no-dht",
        ],
        &out,
    );
    seed.wait_status(BOUND, |s| s.peers >= 1)
        .unwrap_or_else(|e| panic!("{e}\n{}", middle.report()));
    let leech = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            max_seconds: Some(BOUND.as_secs()),
            ..LtOptions::download_from(localhost(middle_port))
        },
    );
    leech
        .wait_complete(BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", middle.report(), seed.report()));
    world.assert_downloaded(0);
}

/// One peer sends 10,000 addresses in one message (over the frame cap: it is dropped), another
/// a list cut mid-entry, a third two messages at once: each is said once in the seed's log, and
/// a leecher still gets the whole movie from it.
#[test]
fn hostile_pex_messages_are_logged_and_ignored() {
    let world = MovieDir::new(MIB, 64 * 1024, 83);
    let seed_port = free_port();
    let seed = seed_dialling(&world, seed_port, &[], true);
    let seed_addr = localhost(seed_port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = |i: u32| SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 6881));
    let flood = PexMessage {
        added: (0..10_000).map(|i| (addr(i), PexFlags(0))).collect(),
        dropped: Vec::new(),
    };
    let fine = PexMessage {
        added: vec![(addr(1), PexFlags(0))],
        dropped: Vec::new(),
    };
    let pex = |payload: Vec<u8>| Message::Extended {
        id: OUR_UT_PEX_ID,
        payload: payload.into(),
    };
    let _peers = runtime.block_on(async {
        let mut flooder = RawPeer::join(seed_addr, &world, true).await;
        flooder.send(&[pex(flood.encode())]).await;
        let mut cut = RawPeer::join(seed_addr, &world, true).await;
        cut.send(&[pex(b"d5:added7:\x0a\x00\x00\x01\x1a\xe1\x01e".to_vec())])
            .await;
        let mut chatty = RawPeer::join(seed_addr, &world, true).await;
        chatty.send(&[pex(fine.encode())]).await;
        chatty.send(&[pex(fine.encode())]).await;
        (flooder, cut, chatty)
    });
    let get = btvod_get(
        &world.torrent_path().display().to_string(),
        &world.leech_dir(0),
        &["--peer", &seed_addr.to_string(), "--no-dht"],
    );
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get beside hostile PEX peers",
        &seed.report(),
    );
    world.assert_downloaded(0);
    let log = seed.report();
    for said in [
        // 10,000 addresses do not fit the largest frame a peer may send.
        "peer announced a 70077-byte frame, over the",
        "why=ut_pex `added` is 7 bytes, not whole 6-byte entries",
        "ignoring PEX messages sent more often than once a minute",
    ] {
        assert_eq!(log.matches(said).count(), 1, "`{said}` once\n{log}");
    }
}
