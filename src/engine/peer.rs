//! One task per peer connection: handshake, then move frames between the socket and the torrent
//! task. It holds no policy; it only reads blocks from storage to serve requests it is told to.

pub mod connect;
pub mod link;
pub mod mse;
mod pump;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use self::connect::Dialer;
use self::link::Link;
use self::mse::MseFailure;
use self::stream::PeerStream;
use super::codec::{CodecError, PeerCodec};
use super::rate_limit::RateLimiter;
use super::storage::{Storage, StorageError};
use crate::policy::PeerKey;
use crate::proto::geometry::BlockRef;
use crate::proto::wire::{Handshake, Message};
use crate::proto::{InfoHash, PeerId};

/// Default bound on dialling plus the handshake exchange (`TorrentConfig::handshake_timeout`):
/// a peer that connects and then sends nothing, or trickles its handshake, is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for `TorrentConfig::inactivity_timeout`: a peer that sends no complete frame (not
/// even a keep-alive) for this long is dropped.
pub const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(180);
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(90);
/// Requests a peer may have queued with us; more are dropped (a request flood stays bounded).
pub const MAX_QUEUED_UPLOADS: usize = 512;

/// What a peer task tells the torrent task.
#[derive(Debug)]
pub enum PeerEvent {
    Connected {
        key: PeerKey,
        addr: SocketAddr,
        peer_id: PeerId,
        fast: bool,
        /// It speaks BEP 10 (extended messages may be sent to it).
        extensions: bool,
        /// The payload is RC4-encrypted (MSE).
        encrypted: bool,
        /// It runs over uTP.
        utp: bool,
        commands: mpsc::Sender<PeerCommand>,
        /// Ends the connection at once, even when its command queue is full or it is stuck
        /// writing to a peer that does not read.
        kill: CancellationToken,
    },
    Message {
        key: PeerKey,
        message: Message,
    },
    Uploaded {
        key: PeerKey,
        bytes: u64,
    },
    Gone {
        key: PeerKey,
        reason: Ended,
    },
    /// A connection attempt that never reached the handshake's end.
    Failed {
        key: PeerKey,
        addr: SocketAddr,
        reason: HandshakeError,
    },
}

/// Why a connection that completed its handshake ended.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    #[error("closed by us")]
    ClosedByUs,
    #[error("closed by peer")]
    ClosedByPeer,
    #[error("torrent stopped")]
    TorrentStopped,
    #[error("inactive")]
    Inactive,
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(#[source] CodecError),
    #[error("write: {0}")]
    Write(#[source] CodecError),
    #[error("write stalled for {0:?}: the peer does not read")]
    WriteStalled(Duration),
    #[error("storage: {0}")]
    Storage(#[source] StorageError),
    #[error("the block reader stopped")]
    ReaderGone,
}

/// What the torrent task tells a peer task.
#[derive(Debug)]
pub enum PeerCommand {
    Send(Message),
    Upload(BlockRef),
    CancelUpload(BlockRef),
    Close,
}

/// Everything a peer task needs that is the same for every peer of a torrent.
#[derive(Clone)]
pub struct PeerContext {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    pub piece_count: u32,
    pub storage: Arc<Storage>,
    pub events: mpsc::Sender<PeerEvent>,
    pub upload_limit: RateLimiter,
    pub download_limit: RateLimiter,
    pub handshake_timeout: Duration,
    pub inactivity_timeout: Duration,
    /// Transports, encryption and the time each dial may take.
    pub dialer: Dialer,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("bad handshake: {0}")]
    Protocol(String),
    #[error("peer is serving another torrent ({0})")]
    WrongInfoHash(InfoHash),
    #[error("connected to ourselves")]
    Ourselves,
    #[error(transparent)]
    Encryption(#[from] MseFailure),
}

/// Reads the peer's 68-byte handshake and nothing after it: the buffer's capacity is exactly
/// one handshake, so the frames that follow stay in the socket for the framed codec.
pub(crate) async fn read_handshake(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Handshake, HandshakeError> {
    let mut buf = BytesMut::with_capacity(68);
    loop {
        match Handshake::decode(&mut buf) {
            Ok(Some(h)) => return Ok(h),
            Ok(None) => {}
            Err(e) => return Err(HandshakeError::Protocol(e.to_string())),
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::Protocol("closed during handshake".into()));
        }
    }
}

async fn exchange_handshakes(
    stream: &mut PeerStream,
    ctx: &PeerContext,
    outgoing: bool,
) -> Result<Handshake, HandshakeError> {
    let ours = Handshake::ours(ctx.info_hash, ctx.our_id);
    let mut out = BytesMut::with_capacity(68);
    ours.encode(&mut out);
    let work = async {
        if outgoing {
            stream.write_all(&out).await?;
        }
        let theirs = read_handshake(stream).await?;
        if theirs.info_hash != ctx.info_hash {
            return Err(HandshakeError::WrongInfoHash(theirs.info_hash));
        }
        if theirs.peer_id == ctx.our_id {
            return Err(HandshakeError::Ourselves);
        }
        if !outgoing {
            stream.write_all(&out).await?;
        }
        Ok(theirs)
    };
    timeout(ctx.handshake_timeout, work)
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

/// Dials `addr` over each transport `ctx.dialer` lists (encrypted or not, as it says) until
/// one completes the BitTorrent handshake, and runs that connection to its end. A peer may
/// accept a TCP connection and close it (libtorrent without incoming TCP does): the next
/// transport is tried then too.
pub async fn run_outgoing(key: PeerKey, addr: SocketAddr, ctx: PeerContext) {
    let mut last = HandshakeError::Protocol("no transport to dial".into());
    for &transport in ctx.dialer.order {
        let mut stream = match ctx.dialer.dial_over(transport, addr).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%addr, ?transport, error = %e, "dial failed");
                last = e.into();
                continue;
            }
        };
        match exchange_handshakes(&mut stream, &ctx, true).await {
            Ok(theirs) => return run(key, addr, stream, theirs, ctx).await,
            // The peer answered: another transport would reach the same peer.
            Err(e @ (HandshakeError::WrongInfoHash(_) | HandshakeError::Ourselves)) => {
                return fail(&ctx, key, addr, e).await;
            }
            Err(e) => {
                tracing::debug!(%addr, ?transport, error = %e, "handshake failed");
                last = e;
            }
        }
    }
    fail(&ctx, key, addr, last).await
}

