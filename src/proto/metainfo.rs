//! `.torrent` files (BEP 3, with BEP 12 tiers and BEP 19 web seeds) as a validated [`Metainfo`]:
//! the info-hash is the SHA-1 of the raw info dictionary exactly as written in the file.
//!
//! Policy on untrusted input, decided once here:
//! - Syntax is strict (see [`bencode`]); dictionary key order is not: non-canonical torrents are
//!   accepted with a [`MetainfoWarning::NonCanonicalInfo`], their hash taken over the raw bytes.
//! - Everything inside `info` that shapes the content (name, lengths, paths, pieces) must be
//!   present and well-typed, or the torrent is refused. Descriptive top-level keys (trackers,
//!   web seeds, comment, dates) of the wrong type are ignored with a warning.
//! - Names and paths prefer `name.utf-8` / `path.utf-8` when present and valid. Invalid UTF-8
//!   is converted lossily (U+FFFD) with a warning; collisions that creates are then caught by
//!   the duplicate-path check. Every component is checked so that no file lands outside the
//!   download directory.
//! - BEP 47 padding files (`attr` containing `p`) are kept as ordinary files: they occupy bytes
//!   in the piece stream, so dropping them would break the geometry.
//! - Pure v2 torrents (BEP 52, no `pieces`) are refused; hybrid torrents are read as v1.

use super::bencode;
mod describe;
mod parse;
pub(crate) mod paths;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::proto::InfoHash;
use crate::proto::geometry::{Geometry, PieceIndex};

/// Largest piece length accepted (BitTorrent clients in practice stay at or below 16 MiB).
pub const MAX_PIECE_LEN: u32 = 256 * 1024 * 1024;
/// Largest `.torrent` file [`Metainfo::load`] will read.
pub const MAX_TORRENT_FILE_LEN: u64 = 64 * 1024 * 1024;

/// A validated torrent.
#[derive(Clone, Debug)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    /// The suggested name: the file name (single file) or the top directory (multi-file).
    pub name: String,
    pub geometry: Geometry,
    /// Files in torrent order; `geometry.files()[i]` is where `files[i]` lies.
    pub files: Vec<FileEntry>,
    pub is_single_file: bool,
    pub private: bool,
    pub announce: Option<String>,
    /// BEP 12 tiers, empty tiers and empty URLs removed.
    pub announce_list: Vec<Vec<String>>,
    /// BEP 19 web seeds.
    pub url_list: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// Things that were accepted but are worth telling the user.
    pub warnings: Vec<MetainfoWarning>,
    piece_hashes: Vec<[u8; 20]>,
    raw_info: Vec<u8>,
}

/// One file of the torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components under the torrent's directory; each is non-empty, not `.` or `..`, and
    /// holds no `/`, `\` or NUL. For a single-file torrent this is `[name]`.
    pub path: Vec<String>,
    pub length: u64,
}

/// Accepted oddities.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoWarning {
    #[error("piece length {0} is not a power of two; most clients expect one")]
    PieceLengthNotPowerOfTwo(u32),
    #[error(
        "the info dictionary is not canonical bencode (keys out of order or repeated); \
         its info-hash is taken over the bytes as written"
    )]
    NonCanonicalInfo,
    #[error("`{0}` is not valid UTF-8; invalid bytes were replaced with U+FFFD")]
    LossyUtf8(String),
    #[error("ignored `{key}`: {reason}")]
    IgnoredKey { key: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    #[error("cannot read torrent file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is {size} bytes, more than the {MAX_TORRENT_FILE_LEN}-byte limit for a .torrent file",
        path.display()
    )]
    FileTooLarge { path: PathBuf, size: u64 },
    #[error("not a torrent file (invalid bencode): {0}")]
    Bencode(#[from] bencode::BencodeError),
    #[error("not a torrent file: the top level is {0}, expected a dictionary")]
    NotADictionary(&'static str),
    #[error("the torrent has no `{0}` key")]
    MissingKey(String),
    #[error("the torrent's `{key}` is {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("the key `{0}` appears more than once in one dictionary")]
    DuplicateKey(String),
    #[error("`{key}` is {value}, which is out of range ({expected})")]
    OutOfRange {
        key: String,
        value: i64,
        expected: &'static str,
    },
    #[error("`info.piece length` is zero")]
    ZeroPieceLength,
    #[error("`info.pieces` is {0} bytes long, not a multiple of 20 (one SHA-1 per piece)")]
    PiecesNotMultipleOf20(usize),
    #[error(
        "`info.pieces` holds {hashes} hashes, but {total_len} bytes in pieces of {piece_len} \
         bytes make {expected} pieces"
    )]
    PieceCountMismatch {
        hashes: usize,
        expected: u32,
        total_len: u64,
        piece_len: u32,
    },
    #[error(
        "the info dictionary has both `length` (single file) and `files` (multi-file); \
         a torrent must have exactly one"
    )]
    BothLengthAndFiles,
    #[error("the info dictionary has neither `length` (single file) nor `files` (multi-file)")]
    NeitherLengthNorFiles,
    #[error(
        "this is a BitTorrent v2-only torrent (BEP 52); only v1 and hybrid torrents are supported"
    )]
    V2Only,
    #[error("`info.files` is an empty list")]
    NoFiles,
    #[error("unsafe path in `{key}`: {reason}; a torrent must never write outside its directory")]
    UnsafePath { key: String, reason: &'static str },
    #[error("the file `{0}` is listed more than once")]
    DuplicatePath(String),
    #[error("`{file}` is listed as a file but is also the directory of `{other}`")]
    FileIsAlsoDirectory { file: String, other: String },
    #[error("the torrent holds no data (total length 0)")]
    Empty,
    #[error("the total length of the files overflows 64 bits")]
    TotalLengthOverflow,
    #[error("{total_len} bytes in pieces of {piece_len} bytes make more than 2^32 pieces")]
    TooManyPieces { total_len: u64, piece_len: u32 },
}

