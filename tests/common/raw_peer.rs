//! A scripted raw-TCP peer for tests that play a hostile or unusual client against btvod:
//! it writes exactly the bytes a test chooses and decodes what btvod sends, with bounded reads;
//! and the memory reading that tests of its floods compare.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use btvod::proto::bitfield::Bitfield;
use btvod::proto::wire::{BlockSpec, Handshake, Message, WireDecoder};
use btvod::proto::{InfoHash, PeerId};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use super::movie_dir::MovieDir;

/// The block size btvod requests and serves.
pub const BLOCK: u32 = 16 * 1024;

/// How long btvod may take to close a connection it must refuse.
pub const CLOSE_BOUND: Duration = Duration::from_secs(3);

/// What reading from btvod gave.
#[derive(Debug, PartialEq)]
pub enum Read {
    Message(Message),
    Closed,
    Quiet,
}

/// One raw connection: we write exactly the bytes a test chooses and decode what btvod sends.
pub struct RawPeer {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub decoder: WireDecoder,
    pub handshake_read: bool,
}

impl RawPeer {
    pub fn wrap(stream: TcpStream, piece_count: u32) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            decoder: WireDecoder::for_piece_count(piece_count),
            handshake_read: false,
        }
    }

    /// Connects and sends a handshake for `info_hash` (with BEP 6 if `fast`).
    pub async fn connect(
        addr: SocketAddr,
        info_hash: InfoHash,
        fast: bool,
        piece_count: u32,
    ) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect to btvod");
        let mut peer = Self::wrap(stream, piece_count);
        // A fresh id each time, as a new client would have.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let mut id = *b"-XX0000-hostile-0000";
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        id[16..].copy_from_slice(format!("{:04}", n % 10_000).as_bytes());
        peer.send_raw(&handshake_bytes(info_hash, id, fast)).await;
        peer
    }

    /// Connects, handshakes with the right info-hash, and reads btvod's handshake.
    pub async fn join(addr: SocketAddr, world: &MovieDir, fast: bool) -> Self {
        let mut peer = Self::connect(addr, world.meta.info_hash, fast, world.piece_count()).await;
        let theirs = peer.handshake(Duration::from_secs(5)).await;
        let theirs = theirs.expect("btvod answers a correct handshake");
        assert_eq!(theirs.info_hash, world.meta.info_hash);
        peer
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // A peer that has closed on us may reset the write: tests look at reads for that.
        let _ = self.stream.write_all(bytes).await;
    }

    pub async fn send(&mut self, messages: &[Message]) {
        let mut out = BytesMut::new();
        for m in messages {
            m.encode(&mut out);
        }
        self.send_raw(&out).await;
    }

    /// Reads more bytes; false when the connection ended (EOF or reset).
    pub async fn fill(&mut self, until: Instant) -> Option<bool> {
        match timeout(until - Instant::now(), self.stream.read_buf(&mut self.buf)).await {
            Err(_) => None,
            Ok(Ok(0)) | Ok(Err(_)) => Some(false),
            Ok(Ok(_)) => Some(true),
        }
    }

    /// btvod's handshake, or None if it closed (or said nothing) within `within`.
    pub async fn handshake(&mut self, within: Duration) -> Option<Handshake> {
        let until = Instant::now() + within;
        loop {
            if let Some(h) = Handshake::decode(&mut self.buf).expect("btvod's handshake parses") {
                self.handshake_read = true;
                return Some(h);
            }
            if self.fill(until).await != Some(true) {
                return None;
            }
        }
    }

    /// The next message within `within`.
    pub async fn next(&mut self, within: Duration) -> Read {
        assert!(self.handshake_read, "read the handshake first");
        let until = Instant::now() + within;
        loop {
            if let Some(m) = self
                .decoder
                .decode(&mut self.buf)
                .expect("btvod sends valid frames")
            {
                return Read::Message(m);
            }
            match self.fill(until).await {
                None => return Read::Quiet,
                Some(false) => return Read::Closed,
                Some(true) => {}
            }
        }
    }

    /// Reads (and drops) messages until btvod closes the connection; panics if it does not
    /// within `within`. Returns how long it took.
    pub async fn expect_closed(&mut self, within: Duration, why: &str) -> Duration {
        let start = Instant::now();
        loop {
            let left = within.saturating_sub(start.elapsed());
            let read = if self.handshake_read {
                self.next(left).await
            } else {
                match self.fill(start + within).await {
                    Some(true) => continue,
                    Some(false) => Read::Closed,
                    None => Read::Quiet,
                }
            };
            match read {
                Read::Closed => return start.elapsed(),
                Read::Quiet => panic!("btvod kept a connection open for {within:?} after {why}"),
                Read::Message(_) => {}
            }
        }
    }

    /// Messages btvod sends within `within`, without the connection closing.
    pub async fn collect(&mut self, within: Duration) -> Vec<Message> {
        let until = Instant::now() + within;
        let mut out = Vec::new();
        loop {
            match self
                .next(until.saturating_duration_since(Instant::now()))
                .await
            {
                Read::Message(m) => out.push(m),
                Read::Quiet => return out,
                Read::Closed => panic!("btvod closed the connection; it had sent {out:?}"),
            }
        }
    }

    /// Reads until a message matching `want` arrives, within `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        want: impl Fn(&Message) -> bool,
    ) -> Message {
        let until = Instant::now() + within;
        loop {
            match self
                .next(until.saturating_duration_since(Instant::now()))
                .await
            {
                Read::Message(m) if want(&m) => return m,
                Read::Message(_) => {}
                other => panic!("no {what} within {within:?}: {other:?}"),
            }
        }
    }
}

pub fn handshake_bytes(info_hash: InfoHash, peer_id: [u8; 20], fast: bool) -> BytesMut {
    let mut h = Handshake::ours(info_hash, PeerId(peer_id));
    if !fast {
        h.reserved = [0; 8];
    }
    let mut out = BytesMut::new();
    h.encode(&mut out);
    out
}

/// Answers a peer that dialled us as one holding all `pieces`: reads its handshake, then sends
/// ours (peer id `[id; 20]`) and a full bitfield, and an UNCHOKE if `unchoke`.
pub async fn answer_as_seed(
    stream: &mut TcpStream,
    info_hash: InfoHash,
    pieces: u32,
    id: u8,
    unchoke: bool,
) -> std::io::Result<()> {
    let mut theirs = [0u8; 68];
    stream.read_exact(&mut theirs).await?;
    let mut out = BytesMut::new();
    Handshake::ours(info_hash, PeerId([id; 20])).encode(&mut out);
    Message::Bitfield(Bytes::from(Bitfield::full(pieces).to_wire())).encode(&mut out);
    if unchoke {
        Message::Unchoke.encode(&mut out);
    }
    stream.write_all(&out).await
}

pub fn spec(piece: u32, offset: u32, len: u32) -> BlockSpec {
    BlockSpec { piece, offset, len }
}

/// `messages` encoded back to back, as one write.
pub fn frame(messages: &[Message]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in messages {
        m.encode(&mut out);
    }
    out.to_vec()
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}
