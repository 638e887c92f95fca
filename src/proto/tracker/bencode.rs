//! A small, lenient bencode reader and writer for tracker messages only.
//!
//! Tracker replies come from arbitrary servers: some send dictionary keys out of order or a
//! trailing newline, which a strict metainfo decoder rightly refuses. This reader accepts those,
//! but caps nesting depth and never panics; the caller caps the body size.

use std::collections::BTreeMap;

/// Deeper nesting than this is refused: tracker messages are at most three levels deep.
const MAX_DEPTH: usize = 16;

/// A decoded bencode value borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Later duplicates of a key win, as in most trackers' own parsers.
    Dict(BTreeMap<&'a [u8], Value<'a>>),
}

impl<'a> Value<'a> {
    pub(crate) fn as_dict(&self) -> Option<&BTreeMap<&'a [u8], Value<'a>>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    pub(crate) fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Where and why a body is not bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bencode at byte {offset}: {reason}")]
pub struct BencodeError {
    pub offset: usize,
    pub reason: &'static str,
}

/// Decodes one value from the start of `input`; bytes after it are ignored.
pub(crate) fn decode(input: &[u8]) -> Result<Value<'_>, BencodeError> {
    let mut reader = Reader { input, pos: 0 };
    reader.value(0)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, reason: &'static str) -> Result<T, BencodeError> {
        Err(BencodeError {
            offset: self.pos,
            reason,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, BencodeError> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        match self.peek() {
            None => self.err("unexpected end of input"),
            Some(b'i') => {
                self.pos += 1;
                let n = self.number(b'e')?;
                Ok(Value::Int(n))
            }
            Some(b'l') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(b'e') {
                        self.pos += 1;
                        return Ok(Value::List(items));
                    }
                    items.push(self.value(depth + 1)?);
                }
            }
            Some(b'd') => {
                self.pos += 1;
                let mut dict = BTreeMap::new();
                loop {
                    if self.peek() == Some(b'e') {
                        self.pos += 1;
                        return Ok(Value::Dict(dict));
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    dict.insert(key, value);
                }
            }
            Some(b'0'..=b'9') => Ok(Value::Bytes(self.bytes()?)),
            Some(_) => self.err("expected 'i', 'l', 'd' or a string length"),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], BencodeError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return self.err("expected a byte string");
        }
        let len = self.number(b':')?;
        let len = usize::try_from(len).or_else(|_| self.err("negative string length"))?;
        let end = match self.pos.checked_add(len) {
            Some(end) if end <= self.input.len() => end,
            _ => return self.err("string runs past the end of input"),
        };
        let out = self.input.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    /// Reads a decimal integer up to `terminator` and consumes the terminator.
    fn number(&mut self, terminator: u8) -> Result<i64, BencodeError> {
        let start = self.pos;
        let rest = self.input.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == terminator) else {
            return self.err("unterminated integer");
        };
        let digits = rest.get(..len).unwrap_or_default();
        let text = std::str::from_utf8(digits).or_else(|_| self.err("integer is not ASCII"))?;
        let valid = !text.is_empty()
            && text
                .bytes()
                .enumerate()
                .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
            && text != "-";
        if !valid {
            return self.err("malformed integer");
        }
        let n = text
            .parse::<i64>()
            .or_else(|_| self.err("integer out of range"))?;
        self.pos = start + len + 1;
        Ok(n)
    }
}

/// Builds bencode by hand; callers emit dictionary keys in sorted order (BEP 3 requires it).
#[derive(Default)]
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    pub(crate) fn int(&mut self, n: i64) -> &mut Self {
        self.out.push(b'i');
        self.out.extend_from_slice(n.to_string().as_bytes());
        self.out.push(b'e');
        self
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b.len().to_string().as_bytes());
        self.out.push(b':');
        self.out.extend_from_slice(b);
        self
    }
    pub(crate) fn begin_dict(&mut self) -> &mut Self {
        self.out.push(b'd');
        self
    }
    pub(crate) fn begin_list(&mut self) -> &mut Self {
        self.out.push(b'l');
        self
    }
    pub(crate) fn end(&mut self) -> &mut Self {
        self.out.push(b'e');
        self
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_nested_values_and_unsorted_keys() {
        let v = decode(b"d1:bi-3e1:al4:spamee\n").unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.get(&b"b"[..]).and_then(Value::as_int), Some(-3));
        assert_eq!(
            d.get(&b"a"[..]),
            Some(&Value::List(vec![Value::Bytes(b"spam")]))
        );
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            &b""[..],
            b"i12",
            b"ie",
            b"i-e",
            b"i1x2e",
            b"5:abc",
            b"d1:a",
            b"l",
            b"x",
            b"99999999999999999999999:a",
            b"i99999999999999999999e",
        ] {
            assert!(decode(bad).is_err(), "{:?} should be refused", bad);
        }
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = [b'l'; 1000];
        assert!(decode(&deep).is_err());
    }

    #[test]
    fn writer_output_round_trips() {
        let mut w = Writer::default();
        w.begin_dict().bytes(b"a").int(-7).bytes(b"b").begin_list();
        w.bytes(b"xy").end().end();
        let out = w.finish();
        assert_eq!(out, b"d1:ai-7e1:bl2:xyee");
        assert!(decode(&out).is_ok());
    }
}
