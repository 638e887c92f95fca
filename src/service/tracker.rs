//! The built-in tracker that serves local worlds and tests: HTTP (`/announce`, `/scrape`, and a
//! status page at `/`) and, on a UDP socket beside it, BEP 15.

mod state;
mod status_page;
mod udp;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::proto::tracker::{
    AnnounceEvent, AnnounceQuery, AnnounceResponse, PeerListFormat, ScrapeQuery, encode_failure,
};
use state::{Limits, TrackerState};

#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Re-announce interval told to peers. Short by default: this tracker serves local
    /// worlds, where a newcomer should be known within a minute.
    pub interval: Duration,
    pub min_interval: Option<Duration>,
    /// Peers returned when the client does not say `numwant`.
    pub default_numwant: u32,
    /// Upper bound on peers returned, whatever the client asks.
    pub max_numwant: u32,
    pub max_torrents: usize,
    pub max_peers_per_torrent: usize,
    /// Rewrites the addresses handed out (a local world puts latency relays in front of its
    /// peers this way); `None` hands out what peers announced.
    pub address_book: Option<Arc<dyn AddressBook>>,
}

/// Which address of `peer` a tracker gives to the peer that announced as `asker` (`None`:
/// leave `peer` out of the reply).
pub trait AddressBook: Send + Sync + std::fmt::Debug {
    fn seen_by(&self, asker: SocketAddr, peer: SocketAddr) -> Option<SocketAddr>;
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            interval: Duration::from_secs(60),
            min_interval: Some(Duration::from_secs(15)),
            default_numwant: 50,
            max_numwant: 200,
            max_torrents: 10_000,
            max_peers_per_torrent: 5_000,
            address_book: None,
        }
    }
}

impl TrackerConfig {
    /// A peer is forgotten after about two missed re-announces.
    pub fn peer_ttl(&self) -> Duration {
        self.interval.saturating_mul(2) + Duration::from_secs(15)
    }
}

struct Shared {
    config: TrackerConfig,
    state: Mutex<TrackerState>,
}

impl Shared {
    /// One announce from `remote`, HTTP or UDP: recorded, and answered with peers as the
    /// address book shows them to this asker.
    fn announce(
        &self,
        query: &AnnounceQuery,
        remote: SocketAddr,
    ) -> Result<state::AnnounceAnswer, state::Refusal> {
        let addr = peer_address(remote, query.ip, query.port);
        let config = &self.config;
        let numwant = query
            .numwant
            .unwrap_or(config.default_numwant)
            .min(config.max_numwant);
        let numwant = usize::try_from(numwant).unwrap_or(usize::MAX);
        let mut answer =
            self.state()
                .announce(query, addr, Instant::now(), numwant, &mut rand::rng())?;
        if let Some(book) = &config.address_book {
            answer
                .peers
                .retain_mut(|peer| match book.seen_by(addr, peer.addr) {
                    Some(seen) => {
                        peer.addr = seen;
                        true
                    }
                    None => false,
                });
        }
        tracing::debug!(
            torrent = %query.info_hash,
            peer = %addr,
            event = query.event.map(AnnounceEvent::as_str).unwrap_or("none"),
            returned = answer.peers.len(),
            "announce"
        );
        Ok(answer)
    }

    /// The state survives a panic in another handler: it is plain counters, never half-updated
    /// in a way that matters more than serving on.
    fn state(&self) -> MutexGuard<'_, TrackerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves the HTTP tracker on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: TrackerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_udp(listener, None, config, shutdown).await
}

