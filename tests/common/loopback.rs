//! A btvod seed on 127.0.0.1:0 for tests that talk to it through hand-written peers, and the
//! opening such a peer sends, and its count of the answers to its requests.
#![allow(dead_code)]

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use btvod::engine::session::{Session, SessionOptions};
use btvod::proto::metainfo::Metainfo;
use btvod::proto::wire::{Handshake, Message};
use btvod::proto::{InfoHash, PeerId};
use bytes::BytesMut;
use tempfile::TempDir;

use super::content::deterministic_content;
use super::movie_dir::{MovieDir, torrent_bytes};
use super::session::{self, SessionExt};

/// A seed of `len` deterministic bytes; the content lives as long as this value.
pub struct LoopbackSeed {
    pub session: Session,
    pub meta: Metainfo,
    /// The .torrent file's bytes.
    pub torrent: Vec<u8>,
    _dir: TempDir,
}

impl LoopbackSeed {
    pub fn addr(&self) -> SocketAddr {
        self.session.addr()
    }
}

pub async fn start_seed(len: usize, piece_len: u32, content_seed: u64) -> LoopbackSeed {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("movie.bin");
    fs::write(&path, deterministic_content(len, content_seed)).expect("write content");
    seed_at(path, piece_len, dir).await
}

/// A seed of existing content (a file or a directory); `path` must outlive the seed.
pub async fn start_seed_of(path: &Path, piece_len: u32) -> LoopbackSeed {
    let dir = tempfile::tempdir().expect("temp dir");
    seed_at(path.to_path_buf(), piece_len, dir).await
}

async fn seed_at(path: PathBuf, piece_len: u32, dir: TempDir) -> LoopbackSeed {
    let torrent = torrent_bytes(&path, piece_len, &[]);
    let meta = Metainfo::from_bytes(&torrent).expect("parse the torrent");
    let opts = SessionOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..SessionOptions::default()
    };
    let session = session::start_seed(&meta, &path, opts).await;
    LoopbackSeed {
        session,
        meta,
        torrent,
        _dir: dir,
    }
}

/// What a peer that has nothing and wants everything sends first: handshake (BEP 6 bit set),
/// HAVE_NONE, INTERESTED.
pub fn empty_interested_opening(info_hash: InfoHash, peer_id: PeerId) -> BytesMut {
    let mut out = BytesMut::new();
    Handshake::ours(info_hash, peer_id).encode(&mut out);
    Message::HaveNone.encode(&mut out);
    Message::Interested.encode(&mut out);
    out
}

/// A raw peer's count of a seed's answers to its requests; every served block is checked
/// against the content.
#[derive(Debug, Default)]
pub struct Answers {
    pub served: u32,
    pub rejected: u32,
}

impl Answers {
    /// Counts `message` if it answers a request (REJECT or PIECE).
    pub fn count(&mut self, message: &Message, movie: &MovieDir) {
        match message {
            Message::Reject(_) => self.rejected += 1,
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                let want = movie.block(*piece, *offset);
                assert_eq!(&data[..], want, "block {piece}:{offset}");
                self.served += 1;
            }
            _ => {}
        }
    }
}
