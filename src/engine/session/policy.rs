//! What a session plays and how it picks: the policy kinds, the playback options, and the
//! factory that builds the VoD session and the picker from them (one RNG draw each, in order).

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::SessionError;
use crate::engine::vod_server::VodServer;
use crate::policy::picker::{DeadlineConfig, DeadlinePicker, Picker, RarestFirst, Sequential};
use crate::policy::vod::{Schedule, VodParams, VodSession};
use crate::proto::bitfield::Bitfield;
use crate::proto::metainfo::Metainfo;

/// Which piece policy the torrent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    #[default]
    Rarest,
    Sequential,
    /// The VoD deadline policy (needs [`VodOptions`]).
    Deadline,
}

impl PolicyKind {
    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Rarest => "rarest",
            PolicyKind::Sequential => "sequential",
            PolicyKind::Deadline => "deadline",
        }
    }
}

/// Playback: the movie, its R, D and P, and the VoD server that covers missed deadlines.
#[derive(Clone)]
pub struct VodOptions {
    pub params: VodParams,
    /// Index of the movie in the torrent's file list.
    pub file: usize,
    /// The paid source; without one a late piece is waited for (streaming only).
    pub server: Option<Arc<VodServer>>,
    pub deadline: DeadlineConfig,
    pub deadlines: Deadlines,
}

/// Where deadlines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadlines {
    /// The course contract: `D - P + b/R` from t = 0.
    Schedule,
    /// Players reading the files over HTTP (`btvod stream`). Only the movie and the files
    /// readers open are downloaded, unless `download_all`.
    Readers { download_all: bool },
}

impl VodOptions {
    /// The course contract's playback of `file` (deadlines `D - P + b/R` from t = 0), with
    /// `server` covering what would miss its deadline and the deadline policy's defaults.
    pub fn scheduled(params: VodParams, file: usize, server: VodServer) -> VodOptions {
        VodOptions {
            params,
            file,
            server: Some(Arc::new(server)),
            deadline: DeadlineConfig::default(),
            deadlines: Deadlines::Schedule,
        }
    }
}

impl std::fmt::Debug for VodOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VodOptions")
            .field("params", &self.params)
            .field("file", &self.file)
            .field("server", &self.server.as_ref().map(|s| s.display_url()))
            .field("deadlines", &self.deadlines)
            .finish()
    }
}

/// The playback of `vod`, if any: its deadlines start from what is already `have`.
pub(super) fn vod_session(
    meta: &Metainfo,
    vod: Option<&VodOptions>,
    have: &Bitfield,
) -> Result<Option<VodSession>, SessionError> {
    let Some(vod) = vod else {
        return Ok(None);
    };
    let extent = meta
        .geometry
        .files()
        .get(vod.file)
        .ok_or(SessionError::NoSuchFile(vod.file))?;
    let schedule = Schedule::new(vod.params, &meta.geometry, extent.range())?;
    Ok(Some(match vod.deadlines {
        Deadlines::Schedule => VodSession::new(schedule, have),
        Deadlines::Readers { .. } => VodSession::for_readers(schedule, have),
    }))
}

/// The picker of `policy`, seeded from `rng`; the deadline policy reads `playback`'s table.
pub(super) fn picker(
    meta: &Metainfo,
    policy: PolicyKind,
    playback: Option<(&VodSession, &VodOptions)>,
    have: &Bitfield,
    rng: &mut StdRng,
) -> Result<Box<dyn Picker + Send>, SessionError> {
    let geometry = meta.geometry.clone();
    let mut picker: Box<dyn Picker + Send> = match policy {
        PolicyKind::Deadline => {
            let Some((session, vod)) = playback else {
                return Err(SessionError::DeadlineWithoutPlayback);
            };
            let table = Arc::clone(session.table());
            let rng = StdRng::seed_from_u64(rng.random());
            let picker = DeadlinePicker::new(geometry, have, table, rng, vod.deadline.clone())?;
            if vod.server.is_some() {
                Box::new(picker)
            } else {
                Box::new(picker.late_from_peers())
            }
        }
        PolicyKind::Rarest => Box::new(RarestFirst::new(
            geometry,
            have,
            StdRng::seed_from_u64(rng.random()),
        )?),
        PolicyKind::Sequential => Box::new(Sequential::new(geometry, have)?),
    };
    if let Some((_, vod)) = playback
        && vod.deadlines
            == (Deadlines::Readers {
                download_all: false,
            })
    {
        // Only the movie until a reader opens another file.
        let wanted = meta.geometry.pieces_of_file(vod.file);
        for piece in meta.geometry.pieces() {
            if !wanted.contains(&piece.get()) {
                picker.on_wanted(piece, false);
            }
        }
    }
    Ok(picker)
}
