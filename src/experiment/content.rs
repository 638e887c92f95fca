//! Content for worlds: deterministic bytes from a seed (one file or a directory), the choice of
//! which pieces a partial peer saved (random, prefix, suffix, stripe), and partial copies made
//! as sparse files holding only those pieces.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use super::scenario::{ContentSource, ContentSpec, Draw};
use crate::proto::metainfo::Metainfo;

/// Mixes a seed with labels into an independent seed (SplitMix64 finaliser), so every peer,
/// class and incarnation gets its own reproducible random stream.
pub fn mix(seed: u64, labels: &[u64]) -> u64 {
    let mut x = seed;
    for &label in labels {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15 ^ label.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

/// A fast deterministic byte stream (xorshift64*), the same on every machine.
pub struct ByteStream {
    state: u64,
}

impl ByteStream {
    pub fn new(seed: u64) -> ByteStream {
        // xorshift must not start at zero.
        ByteStream {
            state: mix(seed, &[0x0063_6f6e_7465_6e74]) | 1,
        }
    }

    /// Fills `buf` with the next bytes (a whole number of 8-byte words is drawn per call, so
    /// call with lengths divisible by 8 to keep one stream across calls).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Where the complete content of `spec` lives once [`materialise`] has run in `dir`.
pub fn content_path(spec: &ContentSpec, dir: &Path) -> PathBuf {
    match &spec.source {
        ContentSource::Path(path) => path.clone(),
        ContentSource::Generated { .. } => dir.join(&spec.name),
    }
}

/// Writes generated content under `dir` (skipped for a real path, which must exist) and returns
/// its path: the file itself, or the torrent's top directory.
pub fn materialise(spec: &ContentSpec, dir: &Path) -> io::Result<PathBuf> {
    let path = content_path(spec, dir);
    let ContentSource::Generated { seed, size, files } = &spec.source else {
        fs::metadata(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("content {}: {e}", path.display())))?;
        return Ok(path);
    };
    let mut stream = ByteStream::new(*seed);
    match files {
        None => write_stream(&path, *size, &mut stream)?,
        Some(files) => {
            for (parts, len) in files {
                let file: PathBuf = parts.iter().collect();
                write_stream(&path.join(file), *len, &mut stream)?;
            }
        }
    }
    Ok(path)
}

fn write_stream(path: &Path, len: u64, stream: &mut ByteStream) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut out = BufWriter::new(File::create(path)?);
    let mut buf = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        stream.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// The pieces peer `index` of `count` in its class saved: `fraction` of the `pieces`, chosen by
/// `draw` (random ones from `seed`).
pub fn draw_pieces(
    draw: Draw,
    fraction: f64,
    pieces: u32,
    index: u32,
    count: u32,
    seed: u64,
) -> Vec<u32> {
    let k = ((fraction * f64::from(pieces)).round() as u32).min(pieces);
    let mut chosen: Vec<u32> = match draw {
        Draw::Prefix => (0..k).collect(),
        Draw::Suffix => (pieces - k..pieces).collect(),
        Draw::Stripe => {
            let start = (u64::from(index) * u64::from(pieces) / u64::from(count.max(1))) as u32;
            (0..k).map(|j| (start + j) % pieces).collect()
        }
        Draw::Random => {
            let mut rng = StdRng::seed_from_u64(seed);
            sample(&mut rng, pieces as usize, k as usize)
                .into_iter()
                .map(|i| i as u32)
                .collect()
        }
    };
    chosen.sort_unstable();
    chosen
}

/// Makes at `target` a copy of the torrent's content at `complete` that holds only `pieces`:
/// every file at full length (sparse), the chosen pieces' bytes copied in, the rest zero.
/// Anything at `target` before is replaced.
pub fn write_partial(
    meta: &Metainfo,
    complete: &Path,
    target: &Path,
    pieces: &[u32],
) -> io::Result<()> {
    if target.is_dir() {
        fs::remove_dir_all(target)?;
    } else if target.exists() {
        fs::remove_file(target)?;
    }
    let paths = file_paths(meta);
    let open = |root: &Path, rel: &Path, write: bool| -> io::Result<File> {
        let path = if meta.is_single_file {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        if write {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            File::options()
                .create(true)
                .truncate(true)
                .write(true)
                .open(path)
        } else {
            File::open(path)
        }
    };
    let mut sources = Vec::new();
    let mut sinks = Vec::new();
    for (rel, len) in &paths {
        sources.push(open(complete, rel, false)?);
        let sink = open(target, rel, true)?;
        sink.set_len(*len)?;
        sinks.push(sink);
    }
    let geometry = &meta.geometry;
    let mut buf = Vec::new();
    for &p in pieces {
        let Some(piece) = geometry.piece(p) else {
            continue;
        };
        for slice in geometry.file_slices(geometry.piece_range(piece)) {
            buf.resize(slice.len as usize, 0);
            sources[slice.file].read_exact_at(&mut buf, slice.file_offset)?;
            sinks[slice.file].write_all_at(&buf, slice.file_offset)?;
        }
    }
    Ok(())
}

/// Each file's path inside the torrent's top directory and its length.
fn file_paths(meta: &Metainfo) -> Vec<(PathBuf, u64)> {
    meta.files
        .iter()
        .map(|f| (f.path.iter().collect::<PathBuf>(), f.length))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_the_same_whatever_the_chunking() {
        let mut whole = vec![0u8; 4096];
        ByteStream::new(9).fill(&mut whole);
        let mut parts = vec![0u8; 4096];
        let mut s = ByteStream::new(9);
        for chunk in parts.chunks_mut(512) {
            s.fill(chunk);
        }
        assert_eq!(whole, parts);
        let mut other = vec![0u8; 4096];
        ByteStream::new(10).fill(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn draws_take_the_fraction_from_the_right_place() {
        assert_eq!(draw_pieces(Draw::Prefix, 0.3, 10, 0, 1, 1), vec![0, 1, 2]);
        assert_eq!(draw_pieces(Draw::Suffix, 0.3, 10, 0, 1, 1), vec![7, 8, 9]);
        assert_eq!(draw_pieces(Draw::Stripe, 0.2, 10, 2, 4, 1), vec![5, 6]);
        assert_eq!(draw_pieces(Draw::Stripe, 0.3, 10, 3, 4, 1), vec![7, 8, 9]);
        // The last stripe wraps around to the start.
        assert_eq!(
            draw_pieces(Draw::Stripe, 0.4, 10, 3, 4, 1),
            vec![0, 7, 8, 9]
        );
        let a = draw_pieces(Draw::Random, 0.5, 100, 0, 1, 7);
        assert_eq!(a.len(), 50);
        assert_eq!(a, draw_pieces(Draw::Random, 0.5, 100, 0, 1, 7));
        assert_ne!(a, draw_pieces(Draw::Random, 0.5, 100, 0, 1, 8));
        assert!(draw_pieces(Draw::Random, 0.0, 100, 0, 1, 7).is_empty());
        assert_eq!(
            draw_pieces(Draw::Random, 1.0, 5, 0, 1, 7),
            vec![0, 1, 2, 3, 4]
        );
    }
}
