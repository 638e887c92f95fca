//! BEP 10 extended messages as typed values: the extension handshake both ways, and BEP 9
//! `ut_metadata` requests, data and rejects. The wire layer carries them as
//! `Message::Extended { id, payload }`; this module reads and writes the payloads.
//!
//! Extension ids are chosen by the receiver: a peer's handshake says under which id it wants
//! each extension sent to it, ours says the same for us. Id 0 is the handshake itself.

pub mod metadata;
pub mod pex;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

use bendy::encoding::{Encoder, Error as EncodeError};

use super::bencode::{self, Dict};

/// The extended message id of the handshake.
pub const HANDSHAKE_ID: u8 = 0;
/// BEP 9's extension name.
pub const UT_METADATA: &str = "ut_metadata";
/// The id under which we want peers to send us `ut_metadata` messages.
pub const OUR_UT_METADATA_ID: u8 = 3;
/// What our handshake's `v` says.
pub const CLIENT_NAME: &str = concat!("btvod ", env!("CARGO_PKG_VERSION"));

/// Most extensions read from one handshake; more is not a client, it is an attack.
const MAX_EXTENSIONS: usize = 64;
/// Longest extension name or client name kept.
const MAX_NAME_LEN: usize = 64;
/// Largest payload read as a handshake (libtorrent's are about 200 bytes).
pub const MAX_HANDSHAKE_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    #[error("not bencode: {0}")]
    Bencode(#[from] bencode::BencodeError),
    #[error("the extension handshake is not a dictionary")]
    NotADictionary,
    #[error("the extension handshake is {0} bytes; at most {MAX_HANDSHAKE_LEN} are read")]
    HandshakeTooLong(usize),
    #[error("`{0}` is missing or of the wrong type")]
    BadField(&'static str),
    #[error("unknown ut_metadata msg_type {0}")]
    UnknownMetadataType(i64),
    #[error("a ut_metadata piece carries {0} bytes; at most 16 KiB are allowed")]
    MetadataPieceTooLong(usize),
    #[error("a ut_metadata {0} carries data after its dictionary")]
    TrailingData(&'static str),
    #[error("a ut_pex message of {0} bytes; at most {max} are read", max = pex::MAX_PEX_LEN)]
    PexTooLong(usize),
    #[error("ut_pex `{key}` is {len} bytes, not whole {width}-byte entries")]
    PexEntries {
        key: String,
        len: usize,
        width: usize,
    },
}

/// An extension handshake (BEP 10): what the sender speaks and a few facts about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// Extension name → the id the sender wants it sent under. Disabled ones (id 0) are left out.
    pub extensions: BTreeMap<String, u8>,
    /// BEP 9: the info dictionary's length, if the sender has it.
    pub metadata_size: Option<u32>,
    /// `v`: the sender's client name and version.
    pub client: Option<String>,
    /// `p`: the port the sender listens on.
    pub listen_port: Option<u16>,
    /// `yourip`: our address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `reqq`: how many outstanding requests the sender queues.
    pub request_queue: Option<u32>,
}

impl ExtendedHandshake {
    /// Ours: `ut_metadata`, with the metadata's size when we have it.
    pub fn ours(metadata_size: Option<u32>, listen_port: Option<u16>) -> Self {
        Self {
            extensions: BTreeMap::from([(UT_METADATA.to_owned(), OUR_UT_METADATA_ID)]),
            metadata_size,
            client: Some(CLIENT_NAME.to_owned()),
            listen_port,
            your_ip: None,
            request_queue: None,
        }
    }

    /// The id the sender wants extension `name` sent under, if it speaks it.
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.extensions.get(name).copied()
    }

    /// Reads a handshake payload (after the extended id byte). Unknown keys are ignored, and
    /// so are known ones of the wrong type, except `m`, without which nothing can be used.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        if payload.len() > MAX_HANDSHAKE_LEN {
            return Err(ExtensionError::HandshakeTooLong(payload.len()));
        }
        let (value, _) = bencode::decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(ExtensionError::NotADictionary)?;
        let m = dict
            .get(b"m")
            .and_then(|v| v.as_dict())
            .ok_or(ExtensionError::BadField("m"))?;
        let mut extensions = BTreeMap::new();
        for (name, id) in m.iter().take(MAX_EXTENSIONS) {
            let id = id.as_int().and_then(|i| u8::try_from(i).ok());
            let name = std::str::from_utf8(name)
                .ok()
                .filter(|n| n.len() <= MAX_NAME_LEN);
            if let (Some(name), Some(id @ 1..)) = (name, id) {
                extensions.insert(name.to_owned(), id);
            }
        }
        Ok(Self {
            extensions,
            metadata_size: int(dict, b"metadata_size"),
            client: dict.get(b"v").and_then(|v| v.as_bytes()).map(|v| {
                String::from_utf8_lossy(v)
                    .chars()
                    .take(MAX_NAME_LEN)
                    .collect()
            }),
            listen_port: int(dict, b"p").filter(|&p| p != 0),
            your_ip: dict
                .get(b"yourip")
                .and_then(|v| v.as_bytes())
                .and_then(ip_from_bytes),
            request_queue: int(dict, b"reqq"),
        })
    }

    /// The payload to send after the extended id byte (canonical bencode).
    pub fn encode(&self) -> Vec<u8> {
        encode_with(|e| {
            e.emit_and_sort_dict(|d| {
                d.emit_pair_with(b"m", |e| {
                    e.emit_unsorted_dict(|m| {
                        self.extensions
                            .iter()
                            .try_for_each(|(name, &id)| m.emit_pair(name.as_bytes(), id))
                    })
                })?;
                if let Some(size) = self.metadata_size {
                    d.emit_pair(b"metadata_size", size)?;
                }
                if let Some(port) = self.listen_port {
                    d.emit_pair(b"p", port)?;
                }
                if let Some(q) = self.request_queue {
                    d.emit_pair(b"reqq", q)?;
                }
                if let Some(v) = &self.client {
                    d.emit_pair(b"v", v.as_str())?;
                }
                if let Some(ip) = self.your_ip {
                    let bytes = match ip {
                        IpAddr::V4(v4) => v4.octets().to_vec(),
                        IpAddr::V6(v6) => v6.octets().to_vec(),
                    };
                    d.emit_pair_with(b"yourip", |e| e.emit_bytes(&bytes))?;
                }
                Ok(())
            })
        })
    }
}

/// An integer field that fits `T`, or `None` (absent, wrong type or out of range).
fn int<T: TryFrom<i64>>(dict: Dict<'_>, key: &[u8]) -> Option<T> {
    dict.get(key)
        .and_then(|v| v.as_int())
        .and_then(|i| T::try_from(i).ok())
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Our extended messages: an empty dictionary (read as "no extensions") if one could not be
/// encoded.
fn encode_with(build: impl FnOnce(&mut Encoder) -> Result<(), EncodeError>) -> Vec<u8> {
    bencode::encode_with("an extended message", b"de", build)
}
