//! BEP 15, the UDP tracker protocol, pure: connect, announce, scrape and error packets in both
//! directions (our client's requests and our tracker's replies), and the retransmission
//! schedule. Replies are checked against the transaction id we sent before anything is read.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{AnnounceEvent, AnnounceRequest, AnnounceResponse, ScrapeStats, TrackerPeer};
use crate::proto::{InfoHash, PeerId, compact};

/// The magic constant that opens a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// A connection id may be used this long after it was given (BEP 15: one minute).
pub const CONNECTION_ID_TTL: Duration = Duration::from_secs(60);
/// Largest packet read: an announce reply with 200 IPv6 peers is 3,620 bytes.
pub const MAX_PACKET: usize = 8 * 1024;
/// Most torrents in one scrape (BEP 15: about 74 fit in a packet).
pub const MAX_SCRAPE: usize = 74;

#[cfg(test)]
mod tests;

const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const SCRAPE: u32 = 2;
const ERROR: u32 = 3;

/// How long to wait before sending a request again for the `n`th time (BEP 15: 15 × 2^n
/// seconds, n up to 8), scaled from `first` (15 s in the BEP).
pub fn retransmit_after(first: Duration, n: u32) -> Duration {
    first.saturating_mul(1 << n.min(8))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpTrackerError {
    #[error("a {0}-byte UDP tracker packet is too short")]
    TooShort(usize),
    #[error("the reply answers transaction {got:#010x}, not ours ({expected:#010x})")]
    WrongTransaction { got: u32, expected: u32 },
    #[error("unknown action {0} in a UDP tracker packet")]
    UnknownAction(u32),
    #[error("not a UDP tracker connect request (protocol id {0:#x})")]
    NotConnect(u64),
    #[error("the peer list is {0} bytes, not a whole number of peers")]
    PeerListLength(usize),
    #[error("a scrape names {0} torrents; at most {MAX_SCRAPE} fit")]
    TooManyHashes(usize),
    #[error("unknown announce event {0}")]
    BadEvent(u32),
}

/// An announce as BEP 15 carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpAnnounce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: Option<AnnounceEvent>,
    /// The address to hand out instead of the packet's source (0 = the source).
    pub ip: Option<Ipv4Addr>,
    pub key: u32,
    /// `None`: the tracker's default (-1 on the wire).
    pub num_want: Option<u32>,
    pub port: u16,
}

impl UdpAnnounce {
    pub fn from_request(req: &AnnounceRequest) -> Self {
        Self {
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            downloaded: req.downloaded,
            left: req.left,
            uploaded: req.uploaded,
            event: req.event,
            ip: None,
            key: req.key.unwrap_or(0),
            num_want: req.numwant,
            port: req.port,
        }
    }
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpRequest {
    Connect {
        transaction: u32,
    },
    Announce {
        connection: u64,
        transaction: u32,
        announce: UdpAnnounce,
    },
    Scrape {
        connection: u64,
        transaction: u32,
        info_hashes: Vec<InfoHash>,
    },
}

/// What a tracker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpReply {
    Connect {
        transaction: u32,
        connection: u64,
    },
    Announce {
        transaction: u32,
        interval: u32,
        leechers: u32,
        seeders: u32,
        peers: Vec<SocketAddr>,
    },
    Scrape {
        transaction: u32,
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction: u32,
        message: String,
    },
}

/// Reads big-endian fields off the front of a packet; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
}

fn event_code(event: Option<AnnounceEvent>) -> u32 {
    match event {
        None => 0,
        Some(AnnounceEvent::Completed) => 1,
        Some(AnnounceEvent::Started) => 2,
        Some(AnnounceEvent::Stopped) => 3,
    }
}

