//! Incoming connections, over TCP and over uTP: each is admitted only while the peer cap (and
//! its turnover slack) and the share of it that unidentified connections may hold allow, then
//! given its own peer task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use librqbit_utp::UtpSocketUdp;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::peer::link::Link;
use crate::engine::peer::{self, PeerContext};
use crate::policy::{PeerKey, turnover};

/// What every accepted connection is checked against and started with.
#[derive(Clone)]
pub(super) struct Admission {
    pub ctx: PeerContext,
    pub next_key: Arc<AtomicU64>,
    /// Connections dialled, accepted or alive, shared with the torrent task.
    pub live: Arc<AtomicUsize>,
    pub max_peers: usize,
    /// Accepted connections still in their handshake.
    pub handshaking: Arc<AtomicUsize>,
    pub cancel: CancellationToken,
}

impl Admission {
    /// Starts a peer task for `link` from `addr`, unless a cap says no.
    fn admit(&self, addr: SocketAddr, link: Link) {
        // A dual-stack socket shows IPv4 peers as mapped IPv6: one address per peer.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        // Past the cap by at most the slack: the torrent's turnover then closes idle old
        // connections, so the first peers to come cannot hold every slot for good.
        if self.live.load(Ordering::Relaxed) >= self.max_peers + turnover::slack(self.max_peers) {
            tracing::debug!(%addr, "connection refused: peer cap reached");
            return;
        }
        // Connections that have not finished their handshake may take only part of the cap,
        // so strangers that connect and say nothing cannot keep out our own dials.
        if self.handshaking.load(Ordering::Relaxed) >= max_handshaking(self.max_peers) {
            tracing::debug!(%addr, "connection refused: too many handshakes under way");
            return;
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        let guard = Handshaking::enter(&self.handshaking);
        let key = PeerKey(self.next_key.fetch_add(1, Ordering::Relaxed));
        let (ctx, cancel) = (self.ctx.clone(), self.cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = peer::run_incoming(key, addr, link, ctx, guard) => {}
            }
        });
    }
}

pub(super) async fn accept_tcp(listener: TcpListener, admission: Admission) {
    loop {
        let accepted = tokio::select! {
            _ = admission.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                admission.admit(addr, Link::Tcp(stream));
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

pub(super) async fn accept_utp(socket: Arc<UtpSocketUdp>, admission: Admission) {
    loop {
        let accepted = tokio::select! {
            _ = admission.cancel.cancelled() => return,
            a = socket.accept() => a,
        };
        match accepted {
            Ok(stream) => {
                let addr = stream.remote_addr();
                admission.admit(addr, Link::Utp(stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "uTP accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Accepted connections still in their handshake, at most: half the peer cap (at least one).
fn max_handshaking(max_peers: usize) -> usize {
    (max_peers / 2).max(1)
}

/// Counts one accepted connection as handshaking until dropped.
struct Handshaking(Arc<AtomicUsize>);

impl Handshaking {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
