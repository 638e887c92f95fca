//! `--rate auto`: the playback rate from the container's duration once the bytes that say it
//! are verified (`proto::media`), else from the rate the readers are sent bytes at. The torrent
//! hears each new rate as a `PlayerEvent::Rate`; `/status` and the report say where it came from.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::engine::storage::Storage;
use crate::engine::torrent::{PlayerEvent, ReaderLink};
use crate::proto::bitfield::Bitfield;
use crate::proto::geometry::Geometry;
use crate::proto::media::{self, Probe};

/// How long the readers' rate is measured before it is trusted, and how often it is updated.
const READ_RATE_AFTER: Duration = Duration::from_secs(10);
const READ_RATE_EVERY: Duration = Duration::from_secs(5);

/// Where R came from, for `/status` (`rate_source`) and the report.
pub type RateNotes = watch::Sender<serde_json::Map<String, Value>>;

/// Learns R for file `file` and tells the torrent; returns when the container said it, or runs
/// on measuring the reads. `sent` counts body bytes sent to readers.
pub async fn learn(
    file: usize,
    storage: Arc<Storage>,
    link: ReaderLink,
    sent: Arc<AtomicU64>,
    notes: RateNotes,
) {
    let Some(extent) = storage.geometry().files().get(file).map(|f| f.range()) else {
        return;
    };
    let len = extent.end - extent.start;
    let fallback = from_reads(&sent, &link, &notes);
    tokio::pin!(fallback);
    let found = tokio::select! {
        found = from_container(&storage, extent, link.have.clone()) => found,
        () = &mut fallback => None,
    };
    match found {
        Some((duration, container)) => {
            let rate = (len as f64 / duration.as_secs_f64()).max(1.0) as u64;
            tracing::info!(
                "playback rate {rate} B/s from the {container} duration ({:.1} s)",
                duration.as_secs_f64()
            );
            note(
                &notes,
                &format!("{container} duration {:.1} s", duration.as_secs_f64()),
                rate,
            );
            let _ = link
                .events
                .send(PlayerEvent::Rate { bytes_per_s: rate })
                .await;
        }
        None => {
            tracing::info!(
                "the container does not say its duration: the rate follows the player's reads"
            );
            note(&notes, "the player's reads (measuring)", 0);
            fallback.await;
        }
    }
}

/// The rate the readers take bytes at, once it has settled; told again when it moves by more
/// than a tenth. Never returns.
async fn from_reads(sent: &AtomicU64, link: &ReaderLink, notes: &RateNotes) {
    let mut first: Option<(Instant, u64)> = None;
    let mut told = 0u64;
    loop {
        tokio::time::sleep(READ_RATE_EVERY).await;
        let bytes = sent.load(Ordering::Relaxed);
        let (since, base) = *first.get_or_insert((Instant::now(), bytes));
        let elapsed = since.elapsed();
        if elapsed < READ_RATE_AFTER || bytes <= base {
            continue;
        }
        let rate = ((bytes - base) as f64 / elapsed.as_secs_f64()) as u64;
        if rate.abs_diff(told) * 10 > told {
            told = rate;
            note(notes, "the player's reads", rate);
            let _ = link
                .events
                .send(PlayerEvent::Rate { bytes_per_s: rate })
                .await;
        }
    }
}

/// The file's duration and container name, read from verified pieces only (waiting for the
/// ones the probe needs); None if the container does not say.
async fn from_container(
    storage: &Arc<Storage>,
    extent: Range<u64>,
    mut have: watch::Receiver<Bitfield>,
) -> Option<(Duration, &'static str)> {
    let geometry = storage.geometry().clone();
    let len = extent.end - extent.start;
    loop {
        let snapshot = have.borrow().clone();
        let storage = Arc::clone(storage);
        let g = geometry.clone();
        let start = extent.start;
        let probe = tokio::task::spawn_blocking(move || {
            media::probe(len, &mut |r: Range<u64>| {
                read_verified(&storage, &g, &snapshot, start + r.start..start + r.end)
            })
        })
        .await
        .unwrap_or(Probe::Unknown);
        match probe {
            Probe::Duration {
                duration,
                container,
            } => return Some((duration, container)),
            Probe::Unknown => return None,
            Probe::Need(r) => {
                let pieces = pieces_of(&geometry, start + r.start..start + r.end);
                let verified = have
                    .wait_for(|h| pieces.iter().all(|&p| has(&geometry, h, p)))
                    .await;
                if verified.is_err() {
                    return None;
                }
            }
        }
    }
}

fn note(notes: &RateNotes, source: &str, rate: u64) {
    notes.send_modify(|m| {
        m.insert("rate_source".into(), Value::from(source));
        if rate > 0 {
            m.insert("rate_learnt_bytes_per_s".into(), Value::from(rate));
        }
    });
}

fn pieces_of(geometry: &Geometry, range: Range<u64>) -> Vec<u32> {
    let (Some(first), Some(last)) = (
        geometry.piece_at(range.start),
        geometry.piece_at(range.end.saturating_sub(1).max(range.start)),
    ) else {
        return Vec::new();
    };
    (first.get()..=last.get()).collect()
}

fn has(geometry: &Geometry, have: &Bitfield, piece: u32) -> bool {
    geometry.piece(piece).is_some_and(|p| have.has(p))
}

/// The bytes, if every piece they lie in is verified.
fn read_verified(
    storage: &Storage,
    geometry: &Geometry,
    have: &Bitfield,
    range: Range<u64>,
) -> Option<Vec<u8>> {
    if range.start >= range.end {
        return Some(Vec::new());
    }
    let mut out = Vec::with_capacity((range.end - range.start) as usize);
    let mut at = range.start;
    while at < range.end {
        let piece = geometry.piece_at(at)?;
        if !have.has(piece) {
            return None;
        }
        let end = geometry.piece_range(piece).end.min(range.end);
        let mut buf = vec![0; (end - at) as usize];
        storage.read_span(at..end, &mut buf).ok()?;
        out.extend_from_slice(&buf);
        at = end;
    }
    Some(out)
}
