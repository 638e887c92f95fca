//! The errors of the storage layer: each names the file (or piece) and what was being done.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "storage layout lists {listed} files but its piece geometry describes {in_geometry}; \
         build both from the same torrent"
    )]
    FileCountMismatch { listed: usize, in_geometry: usize },
    #[error(
        "file {path} is {listed} bytes in the layout but {in_geometry} bytes in the piece \
         geometry; build both from the same torrent"
    )]
    FileLengthMismatch {
        path: PathBuf,
        listed: u64,
        in_geometry: u64,
    },
    #[error("the torrent has {pieces} pieces but {hashes} piece hashes")]
    HashCountMismatch { pieces: u32, hashes: usize },
    #[error(
        "file path {path:?} is not a plain relative path (empty, absolute, or has `.`/`..`); \
         refusing to use it under {root}"
    )]
    UnsafePath { path: PathBuf, root: PathBuf },
    #[error("two files in the torrent share the path {path}")]
    DuplicatePath { path: PathBuf },
    #[error(
        "{path} is a symbolic link; refusing to follow it out of the download directory \
         (remove the link or choose another directory)"
    )]
    SymlinkInPath { path: PathBuf },
    #[error("{path} exists but is not a directory; the torrent needs a directory there")]
    NotADirectory { path: PathBuf },
    #[error("{path} exists but is not a regular file")]
    NotAFile { path: PathBuf },
    #[error(
        "{path} is {actual} bytes, longer than the {expected} bytes the torrent expects; \
         it was not truncated: move it away or choose another download directory"
    )]
    FileTooLong {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path} is missing; seeding needs every file of the torrent in place")]
    Missing { path: PathBuf },
    #[error("{path} is {actual} bytes but the torrent expects {expected}; cannot seed it")]
    WrongLength {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{path} ended early while reading piece {piece} (file truncated or removed since \
         the download began?); recheck the torrent"
    )]
    Incomplete { path: PathBuf, piece: u32 },
    #[error("piece {piece}: the span is {expected} bytes but the buffer given holds {got}")]
    BufferSize {
        piece: u32,
        expected: u32,
        got: usize,
    },
    #[error("bytes {start}..{end} are not a span inside one piece")]
    BadSpan { start: u64, end: u64 },
    #[error("storage was opened read-only for seeding; cannot write piece {piece}")]
    ReadOnly { piece: u32 },
    #[error("not writing piece {piece}: an earlier write failed ({first})")]
    AfterWriteFailure { piece: u32, first: String },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    pub(super) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
