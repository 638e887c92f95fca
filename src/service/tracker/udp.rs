//! The built-in tracker over UDP (BEP 15): one task reads packets, answers each at once from
//! the same swarm state as HTTP. Connection ids are keyed hashes of the client's address and
//! the current minute, so nothing is stored per client and a spoofed source gets no valid id.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;

use super::Shared;
use crate::proto::tracker::udp::{MAX_PACKET, UdpAnnounce, UdpReply, UdpRequest};
use crate::proto::tracker::{AnnounceQuery, ScrapeStats};

pub(super) async fn serve(socket: UdpSocket, shared: Arc<Shared>) {
    let secret: u64 = rand::random();
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // ICMP port-unreachable from an earlier reply surfaces here on some systems.
                tracing::debug!(error = %e, "udp tracker: receive failed");
                continue;
            }
        };
        let Some(reply) = answer(&buf[..len], from, secret, &shared) else {
            continue;
        };
        let v6 = from.ip().to_canonical().is_ipv6();
        if let Err(e) = socket.send_to(&reply.encode(v6), from).await {
            tracing::debug!(error = %e, client = %from, "udp tracker: send failed");
        }
    }
}

/// The reply to one packet; `None` for packets not worth an answer (not a request at all).
fn answer(packet: &[u8], from: SocketAddr, secret: u64, shared: &Shared) -> Option<UdpReply> {
    let request = match UdpRequest::parse(packet) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(client = %from, error = %e, "udp tracker: ignoring a packet");
            return None;
        }
    };
    let transaction = request.transaction();
    let refuse = |message: &str| {
        tracing::warn!(client = %from, "udp tracker refused: {message}");
        Some(UdpReply::Error {
            transaction,
            message: message.to_owned(),
        })
    };
    let minute = now_minute();
    match request {
        UdpRequest::Connect { transaction } => Some(UdpReply::Connect {
            transaction,
            connection: connection_id(secret, from, minute),
        }),
        UdpRequest::Announce { connection, .. } | UdpRequest::Scrape { connection, .. }
            if !valid(connection, secret, from, minute) =>
        {
            refuse("unknown or expired connection id")
        }
        UdpRequest::Announce { announce, .. } => {
            let query = query_of(&announce);
            match shared.announce(&query, from) {
                Ok(a) => Some(UdpReply::Announce {
                    transaction,
                    interval: u32::try_from(shared.config.interval.as_secs()).unwrap_or(u32::MAX),
                    leechers: a.stats.incomplete,
                    seeders: a.stats.complete,
                    peers: a.peers.into_iter().map(|p| p.addr).collect(),
                }),
                Err(refusal) => refuse(&refusal.to_string()),
            }
        }
        UdpRequest::Scrape { info_hashes, .. } => {
            let files = shared.state().scrape(&info_hashes).files;
            let stats = info_hashes
                .iter()
                .map(|h| files.get(h).cloned().unwrap_or(ScrapeStats::default()))
                .collect();
            Some(UdpReply::Scrape { transaction, stats })
        }
    }
}

fn query_of(a: &UdpAnnounce) -> AnnounceQuery {
    AnnounceQuery {
        info_hash: a.info_hash,
        peer_id: a.peer_id,
        port: a.port,
        uploaded: a.uploaded,
        downloaded: a.downloaded,
        left: Some(a.left),
        event: a.event,
        compact: true,
        no_peer_id: true,
        numwant: a.num_want,
        ip: a.ip.map(Into::into),
    }
}

fn now_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

fn connection_id(secret: u64, from: SocketAddr, minute: u64) -> u64 {
    let mut h = DefaultHasher::new();
    (secret, from, minute).hash(&mut h);
    h.finish()
}

/// An id given this minute or the last one: BEP 15 lets a client use it for a minute.
fn valid(id: u64, secret: u64, from: SocketAddr, minute: u64) -> bool {
    id == connection_id(secret, from, minute)
        || id == connection_id(secret, from, minute.saturating_sub(1))
}
