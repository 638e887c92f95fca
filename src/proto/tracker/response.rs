//! Announce and scrape responses: parsing what a tracker sent, and encoding what ours sends.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use bendy::encoding::{Encoder, Error as EncodeError};

use super::TrackerProtoError;
use crate::proto::bencode::{self, BencodeError, Dict, List, Value};
use crate::proto::{InfoHash, PeerId, compact};

/// At most this many peers are taken from one response; the rest are ignored.
pub const MAX_PEERS_PER_RESPONSE: usize = 2000;
/// At most this many torrents are taken from one scrape response.
pub const MAX_SCRAPE_FILES: usize = 10_000;
/// Texts from the tracker (failure, warning, tracker id) are cut to this many bytes.
const MAX_TEXT_LEN: usize = 1024;
/// Sent in place of a reply that could not be encoded (see [`encode_with`]).
const ENCODING_FAILED: &[u8] = b"d14:failure reason30:tracker could not encode replye";

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
        let dict = parse_reply(body)?;
        let mut peers = Vec::new();
        match dict.get(b"peers") {
            None => {}
            Some(Value::Bytes(compact)) => parse_compact(compact, 6, &mut peers)?,
            Some(Value::List(list)) => parse_dicts(list, &mut peers),
            Some(_) => return Err(TrackerProtoError::BadField("peers")),
        }
        match dict.get(b"peers6") {
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

    /// Encodes the response as our tracker sends it (canonical bencode: keys sorted by bendy).
    pub fn encode(&self, format: PeerListFormat) -> Vec<u8> {
        encode_with(|e| {
            e.emit_and_sort_dict(|d| {
                if let Some(n) = self.complete {
                    d.emit_pair(b"complete", n)?;
                }
                if let Some(n) = self.incomplete {
                    d.emit_pair(b"incomplete", n)?;
                }
                if let Some(interval) = self.interval {
                    d.emit_pair(b"interval", secs_i64(interval))?;
                }
                if let Some(interval) = self.min_interval {
                    d.emit_pair(b"min interval", secs_i64(interval))?;
                }
                match format {
                    PeerListFormat::Compact => {
                        let (v4, v6) = self.compact_peers();
                        d.emit_pair_with(b"peers", |e| e.emit_bytes(&v4))?;
                        if !v6.is_empty() {
                            d.emit_pair_with(b"peers6", |e| e.emit_bytes(&v6))?;
                        }
                    }
                    PeerListFormat::Dicts { include_peer_id } => {
                        d.emit_pair_with(b"peers", |e| {
                            e.emit_list(|list| {
                                self.peers.iter().try_for_each(|peer| {
                                    list.emit_and_sort_dict(|pd| {
                                        pd.emit_pair(b"ip", peer.addr.ip().to_string())?;
                                        if let (true, Some(id)) = (include_peer_id, peer.peer_id) {
                                            pd.emit_pair_with(b"peer id", |e| e.emit_bytes(&id.0))?;
                                        }
                                        pd.emit_pair(b"port", peer.addr.port())
                                    })
                                })
                            })
                        })?;
                    }
                }
                if let Some(id) = &self.tracker_id {
                    d.emit_pair(b"tracker id", id.as_str())?;
                }
                if let Some(warning) = &self.warning {
                    d.emit_pair(b"warning message", warning.as_str())?;
                }
                Ok(())
            })
        })
    }

    /// BEP 23 / BEP 7 compact lists: 6 bytes per IPv4 peer, 18 per IPv6 peer.
    fn compact_peers(&self) -> (Vec<u8>, Vec<u8>) {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for peer in &self.peers {
            let out = if peer.addr.is_ipv4() {
                &mut v4
            } else {
                &mut v6
            };
            compact::push(out, peer.addr);
        }
        (v4, v6)
    }
}

