//! The MSE/PE handshake on a socket (fields and keys in `proto::mse`), as the side that
//! dialled or the side that accepted, and `--encryption`'s choice between it and plaintext.
//! Every read is bounded by what the specification allows at that point (a synchronisation
//! search reads at most 512 bytes of padding and its marker), and the whole exchange has its own
//! time-out, so a peer that trickles bytes or never synchronises is dropped.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::stream::PeerStream;
use crate::proto::InfoHash;
use crate::proto::mse::{
    CRYPTO_PLAINTEXT, CRYPTO_RC4, Ciphers, DhKeys, HASH_LEN, KEY_LEN, MAX_IA, MAX_PAD, MseError,
    VC, find, req1, select, torrent_mask,
};

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

/// As A: messages 1 and 3 out, 2 and 4 in. No initial payload: the BitTorrent handshake
/// follows through the returned stream, once B has said whether it is encrypted.
async fn initiate(
    mut tcp: TcpStream,
    skey: InfoHash,
    policy: EncryptionPolicy,
) -> Result<PeerStream, MseFailure> {
    let keys = DhKeys::new(rand::random());
    tcp.write_all(&with_pad(&keys.public)).await?;
    let mut inbox = Inbox::default();
    inbox.fill(&mut tcp, KEY_LEN).await?;
    let s = keys.shared_secret(&inbox.take_key())?;
    let mut c = Ciphers::new(&s, skey, true);
    let provide = policy.allowed();
    let mut offer = [&VC[..], &provide.to_be_bytes(), &[0, 0], &[0, 0]].concat();
    c.encrypt.apply(&mut offer);
    tcp.write_all(&[&req1(&s)[..], &torrent_mask(skey, &s), &offer].concat())
        .await?;
    // PadB, then VC encrypted under B's key.
    inbox.sync(&mut tcp, &c.their_vc, MAX_PAD).await?;
    let mut vc = c.their_vc;
    c.decrypt.apply(&mut vc);
    inbox.fill(&mut tcp, 6).await?;
    let fields = inbox.take_decrypted(6, &mut c);
    let chosen = u32::from_be_bytes([fields[0], fields[1], fields[2], fields[3]]);
    if chosen.count_ones() != 1 || chosen & provide == 0 {
        return Err(MseError::BadSelect(chosen).into());
    }
    let pad_d = usize::from(u16::from_be_bytes([fields[4], fields[5]]));
    if pad_d > MAX_PAD {
        return Err(MseError::PadTooLong(pad_d).into());
    }
    inbox.fill(&mut tcp, pad_d).await?;
    inbox.take_decrypted(pad_d, &mut c);
    Ok(inbox.finish(tcp, BytesMut::new(), c, chosen))
}

/// As B, `first` being the 20 bytes already read: messages 1 and 3 in, 2 and 4 out.
async fn respond(
    mut tcp: TcpStream,
    first: BytesMut,
    skey: InfoHash,
    policy: EncryptionPolicy,
) -> Result<PeerStream, MseFailure> {
    let mut inbox = Inbox { buf: first };
    inbox.fill(&mut tcp, KEY_LEN).await?;
    let keys = DhKeys::new(rand::random());
    let s = keys.shared_secret(&inbox.take_key())?;
    tcp.write_all(&with_pad(&keys.public)).await?;
    // PadA, then HASH('req1', S).
    inbox.sync(&mut tcp, &req1(&s), MAX_PAD).await?;
    inbox.fill(&mut tcp, HASH_LEN).await?;
    if inbox.buf.split_to(HASH_LEN)[..] != torrent_mask(skey, &s) {
        return Err(MseError::UnknownTorrent.into());
    }
    let mut c = Ciphers::new(&s, skey, false);
    inbox.fill(&mut tcp, 14).await?;
    let fields = inbox.take_decrypted(14, &mut c);
    if fields[..8] != VC {
        return Err(MseError::BadVc.into());
    }
    let provide = u32::from_be_bytes([fields[8], fields[9], fields[10], fields[11]]);
    let pad_c = usize::from(u16::from_be_bytes([fields[12], fields[13]]));
    if pad_c > MAX_PAD {
        return Err(MseError::PadTooLong(pad_c).into());
    }
    inbox.fill(&mut tcp, pad_c + 2).await?;
    let ia_len = inbox.take_decrypted(pad_c + 2, &mut c);
    let ia_len = usize::from(u16::from_be_bytes([ia_len[pad_c], ia_len[pad_c + 1]]));
    if ia_len > MAX_IA {
        return Err(MseError::PayloadTooLong(ia_len).into());
    }
    inbox.fill(&mut tcp, ia_len).await?;
    let ia = BytesMut::from(&inbox.take_decrypted(ia_len, &mut c)[..]);
    let chosen = select(provide, policy.allowed())?;
    let mut answer = [&VC[..], &chosen.to_be_bytes(), &[0, 0]].concat();
    c.encrypt.apply(&mut answer);
    tcp.write_all(&answer).await?;
    Ok(inbox.finish(tcp, ia, c, chosen))
}

