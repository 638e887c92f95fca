//! A response body streamed from a file in bounded chunks: positional reads off the runtime,
//! an optional shared pace (`--rate`), and the byte meter counted as each chunk is handed on.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::meter::OriginMeter;

/// Largest chunk read and sent at once: memory per response stays bounded by this.
const MAX_CHUNK: u64 = 64 * 1024;
/// A paced body goes out in at least this many chunks per second, so it flows smoothly
/// instead of in bursts a slow client would see as stalls.
const CHUNKS_PER_SECOND: u64 = 20;

/// One link shared by every response: `rate` bytes per second in total, no burst. Models a
/// distant server's bandwidth, so concurrent fetches share it as they would share a real link.
#[derive(Debug)]
pub struct Pacer {
    rate: u64,
    /// When the link is free again.
    next_free: Mutex<Option<Instant>>,
}

impl Pacer {
    /// `rate` bytes per second (at least 1).
    pub fn new(rate: u64) -> Pacer {
        Pacer {
            rate: rate.max(1),
            next_free: Mutex::new(None),
        }
    }

    pub fn chunk_len(&self) -> u64 {
        (self.rate / CHUNKS_PER_SECOND).clamp(1, MAX_CHUNK)
    }

    /// Books `bytes` of link time starting no earlier than `now`; returns when they have gone.
    pub fn reserve(&self, now: Instant, bytes: u64) -> Instant {
        let mut next_free = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let start = next_free.map_or(now, |t| t.max(now));
        let done = start + Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        *next_free = Some(done);
        done
    }
}

/// What one response body needs.
pub struct BodySource {
    pub file: Arc<File>,
    pub range: Range<u64>,
    /// The meter key of the file.
    pub key: String,
    pub meter: Arc<OriginMeter>,
    pub pacer: Option<Arc<Pacer>>,
    /// Cancelled when the server stops waiting for bodies still in flight.
    pub stop: CancellationToken,
}

/// The body's chunks. A read error (the file shrank) or a stop ends the stream with an error,
/// which makes the connection close instead of sending a body shorter than announced.
pub fn chunks(source: BodySource) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let chunk_len = source.pacer.as_ref().map_or(MAX_CHUNK, |p| p.chunk_len());
    futures::stream::try_unfold(source, move |mut source| async move {
        let Range { start, end } = source.range;
        if start >= end {
            return Ok(None);
        }
        let len = chunk_len.min(end - start);
        let file = source.file.clone();
        let read = tokio::task::spawn_blocking(move || {
            // `len` is at most MAX_CHUNK, so it fits in usize.
            let mut buf = vec![0; len as usize];
            file.read_exact_at(&mut buf, start).map(|()| buf)
        });
        let buf = read.await.map_err(io::Error::other)??;
        if let Some(pacer) = &source.pacer {
            let due = pacer.reserve(Instant::now(), len);
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = source.stop.cancelled() => return Err(stopped()),
            }
        }
        if source.stop.is_cancelled() {
            return Err(stopped());
        }
        source.meter.record_body(&source.key, len);
        source.range.start += len;
        Ok(Some((Bytes::from(buf), source)))
    })
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the origin is shutting down")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_books_one_link_for_everyone() {
        let pacer = Pacer::new(1000);
        let t0 = Instant::now();
        assert_eq!(pacer.reserve(t0, 500), t0 + Duration::from_millis(500));
        // A second response at the same moment waits behind the first.
        assert_eq!(pacer.reserve(t0, 500), t0 + Duration::from_millis(1000));
        // After an idle spell there is no burst credit: the link starts from now.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            pacer.reserve(later, 100),
            later + Duration::from_millis(100)
        );
    }

    #[test]
    fn paced_chunks_are_small_enough_to_flow() {
        assert_eq!(Pacer::new(1 << 20).chunk_len(), (1 << 20) / 20);
        assert_eq!(Pacer::new(100 << 20).chunk_len(), MAX_CHUNK);
        assert_eq!(Pacer::new(3).chunk_len(), 1);
    }
}
