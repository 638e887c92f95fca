//! Compact peer addresses, as trackers (BEP 23, BEP 7), UDP trackers (BEP 15) and peer exchange
//! (BEP 11) send them: 4 or 16 address bytes then the port, big-endian.

use std::net::{IpAddr, SocketAddr};

/// Bytes of one IPv4 entry.
pub const V4_LEN: usize = 6;
/// Bytes of one IPv6 entry.
pub const V6_LEN: usize = 18;

/// Entries whose bytes do not fit the width: the whole list is suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a compact peer list of {len} bytes is not a whole number of {width}-byte entries")]
pub struct CompactLengthError {
    pub len: usize,
    pub width: usize,
}

/// The addresses of a list of `width`-byte entries (`V4_LEN` or `V6_LEN`).
pub fn peers(
    bytes: &[u8],
    width: usize,
) -> Result<impl Iterator<Item = SocketAddr> + '_, CompactLengthError> {
    if width != V4_LEN && width != V6_LEN || !bytes.len().is_multiple_of(width) {
        return Err(CompactLengthError {
            len: bytes.len(),
            width,
        });
    }
    Ok(bytes.chunks_exact(width).filter_map(move |entry| {
        let (ip, port) = entry.split_at(width - 2);
        let port = u16::from_be_bytes(<[u8; 2]>::try_from(port).ok()?);
        let ip = match <[u8; 16]>::try_from(ip) {
            Ok(v6) => IpAddr::from(v6),
            Err(_) => IpAddr::from(<[u8; 4]>::try_from(ip).ok()?),
        };
        Some(SocketAddr::new(ip, port))
    }))
}

/// Appends `addr` as one entry (6 bytes for IPv4, 18 for IPv6).
pub fn push(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_lengths_are_refused() {
        let a: SocketAddr = "10.1.2.3:6881".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:51413".parse().unwrap();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        push(&mut v4, a);
        push(&mut v4, a);
        push(&mut v6, b);
        assert_eq!((v4.len(), v6.len()), (2 * V4_LEN, V6_LEN));
        assert_eq!(peers(&v4, V4_LEN).unwrap().collect::<Vec<_>>(), [a, a]);
        assert_eq!(peers(&v6, V6_LEN).unwrap().collect::<Vec<_>>(), [b]);
        assert_eq!(
            peers(&v4[..5], V4_LEN).err(),
            Some(CompactLengthError { len: 5, width: 6 })
        );
        assert!(peers(&v4, 7).is_err());
        assert_eq!(peers(&[], V6_LEN).unwrap().count(), 0);
    }
}
