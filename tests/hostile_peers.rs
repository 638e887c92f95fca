//! Hostile peers: a scripted raw-TCP peer on loopback does what a stranger on the Internet
//! might (wrong info-hash, absurd frames, out-of-range indices, requests it may not make,
//! blocks nobody asked for, corrupt data), and each test checks the specific protection and
//! that btvod still downloads or serves correctly. Peers that try to wear btvod out (floods,
//! silence, hundreds of connections) are in hostile_load.rs.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use btvod::engine::torrent::TorrentConfig;
use btvod::proto::InfoHash;
use btvod::proto::wire::Message;
use common::movie_dir::MovieDir;
use common::raw_peer::{BLOCK, CLOSE_BOUND, RawPeer, Read, frame, handshake_bytes, rss_kib, spec};
use common::session::{SessionExt, options, plaintext, shutdown_all};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

const KIB: usize = 1024;
/// The byte a lying peer fills its blocks with: a 64-byte run of it never occurs in the
/// deterministic content, so finding one in a downloaded file means corrupt data was written.
const POISON: u8 = 0xEE;

/// Whether `data` holds a run of 64 poison bytes.
fn poisoned(data: &[u8]) -> bool {
    data.windows(64).any(|w| w.iter().all(|&b| b == POISON))
}

// ---- handshakes ----

/// A peer of another torrent is refused in both directions, and an incoming one never sees our
/// handshake (so it cannot even learn that we serve something).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_torrent_is_refused_both_ways() {
    let world = MovieDir::new(256 * KIB, 32 * 1024, 1);
    let seed = world
        .seed(options(1, vec![], TorrentConfig::default()))
        .await;
    let mut stranger =
        RawPeer::connect(seed.addr(), InfoHash([7; 20]), true, world.piece_count()).await;
    stranger
        .expect_closed(CLOSE_BOUND, "a handshake for another torrent")
        .await;
    assert!(
        stranger.buf.is_empty(),
        "btvod sent {:?} to a stranger",
        &stranger.buf[..]
    );

    // Outgoing: btvod dials a peer that answers for another torrent.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let leech = world
        .leecher(
            0,
            options(100, vec![listener.local_addr().expect("addr")], plaintext()),
        )
        .await;
    let (stream, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("btvod dials the peer it was given")
        .expect("accept");
    let mut liar = RawPeer::wrap(stream, world.piece_count());
    let ours = liar
        .handshake(Duration::from_secs(5))
        .await
        .expect("btvod's handshake");
    assert_eq!(
        ours.info_hash, world.meta.info_hash,
        "btvod asks for its torrent"
    );
    liar.send_raw(&handshake_bytes(
        InfoHash([9; 20]),
        *b"-XX0000-wrongtorrent",
        true,
    ))
    .await;
    liar.send(&[Message::HaveAll, Message::Unchoke]).await;
    liar.expect_closed(CLOSE_BOUND, "answering for another torrent")
        .await;
    assert_eq!(leech.stats().peers, 0, "the liar never became a peer");

    // Both still work: the leecher downloads from the seed.
    leech.torrent.add_peers(vec![seed.addr()]);
    world
        .assert_completes(&leech, 0, Duration::from_secs(10), "the leecher")
        .await;
    shutdown_all([leech, seed]).await;
}

// ---- frames btvod must refuse ----

/// Sends `bytes` after a correct handshake to a fresh connection and expects btvod to close it.
async fn expect_refused(world: &MovieDir, at: SocketAddr, bytes: &[u8], what: &str) {
    let mut peer = RawPeer::join(at, world, true).await;
    peer.send_raw(bytes).await;
    peer.expect_closed(CLOSE_BOUND, what).await;
}

