//! BEP 14 local service discovery: the `BT-SEARCH * HTTP/1.1` datagram a peer multicasts on the
//! LAN to say which torrents it serves on which port, read into a typed value (capped, never
//! panicking) and written.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::InfoHash;

/// The UDP port and groups of BEP 14.
pub const LSD_PORT: u16 = 6771;
pub const LSD_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
pub const LSD_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// Largest datagram read; an announce is a few hundred bytes.
pub const MAX_DATAGRAM: usize = 1400;
/// Info-hashes read from one announce, at most.
pub const MAX_INFO_HASHES: usize = 16;
/// Longest cookie kept.
const MAX_COOKIE: usize = 64;

const REQUEST_LINE: &str = "BT-SEARCH * HTTP/1.1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LsdError {
    #[error("an LSD datagram of {0} bytes; at most {MAX_DATAGRAM} are read")]
    TooLong(usize),
    #[error("not a BT-SEARCH announce")]
    NotAnnounce,
    #[error("no usable Port header")]
    NoPort,
    #[error("no v1 Infohash header")]
    NoInfoHash,
}

/// One announce: the sender's peer port, the torrents it serves there, and the cookie it
/// uses to recognise its own datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsdAnnounce {
    pub port: u16,
    pub info_hashes: Vec<InfoHash>,
    pub cookie: Option<String>,
}

impl LsdAnnounce {
    /// Reads a datagram. Header names are matched without case; unknown headers, v2 (64-hex)
    /// info-hashes and hashes past [`MAX_INFO_HASHES`] are skipped.
    pub fn parse(datagram: &[u8]) -> Result<Self, LsdError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(LsdError::TooLong(datagram.len()));
        }
        let headers = header_lines(datagram, REQUEST_LINE).ok_or(LsdError::NotAnnounce)?;
        let (mut port, mut info_hashes, mut cookie) = (None, Vec::new(), None);
        for (name, value) in headers {
            match name.as_str() {
                "port" => port = value.parse::<u16>().ok().filter(|&p| p != 0),
                "infohash" if info_hashes.len() < MAX_INFO_HASHES => {
                    if let Some(h) = InfoHash::from_hex(value).filter(|_| value.len() == 40) {
                        info_hashes.push(h);
                    }
                }
                "cookie" if value.len() <= MAX_COOKIE => cookie = Some(value.to_owned()),
                _ => {}
            }
        }
        let port = port.ok_or(LsdError::NoPort)?;
        if info_hashes.is_empty() {
            return Err(LsdError::NoInfoHash);
        }
        Ok(Self {
            port,
            info_hashes,
            cookie,
        })
    }

    /// The datagram, with `host` (the group and port) in its Host header.
    pub fn encode(&self, host: &str) -> Vec<u8> {
        let mut out = format!("{REQUEST_LINE}\r\nHost: {host}\r\nPort: {}\r\n", self.port);
        for h in &self.info_hashes {
            out.push_str(&format!("Infohash: {h}\r\n"));
        }
        if let Some(c) = &self.cookie {
            out.push_str(&format!("cookie: {c}\r\n"));
        }
        out.push_str("\r\n\r\n");
        out.into_bytes()
    }
}

/// The `Name: value` lines of an HTTP-like datagram whose first line is `first`, up to the
/// blank line, names lower-cased and values trimmed (lines without a colon skipped); None when
/// it is not UTF-8 or starts otherwise. The LAN search's messages have the same layout.
pub(crate) fn header_lines<'a>(
    datagram: &'a [u8],
    first: &str,
) -> Option<impl Iterator<Item = (String, &'a str)> + 'a> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    if lines.next() != Some(first) {
        return None;
    }
    Some(
        lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorrents_announce_reads_and_ours_round_trips() {
        let lt = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
            Infohash: 0123456789abcdef0123456789abcdef01234567\r\ncookie: 7a3f\r\n\r\n\r\n";
        let a = LsdAnnounce::parse(lt).unwrap();
        assert_eq!(a.port, 6881);
        assert_eq!(
            a.info_hashes[0].to_hex(),
            "0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(a.cookie.as_deref(), Some("7a3f"));
        let back = LsdAnnounce::parse(&a.encode("239.192.152.143:6771")).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn bad_datagrams_are_refused_and_extras_skipped() {
        assert_eq!(
            LsdAnnounce::parse(b"GET / HTTP/1.1\r\n\r\n"),
            Err(LsdError::NotAnnounce)
        );
        assert_eq!(
            LsdAnnounce::parse(b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\n\r\n"),
            Err(LsdError::NoPort)
        );
        let v2_only = format!(
            "BT-SEARCH * HTTP/1.1\nPort: 1\nInfohash: {}\n\n",
            "a".repeat(64)
        );
        assert_eq!(
            LsdAnnounce::parse(v2_only.as_bytes()),
            Err(LsdError::NoInfoHash)
        );
        let mut many = String::from("BT-SEARCH * HTTP/1.1\r\nPort: 9\r\n");
        for i in 0..20 {
            many.push_str(&format!("Infohash: {i:040x}\r\n"));
        }
        let a = LsdAnnounce::parse(many.as_bytes()).unwrap();
        assert_eq!(a.info_hashes.len(), MAX_INFO_HASHES);
        assert!(matches!(
            LsdAnnounce::parse(&[b'x'; 2000]),
            Err(LsdError::TooLong(2000))
        ));
        assert!(LsdAnnounce::parse(&[0xff, 0xfe]).is_err());
    }
}
