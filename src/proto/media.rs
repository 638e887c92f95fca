//! A movie's duration from its container, read from whichever bytes are at hand: MP4 (`moov` /
//! `mvhd`, wherever `moov` is) and Matroska/WebM (`Segment` / `Info` / `Duration`). `btvod
//! stream --rate auto` divides the file's length by it.
//!
//! Written here rather than taken from a crate: the container crates read a whole file through
//! `Read + Seek`, while this must work from the verified pieces only and say which bytes it
//! needs next. It walks headers with every size checked and never allocates more than
//! [`MAX_HEADER`] bytes.

use std::ops::Range;
use std::time::Duration;

/// The most bytes one header (an MP4 `moov`, a Matroska `Info`) may take to be read.
pub const MAX_HEADER: u64 = 16 << 20;

/// What a probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// The movie plays this long, from this container.
    Duration {
        duration: Duration,
        container: &'static str,
    },
    /// These bytes of the file are needed to go on.
    Need(Range<u64>),
    /// Not a container this knows, or one that does not say its duration.
    Unknown,
}

/// Reads bytes of the file: `None` when they are not available (yet).
pub trait ReadAt {
    fn read_at(&mut self, range: Range<u64>) -> Option<Vec<u8>>;
}

impl<F: FnMut(Range<u64>) -> Option<Vec<u8>>> ReadAt for F {
    fn read_at(&mut self, range: Range<u64>) -> Option<Vec<u8>> {
        self(range)
    }
}

/// The duration of a file of `len` bytes, or which bytes to read first.
pub fn probe(len: u64, read: &mut dyn ReadAt) -> Probe {
    let head = 0..len.min(16);
    let Some(first) = read.read_at(head.clone()) else {
        return Probe::Need(head);
    };
    if first.len() >= 8 && &first[4..8] == b"ftyp" {
        return mp4(len, read);
    }
    if first.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return matroska(len, read);
    }
    Probe::Unknown
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
}

/// Top-level boxes from the start until `moov`, skipping the others (`mdat` included).
fn mp4(len: u64, read: &mut dyn ReadAt) -> Probe {
    let mut at = 0u64;
    while at + 8 <= len {
        let want = at..(at + 16).min(len);
        let Some(h) = read.read_at(want.clone()) else {
            return Probe::Need(want);
        };
        if h.len() < 8 {
            return Probe::Unknown;
        }
        let (size, header) = match be(&h[0..4]) {
            0 => (len - at, 8),
            1 if h.len() >= 16 => (be(&h[8..16]), 16),
            1 => return Probe::Unknown,
            n => (n, 8),
        };
        if size < header || at.saturating_add(size) > len {
            return Probe::Unknown;
        }
        if &h[4..8] == b"moov" {
            if size > MAX_HEADER {
                return Probe::Unknown;
            }
            let body = at + header..at + size;
            let Some(moov) = read.read_at(body.clone()) else {
                return Probe::Need(body);
            };
            return mvhd(&moov).map_or(Probe::Unknown, |duration| Probe::Duration {
                duration,
                container: "MP4",
            });
        }
        at += size;
    }
    Probe::Unknown
}

/// The `mvhd` child of a `moov` body: duration over timescale.
fn mvhd(moov: &[u8]) -> Option<Duration> {
    let mut at = 0usize;
    while at + 8 <= moov.len() {
        let size = usize::try_from(be(&moov[at..at + 4])).ok()?;
        if size < 8 || at.checked_add(size)? > moov.len() {
            return None;
        }
        if &moov[at + 4..at + 8] == b"mvhd" {
            let b = &moov[at + 8..at + size];
            let (scale, duration) = match b.first()? {
                0 => (be(b.get(12..16)?), be(b.get(16..20)?)),
                1 => (be(b.get(20..24)?), be(b.get(24..32)?)),
                _ => return None,
            };
            if scale == 0 || duration == 0 || duration == u64::from(u32::MAX) {
                return None;
            }
            return Duration::try_from_secs_f64(duration as f64 / scale as f64).ok();
        }
        at += size;
    }
    None
}

