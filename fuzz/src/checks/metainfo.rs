//! `metainfo`: a torrent that parses keeps every promise of `Metainfo`: the info-hash is the
//! SHA-1 of the info dictionary exactly as it appears in the file, the geometry covers the
//! files exactly with one hash per piece, and no path can leave the download directory.

use std::collections::HashSet;
use std::path::Component;

use btvod::proto::metainfo::{MAX_PIECE_LEN, Metainfo};
use sha1::{Digest, Sha1};

pub fn metainfo(data: &[u8]) {
    let Ok(m) = Metainfo::from_bytes(data) else {
        return;
    };
    let raw = m.raw_info();
    assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(raw)));
    if data.len() <= 1 << 16 {
        assert!(
            data.windows(raw.len()).any(|w| w == raw),
            "raw_info is not a slice of the file"
        );
    }

    let g = &m.geometry;
    let total: u64 = m.files.iter().map(|f| f.length).sum();
    assert!(total > 0);
    assert_eq!(g.total_len(), total);
    assert!(g.piece_len() > 0 && g.piece_len() <= MAX_PIECE_LEN);
    assert_eq!(
        u64::from(g.piece_count()),
        total.div_ceil(u64::from(g.piece_len()))
    );
    assert_eq!(m.piece_hashes().len(), g.piece_count() as usize);
    assert_eq!(g.files().len(), m.files.len());
    let last = g.last_piece();
    let last_size = g.piece_size(last);
    assert!(last_size > 0 && last_size <= g.piece_len());
    assert_eq!(
        u64::from(g.piece_count() - 1) * u64::from(g.piece_len()) + u64::from(last_size),
        total
    );
    let block_bytes: u64 = g.blocks(last).map(|b| u64::from(b.len())).sum();
    assert_eq!(block_bytes, u64::from(last_size));
    assert_eq!(m.piece_hash(last), m.piece_hashes()[last.as_usize()]);

    assert!(safe_component(&m.name), "unsafe name {:?}", m.name);
    if m.is_single_file {
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].path, vec![m.name.clone()]);
    }
    let mut seen = HashSet::new();
    for (i, file) in m.files.iter().enumerate() {
        assert!(!file.path.is_empty());
        for c in &file.path {
            assert!(safe_component(c), "unsafe path component {c:?}");
        }
        assert!(seen.insert(file.path.clone()), "path listed twice");
        let rel = m.relative_path(i);
        assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
        let pieces = g.pieces_of_file(i);
        assert!(pieces.end <= g.piece_count());
    }
    for file in &m.files {
        for cut in 1..file.path.len() {
            assert!(
                !seen.contains(&file.path[..cut]),
                "a file is also a directory"
            );
        }
    }
    assert!(m.movie_file(None).is_some());
    for tier in m.tracker_tiers() {
        assert!(!tier.is_empty() && tier.iter().all(|url| !url.is_empty()));
    }
    let _ = m.describe();

    let again = Metainfo::from_bytes(data).expect("parsing is deterministic");
    assert_eq!(again.info_hash, m.info_hash);
}

fn safe_component(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0'])
}
