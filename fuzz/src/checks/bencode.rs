//! `bencode`: the reader accepts exactly the strict encodings, so whatever it accepts, written
//! back in the order it was read, is the input byte for byte; `Dict::raw` is that dictionary's
//! own bytes and `is_canonical` says whether its keys (at every level) ascend strictly.
//! Differential: bendy's strict decoder (the one the project's encoder side comes with)
//! accepts a single value exactly when ours accepts it as canonical, with the same tokens.

use bendy::decoding::Decoder;
use bendy::state_tracker::Token;
use btvod::proto::bencode::{BencodeError, MAX_DEPTH, Value, decode, decode_prefix};

pub fn bencode(data: &[u8]) {
    let whole = decode(data);
    let prefix = decode_prefix(data);
    match &prefix {
        Ok((value, end)) => {
            assert!(*end > 0 && *end <= data.len());
            let mut written = Vec::with_capacity(*end);
            write(*value, 0, &mut written);
            assert_eq!(
                written,
                &data[..*end],
                "a decoded value re-encodes differently"
            );
            match &whole {
                Ok(_) => assert_eq!(*end, data.len()),
                Err(BencodeError::TrailingData { offset, extra }) => {
                    assert_eq!((*offset, *offset + *extra), (*end, data.len()));
                }
                Err(e) => panic!("decode_prefix took {end} bytes but decode failed: {e}"),
            }
            // The prefix alone is one complete value.
            assert!(decode(&data[..*end]).is_ok());
        }
        Err(e) => assert_eq!(
            whole.as_ref().err(),
            Some(e),
            "decode and decode_prefix disagree"
        ),
    }
}

/// Writes `value` as read (dictionary keys in input order) and checks each dictionary's view.
/// Returns whether the subtree is canonical.
fn write(value: Value<'_>, depth: usize, out: &mut Vec<u8>) -> bool {
    assert!(depth <= MAX_DEPTH, "nesting beyond MAX_DEPTH was accepted");
    match value {
        Value::Int(n) => {
            out.extend_from_slice(format!("i{n}e").as_bytes());
            true
        }
        Value::Bytes(b) => {
            write_bytes(b, out);
            true
        }
        Value::List(list) => {
            out.push(b'l');
            let mut canonical = true;
            for item in list.iter() {
                canonical &= write(item, depth + 1, out);
            }
            out.push(b'e');
            canonical
        }
        Value::Dict(dict) => {
            let start = out.len();
            out.push(b'd');
            let mut canonical = true;
            let mut previous: Option<&[u8]> = None;
            for (key, item) in dict.iter() {
                canonical &= previous.is_none_or(|p| p < key);
                previous = Some(key);
                write_bytes(key, out);
                canonical &= write(item, depth + 1, out);
            }
            out.push(b'e');
            assert_eq!(
                dict.raw(),
                &out[start..],
                "Dict::raw is not the dictionary's bytes"
            );
            assert_eq!(
                dict.is_canonical(),
                canonical,
                "Dict::is_canonical is wrong"
            );
            if let Some((key, last)) = dict.iter().last() {
                // `get` finds the last occurrence of a key; the last entry is one.
                let got = dict.get(key).expect("a key that is there");
                assert_eq!(
                    plain(got),
                    plain(last),
                    "Dict::get missed the last occurrence"
                );
            }
            canonical
        }
    }
}

/// The value's bytes, without the checks (a check per level would be exponential in depth).
fn plain(value: Value<'_>) -> Vec<u8> {
    fn go(value: Value<'_>, out: &mut Vec<u8>) {
        match value {
            Value::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Value::Bytes(b) => write_bytes(b, out),
            Value::List(list) => {
                out.push(b'l');
                list.iter().for_each(|item| go(item, out));
                out.push(b'e');
            }
            Value::Dict(dict) => out.extend_from_slice(dict.raw()),
        }
    }
    let mut out = Vec::new();
    go(value, &mut out);
    out
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}
