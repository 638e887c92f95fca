//! The MSE/PE handshake on a link (its state machine is `proto::mse::handshake`), as the side
//! that dialled or the side that accepted. Only what the state machine wants is read (a
//! synchronisation search at most 512 bytes of padding and its marker); the caller bounds the
//! whole exchange in time, so a peer that trickles bytes or never synchronises is dropped.

use bytes::BytesMut;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::link::Link;
use super::stream::PeerStream;
use crate::proto::InfoHash;
use crate::proto::mse::handshake::Handshake;
use crate::proto::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, MseError};

/// What `--encryption` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionPolicy {
    /// Accept both; dial with an encrypted handshake first (offering an RC4 or a plaintext
    /// payload), then plaintext if the peer refuses.
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

/// As A: no initial payload, so the BitTorrent handshake follows through the returned stream
/// once B has said whether it is encrypted.
pub async fn initiate(
    link: Link,
    skey: InfoHash,
    policy: EncryptionPolicy,
) -> Result<PeerStream, MseFailure> {
    let hs = Handshake::initiator(skey, policy.allowed(), rand::random(), our_pad());
    drive(link, hs).await
}

/// As B, `first` being the bytes already read (they were not a plaintext handshake).
pub async fn respond(
    link: Link,
    first: &[u8],
    skey: InfoHash,
    policy: EncryptionPolicy,
) -> Result<PeerStream, MseFailure> {
    let mut hs = Handshake::responder(skey, policy.allowed(), rand::random(), our_pad());
    hs.feed(first)?;
    drive(link, hs).await
}

/// Moves the handshake's bytes until it is done, reading only what it wants.
async fn drive(mut link: Link, mut hs: Handshake) -> Result<PeerStream, MseFailure> {
    let mut chunk = Vec::new();
    loop {
        while let Some(out) = hs.poll_send() {
            link.write_all(&out).await?;
        }
        if hs.is_done() {
            break;
        }
        chunk.resize(hs.wants(), 0);
        match link.read(&mut chunk).await? {
            0 => return Err(MseFailure::Closed),
            n => hs.feed(&chunk[..n])?,
        }
    }
    let done = hs.finish().ok_or(MseFailure::Closed)?;
    Ok(PeerStream::after_handshake(
        link,
        BytesMut::from(&done.plaintext[..]),
        done.ciphers,
    ))
}

fn our_pad() -> Vec<u8> {
    let mut rng = rand::rng();
    let len = rng.random_range(0..=OUR_MAX_PAD);
    (0..len).map(|_| rng.random::<u8>()).collect()
}