/// A 4 GiB length prefix, bitfields with spare bits or the wrong length, a HAVE out of range:
/// each closes the connection at once (nothing is buffered for the absurd frame), and the
/// seed goes on serving an honest leecher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection() {
    // 10 pieces: the bitfield is 2 bytes with 6 spare bits.
    let world = MovieDir::new(10 * 32 * KIB - 1000, 32 * 1024, 2);
    assert_eq!(world.piece_count(), 10);
    let seed = world
        .seed(options(2, vec![], TorrentConfig::default()))
        .await;
    let at = seed.addr();
    let rss_before = rss_kib();
    for prefix in [u32::MAX, 1 << 30, 256 * 1024] {
        let mut bytes = prefix.to_be_bytes().to_vec();
        bytes.push(7); // a PIECE id: the prefix alone must be refused
        bytes.extend_from_slice(&[0; 64]);
        expect_refused(&world, at, &bytes, &format!("a length prefix of {prefix}")).await;
    }
    let rss_after = rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB on oversized frames"
    );
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "a bitfield with a spare bit set",
            frame(&[Message::Bitfield(vec![0xFF, 0xC1].into())]),
        ),
        (
            "a bitfield one byte short",
            frame(&[Message::Bitfield(vec![0xFF].into())]),
        ),
        (
            "a bitfield one byte long",
            frame(&[Message::Bitfield(vec![0xFF, 0xC0, 0].into())]),
        ),
        (
            "a HAVE for piece 10 of 10",
            frame(&[Message::Have { piece: 10 }]),
        ),
        (
            "a HAVE for piece 2^32-1",
            frame(&[Message::Have { piece: u32::MAX }]),
        ),
        // A REQUEST frame whose length prefix disagrees with its kind.
        (
            "a 14-byte REQUEST frame",
            [&14u32.to_be_bytes()[..], &[6], &[0; 13]].concat(),
        ),
    ];
    for (what, bytes) in cases {
        expect_refused(&world, at, &bytes, what).await;
    }
    // The seed is still correct for everyone else.
    let leech = world
        .leecher(0, options(100, vec![at], TorrentConfig::default()))
        .await;
    world
        .assert_completes(&leech, 0, Duration::from_secs(10), "the leecher")
        .await;
    shutdown_all([leech, seed]).await;
}

// ---- requests ----

/// REQUESTs out of range or over 16 KiB close the connection; a REQUEST while choked is
/// REJECTed (BEP 6) or ignored (plain peer) and never served; once unchoked, a valid request
/// is served with the right bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_out_of_range_oversized_or_while_choked_are_not_served() {
    let world = MovieDir::new(8 * 32 * KIB, 32 * 1024, 3);
    let seed = world
        .seed(options(3, vec![], TorrentConfig::default()))
        .await;
    let at = seed.addr();
    let n = world.piece_count();
    let refused = [
        ("a REQUEST for a piece past the end", spec(n, 0, BLOCK)),
        (
            "a REQUEST past the end of a piece",
            spec(0, 32 * 1024 - 8, BLOCK),
        ),
        ("a REQUEST of 32 KiB", spec(0, 0, 2 * BLOCK)),
        ("a REQUEST of 0 bytes", spec(0, 0, 0)),
        (
            "a REQUEST whose end overflows",
            spec(0, u32::MAX - 4, BLOCK),
        ),
    ];
    for (what, s) in refused {
        // Interested and unchoked first, so only the request's shape can be the reason.
        let mut peer = RawPeer::join(at, &world, true).await;
        peer.send(&[Message::HaveNone, Message::Interested]).await;
        peer.wait_for(
            Duration::from_secs(5),
            &format!("UNCHOKE before {what}"),
            |m| *m == Message::Unchoke,
        )
        .await;
        peer.send(&[Message::Request(s)]).await;
        peer.expect_closed(CLOSE_BOUND, what).await;
    }

    // Choked (never said INTERESTED): a BEP 6 peer is told REJECT and given nothing.
    let mut fast = RawPeer::join(at, &world, true).await;
    fast.send(&[Message::HaveNone, Message::Request(spec(1, BLOCK, BLOCK))])
        .await;
    let got = fast.collect(Duration::from_millis(800)).await;
    assert!(
        got.contains(&Message::Reject(spec(1, BLOCK, BLOCK))),
        "a choked BEP 6 peer's request is rejected: got {got:?}"
    );
    assert!(
        !got.iter()
            .any(|m| matches!(m, Message::Piece { .. } | Message::Unchoke))
    );
    // A plain peer gets no answer at all, and stays connected.
    let mut plain = RawPeer::join(at, &world, false).await;
    plain.send(&[Message::Request(spec(1, 0, BLOCK))]).await;
    let got = plain.collect(Duration::from_millis(800)).await;
    assert!(
        !got.iter().any(|m| matches!(
            m,
            Message::Piece { .. } | Message::Unchoke | Message::Reject(_)
        )),
        "a choked plain peer gets nothing for its request: {got:?}"
    );
    // Interested now: unchoked, and a valid request is served correctly.
    plain.send(&[Message::Interested]).await;
    plain
        .wait_for(Duration::from_secs(5), "UNCHOKE of the plain peer", |m| {
            *m == Message::Unchoke
        })
        .await;
    plain.send(&[Message::Request(spec(2, BLOCK, BLOCK))]).await;
    match plain
        .wait_for(Duration::from_secs(5), "the block", |m| {
            matches!(m, Message::Piece { .. })
        })
        .await
    {
        Message::Piece {
            piece,
            offset,
            data,
        } => {
            assert_eq!((piece, offset), (2, BLOCK));
            assert_eq!(&data[..], world.block(2, BLOCK), "the served block");
        }
        other => unreachable!("{other:?}"),
    }
    seed.shutdown().await;
}

