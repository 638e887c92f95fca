//! The connected half of a peer task: frames in from the socket go to the torrent task, the
//! torrent task's commands go out, and requested blocks are read from storage and paced by
//! the upload limit.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::codec::Framed;

use super::stream::PeerStream;
use super::{Ended, KEEPALIVE_EVERY, MAX_QUEUED_UPLOADS, PeerCommand, PeerContext, PeerEvent};
use crate::engine::codec::{CodecError, PeerCodec};
use crate::engine::storage::{Storage, StorageError};
use crate::policy::PeerKey;
use crate::proto::geometry::BlockRef;
use crate::proto::wire::{BlockSpec, Message};

type Sink = SplitSink<Framed<PeerStream, PeerCodec>, Message>;

/// Reads a batch of blocks and waits for the upload limit to let them go, off the command loop.
type Serving = Pin<Box<dyn Future<Output = Result<Vec<(BlockRef, Vec<u8>)>, Ended>> + Send>>;

/// Blocks read per trip to the blocking pool when uploads are not rate-limited: one thread hop
/// per block was the seed's main cost in the throughput benchmark.
const UNLIMITED_BATCH: usize = 8;

/// Moves frames both ways until either side ends. Returns why it ended.
///
/// The block being uploaded is read and paced by the rate limit in a future of its own, so a
/// connection waiting for upload tokens still takes commands (a CHOKE, a CANCEL, requests) and
/// reads the socket.
pub(super) async fn pump(
    key: PeerKey,
    framed: Framed<PeerStream, PeerCodec>,
    mut commands: mpsc::Receiver<PeerCommand>,
    ctx: &PeerContext,
    fast: bool,
) -> Ended {
    let (sink, mut stream) = framed.split();
    let mut out = Outgoing {
        key,
        ctx,
        fast,
        sink,
        uploads: VecDeque::new(),
        serving: None,
        unflushed: false,
        last_sent: Instant::now(),
        stall: ctx.inactivity_timeout,
    };
    // When the last complete frame arrived. A deadline rather than a timeout around each read:
    // the select below runs again on every command and keep-alive tick, which would restart a
    // timeout each time and let a silent peer stay forever.
    let mut last_received = Instant::now();
    let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY / 3);
    loop {
        let step = async {
            out.prepare(commands.is_empty()).await?;
            tokio::select! {
                biased;
                cmd = commands.recv() => out.on_command(cmd).await,
                frame = stream.next() => {
                    last_received = Instant::now();
                    on_frame(key, ctx, frame).await
                }
                // The `if` guard keeps this branch off while nothing is served; the `None` arm
                // only keeps the future total.
                read = async {
                    match out.serving.as_mut() {
                        Some((_, read)) => read.as_mut().await,
                        None => std::future::pending().await,
                    }
                }, if out.serving.is_some() => out.on_served(read).await,
                _ = tokio::time::sleep_until(last_received + ctx.inactivity_timeout) => {
                    Err(Ended::Inactive)
                }
                _ = keepalive.tick() => out.keep_alive().await,
            }
        };
        if let Err(ended) = step.await {
            return ended;
        }
    }
}

/// A frame from the peer goes to the torrent task (after the download limit lets a block in).
async fn on_frame(
    key: PeerKey,
    ctx: &PeerContext,
    frame: Option<Result<Message, CodecError>>,
) -> Result<(), Ended> {
    let message = match frame {
        None => return Err(Ended::ClosedByPeer),
        // A reset is how a peer that exits ends its connections, not a broken protocol.
        Some(Err(CodecError::Io(e))) => return Err(Ended::Read(e)),
        Some(Err(e)) => return Err(Ended::Protocol(e)),
        Some(Ok(message)) => message,
    };
    if let Message::Piece { data, .. } = &message {
        ctx.download_limit.acquire(data.len() as u64).await;
    }
    ctx.events
        .send(PeerEvent::Message { key, message })
        .await
        .map_err(|_| Ended::TorrentStopped)
}

/// What goes to the peer: our frames, and the blocks it asked for.
struct Outgoing<'a> {
    key: PeerKey,
    ctx: &'a PeerContext,
    fast: bool,
    sink: Sink,
    /// Requests it may still be sent, in order.
    uploads: VecDeque<BlockRef>,
    /// The batch being read and paced, with its future.
    serving: Option<(Vec<BlockRef>, Serving)>,
    /// Frames fed but not yet written: commands often come in runs (a pipeline of REQUESTs,
    /// HAVEs after a piece), and one write serves the whole run.
    unflushed: bool,
    last_sent: Instant,
    /// A write that cannot finish this long means the peer does not read what we send (a
    /// request flood whose answers are never taken): the connection would hold its place and
    /// its queued blocks forever.
    stall: Duration,
}