fn with_pad(key: &[u8; KEY_LEN]) -> Vec<u8> {
    let mut rng = rand::rng();
    let pad_len = rng.random_range(0..=OUR_MAX_PAD);
    let mut out = key.to_vec();
    out.extend((0..pad_len).map(|_| rng.random::<u8>()));
    out
}

async fn read_exact(tcp: &mut TcpStream, buf: &mut [u8]) -> Result<(), MseFailure> {
    match tcp.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(MseFailure::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Bytes read from the peer and not yet used. Outside a synchronisation search it never holds
/// more than the next field needs.
#[derive(Default)]
struct Inbox {
    buf: BytesMut,
}

impl Inbox {
    /// Reads until `want` bytes are held, and no more than that.
    async fn fill(&mut self, tcp: &mut TcpStream, want: usize) -> Result<(), MseFailure> {
        while self.buf.len() < want {
            self.read_some(tcp, want - self.buf.len()).await?;
        }
        Ok(())
    }

    async fn read_some(&mut self, tcp: &mut TcpStream, at_most: usize) -> Result<(), MseFailure> {
        let mut chunk = vec![0u8; at_most];
        match tcp.read(&mut chunk).await? {
            0 => Err(MseFailure::Closed),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// Skips up to `max_pad` bytes of padding to just past `marker`; the padding and the
    /// marker are all that is ever read for it.
    async fn sync(
        &mut self,
        tcp: &mut TcpStream,
        marker: &[u8],
        max_pad: usize,
    ) -> Result<(), MseFailure> {
        let bound = max_pad + marker.len();
        loop {
            if let Some(at) = find(&self.buf, marker) {
                self.buf.advance(at + marker.len());
                return Ok(());
            }
            if self.buf.len() >= bound {
                return Err(MseError::NoSync(bound).into());
            }
            self.read_some(tcp, bound - self.buf.len()).await?;
        }
    }

    fn take_key(&mut self) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&self.buf.split_to(KEY_LEN));
        key
    }

    fn take_decrypted(&mut self, n: usize, c: &mut Ciphers) -> BytesMut {
        let mut out = self.buf.split_to(n);
        c.decrypt.apply(&mut out);
        out
    }

    /// The stream from here: `first` (plaintext already taken out) then what is left here,
    /// decrypted when RC4 was chosen.
    fn finish(
        mut self,
        tcp: TcpStream,
        mut first: BytesMut,
        mut c: Ciphers,
        chosen: u32,
    ) -> PeerStream {
        let rc4 = chosen == CRYPTO_RC4;
        if rc4 {
            c.decrypt.apply(&mut self.buf);
        }
        first.extend_from_slice(&self.buf);
        PeerStream::after_handshake(tcp, first, rc4.then_some(c))
    }
}