// ---- data nobody asked for, and data that lies ----

/// PIECE messages for blocks btvod never requested from that peer are counted as wasted and
/// never written: the file ends byte-identical after an honest seed completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrequested_blocks_are_dropped_not_written() {
    let world = MovieDir::new(16 * 32 * KIB, 32 * 1024, 4);
    let leech = world
        .leecher(0, options(100, vec![], TorrentConfig::default()))
        .await;
    let mut pusher = RawPeer::join(leech.addr(), &world, true).await;
    // It has nothing and never unchokes, so btvod asks it for nothing; it pushes anyway.
    pusher.send(&[Message::HaveNone]).await;
    let mut junk = Vec::new();
    for piece in 0..world.piece_count() {
        for offset in [0, BLOCK] {
            junk.push(Message::Piece {
                piece,
                offset,
                data: vec![POISON; BLOCK as usize].into(),
            });
        }
    }
    let pushed = (junk.len() * BLOCK as usize) as u64;
    pusher.send(&junk).await;
    leech
        .wait_stats(
            Duration::from_secs(5),
            "the pushed blocks counted as waste",
            |s| s.waste.total() >= pushed,
        )
        .await;
    assert_eq!(leech.stats().pieces_have, 0, "no pushed block made a piece");
    // Nor is any of it served back: asked for a block of its pushed pieces, btvod refuses.
    pusher.send(&[Message::Interested]).await;
    pusher
        .wait_for(Duration::from_secs(5), "UNCHOKE", |m| {
            *m == Message::Unchoke
        })
        .await;
    pusher.send(&[Message::Request(spec(0, 0, BLOCK))]).await;
    let answer = pusher
        .wait_for(Duration::from_secs(5), "an answer to the request", |m| {
            matches!(m, Message::Reject(_) | Message::Piece { .. })
        })
        .await;
    assert_eq!(
        answer,
        Message::Reject(spec(0, 0, BLOCK)),
        "unverified data is not uploaded"
    );
    let seed = world
        .seed(options(4, vec![], TorrentConfig::default()))
        .await;
    leech.torrent.add_peers(vec![seed.addr()]);
    world
        .assert_completes(&leech, 0, Duration::from_secs(10), "the leecher")
        .await;
    assert_eq!(leech.stats().hash_failures, 0);
    shutdown_all([leech, seed]).await;
}

