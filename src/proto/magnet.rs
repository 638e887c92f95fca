//! Magnet links (BEP 9, with BEP 19 `ws` web seeds and BEP 53 `so` file selection) as a typed
//! [`Magnet`]: the info-hash and the hints a client needs to find the metadata.
//!
//! Policy on untrusted input, decided once here:
//! - The info-hash must be there: `xt=urn:btih:` in hex (40) or base32 (32). A v2-only link
//!   (`urn:btmh:` alone) is refused with its own error; a hybrid link is read by its `btih`.
//! - Hints (`tr`, `x.pe`, `ws`, `so`, `xl`) that do not parse are dropped with a warning: the
//!   link still names the torrent, and the swarm or the DHT may still find it.
//! - Repeated values are kept once, in order, and each list is capped at [`MAX_HINTS`].

mod base32;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use url::form_urlencoded;

use crate::proto::InfoHash;

/// Longest magnet URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 64 * 1024;
/// Most trackers, peers, web seeds or file ranges kept from one link.
pub const MAX_HINTS: usize = 256;

/// A parsed magnet link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: the name to show until the metadata is known.
    pub display_name: Option<String>,
    /// `xl`: the content's length in bytes, as the link claims it.
    pub exact_length: Option<u64>,
    /// `tr`: tracker URLs, one tier each (BEP 9 does not group them).
    pub trackers: Vec<String>,
    /// `x.pe`: peers to dial directly.
    pub peers: Vec<PeerHint>,
    /// `ws`: BEP 19 web seeds.
    pub web_seeds: Vec<String>,
    /// `so`: the files to download, by index in the torrent (BEP 53); `None` means all.
    pub select_only: Option<Vec<RangeInclusive<usize>>>,
    /// Hints that were dropped, worth telling the user.
    pub warnings: Vec<MagnetWarning>,
}

/// A peer address from `x.pe`: an IP literal, or a host name still to be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerHint {
    Addr(SocketAddr),
    Host { host: String, port: u16 },
}

/// Why a string is not a usable magnet link.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MagnetError {
    #[error("not a magnet link: it must start with `magnet:?`")]
    NotMagnet,
    #[error("the magnet link is {0} bytes long; at most {MAX_URI_LEN} are accepted")]
    TooLong(usize),
    #[error("the magnet link has no `xt=urn:btih:` info-hash")]
    MissingInfoHash,
    #[error("`{0}` is not a BitTorrent info-hash (40 hex or 32 base32 characters)")]
    BadInfoHash(String),
    #[error(
        "the magnet link names only a v2 torrent (`urn:btmh:`); v2 torrents are not supported yet"
    )]
    V2Only,
    #[error("the magnet link names two different torrents ({0} and {1}); give one at a time")]
    TwoTorrents(InfoHash, InfoHash),
}

/// A hint that was dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MagnetWarning {
    #[error("ignored `{key}={value}`: {why}")]
    BadHint {
        key: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("more than {MAX_HINTS} `{0}` values; the rest were ignored")]
    TooMany(&'static str),
}

