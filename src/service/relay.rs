//! A delaying TCP relay: it listens in front of one peer, dials that peer for every connection
//! it accepts and forwards bytes both ways, each held for the link's one-way delay (plus a
//! seeded jitter), so worlds on 127.0.0.1 see the latency of a real network.
//!
//! The delay is chosen by the accepted connection's source address (`by_source`, else
//! `delay`), so one relay can give each class of peers, each on its own 127.0.0.x, its own
//! link. Bytes are never reordered, each direction holds at most `buffer_bytes` (then stops
//! reading and lets TCP's flow control push back), the end of one side's stream is passed on
//! once what came before it is delivered, and an error on either side closes both. The
//! handshake itself is not delayed: only bytes are.

mod pipe;
mod schedule;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use pipe::{DirectionCounters, delayed_pipe};
use schedule::ReleaseSchedule;

/// The emulated link: every round trip takes `rtt` plus up to `jitter` (drawn per chunk, each
/// way up to half of it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkDelay {
    pub rtt: Duration,
    pub jitter: Duration,
}

impl LinkDelay {
    /// A link of round-trip `rtt` without jitter.
    pub fn rtt(rtt: Duration) -> LinkDelay {
        LinkDelay {
            rtt,
            jitter: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where to listen; port 0 picks one (see [`Relay::local_addr`]).
    pub listen: SocketAddr,
    /// The peer every accepted connection is forwarded to.
    pub target: SocketAddr,
    /// The link of connections whose source address is not in `by_source`.
    pub delay: LinkDelay,
    /// The link by the accepted connection's source address.
    pub by_source: HashMap<IpAddr, LinkDelay>,
    /// Dial the target from this local address, so it sees that address rather than any.
    pub source_ip: Option<IpAddr>,
    /// Seeds every jitter draw (each connection and direction gets its own stream from it).
    pub seed: u64,
    /// The most held per direction per connection.
    pub buffer_bytes: usize,
    /// Connections beyond this many at once are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A target that has not answered by then gets the accepted connection closed.
    pub dial_timeout: Duration,
}

impl RelayConfig {
    /// Relays `listen` to `target` without delay, with 1 MiB per direction.
    pub fn new(listen: SocketAddr, target: SocketAddr) -> RelayConfig {
        RelayConfig {
            listen,
            target,
            delay: LinkDelay::default(),
            by_source: HashMap::new(),
            source_ip: None,
            seed: 0,
            buffer_bytes: 1024 * 1024,
            max_connections: 1024,
            dial_timeout: Duration::from_secs(10),
        }
    }

    /// The link a connection from `source` gets.
    pub fn delay_for(&self, source: IpAddr) -> LinkDelay {
        self.by_source.get(&source).copied().unwrap_or(self.delay)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("relay cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// What the relay has done so far. "To target" is from accepted connections towards the
/// target; "to source" is the replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    pub connections_accepted: u64,
    pub connections_open: u64,
    /// Bytes read from accepted connections.
    pub received_from_source: u64,
    /// Of those, bytes written to the target.
    pub relayed_to_target: u64,
    /// Bytes read from the target.
    pub received_from_target: u64,
    /// Of those, bytes written back to the accepted connections.
    pub relayed_to_source: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    to_target: DirectionCounters,
    to_source: DirectionCounters,
}

/// A running relay. [`Relay::stop`] closes every connection and waits for every task it
/// started; dropping it closes them too, without waiting.
pub struct Relay {
    local_addr: SocketAddr,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    accept_task: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens on `config.listen` and starts relaying.
    pub async fn bind(config: RelayConfig) -> Result<Relay, RelayError> {
        let bind_error = |source| RelayError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        info!(%local_addr, target = %config.target, "relay listening");
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let accept_task = tokio::spawn(accept_loop(
            listener,
            Arc::new(config),
            counters.clone(),
            cancel.clone(),
        ));
        Ok(Relay {
            local_addr,
            counters,
            cancel,
            accept_task: Some(accept_task),
        })
    }

    /// The address to announce in the target's place.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            connections_accepted: c.accepted.load(Ordering::Relaxed),
            connections_open: c.open.load(Ordering::Relaxed),
            received_from_source: c.to_target.received.load(Ordering::Relaxed),
            relayed_to_target: c.to_target.relayed.load(Ordering::Relaxed),
            received_from_target: c.to_source.received.load(Ordering::Relaxed),
            relayed_to_source: c.to_source.relayed.load(Ordering::Relaxed),
        }
    }

    /// Stops listening, closes every connection (bytes still held are dropped) and returns
    /// once every task the relay started has ended.
    pub async fn stop(mut self) -> RelayStats {
        self.cancel.cancel();
        if let Some(task) = self.accept_task.take()
            && let Err(e) = task.await
        {
            warn!(error = %e, "relay accept task ended abnormally");
        }
        self.stats()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cancel.cancel();
        // Aborting drops its JoinSet, which aborts every connection task.
        if let Some(task) = self.accept_task.take() {
            task.abort();
        }
    }
}

/// Accepts until cancelled, one task per connection, all owned by one JoinSet so that
/// stopping ends them all.
async fn accept_loop(
    listener: TcpListener,
    config: Arc<RelayConfig>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) {
    let mut connections = JoinSet::new();
    let mut next_connection: u64 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, source)) => {
                    if connections.len() >= config.max_connections {
                        warn!(%source, "relay at its connection limit, closing");
                        continue;
                    }
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let connection = Connection {
                        number: next_connection,
                        source,
                        config: config.clone(),
                        counters: counters.clone(),
                    };
                    next_connection += 1;
                    connections.spawn(connection.run(stream));
                }
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    warn!(error = %e, "relay accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
    debug!("relay stopped");
}

/// One accepted connection and what it needs to relay itself.
struct Connection {
    number: u64,
    source: SocketAddr,
    config: Arc<RelayConfig>,
    counters: Arc<Counters>,
}

/// Counts a connection open for as long as its task lives, aborted or not.
struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    async fn run(self, accepted: TcpStream) {
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        let _open = OpenGuard(self.counters.clone());
        let source = self.source;
        let target = match self.dial().await {
            Ok(target) => target,
            Err(e) => {
                warn!(%source, target = %self.config.target, error = %e, "relay cannot reach its target");
                return;
            }
        };
        // Small writes go out when their time comes, not when Nagle's algorithm lets them.
        for stream in [&accepted, &target] {
            if let Err(e) = stream.set_nodelay(true) {
                debug!(error = %e, "relay cannot set TCP_NODELAY");
            }
        }
        let delay = self.config.delay_for(source.ip());
        debug!(%source, ?delay, "relay connection open");
        let (from_source, to_source) = accepted.into_split();
        let (from_target, to_target) = target.into_split();
        // Each connection and direction draws its own jitter stream from the one seed.
        let seed = self.config.seed ^ self.number.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let buffer = self.config.buffer_bytes;
        let outcome = tokio::try_join!(
            delayed_pipe(
                from_source,
                to_target,
                ReleaseSchedule::new(delay, seed),
                buffer,
                &self.counters.to_target,
            ),
            delayed_pipe(
                from_target,
                to_source,
                ReleaseSchedule::new(delay, seed ^ 1),
                buffer,
                &self.counters.to_source,
            ),
        );
        match outcome {
            Ok(_) => debug!(%source, "relay connection closed by both sides"),
            Err(e) => debug!(%source, error = %e, "relay connection closed on an error"),
        }
    }

    async fn dial(&self) -> io::Result<TcpStream> {
        let target = self.config.target;
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = self.config.source_ip {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        match tokio::time::timeout(self.config.dial_timeout, socket.connect(target)).await {
            Ok(connected) => connected,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out dialling the target",
            )),
        }
    }
}
