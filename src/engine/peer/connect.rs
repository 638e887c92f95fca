//! Opening a peer connection, either way: which transports to dial in which order (`--utp`),
//! encrypted or plaintext on each (`--encryption`), and for an accepted connection, telling a
//! plaintext handshake from an encrypted one by its first 20 bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use librqbit_utp::UtpSocketUdp;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, timeout_at};

use super::link::{Link, Transport};
use super::mse::{self, EncryptionPolicy, MseFailure};
use super::stream::PeerStream;
use crate::proto::InfoHash;

/// The first 20 bytes of a plaintext BitTorrent handshake.
const PLAINTEXT_START: &[u8; 20] = b"\x13BitTorrent protocol";

/// How to reach peers: the same for every dial of a torrent.
#[derive(Clone)]
pub struct Dialer {
    pub info_hash: InfoHash,
    pub encryption: EncryptionPolicy,
    pub order: &'static [Transport],
    pub utp: Option<Arc<UtpSocketUdp>>,
    /// For each transport tried: the connect and the encrypted handshake, and a plaintext
    /// retry when encryption is only preferred.
    pub budget: Duration,
}

impl Dialer {
    /// A connection to `addr` over `transport`, encrypted or plaintext as `encryption` says
    /// (with `Prefer`, plaintext after an encrypted try the peer refused).
    pub async fn dial_over(
        &self,
        transport: Transport,
        addr: SocketAddr,
    ) -> Result<PeerStream, MseFailure> {
        let until = Instant::now() + self.budget;
        let connect = || async {
            timeout_at(until, Link::connect(transport, addr, self.utp.as_ref()))
                .await
                .map_err(|_| MseFailure::Timeout)?
                .map_err(MseFailure::Io)
        };
        if self.encryption == EncryptionPolicy::Disable {
            return Ok(PeerStream::plain(connect().await?, BytesMut::new()));
        }
        let encrypted = timeout_at(
            until,
            mse::initiate(connect().await?, self.info_hash, self.encryption),
        )
        .await
        .map_err(|_| MseFailure::Timeout)
        .and_then(|r| r);
        match encrypted {
            Ok(stream) => Ok(stream),
            Err(e) if self.encryption == EncryptionPolicy::Prefer => {
                tracing::debug!(%addr, error = %e, "encrypted dial failed; trying plaintext");
                Ok(PeerStream::plain(connect().await?, BytesMut::new()))
            }
            Err(e) => Err(e),
        }
    }
}

/// An accepted connection: plaintext or encrypted, as its first bytes and `policy` say.
pub async fn accept(
    mut link: Link,
    skey: InfoHash,
    policy: EncryptionPolicy,
    budget: Duration,
) -> Result<PeerStream, MseFailure> {
    let work = async {
        let mut first = BytesMut::zeroed(PLAINTEXT_START.len());
        match link.read_exact(&mut first).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(MseFailure::Closed);
            }
            Err(e) => return Err(e.into()),
        }
        if first[..] == PLAINTEXT_START[..] {
            return match policy {
                EncryptionPolicy::Require => Err(MseFailure::PlaintextRefused),
                _ => Ok(PeerStream::plain(link, first)),
            };
        }
        if policy == EncryptionPolicy::Disable {
            return Err(MseFailure::EncryptedRefused);
        }
        mse::respond(link, &first, skey, policy).await
    };
    timeout_at(Instant::now() + budget, work)
        .await
        .map_err(|_| MseFailure::Timeout)?
}
