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
    differential(data, whole);
}

/// A token of a value, as bendy reports them (integers parsed; `None` if beyond i64).
#[derive(Debug, PartialEq)]
enum Tok<'a> {
    List,
    Dict,
    End,
    Int(Option<i64>),
    Bytes(&'a [u8]),
}

fn differential(data: &[u8], ours: Result<Value<'_>, BencodeError>) {
    let theirs = bendy_single_value(data);
    match (&ours, theirs) {
        (Ok(value), Some(tokens)) => {
            let mut mine = Vec::new();
            tokens_of(*value, &mut mine);
            assert_eq!(mine, tokens, "bendy reads the value differently");
            assert!(canonical(*value), "bendy accepted keys out of order?");
        }
        (Ok(value), None) => assert!(!canonical(*value), "bendy refuses a canonical value"),
        (Err(BencodeError::IntegerOverflow(_)), Some(tokens)) => {
            assert!(
                tokens.contains(&Tok::Int(None)),
                "overflow without a large integer"
            );
        }
        (Err(e), Some(_)) => panic!("bendy accepts what we refuse ({e})"),
        (Err(_), None) => {}
    }
}

/// bendy's tokens if `data` is exactly one valid, canonical value (depth capped like ours).
fn bendy_single_value(data: &[u8]) -> Option<Vec<Tok<'_>>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    for token in Decoder::new(data).with_max_depth(MAX_DEPTH).tokens() {
        if !out.is_empty() && depth == 0 {
            return None; // a second top-level value
        }
        out.push(match token.ok()? {
            Token::List => {
                depth += 1;
                Tok::List
            }
            Token::Dict => {
                depth += 1;
                Tok::Dict
            }
            Token::End => {
                depth = depth.checked_sub(1)?;
                Tok::End
            }
            Token::Num(n) => Tok::Int(n.parse().ok()),
            Token::String(b) => Tok::Bytes(b),
        });
    }
    (!out.is_empty() && depth == 0).then_some(out)
}

fn tokens_of<'a>(value: Value<'a>, out: &mut Vec<Tok<'a>>) {
    match value {
        Value::Int(n) => out.push(Tok::Int(Some(n))),
        Value::Bytes(b) => out.push(Tok::Bytes(b)),
        Value::List(list) => {
            out.push(Tok::List);
            list.iter().for_each(|item| tokens_of(item, out));
            out.push(Tok::End);
        }
        Value::Dict(dict) => {
            out.push(Tok::Dict);
            for (key, item) in dict.iter() {
                out.push(Tok::Bytes(key));
                tokens_of(item, out);
            }
            out.push(Tok::End);
        }
    }
}

/// Whether every dictionary in the tree has strictly ascending keys.
fn canonical(value: Value<'_>) -> bool {
    match value {
        Value::Int(_) | Value::Bytes(_) => true,
        Value::List(list) => list.iter().all(canonical),
        Value::Dict(dict) => dict.is_canonical(),
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
