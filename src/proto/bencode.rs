//! The one bencode reader of the project, for every untrusted bencoded input (torrent files,
//! tracker replies): zero-copy, strict about syntax, lenient about dictionary key order,
//! depth-limited, allocation-free and panic-free.
//!
//! Why not bendy's decoder: it refuses dictionaries whose keys are not sorted, and real
//! torrents and trackers are sometimes written that way. Such a torrent is still valid to every
//! major client, and its info-hash is the SHA-1 of the bytes as written, so we read it and report
//! whether it was canonical. Encoding stays with bendy (always canonical).
//!
//! [`decode`] takes exactly one value (a torrent file); [`decode_prefix`] takes the first value
//! and ignores what follows (tracker replies with a trailing newline, BEP 9 metadata messages).
//! Either validates the value once; lists and dictionaries are then views over already-checked
//! bytes that are re-walked lazily, so nothing is allocated per element.

/// Deepest nesting accepted. Torrents need 5 levels; the cap bounds recursion on hostile input.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("the data ends in the middle of a value (at byte {0})")]
    UnexpectedEnd(usize),
    #[error("invalid bencode at byte {offset}: {what}")]
    Syntax { offset: usize, what: &'static str },
    #[error("values are nested more than {MAX_DEPTH} levels deep (at byte {0})")]
    TooDeep(usize),
    #[error("the integer at byte {0} does not fit in 64 bits")]
    IntegerOverflow(usize),
    #[error("{extra} bytes of trailing data after the bencoded value (at byte {offset})")]
    TrailingData { offset: usize, extra: usize },
    #[error("the data is empty")]
    Empty,
}

/// One decoded value. Lists and dictionaries are views into the validated input.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(List<'a>),
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    // Accessors take `self`: a value is a small Copy view, and `Value::as_int` works as a path.
    pub fn as_int(self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }
    pub fn as_bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_list(self) -> Option<List<'a>> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    pub fn as_dict(self) -> Option<Dict<'a>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    /// The bencode type name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Bytes(_) => "a string",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dictionary",
        }
    }
}

/// A list: iterate with [`List::iter`].
#[derive(Clone, Copy, Debug)]
pub struct List<'a> {
    doc: &'a [u8],
    /// Offset of the first item (just past `l`).
    start: usize,
    depth: usize,
}

/// A dictionary: iterate with [`Dict::iter`]; `raw` is its exact bytes, `d` to `e`.
#[derive(Clone, Copy, Debug)]
pub struct Dict<'a> {
    doc: &'a [u8],
    start: usize,
    end: usize,
    depth: usize,
    canonical: bool,
}

impl<'a> List<'a> {
    pub fn iter(&self) -> ListIter<'a> {
        ListIter {
            doc: self.doc,
            pos: self.start,
            depth: self.depth,
        }
    }
}

impl<'a> Dict<'a> {
    pub fn iter(&self) -> DictIter<'a> {
        DictIter {
            doc: self.doc,
            pos: self.start + 1,
            depth: self.depth,
        }
    }
    /// The value of `key`. If the key appears more than once, the **last** occurrence wins, as in
    /// most trackers' own parsers; a caller to whom a repeated key is an error (the metainfo
    /// parser) walks [`Dict::iter`] instead. Walks the dictionary: O(its size), no allocation.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, value)| value)
    }
    /// The dictionary's bytes exactly as they appear in the input.
    pub fn raw(&self) -> &'a [u8] {
        self.doc.get(self.start..self.end).unwrap_or_default()
    }
    /// True when every dictionary in this subtree has strictly ascending keys.
    pub fn is_canonical(&self) -> bool {
        self.canonical
    }
}

pub struct ListIter<'a> {
    doc: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.doc.get(self.pos) == Some(&b'e') {
            return None;
        }
        // The bytes were validated by `decode`; an error here is impossible, and ends the walk.
        let parsed = parse_at(self.doc, self.pos, self.depth).ok()?;
        self.pos = parsed.end;
        Some(parsed.value)
    }
}

pub struct DictIter<'a> {
    doc: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Iterator for DictIter<'a> {
    type Item = (&'a [u8], Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.doc.get(self.pos) == Some(&b'e') {
            return None;
        }
        let (key, after_key) = parse_bytes(self.doc, self.pos).ok()?;
        let parsed = parse_at(self.doc, after_key, self.depth).ok()?;
        self.pos = parsed.end;
        Some((key, parsed.value))
    }
}

/// Decodes `doc`, which must hold exactly one value and nothing after it.
pub fn decode(doc: &[u8]) -> Result<Value<'_>, BencodeError> {
    let (value, end) = decode_prefix(doc)?;
    if end != doc.len() {
        return Err(BencodeError::TrailingData {
            offset: end,
            extra: doc.len() - end,
        });
    }
    Ok(value)
}

/// Decodes the first complete value of `doc` and returns it with the offset just past it.
/// Bytes after that value are neither read nor checked.
pub fn decode_prefix(doc: &[u8]) -> Result<(Value<'_>, usize), BencodeError> {
    if doc.is_empty() {
        return Err(BencodeError::Empty);
    }
    let parsed = parse_at(doc, 0, 0)?;
    Ok((parsed.value, parsed.end))
}

struct Parsed<'a> {
    value: Value<'a>,
    end: usize,
    canonical: bool,
}

fn byte_at(doc: &[u8], pos: usize) -> Result<u8, BencodeError> {
    doc.get(pos)
        .copied()
        .ok_or(BencodeError::UnexpectedEnd(pos))
}