/// An EBML variable-length integer at the start of `b`: (value, length). IDs keep their
/// marker bit; sizes lose it, and a size of all ones is "unknown" (`None` value).
fn vint(b: &[u8], keep_marker: bool) -> Option<(Option<u64>, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len {
        return None;
    }
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for &byte in &b[1..len] {
        value = (value << 8) | u64::from(byte);
    }
    let all_ones = !keep_marker && value == (1u64 << (7 * len)) - 1;
    Some(((!all_ones).then_some(value), len))
}

/// One element header at `at`: (id, body range); `None` for a malformed or unsized one.
fn element(
    read: &mut dyn ReadAt,
    at: u64,
    end: u64,
) -> Result<Option<(u64, Range<u64>)>, Range<u64>> {
    let want = at..(at + 12).min(end);
    let h = read.read_at(want.clone()).ok_or(want)?;
    let Some((Some(id), id_len)) = vint(&h, true) else {
        return Ok(None);
    };
    let Some((size, size_len)) = h.get(id_len..).and_then(|rest| vint(rest, false)) else {
        return Ok(None);
    };
    let start = at + (id_len + size_len) as u64;
    // An unknown size runs to the end of its parent (a live-written Segment does this).
    let body_end = size.map_or(end, |s| start.saturating_add(s));
    if body_end > end {
        return Ok(None);
    }
    Ok(Some((id, start..body_end)))
}

const EBML: u64 = 0x1A45_DFA3;
const SEGMENT: u64 = 0x1853_8067;
const INFO: u64 = 0x1549_A966;
const CLUSTER: u64 = 0x1F43_B675;
const TIMESTAMP_SCALE: u64 = 0x2A_D7B1;
const DURATION: u64 = 0x4489;

fn matroska(len: u64, read: &mut dyn ReadAt) -> Probe {
    let mut at = 0;
    // The EBML header, then the Segment, then the Segment's children until Info.
    let mut in_segment = false;
    let mut end = len;
    while at < end {
        let (id, body) = match element(read, at, end) {
            Err(need) => return Probe::Need(need),
            Ok(None) => return Probe::Unknown,
            Ok(Some(e)) => e,
        };
        match id {
            EBML if !in_segment => at = body.end,
            SEGMENT if !in_segment => {
                in_segment = true;
                end = body.end;
                at = body.start;
            }
            INFO if in_segment => {
                if body.end - body.start > MAX_HEADER {
                    return Probe::Unknown;
                }
                let Some(info) = read.read_at(body.clone()) else {
                    return Probe::Need(body);
                };
                return info_duration(&info).map_or(Probe::Unknown, |duration| Probe::Duration {
                    duration,
                    container: "Matroska",
                });
            }
            // Media data before Info: the file does not say its duration up front.
            CLUSTER => return Probe::Unknown,
            _ if in_segment => at = body.end,
            _ => return Probe::Unknown,
        }
    }
    Probe::Unknown
}

