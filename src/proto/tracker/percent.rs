//! Percent-encoding of raw bytes in tracker query strings (info_hash and peer_id are binary).
//!
//! `url`'s form encoding turns spaces into `+` and treats input as text, so trackers would
//! see other bytes than we hashed; this module encodes and decodes exact bytes.

/// Encodes every byte except RFC 3986 unreserved characters as `%XX` (upper-case hex).
pub fn percent_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Decodes `%XX` escapes to raw bytes. A `+` stays a `+` (as in opentracker): the fields that
/// matter are binary, where an unescaped `+` can only mean the byte 0x2B. A `%` not followed by
/// two hex digits is an error: guessing would hand the tracker an info-hash nobody sent.
pub fn percent_decode(text: &str) -> Result<Vec<u8>, PercentError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
                let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(PercentError { offset: i }),
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_value(h: u8) -> Option<u8> {
    match h {
        b'0'..=b'9' => Some(h - b'0'),
        b'a'..=b'f' => Some(h - b'a' + 10),
        b'A'..=b'F' => Some(h - b'A' + 10),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad percent escape at character {offset}: '%' must be followed by two hex digits")]
pub struct PercentError {
    pub offset: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        let encoded = percent_encode(&all);
        assert!(encoded.is_ascii());
        assert!(!encoded.contains(['+', '&', '=', '#', ' ']));
        assert_eq!(percent_decode(&encoded).unwrap(), all);
        for b in 0..=255u8 {
            assert_eq!(percent_decode(&percent_encode(&[b])).unwrap(), vec![b]);
        }
    }

    #[test]
    fn unreserved_stay_literal_and_others_are_escaped() {
        assert_eq!(percent_encode(b"aZ09-._~"), "aZ09-._~");
        assert_eq!(percent_encode(&[0x00, 0xff, b' ', b'+']), "%00%FF%20%2B");
    }

    #[test]
    fn decodes_lower_case_and_keeps_plus() {
        assert_eq!(
            percent_decode("%e2%82a+b").unwrap(),
            vec![0xe2, 0x82, b'a', b'+', b'b']
        );
    }

    #[test]
    fn truncated_escapes_are_errors() {
        assert_eq!(percent_decode("ab%4"), Err(PercentError { offset: 2 }));
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%").is_err());
    }
}
