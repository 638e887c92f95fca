//! Creates a v1 `.torrent` from a file or a directory: walks it, hashes the bytes as one
//! stream (pieces span file boundaries) through a fixed buffer, and encodes canonically.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bendy::encoding::{Encoder, SingleItemEncoder};
use sha1::{Digest, Sha1};

use crate::proto::metainfo::paths::component_problem;

/// Smallest and largest piece length chosen or accepted.
pub const MIN_PIECE_LEN: u32 = 16 * 1024;
pub const MAX_PIECE_LEN: u32 = 256 * 1024 * 1024;
/// Automatic piece lengths stay within 16 KiB..=16 MiB, aiming at 1000-2000 pieces.
const MAX_AUTO_PIECE_LEN: u32 = 16 * 1024 * 1024;
const TARGET_MAX_PIECES: u64 = 2000;
const READ_BUFFER_LEN: usize = 1 << 20;

#[derive(Clone, Debug, Default)]
pub struct MakeTorrentOptions {
    /// A regular file, or a directory whose regular files are all included.
    pub path: PathBuf,
    /// `None`: chosen from the total size (power of two, 16 KiB..16 MiB, ~1000-2000 pieces).
    pub piece_length: Option<u32>,
    /// The first is `announce`; with more than one, `announce-list` has one tracker per tier.
    pub announce: Vec<String>,
    /// BEP 19 `url-list`.
    pub web_seeds: Vec<String>,
    pub private: bool,
    pub comment: Option<String>,
    /// `None`: "btvod <version>".
    pub created_by: Option<String>,
    /// Unix seconds; `None` leaves the key out (the caller decides the clock).
    pub creation_date: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MakeTorrentError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is a symbolic link; links are refused (a torrent stores file contents only): \
         replace it with the file or move it out of the directory",
        .0.display()
    )]
    Symlink(PathBuf),
    #[error(
        "{} is not a regular file or directory (device, socket or pipe); move it out of the directory",
        .0.display()
    )]
    SpecialFile(PathBuf),
    #[error("the name of {} is not valid UTF-8; rename it", .0.display())]
    NonUtf8Name(PathBuf),
    #[error("the name of {} cannot be stored in a torrent: {reason}", path.display())]
    UnsafeName { path: PathBuf, reason: &'static str },
    #[error("{} holds no files", .0.display())]
    EmptyDirectory(PathBuf),
    #[error("{} holds no data (all files are empty)", .0.display())]
    NoData(PathBuf),
    #[error("piece length {0} must be a power of two from 16 KiB to 256 MiB")]
    BadPieceLength(u32),
    #[error("{} changed size while it was being hashed; try again when it is complete", .0.display())]
    FileChanged(PathBuf),
    #[error(
        "{total} bytes in pieces of {piece_len} bytes make more than 2^32 pieces; use larger pieces"
    )]
    TooManyPieces { total: u64, piece_len: u32 },
    #[error("encoding the torrent failed: {0}")]
    Encode(String),
}

/// One file to include: where it is on disk, its components in the torrent, its length.
struct SourceFile {
    disk_path: PathBuf,
    components: Vec<String>,
    length: u64,
}

/// Builds the `.torrent` bytes. `progress(hashed, total)` is called as hashing advances.
pub fn make_torrent(
    opts: &MakeTorrentOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<u8>, MakeTorrentError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MakeTorrentError::Io { path, source }
    };
    // Canonical form gives a name even for `.` or `dir/..`.
    let root = std::fs::canonicalize(&opts.path).map_err(io_err(&opts.path))?;
    let name = utf8_name(&root)?;
    let meta = std::fs::symlink_metadata(&root).map_err(io_err(&root))?;
    let (files, single_file) = if meta.is_dir() {
        let mut files = Vec::new();
        walk(&root, &mut Vec::new(), &mut files)?;
        if files.is_empty() {
            return Err(MakeTorrentError::EmptyDirectory(opts.path.clone()));
        }
        files.sort_by(|a, b| a.components.cmp(&b.components));
        (files, false)
    } else if meta.is_file() {
        let file = SourceFile {
            disk_path: root.clone(),
            components: vec![name.clone()],
            length: meta.len(),
        };
        (vec![file], true)
    } else {
        return Err(MakeTorrentError::SpecialFile(opts.path.clone()));
    };

    let total: u64 = files.iter().map(|f| f.length).sum();
    if total == 0 {
        return Err(MakeTorrentError::NoData(opts.path.clone()));
    }
    let piece_len = match opts.piece_length {
        Some(len) if len.is_power_of_two() && (MIN_PIECE_LEN..=MAX_PIECE_LEN).contains(&len) => len,
        Some(len) => return Err(MakeTorrentError::BadPieceLength(len)),
        None => auto_piece_length(total),
    };
    if total.div_ceil(u64::from(piece_len)) > u64::from(u32::MAX) {
        return Err(MakeTorrentError::TooManyPieces { total, piece_len });
    }

    let pieces = hash_pieces(&files, piece_len, total, progress)?;
    encode(opts, &name, single_file, &files, piece_len, &pieces)
}

/// The smallest power of two from 16 KiB that keeps the count at or under 2000 pieces, capped
/// at 16 MiB; so a large torrent gets 1000-2000 pieces.
pub fn auto_piece_length(total_len: u64) -> u32 {
    let mut len = MIN_PIECE_LEN;
    while len < MAX_AUTO_PIECE_LEN && total_len.div_ceil(u64::from(len)) > TARGET_MAX_PIECES {
        len *= 2;
    }
    len
}

