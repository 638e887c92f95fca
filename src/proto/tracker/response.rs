//! Announce and scrape responses: parsing what a tracker sent, and encoding what ours sends.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use super::TrackerProtoError;
use super::bencode::{self, Value, Writer};
use crate::proto::{InfoHash, PeerId};

/// At most this many peers are taken from one response; the rest are ignored.
pub const MAX_PEERS_PER_RESPONSE: usize = 2000;
/// At most this many torrents are taken from one scrape response.
pub const MAX_SCRAPE_FILES: usize = 10_000;
/// Texts from the tracker (failure, warning, tracker id) are cut to this many bytes.
const MAX_TEXT_LEN: usize = 1024;

/// One peer a tracker told us about.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Hash)]
pub struct TrackerPeer {
    pub addr: SocketAddr,
    /// Only non-compact responses carry peer ids.
    pub peer_id: Option<PeerId>,
}

/// A successful announce response. `peers` holds IPv4 and IPv6 peers together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    pub interval: Option<Duration>,
    pub min_interval: Option<Duration>,
    pub warning: Option<String>,
    pub tracker_id: Option<String>,
    /// Seeders.
    pub complete: Option<u32>,
    /// Leechers.
    pub incomplete: Option<u32>,
    pub peers: Vec<TrackerPeer>,
}

/// How our tracker lists peers in a response.
#[derive(Debug, Copy, Clone, PartialEq, Eq)]
pub enum PeerListFormat {
    /// BEP 23: 6 bytes per IPv4 peer in `peers`, 18 bytes per IPv6 peer in `peers6` (BEP 7).
    Compact,
    /// A list of `{ip, port, peer id}` dictionaries; `peer id` left out if not wanted.
    Dicts { include_peer_id: bool },
}

impl AnnounceResponse {
    /// Parses a tracker's reply body. A `failure reason` becomes
    /// [`TrackerProtoError::Failure`]; peers with port 0 or a hostname instead of an IP are
    /// skipped; a compact list whose length is not a multiple of 6 (18 for `peers6`) is an error.
    pub fn parse(body: &[u8]) -> Result<AnnounceResponse, TrackerProtoError> {
        let value = bencode::decode(body).map_err(|e| not_bencode(body, e))?;
        let dict = value.as_dict().ok_or(TrackerProtoError::NotADictionary)?;
        if let Some(reason) = dict.get(&b"failure reason"[..]) {
            let reason = reason.as_bytes().map(text).unwrap_or_default();
            return Err(TrackerProtoError::Failure(reason));
        }
        let mut peers = Vec::new();
        match dict.get(&b"peers"[..]) {
            None => {}
            Some(Value::Bytes(compact)) => parse_compact(compact, 6, &mut peers)?,
            Some(Value::List(list)) => parse_dicts(list, &mut peers),
            Some(_) => return Err(TrackerProtoError::BadField("peers")),
        }
        match dict.get(&b"peers6"[..]) {
            None => {}
            Some(Value::Bytes(compact)) => parse_compact(compact, 18, &mut peers)?,
            Some(Value::List(list)) => parse_dicts(list, &mut peers),
            Some(_) => return Err(TrackerProtoError::BadField("peers6")),
        }
        Ok(AnnounceResponse {
            interval: seconds(dict, b"interval")?,
            min_interval: seconds(dict, b"min interval")?,
            warning: opt_text(dict, b"warning message"),
            tracker_id: opt_text(dict, b"tracker id"),
            complete: count(dict, b"complete")?,
            incomplete: count(dict, b"incomplete")?,
            peers,
        })
    }

