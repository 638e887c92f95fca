//! Why a world member or an experiment's viewer could not do its part: typed here, and kept as
//! text only where it is written out (`world.json`, `run.json`).

use std::path::PathBuf;

use crate::engine::session::SessionError;
use crate::engine::vod_server::VodServerError;
use crate::policy::vod::VodError;

/// A viewer (the world's or the experiment runner's) that could not play its movie.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    #[error("{0}")]
    Params(#[from] VodError),
    #[error("VoD server: {0}")]
    Server(#[from] VodServerError),
    #[error("cannot start: {0}")]
    Session(#[from] SessionError),
    /// The VoD server failed during playback and cannot complete the movie.
    #[error("VoD server: {0}")]
    ServerFailed(String),
    #[error("{}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("lt_vod.py did not complete the movie (exit {status}): {last_error}")]
    LibtorrentIncomplete { status: String, last_error: String },
}

/// A world peer whose partial copy could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the writer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