/// A peer that has everything, unchokes, and answers every request with poison bytes. Counts
/// the connections it gets; `reconnect` makes it also dial `target` once more after its first
/// connection ends, with the same peer id.
struct Liar {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

const LIAR_ID: [u8; 20] = *b"-XX0000-corruptpeer!";

async fn start_liar(world: &MovieDir) -> Liar {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the liar");
    let addr = listener.local_addr().expect("liar address");
    let connections = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let (info_hash, pieces) = (world.meta.info_hash, world.piece_count());
    let (c, s) = (Arc::clone(&connections), Arc::clone(&served));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let served = Arc::clone(&s);
            tokio::spawn(async move {
                let mut peer = RawPeer::wrap(stream, pieces);
                if peer.handshake(Duration::from_secs(5)).await.is_none() {
                    return;
                }
                peer.send_raw(&handshake_bytes(info_hash, LIAR_ID, true))
                    .await;
                peer.send(&[Message::HaveAll, Message::Unchoke]).await;
                serve_poison(&mut peer, &served).await;
            });
        }
    });
    Liar {
        addr,
        connections,
        served,
    }
}

/// Answers every REQUEST with a block of poison until the connection ends.
async fn serve_poison(peer: &mut RawPeer, served: &AtomicUsize) {
    loop {
        match peer.next(Duration::from_secs(60)).await {
            Read::Message(Message::Request(s)) => {
                let data = vec![POISON; s.len as usize].into();
                peer.send(&[Message::Piece {
                    piece: s.piece,
                    offset: s.offset,
                    data,
                }])
                .await;
                served.fetch_add(1, Ordering::SeqCst);
            }
            Read::Message(_) => {}
            Read::Closed | Read::Quiet => return,
        }
    }
}

/// Watches a file while a download runs: true if it ever held a run of poison bytes.
fn watch_for_poison(path: PathBuf, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            if fs::read(&path).is_ok_and(|data| poisoned(&data)) {
                return true;
            }
            sleep(Duration::from_millis(20)).await;
        }
        false
    })
}

/// A peer serving corrupt blocks, next to an honest seed: the pieces it spoiled fail their
/// hash and are fetched again, the liar is banned (closed, not redialled, and refused when it
/// dials back under the same peer id), no poison ever reaches the file, and the download ends
/// byte-identical. The honest seed, whose blocks may share a piece with the liar's, is not
/// banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_corrupt_blocks_is_banned_and_its_pieces_fetched_again() {
    let world = MovieDir::new(64 * 32 * KIB, 32 * 1024, 5);
    let liar = start_liar(&world).await;
    // A 1 MiB/s seed leaves the liar a good share of the requests.
    let seed = world
        .seed(options(
            5,
            vec![],
            TorrentConfig {
                upload_limit: 1024 * 1024,
                ..TorrentConfig::default()
            },
        ))
        .await;
    // Both at once, so that pieces mix the liar's blocks with the seed's.
    let leech = world
        .leecher(0, options(100, vec![liar.addr, seed.addr()], plaintext()))
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_for_poison(world.leech_file(0), Arc::clone(&stop));
    leech
        .wait_complete(Duration::from_secs(12), "the leecher")
        .await;
    stop.store(true, Ordering::SeqCst);
    assert!(!watcher.await.expect("watcher"), "poison reached the file");
    world.assert_downloaded(0);
    let got = leech.stats();
    assert!(got.hash_failures >= 1, "the liar's pieces failed: {got:?}");
    assert!(
        liar.served.load(Ordering::SeqCst) >= 1,
        "the liar was asked for blocks"
    );
    assert_eq!(got.peers, 1, "only the honest seed is left: {got:?}");

    // Offered again, the liar is not dialled.
    leech.torrent.add_peers(vec![liar.addr]);
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        liar.connections.load(Ordering::SeqCst),
        1,
        "the banned liar was redialled"
    );
    // Dialling in under the same peer id (from a new port) it is closed at once.
    let stream = TcpStream::connect(leech.addr()).await.expect("connect");
    let mut back = RawPeer::wrap(stream, world.piece_count());
    back.send_raw(&handshake_bytes(world.meta.info_hash, LIAR_ID, true))
        .await;
    if back.handshake(CLOSE_BOUND).await.is_some() {
        back.expect_closed(CLOSE_BOUND, "a banned peer id dialling back")
            .await;
    }
    assert_eq!(leech.stats().peers, 1, "the honest seed is still connected");
    shutdown_all([leech, seed]).await;
}
