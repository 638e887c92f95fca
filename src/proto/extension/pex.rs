//! BEP 11 peer exchange (`ut_pex`): which peers the sender connected to and dropped since its
//! last message, with a flags byte per added peer. A message may name at most 50 added and 50
//! dropped peers; more are counted and left unread, and a payload far beyond what 50 and 50 can
//! take is not read at all.

use std::net::SocketAddr;

use super::{ExtensionError, encode_with};
use crate::proto::bencode::{self, Dict};
use crate::proto::compact::{self, V4_LEN, V6_LEN};

/// BEP 11's extension name.
pub const UT_PEX: &str = "ut_pex";
/// The id under which we want peers to send us `ut_pex` messages (libtorrent's too).
pub const OUR_UT_PEX_ID: u8 = 1;
/// Added (and dropped) peers per message, at most (BEP 11).
pub const MAX_PEX_PEERS: usize = 50;
/// Largest payload read: 50 added and 50 dropped IPv6 peers with their flags take under 2 KiB,
/// so this leaves room for IPv4 lists beside them and for keys we do not know.
pub const MAX_PEX_LEN: usize = 8 * 1024;

/// The flags byte BEP 11 gives each added peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// It prefers encrypted connections.
    pub const ENCRYPTION: u8 = 0x01;
    /// It is a seed (or uploads only).
    pub const SEED: u8 = 0x02;
    /// It speaks uTP.
    pub const UTP: u8 = 0x04;
    /// It speaks `ut_holepunch`.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The sender dialled it: it accepts incoming connections.
    pub const REACHABLE: u8 = 0x10;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }
}

/// One message: peers connected (with their flags) and dropped since the sender's last one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    pub added: Vec<(SocketAddr, PexFlags)>,
    pub dropped: Vec<SocketAddr>,
}

/// A message as read: what was used, and how many entries past the caps were left unread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedPex {
    pub message: PexMessage,
    pub unread: usize,
}

impl PexMessage {
    /// Reads a payload (after the extended id byte). Port 0 and unspecified addresses are
    /// skipped; an entry list whose length is not whole entries fails the message.
    pub fn parse(payload: &[u8]) -> Result<ParsedPex, ExtensionError> {
        if payload.len() > MAX_PEX_LEN {
            return Err(ExtensionError::PexTooLong(payload.len()));
        }
        let (value, _) = bencode::decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(ExtensionError::NotADictionary)?;
        let mut parsed = ParsedPex::default();
        for (list, flags, width) in [
            (&b"added"[..], &b"added.f"[..], V4_LEN),
            (b"added6", b"added6.f", V6_LEN),
        ] {
            let flags = bytes(dict, flags);
            for (i, addr) in entries(dict, list, width)?.enumerate() {
                if parsed.message.added.len() >= MAX_PEX_PEERS {
                    parsed.unread += 1;
                    continue;
                }
                let flag = PexFlags(flags.get(i).copied().unwrap_or(0));
                parsed.message.added.push((addr, flag));
            }
        }
        for (list, width) in [(&b"dropped"[..], V4_LEN), (b"dropped6", V6_LEN)] {
            for addr in entries(dict, list, width)? {
                if parsed.message.dropped.len() >= MAX_PEX_PEERS {
                    parsed.unread += 1;
                    continue;
                }
                parsed.message.dropped.push(addr);
            }
        }
        Ok(parsed)
    }