    /// Encodes the response as our tracker sends it.
    pub fn encode(&self, format: PeerListFormat) -> Vec<u8> {
        let mut w = Writer::default();
        w.begin_dict();
        // Keys in sorted byte order.
        if let Some(n) = self.complete {
            w.bytes(b"complete").int(i64::from(n));
        }
        if let Some(n) = self.incomplete {
            w.bytes(b"incomplete").int(i64::from(n));
        }
        if let Some(d) = self.interval {
            w.bytes(b"interval").int(secs_i64(d));
        }
        if let Some(d) = self.min_interval {
            w.bytes(b"min interval").int(secs_i64(d));
        }
        match format {
            PeerListFormat::Compact => {
                let mut v4 = Vec::new();
                let mut v6 = Vec::new();
                for peer in &self.peers {
                    match peer.addr {
                        SocketAddr::V4(a) => {
                            v4.extend_from_slice(&a.ip().octets());
                            v4.extend_from_slice(&a.port().to_be_bytes());
                        }
                        SocketAddr::V6(a) => {
                            v6.extend_from_slice(&a.ip().octets());
                            v6.extend_from_slice(&a.port().to_be_bytes());
                        }
                    }
                }
                w.bytes(b"peers").bytes(&v4);
                if !v6.is_empty() {
                    w.bytes(b"peers6").bytes(&v6);
                }
            }
            PeerListFormat::Dicts { include_peer_id } => {
                w.bytes(b"peers").begin_list();
                for peer in &self.peers {
                    w.begin_dict();
                    w.bytes(b"ip").bytes(peer.addr.ip().to_string().as_bytes());
                    if let (true, Some(id)) = (include_peer_id, peer.peer_id) {
                        w.bytes(b"peer id").bytes(&id.0);
                    }
                    w.bytes(b"port").int(i64::from(peer.addr.port()));
                    w.end();
                }
                w.end();
            }
        }
        if let Some(id) = &self.tracker_id {
            w.bytes(b"tracker id").bytes(id.as_bytes());
        }
        if let Some(warning) = &self.warning {
            w.bytes(b"warning message").bytes(warning.as_bytes());
        }
        w.end();
        w.finish()
    }
}

/// The body a tracker sends to refuse a request.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.begin_dict()
        .bytes(b"failure reason")
        .bytes(reason.as_bytes());
    w.end();
    w.finish()
}

/// Counts for one torrent in a scrape response.
#[derive(Debug, Copy, Clone, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    pub complete: u32,
    pub incomplete: u32,
    pub downloaded: u32,
}

/// A scrape response: counts per torrent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    pub files: BTreeMap<InfoHash, ScrapeStats>,
}

impl ScrapeResponse {
    /// Parses a scrape reply. Entries whose key is not 20 bytes are skipped; missing counts are 0.
    pub fn parse(body: &[u8]) -> Result<ScrapeResponse, TrackerProtoError> {
        let value = bencode::decode(body).map_err(|e| not_bencode(body, e))?;
        let dict = value.as_dict().ok_or(TrackerProtoError::NotADictionary)?;
        if let Some(reason) = dict.get(&b"failure reason"[..]) {
            let reason = reason.as_bytes().map(text).unwrap_or_default();
            return Err(TrackerProtoError::Failure(reason));
        }
        let Some(files) = dict.get(&b"files"[..]) else {
            return Ok(ScrapeResponse::default());
        };
        let files = files
            .as_dict()
            .ok_or(TrackerProtoError::BadField("files"))?;
        let mut out = BTreeMap::new();
        for (key, stats) in files.iter().take(MAX_SCRAPE_FILES) {
            let (Ok(hash), Some(stats)) = (<[u8; 20]>::try_from(*key), stats.as_dict()) else {
                continue;
            };
            let stats = ScrapeStats {
                complete: count(stats, b"complete")?.unwrap_or(0),
                incomplete: count(stats, b"incomplete")?.unwrap_or(0),
                downloaded: count(stats, b"downloaded")?.unwrap_or(0),
            };
            out.insert(InfoHash(hash), stats);
        }
        Ok(ScrapeResponse { files: out })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.begin_dict().bytes(b"files").begin_dict();
        for (hash, s) in &self.files {
            w.bytes(&hash.0).begin_dict();
            w.bytes(b"complete").int(i64::from(s.complete));
            w.bytes(b"downloaded").int(i64::from(s.downloaded));
            w.bytes(b"incomplete").int(i64::from(s.incomplete));
            w.end();
        }
        w.end().end();
        w.finish()
    }
}