impl UdpRequest {
    pub fn transaction(&self) -> u32 {
        match *self {
            Self::Connect { transaction }
            | Self::Announce { transaction, .. }
            | Self::Scrape { transaction, .. } => transaction,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(98);
        match self {
            Self::Connect { transaction } => {
                out.extend(PROTOCOL_ID.to_be_bytes());
                out.extend(CONNECT.to_be_bytes());
                out.extend(transaction.to_be_bytes());
            }
            Self::Announce {
                connection,
                transaction,
                announce: a,
            } => {
                out.extend(connection.to_be_bytes());
                out.extend(ANNOUNCE.to_be_bytes());
                out.extend(transaction.to_be_bytes());
                out.extend(a.info_hash.0);
                out.extend(a.peer_id.0);
                out.extend(a.downloaded.to_be_bytes());
                out.extend(a.left.to_be_bytes());
                out.extend(a.uploaded.to_be_bytes());
                out.extend(event_code(a.event).to_be_bytes());
                out.extend(a.ip.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
                out.extend(a.key.to_be_bytes());
                let num_want = a
                    .num_want
                    .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
                out.extend(num_want.to_be_bytes());
                out.extend(a.port.to_be_bytes());
            }
            Self::Scrape {
                connection,
                transaction,
                info_hashes,
            } => {
                out.extend(connection.to_be_bytes());
                out.extend(SCRAPE.to_be_bytes());
                out.extend(transaction.to_be_bytes());
                info_hashes.iter().for_each(|h| out.extend(h.0));
            }
        }
        out
    }

    /// A tracker reads a client's packet. Bytes after an announce's fixed part (BEP 41
    /// options) are ignored.
    pub fn parse(packet: &[u8]) -> Result<Self, UdpTrackerError> {
        let short = || UdpTrackerError::TooShort(packet.len());
        let mut r = Reader(packet);
        let connection = r.u64().ok_or_else(short)?;
        let action = r.u32().ok_or_else(short)?;
        let transaction = r.u32().ok_or_else(short)?;
        match action {
            CONNECT if connection == PROTOCOL_ID => Ok(Self::Connect { transaction }),
            CONNECT => Err(UdpTrackerError::NotConnect(connection)),
            ANNOUNCE => {
                let announce = read_announce(&mut r).ok_or_else(short)??;
                Ok(Self::Announce {
                    connection,
                    transaction,
                    announce,
                })
            }
            SCRAPE => {
                let rest = r.0;
                if rest.is_empty() || !rest.len().is_multiple_of(20) {
                    return Err(short());
                }
                if rest.len() / 20 > MAX_SCRAPE {
                    return Err(UdpTrackerError::TooManyHashes(rest.len() / 20));
                }
                let info_hashes = rest
                    .chunks_exact(20)
                    .filter_map(|c| <[u8; 20]>::try_from(c).ok().map(InfoHash))
                    .collect();
                Ok(Self::Scrape {
                    connection,
                    transaction,
                    info_hashes,
                })
            }
            other => Err(UdpTrackerError::UnknownAction(other)),
        }
    }
}

/// The fixed part of an announce after its header; `None` if the packet is too short.
fn read_announce(r: &mut Reader<'_>) -> Option<Result<UdpAnnounce, UdpTrackerError>> {
    let info_hash = InfoHash(r.take()?);
    let peer_id = PeerId(r.take()?);
    let (downloaded, left, uploaded) = (r.u64()?, r.u64()?, r.u64()?);
    let event = match r.u32()? {
        0 => None,
        1 => Some(AnnounceEvent::Completed),
        2 => Some(AnnounceEvent::Started),
        3 => Some(AnnounceEvent::Stopped),
        other => return Some(Err(UdpTrackerError::BadEvent(other))),
    };
    let ip = Ipv4Addr::from(r.take::<4>()?);
    let key = r.u32()?;
    // -1 (all ones) means "the tracker's default".
    let num_want = r.u32()?;
    let port = u16::from_be_bytes(r.take()?);
    Some(Ok(UdpAnnounce {
        info_hash,
        peer_id,
        downloaded,
        left,
        uploaded,
        event,
        ip: (!ip.is_unspecified()).then_some(ip),
        key,
        num_want: (num_want <= i32::MAX as u32).then_some(num_want),
        port,
    }))
}

impl UdpReply {
    /// A client reads a tracker's packet; `expected` is the transaction id it sent, and
    /// `v6` whether it asked over IPv6 (then peers are 18 bytes each, else 6).
    pub fn parse(packet: &[u8], expected: u32, v6: bool) -> Result<Self, UdpTrackerError> {
        let short = || UdpTrackerError::TooShort(packet.len());
        let mut r = Reader(packet);
        let action = r.u32().ok_or_else(short)?;
        let transaction = r.u32().ok_or_else(short)?;
        if transaction != expected {
            return Err(UdpTrackerError::WrongTransaction {
                got: transaction,
                expected,
            });
        }
        match action {
            CONNECT => {
                let connection = r.u64().ok_or_else(short)?;
                Ok(Self::Connect {
                    transaction,
                    connection,
                })
            }
            ANNOUNCE => {
                let (interval, leechers, seeders) =
                    (|| Some((r.u32()?, r.u32()?, r.u32()?)))().ok_or_else(short)?;
                let peers = compact_peers(r.0, v6)?;
                Ok(Self::Announce {
                    transaction,
                    interval,
                    leechers,
                    seeders,
                    peers,
                })
            }
            SCRAPE => {
                if !r.0.len().is_multiple_of(12) {
                    return Err(short());
                }
                let stats = r
                    .0
                    .chunks_exact(12)
                    .map(|c| {
                        let n = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                        ScrapeStats {
                            complete: n(0),
                            downloaded: n(4),
                            incomplete: n(8),
                        }
                    })
                    .collect();
                Ok(Self::Scrape { transaction, stats })
            }
            ERROR => {
                let text = String::from_utf8_lossy(r.0);
                Ok(Self::Error {
                    transaction,
                    message: text.chars().take(1024).collect(),
                })
            }
            other => Err(UdpTrackerError::UnknownAction(other)),
        }
    }

    /// Our tracker's packet. An announce reply lists only the peers of the asker's family.
    pub fn encode(&self, v6: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let head = |out: &mut Vec<u8>, action: u32, transaction: u32| {
            out.extend(action.to_be_bytes());
            out.extend(transaction.to_be_bytes());
        };
        match self {
            Self::Connect {
                transaction,
                connection,
            } => {
                head(&mut out, CONNECT, *transaction);
                out.extend(connection.to_be_bytes());
            }
            Self::Announce {
                transaction,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                head(&mut out, ANNOUNCE, *transaction);
                for n in [interval, leechers, seeders] {
                    out.extend(n.to_be_bytes());
                }
                for peer in peers {
                    match (peer.ip(), v6) {
                        (IpAddr::V4(ip), false) => out.extend(ip.octets()),
                        (IpAddr::V6(ip), true) => out.extend(ip.octets()),
                        _ => continue,
                    }
                    out.extend(peer.port().to_be_bytes());
                }
            }
            Self::Scrape { transaction, stats } => {
                head(&mut out, SCRAPE, *transaction);
                for s in stats {
                    for n in [s.complete, s.downloaded, s.incomplete] {
                        out.extend(n.to_be_bytes());
                    }
                }
            }
            Self::Error {
                transaction,
                message,
            } => {
                head(&mut out, ERROR, *transaction);
                out.extend(message.as_bytes());
            }
        }
        out
    }

    /// An announce reply as the tracker client's usual answer.
    pub fn into_response(self) -> Option<AnnounceResponse> {
        let Self::Announce {
            interval,
            leechers,
            seeders,
            peers,
            ..
        } = self
        else {
            return None;
        };
        Some(AnnounceResponse {
            interval: Some(Duration::from_secs(u64::from(interval))),
            complete: Some(seeders),
            incomplete: Some(leechers),
            peers: peers
                .into_iter()
                .map(|addr| TrackerPeer {
                    addr,
                    peer_id: None,
                })
                .collect(),
            ..AnnounceResponse::default()
        })
    }
}

/// 6-byte (IPv4) or 18-byte (IPv6) peers; port 0 and unspecified addresses are dropped.
fn compact_peers(bytes: &[u8], v6: bool) -> Result<Vec<SocketAddr>, UdpTrackerError> {
    let width = if v6 { compact::V6_LEN } else { compact::V4_LEN };
    let peers = compact::peers(bytes, width)
        .map_err(|_| UdpTrackerError::PeerListLength(bytes.len()))?
        .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified());
    Ok(peers.take(super::MAX_PEERS_PER_RESPONSE).collect())
}
