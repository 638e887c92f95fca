//! A run's viewers measured against what their world could have done: the inputs of
//! [`crate::policy::bounds`] built from what the world recorded (each world peer's holdings
//! over time and its class's upload limit) and from the viewer's own curve (bytes received from
//! peers over time), in the viewer's time (its t = 0).

use serde::Serialize;

use super::{Sample, ViewerOutcome};
use crate::experiment::roster::{PeerRecord, PeerRole};
use crate::experiment::scenario::Scenario;
use crate::policy::bounds::{DuePiece, HoldingSpell, capacity_bound, ordering_bound};
use crate::policy::vod::{Schedule, VodParams};
use crate::proto::metainfo::Metainfo;

/// The least penalty a viewer could have paid, two ways (bytes).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PenaltyBounds {
    /// If every world peer had given this viewer all its upload, of pieces it held then.
    pub capacity: u64,
    /// If the bytes this viewer did receive from peers had gone to the best pieces.
    pub ordering: u64,
}

/// Both bounds of one viewer. `world_offset` is the viewer's t = 0 in the world's time and
/// `world_end` when the world stopped (seconds since it started).
pub fn viewer_bounds(
    meta: &Metainfo,
    scenario: &Scenario,
    peers: &[PeerRecord],
    viewer: &ViewerOutcome,
    world_offset: f64,
    world_end: f64,
) -> Option<PenaltyBounds> {
    let due = due_pieces(meta, viewer)?;
    let first = meta
        .geometry
        .pieces_of_file(movie_file(meta, viewer)?)
        .start;
    let mut spells = Vec::new();
    for (id, peer) in peers.iter().enumerate() {
        if peer.role == PeerRole::Viewer {
            continue;
        }
        let Some(class) = scenario.peers.iter().find(|c| c.name == peer.class) else {
            continue;
        };
        let upload = class.limits.upload_rate().unwrap_or(f64::INFINITY);
        spells.extend(holding_spells(
            id as u32,
            peer,
            upload,
            first,
            due.len(),
            world_offset,
            world_end,
        ));
    }
    Some(PenaltyBounds {
        capacity: capacity_bound(&due, &spells),
        ordering: ordering_bound(&due, &receipts(&viewer.samples)),
    })
}

fn movie_file(meta: &Metainfo, viewer: &ViewerOutcome) -> Option<usize> {
    let file = &viewer.score.as_ref()?.file;
    (0..meta.files.len()).find(|&i| meta.relative_path(i).display().to_string() == *file)
}

/// The movie's pieces in order, each with the contract's deadline and its full size (what
/// the server would send for it).
fn due_pieces(meta: &Metainfo, viewer: &ViewerOutcome) -> Option<Vec<DuePiece>> {
    let params = VodParams::new(
        viewer.rate_bytes_per_s,
        std::time::Duration::try_from_secs_f64(viewer.delay_s).ok()?,
        std::time::Duration::try_from_secs_f64(viewer.prefetch_s).ok()?,
    )
    .ok()?;
    let extent = meta.geometry.files().get(movie_file(meta, viewer)?)?;
    let schedule = Schedule::new(params, &meta.geometry, extent.range()).ok()?;
    let pieces = schedule.movie_pieces();
    Some(
        pieces
            .filter_map(|i| meta.geometry.piece(i))
            .map(|piece| DuePiece {
                deadline: schedule
                    .deadline(piece)
                    .map_or(f64::INFINITY, |d| d.as_secs_f64()),
                bytes: u64::from(meta.geometry.piece_size(piece)),
            })
            .collect(),
    )
}

/// A world peer's holdings as spells in the viewer's time, over the movie's pieces only.
fn holding_spells(
    id: u32,
    peer: &PeerRecord,
    upload: f64,
    first_piece: u32,
    movie_pieces: usize,
    world_offset: f64,
    world_end: f64,
) -> Vec<HoldingSpell> {
    let mut spells = Vec::new();
    for (k, (from, held)) in peer.holdings.iter().enumerate() {
        let Some(held) = held else { continue };
        let to = peer.holdings.get(k + 1).map_or(world_end, |(t, _)| *t);
        let pieces: Vec<u32> = held
            .ones()
            .filter_map(|p| p.checked_sub(first_piece))
            .filter(|&p| (p as usize) < movie_pieces)
            .collect();
        if pieces.is_empty() {
            continue;
        }
        spells.push(HoldingSpell {
            peer: id,
            from: from - world_offset,
            to: to - world_offset,
            upload,
            pieces,
        });
    }
    spells
}

/// The bytes received from peers between samples, each batch counted at the start of its
/// interval (the earliest it can have arrived, so the bound stays a lower bound).
fn receipts(samples: &[Sample]) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    let (mut t, mut seen) = (0.0, 0u64);
    for s in samples {
        if s.downloaded > seen {
            out.push((t, s.downloaded - seen));
            seen = s.downloaded;
        }
        t = s.t;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, downloaded: u64) -> Sample {
        Sample {
            t,
            contiguous: None,
            penalty: 0,
            downloaded,
        }
    }

    #[test]
    fn receipts_are_counted_at_the_start_of_their_interval() {
        let got = receipts(&[sample(0.5, 100), sample(1.0, 100), sample(1.5, 250)]);
        assert_eq!(got, vec![(0.0, 100), (1.0, 150)]);
        assert!(receipts(&[]).is_empty());
    }
}