/// Runs an accepted connection to its end. `handshaking` is dropped once the handshake is
/// over (either way), so the accept loop can bound connections that have not identified
/// themselves yet.
pub async fn run_incoming<G: Send>(
    key: PeerKey,
    addr: SocketAddr,
    link: Link,
    ctx: PeerContext,
    handshaking: G,
) {
    let (policy, limit) = (ctx.dialer.encryption, ctx.handshake_timeout);
    match connect::accept(link, ctx.info_hash, policy, limit).await {
        Ok(mut stream) => {
            let handshake = exchange_handshakes(&mut stream, &ctx, false).await;
            drop(handshaking);
            match handshake {
                Ok(theirs) => run(key, addr, stream, theirs, ctx).await,
                Err(e) => fail(&ctx, key, addr, e).await,
            }
        }
        Err(e) => {
            // Hostile or broken encrypted handshakes deserve a line; plain refusals do not.
            if matches!(e, MseFailure::Protocol(_) | MseFailure::Timeout) {
                tracing::info!(%addr, error = %e, "incoming connection dropped");
            }
            drop(handshaking);
            fail(&ctx, key, addr, e.into()).await
        }
    }
}

async fn fail(ctx: &PeerContext, key: PeerKey, addr: SocketAddr, reason: HandshakeError) {
    let _ = ctx
        .events
        .send(PeerEvent::Failed { key, addr, reason })
        .await;
}

/// A connection past its handshake, run to its end.
async fn run(
    key: PeerKey,
    addr: SocketAddr,
    stream: PeerStream,
    theirs: Handshake,
    ctx: PeerContext,
) {
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let fast = theirs.supports_fast();
    let kill = CancellationToken::new();
    let connected = PeerEvent::Connected {
        key,
        addr,
        peer_id: theirs.peer_id,
        fast,
        extensions: theirs.supports_extensions(),
        encrypted: stream.is_encrypted(),
        utp: stream.is_utp(),
        commands: cmd_tx,
        kill: kill.clone(),
    };
    if ctx.events.send(connected).await.is_err() {
        return;
    }
    let framed = Framed::new(stream, PeerCodec::for_piece_count(ctx.piece_count));
    let reason = tokio::select! {
        reason = pump::pump(key, framed, cmd_rx, &ctx, fast) => reason,
        _ = kill.cancelled() => Ended::ClosedByUs,
    };
    match reason {
        // A broken or hostile peer is worth a line: a user asks why it was dropped.
        Ended::Protocol(_) => {
            tracing::info!(%addr, %reason, "dropping a peer that broke the protocol")
        }
        _ => tracing::debug!(%addr, %reason, "peer gone"),
    }
    let _ = ctx.events.send(PeerEvent::Gone { key, reason }).await;
}

/// Commands the torrent task may queue for one peer; a peer that lets them pile up this far is
/// not keeping up and is closed.
const COMMAND_QUEUE: usize = 1024;