    /// The payload to send after the extended id byte. Callers keep to the 50 and 50 of BEP 11.
    pub fn encode(&self) -> Vec<u8> {
        let (mut added, mut added6, mut flags, mut flags6) = (vec![], vec![], vec![], vec![]);
        for (addr, f) in &self.added {
            let (list, fl) = match addr.is_ipv4() {
                true => (&mut added, &mut flags),
                false => (&mut added6, &mut flags6),
            };
            compact::push(list, *addr);
            fl.push(f.0);
        }
        let (mut dropped, mut dropped6) = (vec![], vec![]);
        for addr in &self.dropped {
            compact::push(
                if addr.is_ipv4() {
                    &mut dropped
                } else {
                    &mut dropped6
                },
                *addr,
            );
        }
        encode_with(|e| {
            e.emit_and_sort_dict(|d| {
                d.emit_pair_with(b"added", |e| e.emit_bytes(&added))?;
                d.emit_pair_with(b"added.f", |e| e.emit_bytes(&flags))?;
                d.emit_pair_with(b"added6", |e| e.emit_bytes(&added6))?;
                d.emit_pair_with(b"added6.f", |e| e.emit_bytes(&flags6))?;
                d.emit_pair_with(b"dropped", |e| e.emit_bytes(&dropped))?;
                d.emit_pair_with(b"dropped6", |e| e.emit_bytes(&dropped6))
            })
        })
    }
}

fn bytes<'a>(dict: Dict<'a>, key: &[u8]) -> &'a [u8] {
    dict.get(key).and_then(|v| v.as_bytes()).unwrap_or_default()
}

/// The usable addresses of one compact list (absent or not a string: none).
fn entries<'a>(
    dict: Dict<'a>,
    key: &'static [u8],
    width: usize,
) -> Result<impl Iterator<Item = SocketAddr> + 'a, ExtensionError> {
    let list = bytes(dict, key);
    let peers = compact::peers(list, width).map_err(|e| ExtensionError::PexEntries {
        key: String::from_utf8_lossy(key).into_owned(),
        len: e.len,
        width: e.width,
    })?;
    Ok(peers
        .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881))
    }

    #[test]
    fn a_message_round_trips_with_flags_and_both_families() {
        let v6: SocketAddr = "[2001:db8::7]:51413".parse().unwrap();
        let message = PexMessage {
            added: vec![
                (addr(1), PexFlags(PexFlags::SEED | PexFlags::REACHABLE)),
                (v6, PexFlags(PexFlags::UTP)),
            ],
            dropped: vec![addr(2), "[2001:db8::9]:1".parse().unwrap()],
        };
        let parsed = PexMessage::parse(&message.encode()).unwrap();
        assert_eq!(parsed.message.added.len(), 2);
        assert!(parsed.message.added.contains(&message.added[0]));
        assert!(parsed.message.added.contains(&message.added[1]));
        assert_eq!(parsed.message.dropped, message.dropped);
        assert_eq!(parsed.unread, 0);
    }

    #[test]
    fn past_fifty_entries_are_counted_not_read_and_huge_payloads_refused() {
        let many = PexMessage {
            added: (0..80).map(|i| (addr(i), PexFlags(0))).collect(),
            dropped: (0..60).map(addr).collect(),
        };
        let parsed = PexMessage::parse(&many.encode()).unwrap();
        assert_eq!(parsed.message.added.len(), MAX_PEX_PEERS);
        assert_eq!(parsed.message.dropped.len(), MAX_PEX_PEERS);
        assert_eq!(parsed.unread, 30 + 10);
        let flood = PexMessage {
            added: (0..10_000).map(|i| (addr(i), PexFlags(0))).collect(),
            dropped: vec![],
        };
        assert!(matches!(
            PexMessage::parse(&flood.encode()),
            Err(ExtensionError::PexTooLong(_))
        ));
    }

    #[test]
    fn malformed_lists_fail_and_missing_flags_read_as_none() {
        assert!(matches!(
            PexMessage::parse(b"d5:added5:abcdee"),
            Err(ExtensionError::PexEntries { len: 5, .. })
        ));
        let parsed = PexMessage::parse(b"d5:added6:\x0a\x00\x00\x01\x1a\xe1e").unwrap();
        assert_eq!(parsed.message.added, [(addr(1), PexFlags(0))]);
        // Port 0 and 0.0.0.0 are no peers.
        let parsed =
            PexMessage::parse(b"d5:added12:\x0a\x00\x00\x01\x00\x00\x00\x00\x00\x00\x1a\xe1e")
                .unwrap();
        assert!(parsed.message.added.is_empty());
        assert!(PexMessage::parse(b"le").is_err());
        assert_eq!(PexMessage::parse(b"de").unwrap(), ParsedPex::default());
    }
}
