//! BEP 9 `ut_metadata`: its three messages, and the assembly of an info dictionary from 16 KiB
//! pieces fetched from several peers, checked against the info-hash before anything reads it.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use super::{ExtensionError, encode_with};
use crate::proto::InfoHash;
use crate::proto::bencode;

/// Every metadata piece but the last is this long.
pub const METADATA_PIECE_LEN: usize = 16 * 1024;
/// Largest info dictionary we fetch (a torrent file is capped at 64 MiB; its info is nearly all
/// piece hashes, 20 bytes per piece): what a peer may make us buffer.
pub const MAX_METADATA_SIZE: u32 = 32 * 1024 * 1024;

/// One `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    Request {
        piece: u32,
    },
    Data {
        piece: u32,
        total_size: u32,
        data: Vec<u8>,
    },
    Reject {
        piece: u32,
    },
}

impl MetadataMessage {
    /// Reads a payload (after the extended id byte): a bencoded dictionary, followed by the
    /// piece's bytes for `Data` and by nothing otherwise.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        let (value, end) = bencode::decode_prefix(payload)?;
        let dict = value.as_dict().ok_or(ExtensionError::NotADictionary)?;
        let field = |key: &'static str| {
            dict.get(key.as_bytes())
                .and_then(|v| v.as_int())
                .ok_or(ExtensionError::BadField(key))
        };
        let piece =
            u32::try_from(field("piece")?).map_err(|_| ExtensionError::BadField("piece"))?;
        let rest = &payload[end..];
        let no_rest = |kind| match rest.is_empty() {
            true => Ok(()),
            false => Err(ExtensionError::TrailingData(kind)),
        };
        match field("msg_type")? {
            0 => no_rest("request").map(|()| Self::Request { piece }),
            1 => {
                let total_size = u32::try_from(field("total_size")?)
                    .map_err(|_| ExtensionError::BadField("total_size"))?;
                if rest.len() > METADATA_PIECE_LEN {
                    return Err(ExtensionError::MetadataPieceTooLong(rest.len()));
                }
                Ok(Self::Data {
                    piece,
                    total_size,
                    data: rest.to_vec(),
                })
            }
            2 => no_rest("reject").map(|()| Self::Reject { piece }),
            other => Err(ExtensionError::UnknownMetadataType(other)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (msg_type, piece) = match *self {
            Self::Request { piece } => (0, piece),
            Self::Data { piece, .. } => (1, piece),
            Self::Reject { piece } => (2, piece),
        };
        let mut out = encode_with(|e| {
            e.emit_and_sort_dict(|d| {
                d.emit_pair(b"msg_type", msg_type)?;
                d.emit_pair(b"piece", piece)?;
                if let Self::Data { total_size, .. } = self {
                    d.emit_pair(b"total_size", *total_size)?;
                }
                Ok(())
            })
        });
        if let Self::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }
}

/// The number of pieces an info dictionary of `size` bytes is sent in.
pub fn piece_count(size: u32) -> u32 {
    (size as usize).div_ceil(METADATA_PIECE_LEN) as u32
}

/// Piece `piece` of `info`, as a peer asking for it is sent; `None` past the end.
pub fn piece_of(info: &[u8], piece: u32) -> Option<&[u8]> {
    let start = (piece as usize).checked_mul(METADATA_PIECE_LEN)?;
    (start < info.len()).then(|| &info[start..info.len().min(start + METADATA_PIECE_LEN)])
}

/// Why a peer's metadata was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    #[error("metadata_size {0} is over the {MAX_METADATA_SIZE}-byte cap")]
    TooLarge(u32),
    #[error("metadata_size is 0")]
    Empty,
    #[error("the peer says the metadata is {got} bytes, another said {expected}")]
    SizeDisagrees { got: u32, expected: u32 },
    #[error("metadata piece {piece} is {got} bytes; it must be {expected}")]
    WrongPieceLen {
        piece: u32,
        got: usize,
        expected: usize,
    },
    #[error("metadata piece {0} does not exist")]
    NoSuchPiece(u32),
    #[error("the assembled metadata does not hash to the info-hash {0}")]
    HashMismatch(InfoHash),
}

/// An info dictionary being fetched. The size comes from the first peer that offers one; the
/// pieces from any peer; when all are there their SHA-1 must be the info-hash, else every
/// piece is dropped and fetched again.
#[derive(Debug)]
pub struct MetadataAssembly {
    info_hash: InfoHash,
    size: u32,
    pieces: BTreeMap<u32, Vec<u8>>,
}

impl MetadataAssembly {
    pub fn new(info_hash: InfoHash, size: u32) -> Result<Self, AssemblyError> {
        match size {
            0 => Err(AssemblyError::Empty),
            s if s > MAX_METADATA_SIZE => Err(AssemblyError::TooLarge(s)),
            _ => Ok(Self {
                info_hash,
                size,
                pieces: BTreeMap::new(),
            }),
        }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Pieces not yet received, in order.
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        (0..piece_count(self.size)).filter(|p| !self.pieces.contains_key(p))
    }

    /// Takes one piece. When it completes the dictionary, returns it once its hash matches.
    #[must_use = "the finished info dictionary is returned only once"]
    pub fn on_data(
        &mut self,
        piece: u32,
        total_size: u32,
        data: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, AssemblyError> {
        if total_size != self.size {
            return Err(AssemblyError::SizeDisagrees {
                got: total_size,
                expected: self.size,
            });
        }
        let count = piece_count(self.size);
        if piece >= count {
            return Err(AssemblyError::NoSuchPiece(piece));
        }
        let expected = match piece + 1 == count {
            true => self.size as usize - METADATA_PIECE_LEN * piece as usize,
            false => METADATA_PIECE_LEN,
        };
        if data.len() != expected {
            return Err(AssemblyError::WrongPieceLen {
                piece,
                got: data.len(),
                expected,
            });
        }
        self.pieces.insert(piece, data);
        if self.pieces.len() < count as usize {
            return Ok(None);
        }
        let info: Vec<u8> = std::mem::take(&mut self.pieces)
            .into_values()
            .flatten()
            .collect();
        match <[u8; 20]>::from(Sha1::digest(&info)) == self.info_hash.0 {
            true => Ok(Some(info)),
            false => Err(AssemblyError::HashMismatch(self.info_hash)),
        }
    }
}

/// A `.torrent` file around fetched metadata and the magnet's trackers and web seeds, so the
/// usual parser validates it and a restart can load it instead of fetching again. Keys are
/// written in sorted order (canonical bencode).
pub fn torrent_file(info: &[u8], trackers: &[String], web_seeds: &[String]) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(format!("{}:", b.len()).as_bytes());
        out.extend_from_slice(b);
    }
    fn list(out: &mut Vec<u8>, items: &[String]) {
        out.push(b'l');
        items.iter().for_each(|s| bytes(out, s.as_bytes()));
        out.push(b'e');
    }
    let mut out = vec![b'd'];
    if let Some(first) = trackers.first() {
        bytes(&mut out, b"announce");
        bytes(&mut out, first.as_bytes());
        // BEP 9 does not group trackers: each gets a tier of its own.
        bytes(&mut out, b"announce-list");
        out.push(b'l');
        trackers
            .iter()
            .for_each(|t| list(&mut out, std::slice::from_ref(t)));
        out.push(b'e');
    }
    bytes(&mut out, b"info");
    out.extend_from_slice(info);
    if !web_seeds.is_empty() {
        bytes(&mut out, b"url-list");
        list(&mut out, web_seeds);
    }
    out.push(b'e');
    out
}