fn utf8_name(path: &Path) -> Result<String, MakeTorrentError> {
    let Some(name) = path.file_name() else {
        return Err(MakeTorrentError::UnsafeName {
            path: path.to_path_buf(),
            reason: "it has no file name (a root directory)",
        });
    };
    let name = name
        .to_str()
        .ok_or_else(|| MakeTorrentError::NonUtf8Name(path.to_path_buf()))?;
    if let Some(reason) = component_problem(name) {
        return Err(MakeTorrentError::UnsafeName {
            path: path.to_path_buf(),
            reason,
        });
    }
    Ok(name.to_string())
}

/// Collects the regular files under `dir` (recursively); links and special files are refused.
fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    out: &mut Vec<SourceFile>,
) -> Result<(), MakeTorrentError> {
    let io_err = |source| MakeTorrentError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|source| MakeTorrentError::Io {
            path: path.clone(),
            source,
        })?;
        let name = utf8_name(&path)?;
        prefix.push(name);
        if meta.file_type().is_symlink() {
            return Err(MakeTorrentError::Symlink(path));
        } else if meta.is_dir() {
            walk(&path, prefix, out)?;
        } else if meta.is_file() {
            out.push(SourceFile {
                disk_path: path,
                components: prefix.clone(),
                length: meta.len(),
            });
        } else {
            return Err(MakeTorrentError::SpecialFile(path));
        }
        prefix.pop();
    }
    Ok(())
}

/// SHA-1 of each piece of the concatenated files, read through one fixed buffer.
fn hash_pieces(
    files: &[SourceFile],
    piece_len: u32,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<u8>, MakeTorrentError> {
    let piece_count = usize::try_from(total.div_ceil(u64::from(piece_len))).unwrap_or(0);
    let mut pieces = Vec::with_capacity(piece_count.saturating_mul(20));
    let mut buffer = vec![0u8; READ_BUFFER_LEN];
    let mut hasher = Sha1::new();
    let mut in_piece: u64 = 0;
    let mut hashed: u64 = 0;
    progress(0, total);
    for file in files {
        let io_err = |source| MakeTorrentError::Io {
            path: file.disk_path.clone(),
            source,
        };
        // `take` keeps a file that grows while we read from shifting the rest of the torrent.
        let mut reader = File::open(&file.disk_path)
            .map_err(io_err)?
            .take(file.length);
        let mut read_from_file: u64 = 0;
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            read_from_file += n as u64;
            let mut chunk = &buffer[..n];
            while !chunk.is_empty() {
                let room = u64::from(piece_len) - in_piece;
                let take = chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                let (head, rest) = chunk.split_at(take);
                hasher.update(head);
                in_piece += take as u64;
                chunk = rest;
                if in_piece == u64::from(piece_len) {
                    pieces.extend_from_slice(&hasher.finalize_reset());
                    in_piece = 0;
                }
            }
            hashed += n as u64;
            progress(hashed, total);
        }
        if read_from_file != file.length {
            return Err(MakeTorrentError::FileChanged(file.disk_path.clone()));
        }
    }
    if in_piece > 0 {
        pieces.extend_from_slice(&hasher.finalize_reset());
    }
    Ok(pieces)
}

fn encode(
    opts: &MakeTorrentOptions,
    name: &str,
    single_file: bool,
    files: &[SourceFile],
    piece_len: u32,
    pieces: &[u8],
) -> Result<Vec<u8>, MakeTorrentError> {
    let created_by = opts
        .created_by
        .clone()
        .unwrap_or_else(|| format!("btvod {}", env!("CARGO_PKG_VERSION")));
    let encode_info = |e: SingleItemEncoder| {
        e.emit_unsorted_dict(|d| {
            if single_file {
                d.emit_pair(b"length", files.iter().map(|f| f.length).sum::<u64>())?;
            } else {
                d.emit_pair_with(b"files", |e| {
                    e.emit_list(|l| {
                        for file in files {
                            l.emit_and_sort_dict(|fd| {
                                fd.emit_pair(b"length", file.length)?;
                                fd.emit_pair_with(b"path", |e| {
                                    e.emit_list(|pl| {
                                        file.components.iter().try_for_each(|c| pl.emit_str(c))
                                    })
                                })
                            })?;
                        }
                        Ok(())
                    })
                })?;
            }
            d.emit_pair(b"name", name)?;
            d.emit_pair(b"piece length", piece_len)?;
            d.emit_pair_with(b"pieces", |e| e.emit_bytes(pieces))?;
            if opts.private {
                d.emit_pair(b"private", 1u8)?;
            }
            Ok(())
        })
    };
    let mut encoder = Encoder::new();
    encoder
        .emit_and_sort_dict(|d| {
            if let Some(first) = opts.announce.first() {
                d.emit_pair(b"announce", first.as_str())?;
            }
            if opts.announce.len() > 1 {
                d.emit_pair_with(b"announce-list", |e| {
                    e.emit_list(|tiers| {
                        opts.announce
                            .iter()
                            .try_for_each(|url| tiers.emit_list(|tier| tier.emit_str(url)))
                    })
                })?;
            }
            if let Some(comment) = &opts.comment {
                d.emit_pair(b"comment", comment.as_str())?;
            }
            d.emit_pair(b"created by", created_by.as_str())?;
            if let Some(date) = opts.creation_date {
                d.emit_pair(b"creation date", date)?;
            }
            d.emit_pair_with(b"info", encode_info)?;
            if !opts.web_seeds.is_empty() {
                d.emit_pair_with(b"url-list", |e| {
                    e.emit_list(|l| opts.web_seeds.iter().try_for_each(|url| l.emit_str(url)))
                })?;
            }
            Ok(())
        })
        .and_then(|()| encoder.get_output())
        .map_err(|e| MakeTorrentError::Encode(e.to_string()))
}
