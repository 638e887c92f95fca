//! One HTTP response body as a reader of a file: it sends only verified bytes, waits (woken by
//! the torrent, not by polling) for the piece it needs, tells the torrent where it is, and
//! counts as paused while the player does not take what it is sent.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::engine::storage::Storage;
use crate::engine::torrent::{PlayerEvent, ReaderLink};
use crate::policy::vod::ReaderId;
use crate::proto::geometry::Geometry;

/// Largest piece of body read and sent at once: small, so that what waits in buffers between
/// a reader and its player (one chunk here, one in hyper) is little and its position is close
/// to what the player has read.
const CHUNK: u64 = 16 * 1024;

/// A reader whose next chunk has not been taken for this long is paused (`vod-scoring.md`):
/// the player's cache is full, or it stopped reading.
pub const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// What one response streams.
pub(super) struct ReadOrder {
    pub id: ReaderId,
    pub file: usize,
    /// The file's bytes in the torrent's byte stream.
    pub extent: Range<u64>,
    /// The bytes of the file to send.
    pub span: Range<u64>,
}

/// Streams `order.span` of the file into `body` (a channel of one chunk: a chunk waits there
/// until the connection takes it).
pub(super) async fn run(
    order: ReadOrder,
    link: ReaderLink,
    storage: Arc<Storage>,
    sent: Arc<AtomicU64>,
    body: mpsc::Sender<Result<Bytes, io::Error>>,
) {
    let id = order.id;
    let events = link.events.clone();
    // However the body ends (done, client gone, torrent gone), the torrent hears it closed.
    let _closed = CloseOnDrop {
        id,
        events: events.clone(),
    };
    let tell = |event| {
        let events = events.clone();
        async move {
            // The torrent task is gone only when the session is shutting down.
            let _ = events.send(event).await;
        }
    };
    tell(PlayerEvent::Open {
        id,
        file: order.file,
        span: order.span.clone(),
    })
    .await;
    let geometry = storage.geometry().clone();
    let mut have = link.have.clone();
    let mut at = order.span.start;
    while at < order.span.end {
        let byte = order.extent.start + at;
        let Some(piece) = geometry.piece_at(byte) else {
            return;
        };
        if !have.borrow().has(piece) {
            tell(PlayerEvent::Waiting { id, waiting: true }).await;
            tokio::select! {
                verified = have.wait_for(|h| h.has(piece)) => {
                    if verified.is_err() {
                        return;
                    }
                }
                // The client hung up while it waited.
                _ = body.closed() => return,
            }
            tell(PlayerEvent::Waiting { id, waiting: false }).await;
        }
        let end = chunk_end(&geometry, &order, at);
        let read = read(&storage, order.extent.start + at..order.extent.start + end).await;
        let data = match read {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(reader = id.0, "cannot read a verified piece: {e}");
                let _ = body.send(Err(e)).await;
                return;
            }
        };
        // A chunk the connection does not take within a second: the player is not reading.
        let permit = match tokio::time::timeout(PAUSE_AFTER, body.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return,
            Err(_) => {
                tell(PlayerEvent::Paused { id }).await;
                let Ok(permit) = body.reserve().await else {
                    return;
                };
                tell(PlayerEvent::Resumed { id }).await;
                permit
            }
        };
        sent.fetch_add(data.len() as u64, Ordering::Relaxed);
        permit.send(Ok(data));
        at = end;
        tell(PlayerEvent::Read { id, byte: at }).await;
    }
}

/// The end of the next chunk: within one piece, at most `CHUNK`, at most the span's end.
fn chunk_end(geometry: &Geometry, order: &ReadOrder, at: u64) -> u64 {
    let byte = order.extent.start + at;
    let piece_end = geometry
        .piece_at(byte)
        .map_or(byte + 1, |p| geometry.piece_range(p).end);
    (piece_end - order.extent.start)
        .min(at + CHUNK)
        .min(order.span.end)
}

async fn read(storage: &Arc<Storage>, range: Range<u64>) -> Result<Bytes, io::Error> {
    let storage = Arc::clone(storage);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0; (range.end - range.start) as usize];
        storage
            .read_span(range, &mut buf)
            .map(|()| Bytes::from(buf))
            .map_err(io::Error::other)
    })
    .await
    .map_err(io::Error::other)?
}

/// Sends `Closed` for the reader when dropped (a task, since drop cannot wait for room).
struct CloseOnDrop {
    id: ReaderId,
    events: mpsc::Sender<PlayerEvent>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let events = self.events.clone();
        let id = self.id;
        if let Err(mpsc::error::TrySendError::Full(event)) =
            events.try_send(PlayerEvent::Closed { id })
        {
            tokio::spawn(async move {
                let _ = events.send(event).await;
            });
        }
    }
}