/// Parses the value starting at `pos` (at nesting level `depth`), validating all of it.
fn parse_at(doc: &[u8], pos: usize, depth: usize) -> Result<Parsed<'_>, BencodeError> {
    match byte_at(doc, pos)? {
        b'i' => {
            let (n, end) = parse_int(doc, pos + 1, b'e')?;
            Ok(Parsed {
                value: Value::Int(n),
                end,
                canonical: true,
            })
        }
        b'0'..=b'9' => {
            let (bytes, end) = parse_bytes(doc, pos)?;
            Ok(Parsed {
                value: Value::Bytes(bytes),
                end,
                canonical: true,
            })
        }
        b'l' => {
            if depth >= MAX_DEPTH {
                return Err(BencodeError::TooDeep(pos));
            }
            let mut cur = pos + 1;
            let mut canonical = true;
            while byte_at(doc, cur)? != b'e' {
                let item = parse_at(doc, cur, depth + 1)?;
                canonical &= item.canonical;
                cur = item.end;
            }
            Ok(Parsed {
                value: Value::List(List {
                    doc,
                    start: pos + 1,
                    depth: depth + 1,
                }),
                end: cur + 1,
                canonical,
            })
        }
        b'd' => {
            if depth >= MAX_DEPTH {
                return Err(BencodeError::TooDeep(pos));
            }
            let mut cur = pos + 1;
            let mut canonical = true;
            let mut previous_key: Option<&[u8]> = None;
            while byte_at(doc, cur)? != b'e' {
                if !byte_at(doc, cur)?.is_ascii_digit() {
                    return Err(BencodeError::Syntax {
                        offset: cur,
                        what: "a dictionary key must be a string",
                    });
                }
                let (key, after_key) = parse_bytes(doc, cur)?;
                if byte_at(doc, after_key)? == b'e' {
                    return Err(BencodeError::Syntax {
                        offset: after_key,
                        what: "a dictionary key has no value",
                    });
                }
                // Keys out of order (or repeated) are accepted but make the dict non-canonical.
                canonical &= previous_key.is_none_or(|prev| prev < key);
                previous_key = Some(key);
                let item = parse_at(doc, after_key, depth + 1)?;
                canonical &= item.canonical;
                cur = item.end;
            }
            Ok(Parsed {
                value: Value::Dict(Dict {
                    doc,
                    start: pos,
                    end: cur + 1,
                    depth: depth + 1,
                    canonical,
                }),
                end: cur + 1,
                canonical,
            })
        }
        _ => Err(BencodeError::Syntax {
            offset: pos,
            what: "expected `i`, `l`, `d` or a digit",
        }),
    }
}

/// Parses a `<len>:<bytes>` string at `pos`; returns the bytes and the offset past them.
fn parse_bytes(doc: &[u8], pos: usize) -> Result<(&[u8], usize), BencodeError> {
    let (len, colon_end) = parse_int(doc, pos, b':')?;
    let len = usize::try_from(len).map_err(|_| BencodeError::Syntax {
        offset: pos,
        what: "a string length must not be negative",
    })?;
    let end = colon_end
        .checked_add(len)
        .filter(|&end| end <= doc.len())
        .ok_or(BencodeError::UnexpectedEnd(doc.len()))?;
    Ok((&doc[colon_end..end], end))
}

/// Parses a decimal integer at `pos` ending with `terminator`; returns it and the offset past
/// the terminator. Refuses leading zeros, `-0` and empty digits, as the bencode spec does.
fn parse_int(doc: &[u8], pos: usize, terminator: u8) -> Result<(i64, usize), BencodeError> {
    let mut cur = pos;
    let negative = byte_at(doc, cur)? == b'-';
    if negative {
        cur += 1;
    }
    let digits_start = cur;
    let mut value: i64 = 0;
    loop {
        let b = byte_at(doc, cur)?;
        if b == terminator {
            break;
        }
        if !b.is_ascii_digit() {
            return Err(BencodeError::Syntax {
                offset: cur,
                what: "expected a digit",
            });
        }
        let digit = i64::from(b - b'0');
        // Accumulate negatively so i64::MIN is representable.
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_sub(digit))
            .ok_or(BencodeError::IntegerOverflow(pos))?;
        cur += 1;
    }
    let digits = &doc[digits_start..cur];
    if digits.is_empty() {
        return Err(BencodeError::Syntax {
            offset: cur,
            what: "a number has no digits",
        });
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(BencodeError::Syntax {
            offset: digits_start,
            what: "a number has a leading zero",
        });
    }
    if negative && value == 0 {
        return Err(BencodeError::Syntax {
            offset: pos,
            what: "negative zero",
        });
    }
    if negative && terminator == b':' {
        return Err(BencodeError::Syntax {
            offset: pos,
            what: "a string length must not be negative",
        });
    }
    let value = if negative {
        value
    } else {
        value
            .checked_neg()
            .ok_or(BencodeError::IntegerOverflow(pos))?
    };
    Ok((value, cur + 1))
}

#[cfg(test)]
mod tests;

/// Runs one bendy encoding of a message we send. Ours are a few levels deep with sorted keys,
/// so it cannot fail in practice; if it ever did, `fallback` (a valid message saying less) goes
/// out instead of a broken one, and `what` is logged.
pub(crate) fn encode_with(
    what: &str,
    fallback: &[u8],
    build: impl FnOnce(&mut bendy::encoding::Encoder) -> Result<(), bendy::encoding::Error>,
) -> Vec<u8> {
    let mut encoder = bendy::encoding::Encoder::new();
    match build(&mut encoder).and_then(|()| encoder.get_output()) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "could not encode {what}");
            fallback.to_vec()
        }
    }
}