/// Duration (a float in timestamp-scale units, default 1 ms) from an Info body.
fn info_duration(info: &[u8]) -> Option<Duration> {
    let mut scale_ns = 1_000_000u64;
    let mut duration = None;
    let mut at = 0usize;
    while at < info.len() {
        let (Some(id), id_len) = vint(&info[at..], true)? else {
            return None;
        };
        let (Some(size), size_len) = vint(info.get(at + id_len..)?, false)? else {
            return None;
        };
        let start = at + id_len + size_len;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let body = info.get(start..end)?;
        match id {
            TIMESTAMP_SCALE if !body.is_empty() && body.len() <= 8 => scale_ns = be(body),
            DURATION => {
                duration = match body.len() {
                    4 => Some(f64::from(f32::from_be_bytes(body.try_into().ok()?))),
                    8 => Some(f64::from_bits(be(body))),
                    _ => None,
                }
            }
            _ => {}
        }
        at = end;
    }
    let secs = duration? * scale_ns as f64 / 1e9;
    (secs.is_finite() && secs > 0.0)
        .then(|| Duration::try_from_secs_f64(secs).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn mvhd_v0(scale: u32, duration: u32) -> Vec<u8> {
        let mut b = vec![0u8; 4 + 8];
        b.extend_from_slice(&scale.to_be_bytes());
        b.extend_from_slice(&duration.to_be_bytes());
        b.extend_from_slice(&[0; 80]);
        boxed(b"mvhd", &b)
    }

    /// Reads served only inside one of the `available` spans (start, end).
    fn reader(file: &[u8], available: &[(u64, u64)]) -> impl FnMut(Range<u64>) -> Option<Vec<u8>> {
        let file = file.to_vec();
        let available = available.to_vec();
        move |r: Range<u64>| {
            available
                .iter()
                .any(|&(start, end)| r.start >= start && r.end <= end)
                .then(|| file[r.start as usize..r.end as usize].to_vec())
        }
    }

    #[test]
    fn mp4_with_moov_first_or_last() {
        let ftyp = boxed(b"ftyp", b"isom\0\0\x02\0isom");
        let moov = boxed(b"moov", &mvhd_v0(1000, 90_500));
        let mdat = boxed(b"mdat", &[7; 5000]);
        let fast = [ftyp.clone(), moov.clone(), mdat.clone()].concat();
        let len = fast.len() as u64;
        assert_eq!(
            probe(len, &mut reader(&fast, &[(0, len)])),
            Probe::Duration {
                duration: Duration::from_millis(90_500),
                container: "MP4"
            }
        );
        // moov at the end: only the start is there, so it asks for the moov header.
        let slow = [ftyp.clone(), mdat.clone(), moov].concat();
        let moov_at = (ftyp.len() + mdat.len()) as u64;
        let len = slow.len() as u64;
        assert_eq!(
            probe(len, &mut reader(&slow, &[(0, 100)])),
            Probe::Need(moov_at..moov_at + 16)
        );
        assert!(matches!(
            probe(len, &mut reader(&slow, &[(0, 100), (moov_at, len)])),
            Probe::Duration { .. }
        ));
    }

    fn ebml(id: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        out.push(0x01); // an 8-byte size
        out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn matroska_duration_in_its_timestamp_scale() {
        let header = ebml(&[0x1A, 0x45, 0xDF, 0xA3], &ebml(&[0x42, 0x82], b"webm"));
        let info = [
            ebml(&[0x2A, 0xD7, 0xB1], &1_000_000u32.to_be_bytes()),
            ebml(&[0x44, 0x89], &12_000.0f64.to_bits().to_be_bytes()),
        ]
        .concat();
        let segment = ebml(
            &[0x18, 0x53, 0x80, 0x67],
            &[
                ebml(&[0x11, 0x4D, 0x9B, 0x74], &[0; 20]),
                ebml(&[0x15, 0x49, 0xA9, 0x66], &info),
            ]
            .concat(),
        );
        let file = [header, segment].concat();
        let len = file.len() as u64;
        assert_eq!(
            probe(len, &mut reader(&file, &[(0, len)])),
            Probe::Duration {
                duration: Duration::from_secs(12),
                container: "Matroska"
            }
        );
        assert!(matches!(
            probe(len, &mut reader(&file, &[(0, 30)])),
            Probe::Need(_)
        ));
    }

    #[test]
    fn garbage_and_lies_are_unknown_not_panics() {
        assert_eq!(probe(4, &mut reader(b"abcd", &[(0, 4)])), Probe::Unknown);
        // A box claiming to be larger than the file.
        let mut lie = boxed(b"ftyp", b"isom");
        lie[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        let len = lie.len() as u64;
        assert_eq!(probe(len, &mut reader(&lie, &[(0, len)])), Probe::Unknown);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..200u32)
                .map(|i| (i as u8).wrapping_mul(n).wrapping_add(n))
                .collect();
            let mut with_magic = vec![0x1A, 0x45, 0xDF, 0xA3];
            with_magic.extend_from_slice(&junk);
            let _ = probe(
                with_magic.len() as u64,
                &mut reader(&with_magic, &[(0, with_magic.len() as u64)]),
            );
            let _ = probe(
                junk.len() as u64,
                &mut reader(&junk, &[(0, junk.len() as u64)]),
            );
        }
    }
}
