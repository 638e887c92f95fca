//! Local service discovery (BEP 14) for one torrent: announce it on the LAN's multicast group
//! every five minutes, and hand the torrent the peers heard announcing it. Our own datagrams
//! come back to us (multicast loops) and are told apart by the cookie; a source that repeats
//! itself is heard at most once per `MIN_HEARD_GAP`. One task per group joined: the IPv4 one
//! and, where `--bind` covers IPv6, the IPv6 one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::multicast::{LanInterface, group_socket, group_socket_v6};
use crate::proto::InfoHash;
use crate::proto::lsd::{LSD_GROUP_V4, LSD_GROUP_V6, LSD_PORT, LsdAnnounce, MAX_DATAGRAM};

/// How often we announce (libtorrent's interval too).
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5 * 60);
/// A source's announces closer together than this are not heard again.
const MIN_HEARD_GAP: Duration = Duration::from_secs(10);
/// Sources remembered for that, at most (the oldest are forgotten).
const MAX_SOURCES: usize = 256;

pub struct LsdConfig {
    /// The interface to join the group on and send from; its family picks the group.
    pub interface: LanInterface,
    pub info_hash: InfoHash,
    /// Our peer port, announced.
    pub port: u16,
}

/// Starts announcing and listening; the task ends when `sink` closes or it is aborted.
pub fn start(
    config: LsdConfig,
    sink: mpsc::Sender<Vec<SocketAddr>>,
) -> std::io::Result<JoinHandle<()>> {
    let (socket, group) = match config.interface {
        LanInterface::V4(interface) => (
            group_socket(LSD_PORT, LSD_GROUP_V4, interface)?,
            SocketAddr::from((LSD_GROUP_V4, LSD_PORT)),
        ),
        LanInterface::V6(index) => (
            group_socket_v6(LSD_PORT, LSD_GROUP_V6, index)?,
            SocketAddr::from((LSD_GROUP_V6, LSD_PORT)),
        ),
    };
    let cookie = hex::encode(rand::random::<[u8; 6]>());
    Ok(tokio::spawn(run(socket, group, config, cookie, sink)))
}

async fn run(
    socket: UdpSocket,
    group: SocketAddr,
    config: LsdConfig,
    cookie: String,
    sink: mpsc::Sender<Vec<SocketAddr>>,
) {
    let ours = LsdAnnounce {
        port: config.port,
        info_hashes: vec![config.info_hash],
        cookie: Some(cookie.clone()),
    }
    .encode(&group.to_string());
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    let mut heard: HashMap<IpAddr, Instant> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        tokio::select! {
            _ = sink.closed() => return,
            _ = tick.tick() => {
                if let Err(e) = socket.send_to(&ours, group).await {
                    tracing::debug!(error = %e, "LSD announce not sent");
                }
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = received else { continue };
                let Some(peer) = heard_peer(&buf[..n], from, &config, &cookie, &mut heard) else {
                    continue;
                };
                tracing::debug!(%peer, "LSD: a peer of this torrent on the LAN");
                if sink.try_send(vec![peer]).is_err() && sink.is_closed() {
                    return;
                }
            }
        }
    }
}

/// The peer a datagram announces for our torrent, unless it is ours, another torrent's, not
/// an announce, or from a source heard too recently.
fn heard_peer(
    datagram: &[u8],
    from: SocketAddr,
    config: &LsdConfig,
    cookie: &str,
    heard: &mut HashMap<IpAddr, Instant>,
) -> Option<SocketAddr> {
    let announce = match LsdAnnounce::parse(datagram) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%from, error = %e, "ignoring an LSD datagram");
            return None;
        }
    };
    if announce.cookie.as_deref() == Some(cookie) {
        tracing::debug!("LSD: our own announce, ignored");
        return None;
    }
    if !announce.info_hashes.contains(&config.info_hash) {
        return None;
    }
    let now = Instant::now();
    let ip = from.ip();
    if heard
        .get(&ip)
        .is_some_and(|t| now.duration_since(*t) < MIN_HEARD_GAP)
    {
        return None;
    }
    if heard.len() >= MAX_SOURCES
        && let Some(oldest) = heard.iter().min_by_key(|(_, t)| **t).map(|(ip, _)| *ip)
    {
        heard.remove(&oldest);
    }
    heard.insert(ip, now);
    // `from` keeps an IPv6 link-local sender's scope, which a dial to it needs.
    let mut peer = from;
    peer.set_port(announce.port);
    Some(peer)
}
