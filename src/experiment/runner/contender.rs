//! The policies an experiment compares, by name.

use crate::engine::session::PolicyKind;

/// A policy an experiment compares: one of btvod's pickers, or libtorrent's streaming modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Btvod(PolicyKind),
    /// `lt_vod.py --mode deadline` (`set_piece_deadline`) or `sequential`.
    Libtorrent {
        deadline: bool,
    },
}

impl Contender {
    pub const NAMES: &'static str =
        "deadline, rarest, sequential, libtorrent-deadline, libtorrent-sequential";

    pub fn parse(name: &str) -> Result<Contender, UnknownPolicy> {
        Ok(match name.trim() {
            "deadline" => Contender::Btvod(PolicyKind::Deadline),
            "rarest" => Contender::Btvod(PolicyKind::Rarest),
            "sequential" => Contender::Btvod(PolicyKind::Sequential),
            "libtorrent-deadline" => Contender::Libtorrent { deadline: true },
            "libtorrent-sequential" => Contender::Libtorrent { deadline: false },
            other => return Err(UnknownPolicy(other.to_string())),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Contender::Btvod(kind) => kind.name(),
            Contender::Libtorrent { deadline: true } => "libtorrent-deadline",
            Contender::Libtorrent { deadline: false } => "libtorrent-sequential",
        }
    }

    /// The btvod picker it is, if it is one.
    pub fn btvod_policy(self) -> Option<PolicyKind> {
        match self {
            Contender::Btvod(kind) => Some(kind),
            Contender::Libtorrent { .. } => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown policy `{0}` (known: {names})", names = Contender::NAMES)]
pub struct UnknownPolicy(pub String);
