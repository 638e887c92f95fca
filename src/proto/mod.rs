//! Pure protocol layer: untrusted bytes become typed values here, once. No async runtime, no clock.

pub mod ascii_movie;
pub mod bencode;
pub mod bitfield;
pub mod compact;
pub mod extension;
pub mod geometry;
pub mod lsd;
pub mod magnet;
pub mod media;
pub mod metainfo;
pub mod mse;
pub mod search;
pub mod tracker;
pub mod wire;

/// SHA-1 of a torrent's raw info dictionary: the torrent's identity on the wire and at trackers.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl std::fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl std::fmt::Display for InfoHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A peer's 20-byte id. Ours is `-BV0100-` followed by 12 random bytes (Azureus style).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    pub const PREFIX: &'static [u8; 8] = b"-BV0100-";

    /// Our id, from caller-supplied random bytes (the core has no RNG of its own).
    pub fn ours(random: [u8; 12]) -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(Self::PREFIX);
        // Printable suffix: some trackers and UIs show peer ids as text.
        for (dst, r) in id[8..].iter_mut().zip(random) {
            *dst =
                b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[r as usize % 62];
        }
        Self(id)
    }
}

impl std::fmt::Debug for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}
