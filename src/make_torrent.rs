//! Creates a v1 `.torrent` from a file or a directory: walks it, hashes the bytes as one
//! stream (pieces span file boundaries) through a fixed buffer, and encodes canonically.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use bendy::encoding::{Encoder, SingleItemEncoder};
use sha1::{Digest, Sha1};

use crate::proto::metainfo::MAX_PIECE_LEN;
use crate::proto::metainfo::paths::component_problem;

/// Smallest piece length chosen or accepted (one request block); the largest is the parser's.
pub const MIN_PIECE_LEN: u32 = 16 * 1024;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metainfo::{FileEntry, Metainfo};

    /// Deterministic, non-repeating test bytes (xorshift), different per seed.
    fn content(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn sha1(bytes: &[u8]) -> [u8; 20] {
        Sha1::digest(bytes).into()
    }

    fn make(opts: &MakeTorrentOptions) -> Result<Vec<u8>, MakeTorrentError> {
        make_torrent(opts, &mut |_, _| {})
    }

    #[test]
    fn single_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("movie.mkv");
        let data = content(1, 100_000);
        std::fs::write(&path, &data).unwrap();
        let opts = MakeTorrentOptions {
            path: path.clone(),
            piece_length: Some(16384),
            announce: vec!["http://t1/announce".into(), "http://t2/announce".into()],
            web_seeds: vec!["http://seed/movie.mkv".into()],
            private: true,
            comment: Some("test".into()),
            created_by: None,
            creation_date: Some(1_700_000_000),
        };
        let mut last_progress = (0, 0);
        let bytes = make_torrent(&opts, &mut |done, total| last_progress = (done, total)).unwrap();
        assert_eq!(last_progress, (100_000, 100_000));

        let m = Metainfo::from_bytes(&bytes).unwrap();
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        assert!(m.is_single_file);
        assert_eq!(m.name, "movie.mkv");
        assert_eq!(m.total_len(), 100_000);
        assert_eq!(m.geometry.piece_count(), 7);
        assert_eq!(m.announce.as_deref(), Some("http://t1/announce"));
        assert_eq!(
            m.tracker_tiers(),
            vec![
                vec!["http://t1/announce".to_string()],
                vec!["http://t2/announce".to_string()]
            ]
        );
        assert_eq!(m.url_list, opts.web_seeds);
        assert!(m.private);
        assert_eq!(m.comment.as_deref(), Some("test"));
        assert_eq!(
            m.created_by,
            Some(format!("btvod {}", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(m.creation_date, Some(1_700_000_000));
        for (piece, chunk) in m.geometry.pieces().zip(data.chunks(16384)) {
            assert_eq!(m.piece_hash(piece), sha1(chunk), "piece {piece}");
        }
        // Canonical output: bendy's strict decoder, which refuses unsorted keys, accepts it.
        let tokens: Result<Vec<_>, _> = bendy::decoding::Decoder::new(&bytes).tokens().collect();
        assert!(tokens.is_ok(), "{tokens:?}");
    }

    #[test]
    fn single_tracker_has_no_announce_list_and_no_date_unless_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, content(2, 1000)).unwrap();
        let opts = MakeTorrentOptions {
            path,
            announce: vec!["http://t/announce".into()],
            ..Default::default()
        };
        let bytes = make(&opts).unwrap();
        assert!(!bytes.windows(13).any(|w| w == b"announce-list"));
        assert!(!bytes.windows(13).any(|w| w == b"creation date"));
        let m = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(m.geometry.piece_len(), MIN_PIECE_LEN);
        assert_eq!(
            m.tracker_tiers(),
            vec![vec!["http://t/announce".to_string()]]
        );
        assert!(!m.private);
    }

    #[test]
    fn directory_round_trip_with_pieces_spanning_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pack");
        std::fs::create_dir_all(root.join("a")).unwrap();
        let x = content(3, 30_000);
        let b = content(4, 20_000);
        let c = content(5, 5_000);
        std::fs::write(root.join("a/x.bin"), &x).unwrap();
        std::fs::write(root.join("a/empty"), b"").unwrap();
        std::fs::write(root.join("b.bin"), &b).unwrap();
        std::fs::write(root.join("c.bin"), &c).unwrap();
        let opts = MakeTorrentOptions {
            path: root,
            piece_length: Some(16384),
            ..Default::default()
        };
        let m = Metainfo::from_bytes(&make(&opts).unwrap()).unwrap();
        assert_eq!(m.name, "pack");
        assert!(!m.is_single_file);
        let entry = |p: &[&str], length| FileEntry {
            path: p.iter().map(|s| s.to_string()).collect(),
            length,
        };
        assert_eq!(
            m.files,
            vec![
                entry(&["a", "empty"], 0),
                entry(&["a", "x.bin"], 30_000),
                entry(&["b.bin"], 20_000),
                entry(&["c.bin"], 5_000),
            ],
            "files sorted by path"
        );
        assert_eq!(m.relative_path(1), PathBuf::from("pack/a/x.bin"));

        let stream: Vec<u8> = [&x[..], &b[..], &c[..]].concat();
        assert_eq!(m.geometry.piece_count(), 4);
        for (piece, chunk) in m.geometry.pieces().zip(stream.chunks(16384)) {
            assert_eq!(m.piece_hash(piece), sha1(chunk), "piece {piece}");
        }
        // Piece 1 is bytes 16384..32768: the tail of x.bin and the head of b.bin.
        let spanning = [&x[16384..], &b[..32768 - 30_000]].concat();
        let piece1 = m.geometry.piece(1).unwrap();
        assert_eq!(m.piece_hash(piece1), sha1(&spanning));
    }

    #[test]
    fn automatic_piece_length_aims_at_1000_to_2000_pieces() {
        assert_eq!(auto_piece_length(1), 16 * 1024);
        assert_eq!(auto_piece_length(2000 * 16 * 1024), 16 * 1024);
        assert_eq!(auto_piece_length(2000 * 16 * 1024 + 1), 32 * 1024);
        assert_eq!(auto_piece_length(100 << 20), 64 * 1024);
        assert_eq!(auto_piece_length(10 << 30), 8 << 20);
        assert_eq!(auto_piece_length(1 << 40), 16 << 20, "capped at 16 MiB");
        for total in [50u64 << 20, 700 << 20, 4 << 30, 20 << 30] {
            let pieces = total.div_ceil(u64::from(auto_piece_length(total)));
            assert!((1000..=2000).contains(&pieces), "{total}: {pieces} pieces");
        }
    }

    #[test]
    fn refuses_empty_inputs_links_special_files_and_bad_piece_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(empty.join("nested")).unwrap();
        let opts = |path: PathBuf| MakeTorrentOptions {
            path,
            ..Default::default()
        };
        assert!(matches!(
            make(&opts(empty.clone())),
            Err(MakeTorrentError::EmptyDirectory(_))
        ));
        std::fs::write(empty.join("nested/zero"), b"").unwrap();
        assert!(matches!(
            make(&opts(empty)),
            Err(MakeTorrentError::NoData(_))
        ));

        let linked = dir.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::fs::write(linked.join("real"), b"data").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", linked.join("link")).unwrap();
        let err = make(&opts(linked)).unwrap_err();
        assert!(
            matches!(&err, MakeTorrentError::Symlink(p) if p.ends_with("link")),
            "{err}"
        );

        let special = dir.path().join("special");
        std::fs::create_dir(&special).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(special.join("sock")).unwrap();
        assert!(matches!(
            make(&opts(special)),
            Err(MakeTorrentError::SpecialFile(_))
        ));

        let file = dir.path().join("f");
        std::fs::write(&file, b"data").unwrap();
        for bad in [0, 1000, 8192, 512 << 20] {
            let o = MakeTorrentOptions {
                piece_length: Some(bad),
                ..opts(file.clone())
            };
            assert!(matches!(make(&o), Err(MakeTorrentError::BadPieceLength(n)) if n == bad));
        }
        let err = make(&opts(dir.path().join("missing"))).unwrap_err();
        assert!(matches!(&err, MakeTorrentError::Io { path, .. } if path.ends_with("missing")));
    }

    #[test]
    fn names_the_parser_would_refuse_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pack");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("back\\slash"), b"data").unwrap();
        let err = make(&MakeTorrentOptions {
            path: root,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, MakeTorrentError::UnsafeName { .. }), "{err}");
    }
}
