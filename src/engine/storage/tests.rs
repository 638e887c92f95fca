//! Unit tests of the storage internals: layout validation, the handle bound, dirty tracking.

use std::path::PathBuf;
use std::sync::Arc;

use sha1::{Digest, Sha1};

use super::*;

fn hashes(content: &[u8], piece_len: usize) -> Vec<[u8; 20]> {
    content
        .chunks(piece_len)
        .map(|c| Sha1::digest(c).into())
        .collect()
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// `count` files of `file_len` bytes each, pieces of `piece_len`.
fn many_files(
    root: &Path,
    count: usize,
    file_len: u64,
    piece_len: u32,
) -> (StorageLayout, Vec<u8>) {
    let lens = vec![file_len; count];
    let geometry = Geometry::new(piece_len, &lens).unwrap();
    let data = content(geometry.total_len() as usize);
    let files = (0..count)
        .map(|i| (PathBuf::from(format!("t/{i:04}.bin")), file_len))
        .collect();
    let layout = StorageLayout::new(root, files, geometry, hashes(&data, piece_len as usize));
    (layout, data)
}

fn piece_bytes<'a>(storage: &Storage, data: &'a [u8], piece: PieceIndex) -> &'a [u8] {
    let r = storage.geometry().piece_range(piece);
    &data[r.start as usize..r.end as usize]
}

#[test]
fn storage_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Storage>();
    shareable::<Arc<Storage>>();
}

#[test]
fn verify_needs_the_exact_length_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, data) = many_files(dir.path(), 1, 100, 64);
    let storage = Storage::open(layout).unwrap();
    let p0 = storage.geometry().piece(0).unwrap();
    let p1 = storage.geometry().piece(1).unwrap();
    assert!(storage.verify(p0, &data[..64]));
    assert!(storage.verify(p1, &data[64..]));
    assert!(!storage.verify(p0, &data[1..65]), "wrong bytes");
    assert!(!storage.verify(p1, &data[64..99]), "short");
    let mut longer = data[64..].to_vec();
    longer.push(0);
    assert!(!storage.verify(p1, &longer), "long");
}

#[test]
fn layouts_that_disagree_with_their_geometry_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut layout, _) = many_files(dir.path(), 2, 100, 64);
    layout.files[1].1 = 99;
    assert!(matches!(
        Storage::open(layout.clone()),
        Err(StorageError::FileLengthMismatch { listed: 99, .. })
    ));
    layout.files.pop();
    assert!(matches!(
        Storage::open(layout),
        Err(StorageError::FileCountMismatch {
            listed: 1,
            in_geometry: 2
        })
    ));
    let (mut layout, _) = many_files(dir.path(), 2, 100, 64);
    layout.piece_hashes.pop();
    assert!(matches!(
        Storage::open(layout),
        Err(StorageError::HashCountMismatch {
            pieces: 4,
            hashes: 3
        })
    ));
    let (mut layout, _) = many_files(dir.path(), 2, 100, 64);
    layout.files[1].0 = layout.files[0].0.clone();
    assert!(matches!(
        Storage::open(layout),
        Err(StorageError::DuplicatePath { .. })
    ));
}

#[test]
fn more_files_than_the_handle_limit_stay_correct_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let count = OPEN_FILES_LIMIT * 2 + 5;
    // 10-byte files and 16-byte pieces: most pieces span two files.
    let (layout, data) = many_files(dir.path(), count, 10, 16);
    let storage = Storage::open(layout).unwrap();
    for piece in storage.geometry().pieces() {
        storage
            .write_piece(piece, piece_bytes(&storage, &data, piece))
            .unwrap();
        assert!(storage.open_handles() <= OPEN_FILES_LIMIT);
    }
    storage.sync().unwrap();
    let mut buf = Vec::new();
    for piece in storage.geometry().pieces().rev() {
        storage.read_piece(piece, &mut buf).unwrap();
        assert_eq!(buf, piece_bytes(&storage, &data, piece), "piece {piece}");
    }
    assert_eq!(storage.open_handles(), OPEN_FILES_LIMIT);
    let present = storage.recheck(&mut |_, _| {}).unwrap();
    assert!(present.is_complete());
    for i in 0..count {
        let on_disk = std::fs::read(dir.path().join(format!("t/{i:04}.bin"))).unwrap();
        assert_eq!(on_disk, &data[i * 10..i * 10 + 10]);
    }
}

#[test]
fn sync_reaches_files_whose_handle_was_evicted_and_clears_dirty_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, data) = many_files(dir.path(), OPEN_FILES_LIMIT + 10, 16, 16);
    let storage = Storage::open(layout).unwrap();
    for piece in storage.geometry().pieces() {
        storage
            .write_piece(piece, piece_bytes(&storage, &data, piece))
            .unwrap();
    }
    let dirty = |s: &Storage| s.dirty.iter().filter(|f| f.load(Ordering::Acquire)).count();
    assert_eq!(dirty(&storage), OPEN_FILES_LIMIT + 10);
    storage.sync().unwrap();
    assert_eq!(dirty(&storage), 0);
}

#[test]
fn seeding_storage_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, data) = many_files(dir.path(), 1, 100, 64);
    Storage::open(layout.clone()).unwrap();
    let storage = Storage::open_existing(layout).unwrap();
    let p0 = storage.geometry().piece(0).unwrap();
    assert!(matches!(
        storage.write_piece(p0, &data[..64]),
        Err(StorageError::ReadOnly { piece: 0 })
    ));
}

#[test]
fn concurrent_reads_and_writes_through_one_arc() {
    let dir = tempfile::tempdir().unwrap();
    // More files than handles, so threads also race on eviction.
    let (layout, data) = many_files(dir.path(), OPEN_FILES_LIMIT + 36, 1000, 1024);
    let storage = Arc::new(Storage::open(layout).unwrap());
    let data = Arc::new(data);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (storage, data) = (Arc::clone(&storage), Arc::clone(&data));
            std::thread::spawn(move || {
                let pieces: Vec<_> = storage.geometry().pieces().collect();
                for piece in pieces.iter().skip(t).step_by(4) {
                    let bytes = piece_bytes(&storage, &data, *piece);
                    storage.write_piece(*piece, bytes).unwrap();
                }
                let mut buf = Vec::new();
                for piece in pieces.iter().skip(t).step_by(4) {
                    storage.read_piece(*piece, &mut buf).unwrap();
                    assert_eq!(buf, piece_bytes(&storage, &data, *piece));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(storage.recheck(&mut |_, _| {}).unwrap().is_complete());
}