fn not_bencode(body: &[u8], error: bencode::BencodeError) -> TrackerProtoError {
    // A web page where a tracker reply belongs is the most common misconfiguration.
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if body.get(start) == Some(&b'<') {
        TrackerProtoError::Html
    } else {
        TrackerProtoError::NotBencode(error)
    }
}

fn secs_i64(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn text(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_TEXT_LEN).unwrap_or(bytes);
    String::from_utf8_lossy(cut).into_owned()
}

fn opt_text(dict: &BTreeMap<&[u8], Value<'_>>, key: &[u8]) -> Option<String> {
    dict.get(key).and_then(Value::as_bytes).map(text)
}

fn field_name(key: &'static [u8]) -> &'static str {
    match key {
        b"interval" => "interval",
        b"min interval" => "min interval",
        b"complete" => "complete",
        b"incomplete" => "incomplete",
        b"downloaded" => "downloaded",
        _ => "number",
    }
}

/// A non-negative count; an absurdly large one is clamped rather than refused.
fn count(
    dict: &BTreeMap<&[u8], Value<'_>>,
    key: &'static [u8],
) -> Result<Option<u32>, TrackerProtoError> {
    match dict.get(key) {
        None => Ok(None),
        Some(v) => match v.as_int() {
            Some(n) if n >= 0 => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
            _ => Err(TrackerProtoError::BadField(field_name(key))),
        },
    }
}

fn seconds(
    dict: &BTreeMap<&[u8], Value<'_>>,
    key: &'static [u8],
) -> Result<Option<Duration>, TrackerProtoError> {
    Ok(count(dict, key)?.map(|n| Duration::from_secs(u64::from(n))))
}

fn parse_compact(
    bytes: &[u8],
    width: usize,
    out: &mut Vec<TrackerPeer>,
) -> Result<(), TrackerProtoError> {
    if !bytes.len().is_multiple_of(width) {
        return Err(TrackerProtoError::CompactLength {
            len: bytes.len(),
            width,
        });
    }
    for chunk in bytes.chunks_exact(width) {
        if out.len() >= MAX_PEERS_PER_RESPONSE {
            break;
        }
        let (ip, port) = chunk.split_at(width - 2);
        let Ok(port) = <[u8; 2]>::try_from(port) else {
            continue;
        };
        let port = u16::from_be_bytes(port);
        let ip = if let Ok(v4) = <[u8; 4]>::try_from(ip) {
            IpAddr::V4(Ipv4Addr::from(v4))
        } else if let Ok(v6) = <[u8; 16]>::try_from(ip) {
            IpAddr::V6(Ipv6Addr::from(v6))
        } else {
            continue;
        };
        push_peer(out, ip, port, None);
    }
    Ok(())
}

/// Dictionary peers; entries that are malformed or name a host instead of an IP are skipped,
/// since one bad entry says nothing about the others.
fn parse_dicts(list: &[Value<'_>], out: &mut Vec<TrackerPeer>) {
    for entry in list {
        if out.len() >= MAX_PEERS_PER_RESPONSE {
            break;
        }
        let Some(d) = entry.as_dict() else { continue };
        let ip = d
            .get(&b"ip"[..])
            .and_then(Value::as_bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<IpAddr>().ok());
        let port = d
            .get(&b"port"[..])
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok());
        let peer_id = d
            .get(&b"peer id"[..])
            .and_then(Value::as_bytes)
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .map(PeerId);
        if let (Some(ip), Some(port)) = (ip, port) {
            push_peer(out, ip, port, peer_id);
        }
    }
}

fn push_peer(out: &mut Vec<TrackerPeer>, ip: IpAddr, port: u16, peer_id: Option<PeerId>) {
    if port == 0 || ip.is_unspecified() {
        return;
    }
    let addr = match ip {
        IpAddr::V4(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
            None => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0)),
        },
    };
    out.push(TrackerPeer { addr, peer_id });
}
