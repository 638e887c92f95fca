//! One task per peer connection: handshake, then move frames between the socket and the torrent
//! task. It holds no policy; it only reads blocks from storage to serve requests it is told to.

pub mod mse;
mod pump;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use self::mse::{EncryptionPolicy, MseFailure};
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
    pub encryption: EncryptionPolicy,
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

/// Dials `addr` (encrypted or not, as `ctx.encryption` says) and runs the connection to its end.
pub async fn run_outgoing(key: PeerKey, addr: SocketAddr, ctx: PeerContext) {
    let dialled = mse::dial(addr, ctx.info_hash, ctx.encryption, ctx.handshake_timeout).await;
    match dialled {
        Ok(stream) => run(key, addr, stream, ctx, true, ()).await,
        Err(e) => fail(&ctx, key, addr, e.into()).await,
    }
}

/// Runs an accepted connection to its end. `handshaking` is dropped once the handshake is
/// over (either way), so the accept loop can bound connections that have not identified
/// themselves yet.
pub async fn run_incoming<G: Send>(
    key: PeerKey,
    addr: SocketAddr,
    stream: TcpStream,
    ctx: PeerContext,
    handshaking: G,
) {
    let _ = stream.set_nodelay(true);
    match mse::accept(stream, ctx.info_hash, ctx.encryption, ctx.handshake_timeout).await {
        Ok(stream) => run(key, addr, stream, ctx, false, handshaking).await,
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

async fn run<G>(
    key: PeerKey,
    addr: SocketAddr,
    mut stream: PeerStream,
    ctx: PeerContext,
    outgoing: bool,
    handshaking: G,
) {
    let handshake = exchange_handshakes(&mut stream, &ctx, outgoing).await;
    drop(handshaking);
    let theirs = match handshake {
        Ok(h) => h,
        Err(e) => return fail(&ctx, key, addr, e).await,
    };
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
