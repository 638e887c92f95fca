//! One direction of a relayed connection: read chunks, hold each until its release time, write
//! them on in order, and pass the end of the stream on as a shutdown of the write half.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use super::schedule::ReleaseSchedule;

/// The most read at once; with the byte budget it bounds what one direction holds.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction, so many tiny reads cannot cost more than their bytes.
const QUEUED_CHUNKS: usize = 4096;

/// Bytes that came in and bytes that went out, for one direction of the relay.
#[derive(Debug, Default)]
pub(super) struct DirectionCounters {
    pub(super) received: AtomicU64,
    pub(super) relayed: AtomicU64,
}

/// A chunk waiting for its release time; `_budget` returns its bytes to the budget once written.
struct HeldChunk {
    bytes: Vec<u8>,
    release: Instant,
    _budget: OwnedSemaphorePermit,
}

/// Moves `from` to `to` through the delay, holding at most `buffer_bytes` at a time. Returns
/// when `from` has ended and everything queued has been written and `to` shut down; an error on
/// either side ends it at once (the caller then drops both sockets).
pub(super) async fn delayed_pipe<R, W>(
    from: R,
    to: W,
    schedule: ReleaseSchedule,
    buffer_bytes: usize,
    counters: &DirectionCounters,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (queue, held) = mpsc::channel(QUEUED_CHUNKS);
    let budget = Arc::new(Semaphore::new(buffer_bytes.max(1)));
    let read_chunk = READ_CHUNK.min(buffer_bytes).max(1);
    tokio::try_join!(
        read_side(from, queue, schedule, budget, read_chunk, counters),
        write_side(held, to, counters),
    )?;
    Ok(())
}

async fn read_side<R: AsyncRead + Unpin>(
    mut from: R,
    queue: mpsc::Sender<HeldChunk>,
    mut schedule: ReleaseSchedule,
    budget: Arc<Semaphore>,
    read_chunk: usize,
    counters: &DirectionCounters,
) -> io::Result<()> {
    let read_chunk_permits = u32::try_from(read_chunk).unwrap_or(u32::MAX);
    loop {
        // Room for a whole chunk before reading: when the buffer is full nothing is read, and
        // TCP's own flow control slows the sender.
        let Ok(mut permit) = budget.clone().acquire_many_owned(read_chunk_permits).await else {
            return Ok(());
        };
        let mut bytes = vec![0; read_chunk];
        let n = from.read(&mut bytes).await?;
        if n == 0 {
            return Ok(());
        }
        let arrival = Instant::now();
        counters.received.fetch_add(n as u64, Ordering::Relaxed);
        bytes.truncate(n);
        // Keep the permits for the bytes read; the rest go back with `permit`.
        let kept = permit.split(n).unwrap_or(permit);
        let chunk = HeldChunk {
            bytes,
            release: schedule.release_at(arrival),
            _budget: kept,
        };
        if queue.send(chunk).await.is_err() {
            // The write side has stopped, which only happens with an error it reports itself.
            return Ok(());
        }
    }
}

async fn write_side<W: AsyncWrite + Unpin>(
    mut held: mpsc::Receiver<HeldChunk>,
    mut to: W,
    counters: &DirectionCounters,
) -> io::Result<()> {
    while let Some(chunk) = held.recv().await {
        // A timer, even one already due, waits for the next tick of tokio's clock (up to a
        // millisecond): a zero-delay link should not pay it.
        if chunk.release > Instant::now() {
            tokio::time::sleep_until(chunk.release).await;
        }
        to.write_all(&chunk.bytes).await?;
        counters
            .relayed
            .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
    }
    // The reader saw the end of the stream and everything before it is written: pass it on.
    to.shutdown().await
}
