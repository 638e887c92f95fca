//! The choker as the wire shows it: a btvod seed on 127.0.0.1 and raw peers that speak the
//! protocol by hand, so every CHOKE and UNCHOKE the seed sends is seen. Time-bounded.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use btvod::proto::wire::{Handshake, Message, WireDecoder};
use btvod::proto::{InfoHash, PeerId};
use bytes::BytesMut;
use common::loopback::{empty_interested_opening, start_seed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// What a raw peer saw: (its index, unchoked or choked).
type ChokeEvent = (usize, bool);

/// A hand-written peer that has nothing and wants everything; its choke state changes are
/// reported on `events`. Returns the write half, to send it more messages.
async fn raw_peer(
    seed: SocketAddr,
    info_hash: InfoHash,
    pieces: u32,
    index: usize,
    events: mpsc::UnboundedSender<ChokeEvent>,
) -> OwnedWriteHalf {
    let stream = TcpStream::connect(seed).await.expect("connect to the seed");
    let (mut read, mut write) = stream.into_split();
    let mut id = *b"-XX0000-rawpeer-0000";
    id[19] = b'0' + index as u8;
    let opening = empty_interested_opening(info_hash, PeerId(id));
    write.write_all(&opening).await.expect("send the handshake");
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut decoder = WireDecoder::for_piece_count(pieces);
        let mut handshake_done = false;
        while read.read_buf(&mut buf).await.is_ok_and(|n| n > 0) {
            if !handshake_done {
                match Handshake::decode(&mut buf).expect("the seed's handshake") {
                    Some(_) => handshake_done = true,
                    None => continue,
                }
            }
            while let Some(message) = decoder.decode(&mut buf).expect("a valid frame") {
                let event = match message {
                    Message::Unchoke => (index, true),
                    Message::Choke => (index, false),
                    _ => continue,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        }
    });
    write
}

/// Collects choke events into `unchoked` until `done` holds, or panics after `bound`.
async fn wait_until(
    events: &mut mpsc::UnboundedReceiver<ChokeEvent>,
    unchoked: &mut [bool],
    bound: Duration,
    what: &str,
    done: impl Fn(&[bool]) -> bool,
) {
    let until = Instant::now() + bound;
    while !done(unchoked) {
        match timeout(until - Instant::now(), events.recv()).await {
            Ok(Some((i, state))) => unchoked[i] = state,
            _ => panic!("{what} within {bound:?}; unchoked: {unchoked:?}"),
        }
    }
}

/// A seed unchokes 4 + 1 peers. When an unchoked peer stops wanting data (it completed), its
/// slot goes at once to the peer left waiting, not at the next 10-second round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_freed_by_a_peer_that_lost_interest_goes_to_a_waiting_peer_at_once() {
    const PEERS: usize = 6;
    let seed = start_seed(256 * 1024, 64 * 1024, 5).await;
    let meta = &seed.meta;
    let seed_addr = seed.addr();

    let (tx, mut events) = mpsc::unbounded_channel();
    let mut writers = Vec::new();
    for i in 0..PEERS {
        let pieces = meta.geometry.piece_count();
        writers.push(raw_peer(seed_addr, meta.info_hash, pieces, i, tx.clone()).await);
    }
    let mut unchoked = [false; PEERS];
    let first_round = Instant::now();
    wait_until(
        &mut events,
        &mut unchoked,
        Duration::from_secs(5),
        "five of six interested peers unchoked",
        |u| u.iter().filter(|&&x| x).count() == 5,
    )
    .await;
    let waiting = unchoked.iter().position(|&x| !x).expect("one waits");
    let leaving = unchoked.iter().position(|&x| x).expect("one is served");

    // Well before the next round (10 s after the first), so only the idle-slot rule can act.
    let sent_at = Instant::now();
    assert!(
        sent_at - first_round < Duration::from_secs(5),
        "setup took too long to tell the idle-slot rule from a round"
    );
    let mut out = BytesMut::new();
    Message::NotInterested.encode(&mut out);
    writers[leaving]
        .write_all(&out)
        .await
        .expect("send NOT_INTERESTED");
    wait_until(
        &mut events,
        &mut unchoked,
        Duration::from_secs(3),
        "the waiting peer unchoked and the one that lost interest choked",
        |u| u[waiting] && !u[leaving],
    )
    .await;
    assert!(
        Instant::now() - first_round < Duration::from_secs(9),
        "the unchoke must come from the freed slot, not the round at 10 s"
    );
    assert_eq!(unchoked.iter().filter(|&&x| x).count(), 5);
    seed.session.shutdown().await;
}
