//! Nutella's LAN search (messages in `proto::search`): the responder a seed or a stream runs
//! for its torrent, which answers matching queries to the asker alone, once per query id and
//! at most `ANSWERS_PER_SECOND`; and the asking side of `btvod search`.

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::multicast::group_socket;
use crate::proto::InfoHash;
use crate::proto::search::{Answer, MAX_ANSWER, MAX_QUERY, Query, SEARCH_GROUP_V4, SEARCH_PORT};

/// Answers sent per second at most, whatever the queries: a flood gets this many.
pub const ANSWERS_PER_SECOND: u32 = 10;
/// Query ids remembered, so that each is answered once.
const REMEMBERED_IDS: usize = 256;

/// What a responder says of its torrent.
pub struct Listing {
    pub info_hash: InfoHash,
    pub name: String,
    pub size: u64,
    /// Our peer port.
    pub port: u16,
}

/// Starts answering queries on the group, joined on `interface`.
pub fn respond(interface: Ipv4Addr, listing: Listing) -> std::io::Result<JoinHandle<()>> {
    let socket = group_socket(SEARCH_PORT, SEARCH_GROUP_V4, interface)?;
    Ok(tokio::spawn(answer_queries(socket, listing)))
}

async fn answer_queries(socket: UdpSocket, listing: Listing) {
    let mut buf = vec![0u8; MAX_QUERY + 1];
    let mut seen_ids: (VecDeque<u64>, HashSet<u64>) = Default::default();
    let (mut window, mut sent) = (Instant::now(), 0u32);
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = match Query::parse(&buf[..n]) {
            Ok(q) => q,
            Err(e) => {
                tracing::debug!(%from, error = %e, "ignoring a search datagram");
                continue;
            }
        };
        if !query.matches(&listing.name) || !seen_ids.1.insert(query.id) {
            continue;
        }
        seen_ids.0.push_back(query.id);
        if seen_ids.0.len() > REMEMBERED_IDS
            && let Some(old) = seen_ids.0.pop_front()
        {
            seen_ids.1.remove(&old);
        }
        if window.elapsed() >= Duration::from_secs(1) {
            (window, sent) = (Instant::now(), 0);
        }
        if sent >= ANSWERS_PER_SECOND {
            tracing::debug!(%from, "search answer not sent: rate limit");
            continue;
        }
        sent += 1;
        let answer = Answer {
            id: query.id,
            info_hash: listing.info_hash,
            size: listing.size,
            port: listing.port,
            name: listing.name.clone(),
        };
        tracing::debug!(%from, query = %query.words, "answering a LAN search");
        let _ = socket.send_to(&answer.encode(), from).await;
    }
}

/// An ephemeral socket that multicasts from `interface` (the routing table's choice for any),
/// hearing its own group's traffic too (a responder on this host).
fn asking_socket(interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&SocketAddr::from((interface, 0)).into())?;
    if !interface.is_unspecified() {
        socket.set_multicast_if_v4(&interface)?;
    }
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Multicasts a query for `words` from `interface` and collects the answers that come within
/// `wait`, each (source, torrent) once, with the peer address to dial.
pub async fn ask(
    interface: Ipv4Addr,
    words: &str,
    wait: Duration,
) -> std::io::Result<Vec<(SocketAddr, Answer)>> {
    let socket = asking_socket(interface)?;
    let query = Query {
        id: rand::random(),
        words: words.to_owned(),
    };
    socket
        .send_to(&query.encode(), (SEARCH_GROUP_V4, SEARCH_PORT))
        .await?;
    let until = Instant::now() + wait;
    let mut found: Vec<(SocketAddr, Answer)> = Vec::new();
    let mut buf = vec![0u8; MAX_ANSWER + 1];
    while let Ok(Ok((n, from))) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
        let Ok(answer) = Answer::parse(&buf[..n]) else {
            continue;
        };
        let peer = SocketAddr::new(from.ip(), answer.port);
        let known = found
            .iter()
            .any(|(p, a)| *p == peer && a.info_hash == answer.info_hash);
        if answer.id == query.id && !known {
            found.push((peer, answer));
        }
    }
    Ok(found)
}
