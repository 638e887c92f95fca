//! The MSE/PE handshake on a socket (its state machine is `proto::mse::handshake`), as the side
//! that dialled or the side that accepted, and `--encryption`'s choice between it and
//! plaintext. Only what the state machine wants is read (a synchronisation search at most 512
//! bytes of padding and its marker), and the whole exchange has its own time-out, so a peer
//! that trickles bytes or never synchronises is dropped.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::stream::PeerStream;
use crate::proto::InfoHash;
use crate::proto::mse::handshake::Handshake;
use crate::proto::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, MseError};

/// What `--encryption` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionPolicy {
    /// Accept both; dial encrypted first, then plaintext if the peer refuses.
    #[default]
    Prefer,
    /// Encrypted (RC4) connections only, both ways.
    Require,
    /// Plaintext only, both ways.
    Disable,
}

impl EncryptionPolicy {
    /// The payload methods we accept.
    fn allowed(self) -> u32 {
        match self {
            Self::Prefer => CRYPTO_RC4 | CRYPTO_PLAINTEXT,
            Self::Require => CRYPTO_RC4,
            Self::Disable => CRYPTO_PLAINTEXT,
        }
    }
}

/// The first 20 bytes of a plaintext BitTorrent handshake.
const PLAINTEXT_START: &[u8; 20] = b"\x13BitTorrent protocol";
/// Padding we send: random, and short (the specification allows up to 512 bytes).
const OUR_MAX_PAD: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum MseFailure {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("encrypted handshake: {0}")]
    Protocol(#[from] MseError),
    #[error("encrypted handshake timed out")]
    Timeout,
    #[error("closed during the encrypted handshake")]
    Closed,
    #[error("a plaintext peer, and --encryption require")]
    PlaintextRefused,
    #[error("an encrypted peer, and --encryption disable")]
    EncryptedRefused,
}

/// Dials `addr` as `policy` says, within `budget` for the dial(s) and the MSE handshake: with
/// `Prefer`, a peer that refuses encryption is dialled again in plaintext.
pub async fn dial(
    addr: SocketAddr,
    skey: InfoHash,
    policy: EncryptionPolicy,
    budget: Duration,
) -> Result<PeerStream, MseFailure> {
    let until = Instant::now() + budget;
    let connect = || async {
        let tcp = timeout_at(until, TcpStream::connect(addr))
            .await
            .map_err(|_| MseFailure::Timeout)??;
        let _ = tcp.set_nodelay(true);
        Ok::<_, MseFailure>(tcp)
    };
    if policy == EncryptionPolicy::Disable {
        return Ok(PeerStream::plain(connect().await?, BytesMut::new()));
    }
    let encrypted = timeout_at(until, initiate(connect().await?, skey, policy))
        .await
        .map_err(|_| MseFailure::Timeout)
        .and_then(|r| r);
    match encrypted {
        Ok(stream) => Ok(stream),
        Err(e) if policy == EncryptionPolicy::Prefer => {
            tracing::debug!(%addr, error = %e, "encrypted dial failed; trying plaintext");
            Ok(PeerStream::plain(connect().await?, BytesMut::new()))
        }
        Err(e) => Err(e),
    }
}

/// An accepted connection: plaintext or encrypted, as its first bytes and `policy` say.
pub async fn accept(
    mut tcp: TcpStream,
    skey: InfoHash,
    policy: EncryptionPolicy,
    budget: Duration,
) -> Result<PeerStream, MseFailure> {
    let work = async {
        let mut first = BytesMut::zeroed(PLAINTEXT_START.len());
        read_exact(&mut tcp, &mut first).await?;
        if first[..] == PLAINTEXT_START[..] {
            return match policy {
                EncryptionPolicy::Require => Err(MseFailure::PlaintextRefused),
                _ => Ok(PeerStream::plain(tcp, first)),
            };
        }
        if policy == EncryptionPolicy::Disable {
            return Err(MseFailure::EncryptedRefused);
        }
        respond(tcp, first, skey, policy).await
    };
    timeout_at(Instant::now() + budget, work)
        .await
        .map_err(|_| MseFailure::Timeout)?
}

/// As A: no initial payload, so the BitTorrent handshake follows through the returned stream
/// once B has said whether it is encrypted.
async fn initiate(
    tcp: TcpStream,
    skey: InfoHash,
    policy: EncryptionPolicy,
) -> Result<PeerStream, MseFailure> {
    let hs = Handshake::initiator(skey, policy.allowed(), rand::random(), our_pad());
    drive(tcp, hs).await
}

/// As B, `first` being the 20 bytes already read.
async fn respond(
    tcp: TcpStream,
    first: BytesMut,
    skey: InfoHash,
    policy: EncryptionPolicy,
) -> Result<PeerStream, MseFailure> {
    let mut hs = Handshake::responder(skey, policy.allowed(), rand::random(), our_pad());
    hs.feed(&first)?;
    drive(tcp, hs).await
}

/// Moves the handshake's bytes until it is done, reading only what it wants.
async fn drive(mut tcp: TcpStream, mut hs: Handshake) -> Result<PeerStream, MseFailure> {
    let mut chunk = Vec::new();
    loop {
        while let Some(out) = hs.poll_send() {
            tcp.write_all(&out).await?;
        }
        if hs.is_done() {
            break;
        }
        chunk.resize(hs.wants(), 0);
        match tcp.read(&mut chunk).await? {
            0 => return Err(MseFailure::Closed),
            n => hs.feed(&chunk[..n])?,
        }
    }
    let done = hs.finish().ok_or(MseFailure::Closed)?;
    Ok(PeerStream::after_handshake(
        tcp,
        BytesMut::from(&done.plaintext[..]),
        done.ciphers,
    ))
}

fn our_pad() -> Vec<u8> {
    let mut rng = rand::rng();
    let len = rng.random_range(0..=OUR_MAX_PAD);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

async fn read_exact(tcp: &mut TcpStream, buf: &mut [u8]) -> Result<(), MseFailure> {
    match tcp.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(MseFailure::Closed),
        Err(e) => Err(e.into()),
    }
}
