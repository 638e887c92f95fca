//! The `Range` request header (RFC 9110 section 14) reduced to what the origin serves: one
//! satisfiable byte span, the whole file, or "unsatisfiable".
//!
//! Rules, decided here once:
//! - A header that is not a valid `bytes=` ranges-specifier is ignored (the whole file is
//!   served with 200), as RFC 9110 allows; so is a range with `first > last`.
//! - With several ranges only the **first** is served, as a single-part 206 whose
//!   `Content-Range` says which bytes it holds. btvod never asks for more than one range;
//!   a client that does learns from `Content-Range` what it got and can ask for the rest.
//! - `last` past the end is clamped to the end; a suffix longer than the file is the file.
//! - A first range that starts at or past the end (or any range of an empty file, or `-0`)
//!   is unsatisfiable: 416 with `Content-Range: bytes */LEN`.

use std::ops::Range;

/// What to send for a request, given the file's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeDecision {
    /// No usable `Range` header: 200 with the whole file.
    Whole,
    /// 206 with these bytes (never empty).
    Partial(Range<u64>),
    /// 416.
    Unsatisfiable,
}

/// One range as written, before the file length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `a-b` (`last` inclusive) or `a-` (`last` = None).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Decides what to send for the raw `Range` header value (if any) of a file of `len` bytes.
pub fn decide(header: Option<&str>, len: u64) -> RangeDecision {
    let Some(first) = header.and_then(first_spec) else {
        return RangeDecision::Whole;
    };
    match first {
        Spec::From { first, last } => {
            if first >= len {
                return RangeDecision::Unsatisfiable;
            }
            let end = last.map_or(len, |last| last.saturating_add(1).min(len));
            RangeDecision::Partial(first..end)
        }
        Spec::Suffix(0) => RangeDecision::Unsatisfiable,
        Spec::Suffix(_) if len == 0 => RangeDecision::Unsatisfiable,
        Spec::Suffix(n) => RangeDecision::Partial(len.saturating_sub(n)..len),
    }
}

/// The first range of a valid `bytes=` specifier; `None` if the whole header is invalid
/// (every listed range must parse, or the header is ignored).
fn first_spec(header: &str) -> Option<Spec> {
    let (unit, set) = header.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut first = None;
    for part in set.split(',') {
        let part = part.trim();
        // RFC 9110 lets empty list elements appear (`bytes=0-1, ,5-6`).
        if part.is_empty() {
            continue;
        }
        let spec = parse_spec(part)?;
        first.get_or_insert(spec);
    }
    first
}

fn parse_spec(part: &str) -> Option<Spec> {
    let (a, b) = part.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return Some(Spec::Suffix(digits(b)?));
    }
    let first = digits(a)?;
    if b.is_empty() {
        return Some(Spec::From { first, last: None });
    }
    let last = digits(b)?;
    (first <= last).then_some(Spec::From {
        first,
        last: Some(last),
    })
}

/// ASCII digits only (`u64::from_str` would accept a leading `+`).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::RangeDecision::{Partial, Unsatisfiable, Whole};
    use super::*;

    #[test]
    fn closed_open_and_suffix_ranges() {
        assert_eq!(decide(Some("bytes=0-99"), 1000), Partial(0..100));
        assert_eq!(decide(Some("bytes=10-10"), 1000), Partial(10..11));
        assert_eq!(decide(Some("bytes=900-"), 1000), Partial(900..1000));
        assert_eq!(decide(Some("bytes=-100"), 1000), Partial(900..1000));
        assert_eq!(decide(Some("BYTES = 1-2"), 1000), Partial(1..3));
    }

    #[test]
    fn ends_past_the_file_are_clamped() {
        assert_eq!(decide(Some("bytes=990-5000"), 1000), Partial(990..1000));
        assert_eq!(decide(Some("bytes=-5000"), 1000), Partial(0..1000));
        assert_eq!(
            decide(Some(&format!("bytes=0-{}", u64::MAX)), 10),
            Partial(0..10)
        );
    }

    #[test]
    fn starts_past_the_end_are_unsatisfiable() {
        assert_eq!(decide(Some("bytes=1000-"), 1000), Unsatisfiable);
        assert_eq!(decide(Some("bytes=1000-2000"), 1000), Unsatisfiable);
        assert_eq!(decide(Some("bytes=-0"), 1000), Unsatisfiable);
        assert_eq!(decide(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(decide(Some("bytes=-5"), 0), Unsatisfiable);
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for header in [
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=-",
            "bytes=",
            "items=0-1",
            "bytes 0-1",
            "bytes=0-1,x",
            "bytes=18446744073709551616-",
        ] {
            assert_eq!(decide(Some(header), 1000), Whole, "{header}");
        }
        assert_eq!(decide(None, 1000), Whole);
    }

    #[test]
    fn only_the_first_of_several_ranges_is_served() {
        assert_eq!(decide(Some("bytes=500-599,0-9"), 1000), Partial(500..600));
        assert_eq!(decide(Some("bytes=, 3-4 ,7-8"), 1000), Partial(3..5));
        // The first decides even when a later one would be satisfiable.
        assert_eq!(decide(Some("bytes=2000-,0-1"), 1000), Unsatisfiable);
    }
}