impl Metainfo {
    /// Parses and validates a `.torrent` file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        parse::parse(bytes)
    }

    /// Reads and parses a `.torrent` file (refusing files over [`MAX_TORRENT_FILE_LEN`]).
    pub fn load(path: &Path) -> Result<Metainfo, MetainfoError> {
        let io_err = |source| MetainfoError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io_err)?.len();
        if size > MAX_TORRENT_FILE_LEN {
            return Err(MetainfoError::FileTooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        let bytes = std::fs::read(path).map_err(io_err)?;
        Self::from_bytes(&bytes)
    }

    /// The SHA-1 that piece `piece` must hash to. `piece` must come from `self.geometry`.
    pub fn piece_hash(&self, piece: PieceIndex) -> [u8; 20] {
        debug_assert!(
            piece.as_usize() < self.piece_hashes.len(),
            "foreign piece index"
        );
        // A foreign index yields an all-zero hash, which no piece verifies against.
        self.piece_hashes
            .get(piece.as_usize())
            .copied()
            .unwrap_or([0; 20])
    }

    /// Every piece hash, in piece order.
    pub fn piece_hashes(&self) -> &[[u8; 20]] {
        &self.piece_hashes
    }

    /// The info dictionary's bytes as they appear in the file (what `info_hash` hashes); what a
    /// peer asking for metadata (BEP 9) must be sent.
    pub fn raw_info(&self) -> &[u8] {
        &self.raw_info
    }

    /// Trackers by tier: `announce-list` if non-empty, else `[[announce]]`, else none.
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            self.announce_list.clone()
        } else if let Some(announce) = &self.announce {
            vec![vec![announce.clone()]]
        } else {
            Vec::new()
        }
    }

    /// Where file `file` goes under the download directory: `name` for a single-file torrent,
    /// `name/c1/c2/...` otherwise. Empty for an index that is not a file of this torrent.
    pub fn relative_path(&self, file: usize) -> PathBuf {
        let Some(entry) = self.files.get(file) else {
            return PathBuf::new();
        };
        if self.is_single_file {
            return PathBuf::from(&self.name);
        }
        let mut path = PathBuf::from(&self.name);
        path.extend(&entry.path);
        path
    }

    /// The file to play: `wanted` as an index or a path inside the torrent (with or without
    /// the torrent's name in front), else the largest file (the first of equals).
    pub fn movie_file(&self, wanted: Option<&str>) -> Option<usize> {
        let Some(wanted) = wanted else {
            return (0..self.files.len())
                .max_by_key(|&i| (self.files[i].length, std::cmp::Reverse(i)));
        };
        if let Ok(i) = wanted.parse::<usize>() {
            return (i < self.files.len()).then_some(i);
        }
        let wanted = Path::new(wanted);
        (0..self.files.len()).find(|&i| {
            let inner: PathBuf = self.files[i].path.iter().collect();
            inner == wanted || self.relative_path(i) == wanted
        })
    }

    pub fn total_len(&self) -> u64 {
        self.geometry.total_len()
    }

    /// Multi-line human description (for `btvod info`).
    pub fn describe(&self) -> String {
        describe::describe(self)
    }
}