impl Magnet {
    /// Whether `s` looks like a magnet link rather than a path (for arguments that take both).
    pub fn is_magnet(s: &str) -> bool {
        s.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    }

    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        if uri.len() > MAX_URI_LEN {
            return Err(MagnetError::TooLong(uri.len()));
        }
        let query = uri
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
            .map(|_| &uri[8..])
            .ok_or(MagnetError::NotMagnet)?;
        let mut v1: Option<InfoHash> = None;
        let mut v2_only = false;
        let mut m = Magnet {
            info_hash: InfoHash([0; 20]),
            display_name: None,
            exact_length: None,
            trackers: Vec::new(),
            peers: Vec::new(),
            web_seeds: Vec::new(),
            select_only: None,
            warnings: Vec::new(),
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            // BEP 9 numbers repeated keys (`xt.1`, `tr.2`): they mean the same as the bare key.
            let key = key.split_once('.').map_or(&*key, |(k, n)| {
                if n.bytes().all(|b| b.is_ascii_digit()) {
                    k
                } else {
                    &*key
                }
            });
            match key {
                "xt" => match exact_topic(&value)? {
                    Topic::V1(h) => match v1 {
                        Some(old) if old != h => return Err(MagnetError::TwoTorrents(old, h)),
                        _ => v1 = Some(h),
                    },
                    Topic::V2 => v2_only = true,
                    Topic::Other => {}
                },
                "dn" if m.display_name.is_none() => m.display_name = Some(value.into_owned()),
                "xl" => match value.parse() {
                    Ok(n) => m.exact_length = Some(n),
                    Err(_) => m.warn("xl", &value, "not a byte count"),
                },
                "tr" => m.push_url("tr", value.into_owned()),
                "ws" => m.push_url("ws", value.into_owned()),
                "x.pe" => match peer_hint(&value) {
                    Some(p) => push_capped(&mut m.peers, p, "x.pe", &mut m.warnings),
                    None => m.warn("x.pe", &value, "not HOST:PORT"),
                },
                "so" => match select_only(&value) {
                    Some(ranges) => m.select_only = Some(ranges),
                    None => m.warn("so", &value, "not a list of file indices and ranges"),
                },
                _ => {}
            }
        }
        m.info_hash = match v1 {
            Some(h) => h,
            None if v2_only => return Err(MagnetError::V2Only),
            None => return Err(MagnetError::MissingInfoHash),
        };
        Ok(m)
    }

    /// The link in canonical form: hex info-hash, then every kept hint.
    pub fn to_uri(&self) -> String {
        // The info-hash as every client writes it; the hints percent-encoded.
        let head = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        // The query starts after `magnet:?`, so each hint is joined with `&`.
        let mut q = form_urlencoded::Serializer::for_suffix(head, "magnet:?".len());
        if let Some(dn) = &self.display_name {
            q.append_pair("dn", dn);
        }
        if let Some(xl) = self.exact_length {
            q.append_pair("xl", &xl.to_string());
        }
        for tr in &self.trackers {
            q.append_pair("tr", tr);
        }
        for ws in &self.web_seeds {
            q.append_pair("ws", ws);
        }
        for pe in &self.peers {
            q.append_pair("x.pe", &pe.to_string());
        }
        if let Some(so) = self.selection() {
            q.append_pair("so", &so);
        }
        q.finish()
    }

    /// The `so` file selection as BEP 53 writes it (`0,2,4-6`), if the link has one.
    pub fn selection(&self) -> Option<String> {
        let ranges = self.select_only.as_ref()?;
        let list: Vec<String> = ranges
            .iter()
            .map(|r| match r.start() == r.end() {
                true => r.start().to_string(),
                false => format!("{}-{}", r.start(), r.end()),
            })
            .collect();
        Some(list.join(","))
    }

    /// Whether file `index` is one the link selects (every file when it selects none).
    pub fn selects(&self, index: usize) -> bool {
        self.select_only
            .as_ref()
            .is_none_or(|rs| rs.iter().any(|r| r.contains(&index)))
    }

    fn warn(&mut self, key: &'static str, value: &str, why: &'static str) {
        let value = value.chars().take(80).collect();
        self.warnings
            .push(MagnetWarning::BadHint { key, value, why });
    }

    fn push_url(&mut self, key: &'static str, url: String) {
        let scheme_ok = |scheme: &str| match key {
            "tr" => matches!(scheme, "http" | "https" | "udp"),
            _ => matches!(scheme, "http" | "https"),
        };
        match url::Url::parse(&url) {
            Ok(u) if scheme_ok(u.scheme()) => {
                let list = match key {
                    "tr" => &mut self.trackers,
                    _ => &mut self.web_seeds,
                };
                push_capped(list, url, key, &mut self.warnings);
            }
            Ok(_) if key == "tr" => self.warn(key, &url, "not an http, https or udp URL"),
            Ok(_) => self.warn(key, &url, "a web seed must be an http or https URL"),
            Err(_) => self.warn(key, &url, "not a URL"),
        }
    }
}

impl std::fmt::Display for PeerHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerHint::Addr(a) => write!(f, "{a}"),
            PeerHint::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

fn push_capped<T: PartialEq>(
    list: &mut Vec<T>,
    item: T,
    key: &'static str,
    warnings: &mut Vec<MagnetWarning>,
) {
    if list.contains(&item) {
        return;
    }
    if list.len() < MAX_HINTS {
        list.push(item);
    } else if !warnings.contains(&MagnetWarning::TooMany(key)) {
        warnings.push(MagnetWarning::TooMany(key));
    }
}

enum Topic {
    V1(InfoHash),
    V2,
    Other,
}

/// One `xt` value: a v1 info-hash, a v2 multihash, or a URN of another network (ignored).
fn exact_topic(value: &str) -> Result<Topic, MagnetError> {
    let lower = value.to_ascii_lowercase();
    if let Some(hash) = lower.strip_prefix("urn:btih:") {
        let raw = &value[9..];
        let parsed = match hash.len() {
            40 => InfoHash::from_hex(hash),
            32 => base32::decode_20(raw).map(InfoHash),
            _ => None,
        };
        return parsed
            .map(Topic::V1)
            .ok_or_else(|| MagnetError::BadInfoHash(raw.chars().take(80).collect()));
    }
    Ok(match lower.starts_with("urn:btmh:") {
        true => Topic::V2,
        false => Topic::Other,
    })
}

/// `host:port`, `1.2.3.4:port` or `[::1]:port`.
fn peer_hint(value: &str) -> Option<PeerHint> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some(PeerHint::Addr(addr));
    }
    let (host, port) = value.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let valid = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| PeerHint::Host {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// BEP 53: `0,2,4-6`: file indices and inclusive ranges.
fn select_only(value: &str) -> Option<Vec<RangeInclusive<usize>>> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let range = match part.split_once('-') {
            Some((a, b)) => a.trim().parse().ok()?..=b.trim().parse().ok()?,
            None => {
                let i = part.trim().parse().ok()?;
                i..=i
            }
        };
        if range.is_empty() || out.len() >= MAX_HINTS {
            return None;
        }
        out.push(range);
    }
    Some(out)
}