/// Serves the tracker over HTTP on `listener` and, if given, over UDP (BEP 15) on `udp`, one
/// swarm state for both, until `shutdown` completes.
pub async fn serve_with_udp(
    listener: tokio::net::TcpListener,
    udp: Option<tokio::net::UdpSocket>,
    config: TrackerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Limits {
        max_torrents: config.max_torrents,
        max_peers_per_torrent: config.max_peers_per_torrent,
        peer_ttl: config.peer_ttl(),
    };
    let shared = Arc::new(Shared {
        state: Mutex::new(TrackerState::new(limits)),
        config,
    });
    let app = Router::new()
        .route("/announce", get(announce))
        .route("/scrape", get(scrape))
        .route("/", get(status))
        .with_state(shared.clone());
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("tracker listening on http://{addr}/announce");
    }
    let expiry = tokio::spawn(expire_periodically(shared.clone()));
    let udp = udp.map(|socket| {
        if let Ok(addr) = socket.local_addr() {
            tracing::info!("tracker listening on udp://{addr}/announce");
        }
        tokio::spawn(udp::serve(socket, shared.clone()))
    });
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    expiry.abort();
    if let Some(task) = udp {
        task.abort();
    }
    result
}

async fn expire_periodically(shared: Arc<Shared>) {
    let period = (shared.config.interval / 2).max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        shared.state().expire(Instant::now());
    }
}

fn bencoded(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// Refusals go out as HTTP 200 with a `failure reason`, which is what clients understand.
fn failure(remote: SocketAddr, what: &str, reason: &str) -> Response {
    tracing::warn!(client = %remote, "refused {what}: {reason}");
    bencoded(encode_failure(reason))
}

async fn announce(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = match AnnounceQuery::parse(raw.as_deref().unwrap_or_default()) {
        Ok(query) => query,
        Err(e) => return failure(remote, "announce", &e.to_string()),
    };
    let answer = match shared.announce(&query, remote) {
        Ok(answer) => answer,
        Err(refusal) => return failure(remote, "announce", &refusal.to_string()),
    };
    let config = &shared.config;
    let response = AnnounceResponse {
        interval: Some(config.interval),
        min_interval: config.min_interval,
        complete: Some(answer.stats.complete),
        incomplete: Some(answer.stats.incomplete),
        peers: answer.peers,
        ..AnnounceResponse::default()
    };
    let format = if query.compact {
        PeerListFormat::Compact
    } else {
        PeerListFormat::Dicts {
            include_peer_id: !query.no_peer_id,
        }
    };
    bencoded(response.encode(format))
}

/// Where other peers should dial this one: the socket's address, or the `ip` parameter when
/// the client is on this machine (anyone else could point the swarm at a third party).
fn peer_address(remote: SocketAddr, claimed: Option<IpAddr>, port: u16) -> SocketAddr {
    let socket_ip = remote.ip().to_canonical();
    let ip = match claimed {
        Some(claimed) if socket_ip.is_loopback() => claimed.to_canonical(),
        _ => socket_ip,
    };
    SocketAddr::new(ip, port)
}

async fn scrape(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
) -> Response {
    match ScrapeQuery::parse(raw.as_deref().unwrap_or_default()) {
        Ok(query) => bencoded(shared.state().scrape(&query.info_hashes).encode()),
        Err(e) => failure(remote, "scrape", &e.to_string()),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Html<String> {
    let torrents = shared.state().snapshot();
    Html(status_page::render(&torrents, Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ip_parameter_is_trusted_only_from_loopback() {
        let claimed = Some("10.9.8.7".parse().unwrap());
        let local: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:5555".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:5555".parse().unwrap();
        assert_eq!(
            peer_address(local, claimed, 80),
            "10.9.8.7:80".parse().unwrap()
        );
        assert_eq!(
            peer_address(remote, claimed, 80),
            "192.0.2.1:80".parse().unwrap()
        );
        assert_eq!(
            peer_address(local, None, 81),
            "127.0.0.1:81".parse().unwrap()
        );
        // A dual-stack socket reports IPv4 clients as mapped IPv6; peers must get plain IPv4.
        assert_eq!(
            peer_address(mapped, None, 82),
            "192.0.2.1:82".parse().unwrap()
        );
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        assert_eq!(
            peer_address(v6, claimed, 83),
            "10.9.8.7:83".parse().unwrap()
        );
    }
}