/// The body a tracker sends to refuse a request.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    encode_with(|e| e.emit_and_sort_dict(|d| d.emit_pair(b"failure reason", reason)))
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
        let dict = parse_reply(body)?;
        let Some(files) = dict.get(b"files") else {
            return Ok(ScrapeResponse::default());
        };
        let files = files
            .as_dict()
            .ok_or(TrackerProtoError::BadField("files"))?;
        let mut out = BTreeMap::new();
        for (key, stats) in files.iter().take(MAX_SCRAPE_FILES) {
            let (Ok(hash), Some(stats)) = (<[u8; 20]>::try_from(key), stats.as_dict()) else {
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

    /// Encodes the response as our tracker sends it (canonical bencode: keys sorted by bendy).
    pub fn encode(&self) -> Vec<u8> {
        encode_with(|e| {
            e.emit_and_sort_dict(|d| {
                d.emit_pair_with(b"files", |e| {
                    e.emit_unsorted_dict(|files| {
                        self.files.iter().try_for_each(|(hash, s)| {
                            files.emit_pair_with(&hash.0, |e| {
                                e.emit_unsorted_dict(|stats| {
                                    stats.emit_pair(b"complete", s.complete)?;
                                    stats.emit_pair(b"downloaded", s.downloaded)?;
                                    stats.emit_pair(b"incomplete", s.incomplete)
                                })
                            })
                        })
                    })
                })
            })
        })
    }
}

/// Our tracker's replies: a failure reply if one could not be encoded.
fn encode_with(build: impl FnOnce(&mut Encoder) -> Result<(), EncodeError>) -> Vec<u8> {
    bencode::encode_with("a tracker reply", ENCODING_FAILED, build)
}

/// Decodes a reply body down to its top-level dictionary; a `failure reason` in it becomes
/// [`TrackerProtoError::Failure`]. Bytes after the first value are ignored: some trackers end
/// their reply with a newline.
fn parse_reply(body: &[u8]) -> Result<Dict<'_>, TrackerProtoError> {
    let (value, _end) = bencode::decode_prefix(body).map_err(|e| not_bencode(body, e))?;
    let dict = value.as_dict().ok_or(TrackerProtoError::NotADictionary)?;
    if let Some(reason) = dict.get(b"failure reason") {
        let reason = reason.as_bytes().map(text).unwrap_or_default();
        return Err(TrackerProtoError::Failure(reason));
    }
    Ok(dict)
}

fn not_bencode(body: &[u8], error: BencodeError) -> TrackerProtoError {
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

/// At most [`MAX_TEXT_LEN`] bytes of text. Cut after the lossy conversion, at a character
/// boundary: each invalid byte becomes a 3-byte U+FFFD, so cutting the input first could
/// triple the length (and our tracker, echoing such a text, would send one the client cuts
/// differently).
fn text(bytes: &[u8]) -> String {
    let cut = bytes.get(..MAX_TEXT_LEN).unwrap_or(bytes);
    let mut text = String::from_utf8_lossy(cut).into_owned();
    let mut end = text.len().min(MAX_TEXT_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

fn opt_text(dict: Dict<'_>, key: &[u8]) -> Option<String> {
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
fn count(dict: Dict<'_>, key: &'static [u8]) -> Result<Option<u32>, TrackerProtoError> {
    match dict.get(key) {
        None => Ok(None),
        Some(v) => match v.as_int() {
            Some(n) if n >= 0 => Ok(Some(u32::try_from(n).unwrap_or(u32::MAX))),
            _ => Err(TrackerProtoError::BadField(field_name(key))),
        },
    }
}

fn seconds(dict: Dict<'_>, key: &'static [u8]) -> Result<Option<Duration>, TrackerProtoError> {
    Ok(count(dict, key)?.map(|n| Duration::from_secs(u64::from(n))))
}

fn parse_compact(
    bytes: &[u8],
    width: usize,
    out: &mut Vec<TrackerPeer>,
) -> Result<(), TrackerProtoError> {
    let peers = compact::peers(bytes, width).map_err(|e| TrackerProtoError::CompactLength {
        len: e.len,
        width: e.width,
    })?;
    for addr in peers {
        if out.len() >= MAX_PEERS_PER_RESPONSE {
            break;
        }
        push_peer(out, addr.ip(), addr.port(), None);
    }
    Ok(())
}

/// Dictionary peers; entries that are malformed or name a host instead of an IP are skipped,
/// since one bad entry says nothing about the others.
fn parse_dicts(list: List<'_>, out: &mut Vec<TrackerPeer>) {
    for entry in list.iter() {
        if out.len() >= MAX_PEERS_PER_RESPONSE {
            break;
        }
        let Some(d) = entry.as_dict() else { continue };
        let ip = d
            .get(b"ip")
            .and_then(Value::as_bytes)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<IpAddr>().ok());
        let port = d
            .get(b"port")
            .and_then(Value::as_int)
            .and_then(|p| u16::try_from(p).ok());
        let peer_id = d
            .get(b"peer id")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_for_an_unencodable_reply_is_a_valid_failure() {
        assert_eq!(
            AnnounceResponse::parse(ENCODING_FAILED),
            Err(TrackerProtoError::Failure(
                "tracker could not encode reply".into()
            ))
        );
    }
}
