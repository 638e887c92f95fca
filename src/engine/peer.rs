//! One task per peer connection: handshake, then move frames between the socket and the torrent
//! task. It holds no policy; it only reads blocks from storage to serve requests it is told to.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::codec::PeerCodec;
use super::rate_limit::RateLimiter;
use super::storage::Storage;
use crate::policy::PeerKey;
use crate::proto::geometry::BlockRef;
use crate::proto::wire::{BlockSpec, Handshake, Message};
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
        reason: String,
    },
    /// A connection attempt that never reached the handshake's end.
    Failed {
        key: PeerKey,
        addr: SocketAddr,
        reason: String,
    },
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
}

async fn read_handshake(stream: &mut TcpStream) -> Result<Handshake, HandshakeError> {
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
    stream: &mut TcpStream,
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

/// Dials `addr` and runs the connection to its end.
pub async fn run_outgoing(key: PeerKey, addr: SocketAddr, ctx: PeerContext) {
    let connect = timeout(ctx.handshake_timeout, TcpStream::connect(addr)).await;
    let stream = match connect {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail(&ctx, key, addr, e.to_string()).await,
        Err(_) => return fail(&ctx, key, addr, "connect timed out".into()).await,
    };
    run(key, addr, stream, ctx, true, ()).await
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
    run(key, addr, stream, ctx, false, handshaking).await
}

async fn fail(ctx: &PeerContext, key: PeerKey, addr: SocketAddr, reason: String) {
    let _ = ctx
        .events
        .send(PeerEvent::Failed { key, addr, reason })
        .await;
}

async fn run<G>(
    key: PeerKey,
    addr: SocketAddr,
    mut stream: TcpStream,
    ctx: PeerContext,
    outgoing: bool,
    handshaking: G,
) {
    let _ = stream.set_nodelay(true);
    let handshake = exchange_handshakes(&mut stream, &ctx, outgoing).await;
    drop(handshaking);
    let theirs = match handshake {
        Ok(h) => h,
        Err(e) => return fail(&ctx, key, addr, e.to_string()).await,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let fast = theirs.supports_fast();
    let kill = CancellationToken::new();
    let connected = PeerEvent::Connected {
        key,
        addr,
        peer_id: theirs.peer_id,
        fast,
        commands: cmd_tx,
        kill: kill.clone(),
    };
    if ctx.events.send(connected).await.is_err() {
        return;
    }
    let framed = Framed::new(stream, PeerCodec::for_piece_count(ctx.piece_count));
    let reason = tokio::select! {
        reason = pump(key, framed, cmd_rx, &ctx, fast) => reason,
        _ = kill.cancelled() => "closed by us".to_string(),
    };
    tracing::debug!(%addr, %reason, "peer gone");
    let _ = ctx.events.send(PeerEvent::Gone { key, reason }).await;
}

/// Commands the torrent task may queue for one peer; a peer that lets them pile up this far is
/// not keeping up and is closed.
const COMMAND_QUEUE: usize = 1024;

/// Reads a batch of blocks and waits for the upload limit to let them go, off the command loop.
type Serving = Pin<Box<dyn Future<Output = Result<Vec<(BlockRef, Vec<u8>)>, String>> + Send>>;

/// Blocks read per trip to the blocking pool when uploads are not rate-limited: one thread hop
/// per block was the seed's main cost in the throughput benchmark.
const UNLIMITED_BATCH: usize = 8;

fn serve(ctx: &PeerContext, blocks: Vec<BlockRef>) -> Serving {
    let storage = Arc::clone(&ctx.storage);
    let limit = ctx.upload_limit.clone();
    Box::pin(async move {
        let data = read_blocks(&storage, blocks).await?;
        let bytes: u64 = data.iter().map(|(b, _)| u64::from(b.len())).sum();
        limit.acquire(bytes).await;
        Ok(data)
    })
}

/// Takes the next blocks to serve: one at a time under an upload limit (so a slow link sends
/// each block as soon as its tokens allow), a batch otherwise.
fn next_batch(uploads: &mut VecDeque<BlockRef>, limited: bool) -> Vec<BlockRef> {
    let n = if limited { 1 } else { UNLIMITED_BATCH };
    let n = n.min(uploads.len());
    uploads.drain(..n).collect()
}

fn reject(block: BlockRef) -> Message {
    Message::Reject(BlockSpec {
        piece: block.piece().get(),
        offset: block.offset(),
        len: block.len(),
    })
}

/// Moves frames both ways until either side ends. Returns why it ended.
///
/// The block being uploaded is read and paced by the rate limit in a future of its own, so a
/// connection waiting for upload tokens still takes commands (a CHOKE, a CANCEL, requests) and
/// reads the socket.
async fn pump(
    key: PeerKey,
    framed: Framed<TcpStream, PeerCodec>,
    mut commands: mpsc::Receiver<PeerCommand>,
    ctx: &PeerContext,
    fast: bool,
) -> String {
    let (mut sink, mut stream) = framed.split();
    let mut uploads: VecDeque<BlockRef> = VecDeque::new();
    let mut serving: Option<(Vec<BlockRef>, Serving)> = None;
    let limited = ctx.upload_limit.is_limited();
    // Frames fed but not yet written: commands often come in runs (a pipeline of REQUESTs,
    // HAVEs after a piece), and one write serves the whole run.
    let mut unflushed = false;
    let mut last_sent = Instant::now();
    // When the last complete frame arrived. A deadline rather than a timeout around each read:
    // the select below runs again on every command and keep-alive tick, which would restart a
    // timeout each time and let a silent peer stay forever.
    let mut last_received = Instant::now();
    let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY / 3);
    // A write that cannot finish this long means the peer does not read what we send (a
    // request flood whose answers are never taken): the connection would hold its place and
    // its queued blocks forever.
    let stall = ctx.inactivity_timeout;
    loop {
        if unflushed && commands.is_empty() {
            if let Err(why) = write_within(stall, sink.flush()).await {
                return why;
            }
            unflushed = false;
        }
        if serving.is_none() && !uploads.is_empty() {
            let batch = next_batch(&mut uploads, limited);
            serving = Some((batch.clone(), serve(ctx, batch)));
        }
        tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                None | Some(PeerCommand::Close) => return "closed by us".into(),
                Some(PeerCommand::Send(message)) => {
                    let choke = matches!(message, Message::Choke);
                    if let Err(why) = write_within(stall, sink.feed(message)).await {
                        return why;
                    }
                    if choke {
                        // A choke voids every queued request (BEP 3); a BEP 6 peer is told so
                        // for each one instead of waiting for blocks that will never come.
                        let voided = serving.take().map(|(b, _)| b).unwrap_or_default().into_iter().chain(uploads.drain(..));
                        if fast {
                            for block in voided {
                                if let Err(why) = write_within(stall, sink.feed(reject(block))).await {
                                    return why;
                                }
                            }
                        }
                    }
                    unflushed = true;
                    last_sent = Instant::now();
                }
                Some(PeerCommand::Upload(block)) => {
                    let queued = uploads.contains(&block)
                        || serving.as_ref().is_some_and(|(b, _)| b.contains(&block));
                    if queued {
                        continue;
                    }
                    if uploads.len() < MAX_QUEUED_UPLOADS {
                        uploads.push_back(block);
                    } else if fast {
                        // Over the queue cap: say so rather than let the request time out.
                        // Fed, not flushed: a flood's REJECTs go out in runs.
                        if let Err(why) = write_within(stall, sink.feed(reject(block))).await {
                            return why;
                        }
                        unflushed = true;
                    }
                }
                Some(PeerCommand::CancelUpload(block)) => {
                    let queued = uploads.len();
                    uploads.retain(|b| *b != block);
                    let mut dropped = uploads.len() != queued;
                    if let Some((batch, _)) = &mut serving {
                        // Still read with the batch, but not sent.
                        let before = batch.len();
                        batch.retain(|b| *b != block);
                        dropped |= batch.len() != before;
                    }
                    // BEP 6: a CANCEL is answered with the PIECE or a REJECT. libtorrent keeps a
                    // cancelled request counted against the peer until then, so without the
                    // REJECT a deadline client that cancels its queue never asks again.
                    if fast && dropped {
                        if let Err(why) = write_within(stall, sink.feed(reject(block))).await {
                            return why;
                        }
                        unflushed = true;
                    }
                }
            },
            frame = stream.next() => match frame {
                None => return "closed by peer".into(),
                Some(Err(e)) => return format!("protocol: {e}"),
                Some(Ok(message)) => {
                    last_received = Instant::now();
                    if let Message::Piece { data, .. } = &message {
                        ctx.download_limit.acquire(data.len() as u64).await;
                    }
                    if ctx.events.send(PeerEvent::Message { key, message }).await.is_err() {
                        return "torrent stopped".into();
                    }
                }
            },
            // The `if` guard keeps this branch off while nothing is served; the `None` arm only
            // keeps the future total.
            read = async {
                match serving.as_mut() {
                    Some((_, read)) => read.as_mut().await,
                    None => std::future::pending().await,
                }
            }, if serving.is_some() => {
                let wanted = serving.take().map(|(b, _)| b).unwrap_or_default();
                let blocks = match read {
                    Ok(blocks) => blocks,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read a block to upload");
                        return format!("storage: {e}");
                    }
                };
                // Blocks cancelled while they were paced were paid for but are not sent: give
                // their bytes back to the limit, or a peer that cancels often (deadline
                // clients do) would cost the upload limit capacity it never used.
                let dropped: u64 = blocks
                    .iter()
                    .filter(|(b, _)| !wanted.contains(b))
                    .map(|(b, _)| u64::from(b.len()))
                    .sum();
                ctx.upload_limit.refund(dropped);
                let mut sent = 0u64;
                for (block, data) in blocks.into_iter().filter(|(b, _)| wanted.contains(b)) {
                    let message = Message::Piece {
                        piece: block.piece().get(),
                        offset: block.offset(),
                        data: bytes::Bytes::from(data),
                    };
                    if let Err(why) = write_within(stall, sink.feed(message)).await {
                        return why;
                    }
                    sent += u64::from(block.len());
                }
                if let Err(why) = write_within(stall, sink.flush()).await {
                    return why;
                }
                last_sent = Instant::now();
                if sent > 0 {
                    let _ = ctx.events.send(PeerEvent::Uploaded { key, bytes: sent }).await;
                }
            }
            _ = tokio::time::sleep_until(last_received + ctx.inactivity_timeout) => {
                return "inactive".into();
            }
            _ = keepalive.tick() => {
                if last_sent.elapsed() >= KEEPALIVE_EVERY {
                    if let Err(why) = write_within(stall, sink.send(Message::KeepAlive)).await {
                        return why;
                    }
                    last_sent = Instant::now();
                }
            }
        }
    }
}

/// Runs one write to the peer, giving up when it does not finish within `limit`.
async fn write_within(
    limit: Duration,
    write: impl Future<Output = Result<(), super::codec::CodecError>>,
) -> Result<(), String> {
    match timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err(format!(
            "write stalled for {limit:?}: the peer does not read"
        )),
    }
}

async fn read_blocks(
    storage: &Arc<Storage>,
    blocks: Vec<BlockRef>,
) -> Result<Vec<(BlockRef, Vec<u8>)>, String> {
    let storage = Arc::clone(storage);
    tokio::task::spawn_blocking(move || {
        blocks
            .into_iter()
            .map(|block| {
                let mut buf = vec![0; block.len() as usize];
                storage.read_block(block, &mut buf).map(|()| (block, buf))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}
