//! The content fixture: a temp dir holding deterministic content at `seed/movie.bin`, btvod's
//! torrent of it at `movie.torrent`, empty download dirs `leech<i>`, and the byte comparisons
//! tests make against the content.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use btvod::engine::session::{Session, SessionOptions};
use btvod::engine::torrent::TorrentStats;
use btvod::make_torrent::{MakeTorrentOptions, make_torrent};
use btvod::proto::metainfo::Metainfo;
use tempfile::TempDir;

use super::content::deterministic_content;
use super::session::{SessionExt, start_leecher, start_seed};

/// The content file's name, inside `seed/` and inside every download dir.
pub const FILE_NAME: &str = "movie.bin";

/// `len` deterministic bytes in a temp dir, with a btvod torrent of them; both live as long as
/// this value.
pub struct MovieDir {
    dir: TempDir,
    pub content: Vec<u8>,
    pub meta: Metainfo,
    piece_len: u32,
}

impl MovieDir {
    /// Content fixed by `content_seed`, in pieces of `piece_len`, with no tracker.
    pub fn new(len: usize, piece_len: u32, content_seed: u64) -> Self {
        Self::announcing(len, piece_len, content_seed, &[])
    }

    /// The same, with `announce` as the torrent's trackers (one tier each).
    pub fn announcing(len: usize, piece_len: u32, content_seed: u64, announce: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let content = deterministic_content(len, content_seed);
        fs::create_dir_all(dir.path().join("seed")).expect("seed dir");
        fs::write(dir.path().join("seed").join(FILE_NAME), &content).expect("write content");
        let meta = write_torrent(dir.path(), piece_len, announce);
        Self {
            dir,
            content,
            meta,
            piece_len,
        }
    }

    /// Makes the torrent again with `announce` as its trackers (the info-hash stays: it does
    /// not cover the announce URLs).
    pub fn retorrent(&mut self, announce: &[String]) {
        self.meta = write_torrent(self.root(), self.piece_len, announce);
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn seed_dir(&self) -> PathBuf {
        self.root().join("seed")
    }
    pub fn content_path(&self) -> PathBuf {
        self.seed_dir().join(FILE_NAME)
    }
    pub fn torrent_path(&self) -> PathBuf {
        self.root().join("movie.torrent")
    }
    /// The `i`th download dir, created empty on first use.
    pub fn leech_dir(&self, i: usize) -> PathBuf {
        let dir = self.root().join(format!("leech{i}"));
        fs::create_dir_all(&dir).expect("create a download dir");
        dir
    }
    pub fn leech_file(&self, i: usize) -> PathBuf {
        self.leech_dir(i).join(FILE_NAME)
    }
    pub fn piece_len(&self) -> u32 {
        self.piece_len
    }
    pub fn piece_count(&self) -> u32 {
        self.meta.geometry.piece_count()
    }
    /// The content's 16 KiB block at `offset` in `piece`.
    pub fn block(&self, piece: u32, offset: u32) -> &[u8] {
        let at = piece as usize * self.piece_len as usize + offset as usize;
        &self.content[at..at + 16 * 1024]
    }
    /// Pieces of the file at `path` that hold exactly the content's bytes.
    pub fn good_pieces_of(&self, path: &Path) -> Vec<usize> {
        let got = fs::read(path).unwrap_or_default();
        let piece = self.piece_len as usize;
        self.content
            .chunks(piece)
            .enumerate()
            .filter(|(i, want)| got.get(i * piece..i * piece + want.len()) == Some(want))
            .map(|(i, _)| i)
            .collect()
    }
    /// Download dir `i` holds a byte-identical copy of the content.
    pub fn assert_downloaded(&self, i: usize) {
        assert_same_file(&self.leech_file(i), &self.content);
    }

    /// An in-process seed of the content (checked complete).
    pub async fn seed(&self, opts: SessionOptions) -> Session {
        start_seed(&self.meta, &self.content_path(), opts).await
    }
    /// An in-process leecher downloading into `leech_dir(i)`.
    pub async fn leecher(&self, i: usize, opts: SessionOptions) -> Session {
        start_leecher(&self.meta, &self.leech_dir(i), opts).await
    }
    /// Waits up to `bound` for `leech` (`who`, downloading into `leech_dir(i)`) to complete,
    /// then checks its copy byte for byte.
    pub async fn assert_completes(
        &self,
        leech: &Session,
        i: usize,
        bound: Duration,
        who: &str,
    ) -> TorrentStats {
        let done = leech.wait_complete(bound, who).await;
        self.assert_downloaded(i);
        done
    }
    /// A new leecher into `leech_dir(i)` downloads the whole content within `bound`, and
    /// leaves.
    pub async fn assert_leecher_downloads(&self, i: usize, opts: SessionOptions, bound: Duration) {
        let leech = self.leecher(i, opts).await;
        self.assert_completes(&leech, i, bound, "the leecher").await;
        leech.shutdown().await;
    }
}

/// Writes `root/movie.torrent` for `root/seed/movie.bin` and returns it parsed.
fn write_torrent(root: &Path, piece_len: u32, announce: &[String]) -> Metainfo {
    let bytes = torrent_bytes(&root.join("seed").join(FILE_NAME), piece_len, announce);
    fs::write(root.join("movie.torrent"), &bytes).expect("write the torrent");
    Metainfo::from_bytes(&bytes).expect("parse the torrent we made")
}

/// A torrent of `path` (file or directory) made by btvod's own `make_torrent`.
pub fn torrent_bytes(path: &Path, piece_len: u32, announce: &[String]) -> Vec<u8> {
    let opts = MakeTorrentOptions {
        path: path.to_path_buf(),
        piece_length: Some(piece_len),
        announce: announce.to_vec(),
        ..MakeTorrentOptions::default()
    };
    make_torrent(&opts, &mut |_, _| {}).expect("make a torrent")
}

/// The parsed torrent of `path`, made by btvod.
pub fn torrent_of(path: &Path, piece_len: u32, announce: &[String]) -> Metainfo {
    Metainfo::from_bytes(&torrent_bytes(path, piece_len, announce))
        .expect("parse the torrent we made")
}

/// The file at `got` has exactly the bytes `want`; on a difference, says where it starts.
pub fn assert_same_file(got: &Path, want: &[u8]) {
    let path = got.display();
    let got = fs::read(got).unwrap_or_else(|e| panic!("read {path}: {e}"));
    assert_eq!(got.len(), want.len(), "length of {path}");
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert_eq!(first, None, "first byte of {path} that differs");
}
