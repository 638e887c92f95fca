//! Server side of an announce or scrape: the raw query string a client sent, made typed.

use std::net::IpAddr;

use super::TrackerProtoError;
use super::percent::percent_decode;
use super::request::AnnounceEvent;
use crate::proto::{InfoHash, PeerId};

/// A scrape may name at most this many torrents.
pub const MAX_SCRAPE_HASHES: usize = 256;
/// Query strings longer than this are refused before parsing.
pub const MAX_QUERY_LEN: usize = 16 * 1024;

/// An announce as our tracker receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    /// `None` if the client did not say; only `Some(0)` makes a seeder.
    pub left: Option<u64>,
    pub event: Option<AnnounceEvent>,
    pub compact: bool,
    pub no_peer_id: bool,
    pub numwant: Option<u32>,
    /// The address the client claims; the tracker decides whether to believe it.
    pub ip: Option<IpAddr>,
}

impl AnnounceQuery {
    /// Parses `info_hash=...&peer_id=...&port=...` (without the `?`). `info_hash` and `peer_id`
    /// must decode to exactly 20 bytes and `port` is required; unknown parameters are ignored.
    pub fn parse(raw_query: &str) -> Result<AnnounceQuery, TrackerProtoError> {
        let mut info_hash = None;
        let mut peer_id = None;
        let mut port = None;
        let (mut uploaded, mut downloaded, mut left) = (0, 0, None);
        let mut event = None;
        let mut compact = false;
        let mut no_peer_id = false;
        let mut numwant = None;
        let mut ip = None;
        for (name, value) in pairs(raw_query)? {
            match name.as_slice() {
                b"info_hash" => info_hash = Some(InfoHash(twenty(&value, "info_hash")?)),
                b"peer_id" => peer_id = Some(PeerId(twenty(&value, "peer_id")?)),
                b"port" => port = Some(number::<u16>(&value, "port")?),
                b"uploaded" => uploaded = number(&value, "uploaded")?,
                b"downloaded" => downloaded = number(&value, "downloaded")?,
                b"left" => left = Some(number(&value, "left")?),
                b"compact" => compact = value == b"1",
                b"no_peer_id" => no_peer_id = value == b"1",
                b"numwant" => numwant = Some(number(&value, "numwant")?),
                b"event" => {
                    event = match value.as_slice() {
                        b"started" => Some(AnnounceEvent::Started),
                        b"completed" => Some(AnnounceEvent::Completed),
                        b"stopped" => Some(AnnounceEvent::Stopped),
                        b"" | b"empty" | b"paused" => None,
                        _ => return Err(TrackerProtoError::BadParameter("event")),
                    }
                }
                b"ip" => {
                    // Some clients send a hostname here; it is ignored rather than refused.
                    ip = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|s| s.parse().ok());
                }
                _ => {}
            }
        }
        Ok(AnnounceQuery {
            info_hash: info_hash.ok_or(TrackerProtoError::MissingParameter("info_hash"))?,
            peer_id: peer_id.ok_or(TrackerProtoError::MissingParameter("peer_id"))?,
            port: port.ok_or(TrackerProtoError::MissingParameter("port"))?,
            uploaded,
            downloaded,
            left,
            event,
            compact,
            no_peer_id,
            numwant,
            ip,
        })
    }
}

/// A scrape as our tracker receives it: no `info_hash` means "all torrents".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeQuery {
    pub info_hashes: Vec<InfoHash>,
}

impl ScrapeQuery {
    pub fn parse(raw_query: &str) -> Result<ScrapeQuery, TrackerProtoError> {
        let mut info_hashes = Vec::new();
        for (name, value) in pairs(raw_query)? {
            if name == b"info_hash" {
                if info_hashes.len() >= MAX_SCRAPE_HASHES {
                    return Err(TrackerProtoError::TooManyHashes(MAX_SCRAPE_HASHES));
                }
                info_hashes.push(InfoHash(twenty(&value, "info_hash")?));
            }
        }
        Ok(ScrapeQuery { info_hashes })
    }
}

/// A decoded `name=value` pair.
type QueryPair = (Vec<u8>, Vec<u8>);

/// Splits and percent-decodes `name=value` pairs; a pair without `=` has an empty value.
fn pairs(raw_query: &str) -> Result<Vec<QueryPair>, TrackerProtoError> {
    if raw_query.len() > MAX_QUERY_LEN {
        return Err(TrackerProtoError::QueryTooLong(MAX_QUERY_LEN));
    }
    raw_query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (name, value) = kv.split_once('=').unwrap_or((kv, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn twenty(value: &[u8], name: &'static str) -> Result<[u8; 20], TrackerProtoError> {
    <[u8; 20]>::try_from(value).map_err(|_| TrackerProtoError::NotTwentyBytes {
        name,
        len: value.len(),
    })
}

fn number<T: std::str::FromStr>(value: &[u8], name: &'static str) -> Result<T, TrackerProtoError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(TrackerProtoError::BadParameter(name))
}