impl Outgoing<'_> {
    /// Before waiting again: flush a finished run of frames (`idle`: no command is waiting),
    /// start serving the next batch.
    async fn prepare(&mut self, idle: bool) -> Result<(), Ended> {
        if self.unflushed && idle {
            self.flush().await?;
        }
        if self.serving.is_none() && !self.uploads.is_empty() {
            let batch = next_batch(&mut self.uploads, self.ctx.upload_limit.is_limited());
            self.serving = Some((batch.clone(), serve(self.ctx, batch)));
        }
        Ok(())
    }

    async fn feed(&mut self, message: Message) -> Result<(), Ended> {
        write_within(self.stall, self.sink.feed(message)).await?;
        self.unflushed = true;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Ended> {
        write_within(self.stall, self.sink.flush()).await?;
        self.unflushed = false;
        Ok(())
    }

    async fn on_command(&mut self, command: Option<PeerCommand>) -> Result<(), Ended> {
        match command {
            None | Some(PeerCommand::Close) => Err(Ended::ClosedByUs),
            Some(PeerCommand::Send(message)) => self.send(message).await,
            Some(PeerCommand::Upload(block)) => self.queue_upload(block).await,
            Some(PeerCommand::CancelUpload(block)) => self.cancel_upload(block).await,
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), Ended> {
        let choke = matches!(message, Message::Choke);
        self.feed(message).await?;
        if choke {
            // A choke voids every queued request (BEP 3); a BEP 6 peer is told so for each
            // one instead of waiting for blocks that will never come.
            let serving = self.serving.take().map(|(b, _)| b).unwrap_or_default();
            let voided: Vec<BlockRef> = serving.into_iter().chain(self.uploads.drain(..)).collect();
            if self.fast {
                for block in voided {
                    self.feed(reject(block)).await?;
                }
            }
        }
        self.last_sent = Instant::now();
        Ok(())
    }

    async fn queue_upload(&mut self, block: BlockRef) -> Result<(), Ended> {
        let queued = self.uploads.contains(&block)
            || self
                .serving
                .as_ref()
                .is_some_and(|(b, _)| b.contains(&block));
        if queued {
            return Ok(());
        }
        if self.uploads.len() < MAX_QUEUED_UPLOADS {
            self.uploads.push_back(block);
        } else if self.fast {
            // Over the queue cap: say so rather than let the request time out. Fed, not
            // flushed at once: a flood's REJECTs go out in runs.
            self.feed(reject(block)).await?;
        }
        Ok(())
    }

    async fn cancel_upload(&mut self, block: BlockRef) -> Result<(), Ended> {
        let queued = self.uploads.len();
        self.uploads.retain(|b| *b != block);
        let mut dropped = self.uploads.len() != queued;
        if let Some((batch, _)) = &mut self.serving {
            // Still read with the batch, but not sent.
            let before = batch.len();
            batch.retain(|b| *b != block);
            dropped |= batch.len() != before;
        }
        // BEP 6: a CANCEL is answered with the PIECE or a REJECT. libtorrent keeps a cancelled
        // request counted against the peer until then, so without the REJECT a deadline client
        // that cancels its queue never asks again.
        if self.fast && dropped {
            self.feed(reject(block)).await?;
        }
        Ok(())
    }

    /// A batch was read and paced: send what is still wanted.
    async fn on_served(
        &mut self,
        read: Result<Vec<(BlockRef, Vec<u8>)>, Ended>,
    ) -> Result<(), Ended> {
        let wanted = self.serving.take().map(|(b, _)| b).unwrap_or_default();
        let blocks = read.inspect_err(|e| tracing::warn!(error = %e, "cannot upload a block"))?;
        // Blocks cancelled while they were paced were paid for but are not sent: give their
        // bytes back to the limit, or a peer that cancels often (deadline clients do) would
        // cost the upload limit capacity it never used.
        let dropped: u64 = blocks
            .iter()
            .filter(|(b, _)| !wanted.contains(b))
            .map(|(b, _)| u64::from(b.len()))
            .sum();
        self.ctx.upload_limit.refund(dropped);
        let mut sent = 0u64;
        for (block, data) in blocks.into_iter().filter(|(b, _)| wanted.contains(b)) {
            let message = Message::Piece {
                piece: block.piece().get(),
                offset: block.offset(),
                data: bytes::Bytes::from(data),
            };
            self.feed(message).await?;
            sent += u64::from(block.len());
        }
        self.flush().await?;
        self.last_sent = Instant::now();
        if sent > 0 {
            let uploaded = PeerEvent::Uploaded {
                key: self.key,
                bytes: sent,
            };
            let _ = self.ctx.events.send(uploaded).await;
        }
        Ok(())
    }

    async fn keep_alive(&mut self) -> Result<(), Ended> {
        if self.last_sent.elapsed() >= KEEPALIVE_EVERY {
            write_within(self.stall, self.sink.send(Message::KeepAlive)).await?;
            self.last_sent = Instant::now();
        }
        Ok(())
    }
}

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

/// Runs one write to the peer, giving up when it does not finish within `limit`.
async fn write_within(
    limit: Duration,
    write: impl Future<Output = Result<(), CodecError>>,
) -> Result<(), Ended> {
    match timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Ended::Write(e)),
        Err(_) => Err(Ended::WriteStalled(limit)),
    }
}

async fn read_blocks(
    storage: &Arc<Storage>,
    blocks: Vec<BlockRef>,
) -> Result<Vec<(BlockRef, Vec<u8>)>, Ended> {
    let storage = Arc::clone(storage);
    tokio::task::spawn_blocking(move || {
        blocks
            .into_iter()
            .map(|block| {
                let mut buf = vec![0; block.len() as usize];
                storage.read_block(block, &mut buf).map(|()| (block, buf))
            })
            .collect::<Result<Vec<_>, StorageError>>()
    })
    .await
    .map_err(|_| Ended::ReaderGone)?
    .map_err(Ended::Storage)
}
