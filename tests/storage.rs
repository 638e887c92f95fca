//! Storage on a real file system: multi-file round trips, resume after a damaged partial
//! download, path escapes refused, a torrent past 4 GiB, and piece hashes made by mktorrent
//! and read by libtorrent agreeing with ours.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use btvod::engine::storage::{Storage, StorageError, StorageLayout};
use btvod::proto::geometry::{Geometry, PieceIndex};
use sha1::{Digest, Sha1};

/// Runs a test body on its own thread and fails it if it takes longer than `secs`.
fn bounded(secs: u64, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic so the message is shown.
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test took longer than {secs} s"),
    }
}

fn content(len: usize) -> Vec<u8> {
    // Varied bytes so a misplaced or shifted write changes some hash.
    (0..len).map(|i| (i * 31 + i / 256 * 7 + 3) as u8).collect()
}

fn hashes(data: &[u8], piece_len: u32) -> Vec<[u8; 20]> {
    data.chunks(piece_len as usize)
        .map(|c| Sha1::digest(c).into())
        .collect()
}

const PIECE_LEN: u32 = 1024;
/// Pieces span files, one file is empty, and the last piece (8) is one byte in a one-byte file.
const FILES: [(&str, u64); 6] = [
    ("movie/a.bin", 1500),
    ("movie/empty.txt", 0),
    ("movie/sub/c.bin", 2600),
    ("movie/sub/d.bin", 700),
    ("movie/e.bin", 3392),
    ("movie/f.bin", 1),
];

fn movie_layout(root: &Path) -> (StorageLayout, Vec<u8>) {
    let lens: Vec<u64> = FILES.iter().map(|f| f.1).collect();
    let geometry = Geometry::new(PIECE_LEN, &lens).unwrap();
    let data = content(geometry.total_len() as usize);
    let files = FILES.iter().map(|(p, l)| (PathBuf::from(p), *l)).collect();
    let layout = StorageLayout::new(root, files, geometry, hashes(&data, PIECE_LEN));
    (layout, data)
}

fn piece_of<'a>(geometry: &Geometry, data: &'a [u8], piece: PieceIndex) -> &'a [u8] {
    let r = geometry.piece_range(piece);
    &data[r.start as usize..r.end as usize]
}

fn piece(storage: &Storage, i: u32) -> PieceIndex {
    storage.geometry().piece(i).unwrap()
}

fn write_all(storage: &Storage, data: &[u8]) {
    // Out of order, as a swarm delivers them.
    let mut pieces: Vec<_> = storage.geometry().pieces().collect();
    pieces.reverse();
    pieces.rotate_left(3);
    for p in pieces {
        let bytes = piece_of(storage.geometry(), data, p);
        assert!(storage.verify(p, bytes));
        storage.write_piece(p, bytes).unwrap();
    }
}

#[test]
fn multi_file_round_trip_with_spanning_pieces_empty_file_and_one_byte_last_piece() {
    bounded(30, || {
        let dir = tempfile::tempdir().unwrap();
        let (layout, data) = movie_layout(dir.path());
        let storage = Storage::open(layout).unwrap();
        let g = storage.geometry().clone();
        assert_eq!(g.piece_count(), 9);
        assert_eq!(g.piece_size(g.last_piece()), 1);

        write_all(&storage, &data);
        storage.sync().unwrap();

        // Files on disk hold exactly their slice of the stream; the empty file exists.
        let mut offset = 0usize;
        for (path, len) in FILES {
            let on_disk = std::fs::read(dir.path().join(path)).unwrap();
            assert_eq!(on_disk, &data[offset..offset + len as usize], "{path}");
            offset += len as usize;
        }

        let mut buf = Vec::new();
        for p in g.pieces() {
            storage.read_piece(p, &mut buf).unwrap();
            assert_eq!(buf, piece_of(&g, &data, p), "piece {p}");
            assert!(storage.check_piece(p).unwrap(), "piece {p} on disk");
            for block in g.blocks(p) {
                let mut out = vec![0; block.len() as usize];
                storage.read_block(block, &mut out).unwrap();
                let start = g.piece_range(p).start as usize + block.offset() as usize;
                assert_eq!(out, &data[start..start + out.len()]);
            }
        }
        // Unaligned spans a peer may ask for, crossing a.bin -> c.bin and c.bin -> d.bin -> e.bin.
        for (pi, off, len) in [(1, 400, 600), (3, 1, 1023), (4, 0, 1024), (8, 0, 1)] {
            let span = g.span(pi, off, len).unwrap();
            let mut out = vec![0; len as usize];
            storage.read_block(span, &mut out).unwrap();
            let start = (pi * PIECE_LEN + off) as usize;
            assert_eq!(
                out,
                &data[start..start + len as usize],
                "span {pi}/{off}/{len}"
            );
        }
        // A buffer of the wrong size is an error, not a panic or a partial read.
        let mut short = vec![0; 10];
        assert!(matches!(
            storage.read_block(g.span(0, 0, 11).unwrap(), &mut short),
            Err(StorageError::BufferSize { .. })
        ));
        assert!(storage.write_piece(piece(&storage, 8), &[1, 2]).is_err());
        assert!(storage.recheck(&mut |_, _| {}).unwrap().is_complete());
    });
}

#[test]
fn resume_marks_exactly_the_pieces_whose_bytes_hash_right() {
    bounded(30, || {
        let dir = tempfile::tempdir().unwrap();
        let (layout, data) = movie_layout(dir.path());
        // Pieces by byte range: 0..1024 a; 1024..2048 a+c; 2048..3072 c; 3072..4096 c;
        // 4096..5120 c+d+e; 5120..6144 e; 6144..7168 e; 7168..8192 e; 8192 f.
        {
            let storage = Storage::open(layout.clone()).unwrap();
            let g = storage.geometry().clone();
            for i in [0, 1, 2, 4, 5, 6, 8] {
                let p = piece(&storage, i);
                storage.write_piece(p, piece_of(&g, &data, p)).unwrap();
            }
            // 3 and 7 never arrived: their regions are holes that read as zeros.
            storage.sync().unwrap();
        }
        let movie = dir.path().join("movie");
        // Corrupt one byte of piece 1, inside c.bin (piece 1 holds c.bin bytes 0..548).
        let c = movie.join("sub/c.bin");
        let mut bytes = std::fs::read(&c).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&c, bytes).unwrap();
        // d.bin is lost: piece 4 goes.
        std::fs::remove_file(movie.join("sub/d.bin")).unwrap();
        // e.bin is cut inside piece 6 (e.bin starts at 4800; piece 6 needs e.bin up to 2368).
        let e = std::fs::OpenOptions::new()
            .write(true)
            .open(movie.join("e.bin"))
            .unwrap();
        e.set_len(1500).unwrap();
        drop(e);

        let expected_present = vec![0, 2, 5, 8];

        // Rechecked before anything repairs the files: missing and short files are absent.
        let storage = Storage::open_existing(layout.clone());
        assert!(
            matches!(&storage, Err(StorageError::Missing { path }) if path.ends_with("sub/d.bin")),
            "seeding needs every file: {:?}",
            storage.err()
        );
        // What the engine does to resume: open (recreates d.bin, extends e.bin) and recheck.
        let mut calls = Vec::new();
        let storage = Storage::open(layout).unwrap();
        assert_eq!(
            std::fs::metadata(movie.join("sub/d.bin")).unwrap().len(),
            700
        );
        assert_eq!(std::fs::metadata(movie.join("e.bin")).unwrap().len(), 3392);
        let present = storage
            .recheck(&mut |n, total| calls.push((n, total)))
            .unwrap();
        assert_eq!(present.ones().collect::<Vec<_>>(), expected_present);
        assert_eq!(calls.len(), 9);
        assert_eq!(calls.last(), Some(&(9, 9)));
        assert!(calls.windows(2).all(|w| w[0].0 + 1 == w[1].0));
        for threads in [1, 3] {
            let again = storage
                .recheck_with_threads(threads, &mut |_, _| {})
                .unwrap();
            assert_eq!(again, present, "{threads} threads");
        }
    });
}

#[test]
fn a_file_missing_or_short_at_recheck_time_makes_its_pieces_absent() {
    bounded(30, || {
        let dir = tempfile::tempdir().unwrap();
        let (layout, data) = movie_layout(dir.path());
        let storage = Storage::open(layout.clone()).unwrap();
        write_all(&storage, &data);
        drop(storage);
        let storage = Storage::open(layout).unwrap();
        // Removed and cut after open, before any handle to them is cached.
        std::fs::remove_file(dir.path().join("movie/a.bin")).unwrap();
        let e = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("movie/e.bin"))
            .unwrap();
        e.set_len(3392 - 1).unwrap();
        let present = storage.recheck(&mut |_, _| {}).unwrap();
        // a.bin feeds pieces 0 and 1; e.bin's last byte is in piece 7.
        assert_eq!(present.ones().collect::<Vec<_>>(), vec![2, 3, 4, 5, 6, 8]);
        assert!(!storage.check_piece(piece(&storage, 0)).unwrap());
        let mut buf = Vec::new();
        let err = storage
            .read_piece(piece(&storage, 7), &mut buf)
            .unwrap_err();
        assert!(err.to_string().contains("e.bin"), "{err}");
    });
}

#[test]
fn open_never_truncates_a_longer_file_and_seeding_names_a_wrong_length() {
    bounded(30, || {
        let dir = tempfile::tempdir().unwrap();
        let (layout, _) = movie_layout(dir.path());
        std::fs::create_dir_all(dir.path().join("movie")).unwrap();
        let a = dir.path().join("movie/a.bin");
        std::fs::write(&a, vec![7u8; 2000]).unwrap();
        let err = Storage::open(layout.clone()).err().unwrap();
        assert!(
            matches!(
                &err,
                StorageError::FileTooLong {
                    expected: 1500,
                    actual: 2000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("a.bin"), "{err}");
        assert_eq!(std::fs::metadata(&a).unwrap().len(), 2000, "left as it was");

        std::fs::write(&a, vec![7u8; 1000]).unwrap();
        let err = Storage::open_existing(layout.clone()).err().unwrap();
        assert!(
            matches!(
                &err,
                StorageError::WrongLength {
                    expected: 1500,
                    actual: 1000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("a.bin"), "{err}");
        // Downloading extends it in place, keeping what is there.
        Storage::open(layout).unwrap();
        let bytes = std::fs::read(&a).unwrap();
        assert_eq!(bytes.len(), 1500);
        assert!(bytes[..1000].iter().all(|b| *b == 7));
    });
}

fn single_file_layout(root: &Path, rel: &str) -> StorageLayout {
    let geometry = Geometry::new(16, &[20]).unwrap();
    let hashes = hashes(&content(20), 16);
    StorageLayout::new(root, vec![(PathBuf::from(rel), 20)], geometry, hashes)
}

#[test]
fn paths_that_escape_the_root_are_refused() {
    bounded(30, || {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("downloads");
        std::fs::create_dir(&root).unwrap();
        for bad in [
            "../escaped.bin",
            "/tmp/escaped.bin",
            "a/../../escaped.bin",
            "",
        ] {
            let err = Storage::open(single_file_layout(&root, bad)).err().unwrap();
            assert!(
                matches!(err, StorageError::UnsafePath { .. }),
                "{bad:?}: {err}"
            );
        }
        assert!(!dir.path().join("escaped.bin").exists());
    });
}

#[test]
fn symlinks_inside_the_root_are_not_followed() {
    bounded(30, || {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("downloads");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();

        // A directory on the way is a link out of the root.
        std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
        let err = Storage::open(single_file_layout(&root, "linked/x.bin"))
            .err()
            .unwrap();
        assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err}");
        assert!(!outside.join("x.bin").exists());

        // The file itself is a link to a file outside.
        std::fs::write(outside.join("target.bin"), b"keep").unwrap();
        std::os::unix::fs::symlink(outside.join("target.bin"), root.join("f.bin")).unwrap();
        for open in [Storage::open, Storage::open_existing] {
            let err = open(single_file_layout(&root, "f.bin")).err().unwrap();
            assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err}");
        }
        assert_eq!(std::fs::read(outside.join("target.bin")).unwrap(), b"keep");

        // A link swapped in after open is caught when the file is next opened for a write.
        let layout = single_file_layout(&root, "sub/x.bin");
        let storage = Storage::open(layout).unwrap();
        std::fs::remove_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
        std::fs::write(outside.join("x.bin"), vec![0u8; 20]).unwrap();
        let p0 = piece(&storage, 0);
        let err = storage.write_piece(p0, &content(20)[..16]).unwrap_err();
        assert!(matches!(err, StorageError::SymlinkInPath { .. }), "{err}");
        assert_eq!(std::fs::read(outside.join("x.bin")).unwrap(), vec![0u8; 20]);
    });
}

#[test]
fn a_torrent_past_4_gib_writes_and_reads_with_64_bit_offsets() {
    bounded(60, || {
        let dir = tempfile::tempdir().unwrap();
        const MIB: u64 = 1 << 20;
        let big = (4u64 << 30) + 100; // the first file alone is past 4 GiB
        let small = 3 * MIB;
        let geometry = Geometry::new(MIB as u32, &[big, small]).unwrap();
        let count = geometry.piece_count();
        // Piece 4096 starts at exactly 4 GiB: 100 bytes in big.bin, the rest in small.bin.
        let target = geometry.piece(4096).unwrap();
        let last = geometry.last_piece();
        let target_data = content(geometry.piece_size(target) as usize);
        let last_data: Vec<u8> = content(geometry.piece_size(last) as usize + 5)[5..].to_vec();
        let zeros = vec![0u8; MIB as usize];
        let mut piece_hashes = vec![[0u8; 20]; count as usize];
        // Piece 0 is expected to be zeros: a write whose offset wrapped at 4 GiB would land there.
        piece_hashes[0] = Sha1::digest(&zeros).into();
        piece_hashes[target.as_usize()] = Sha1::digest(&target_data).into();
        piece_hashes[last.as_usize()] = Sha1::digest(&last_data).into();
        let files = vec![
            (PathBuf::from("huge/big.bin"), big),
            (PathBuf::from("huge/small.bin"), small),
        ];
        let storage = Storage::open(StorageLayout::new(
            dir.path(),
            files,
            geometry,
            piece_hashes,
        ))
        .unwrap();
        let meta = std::fs::metadata(dir.path().join("huge/big.bin")).unwrap();
        assert_eq!(meta.len(), big);
        assert!(
            meta.blocks() * 512 < MIB,
            "created sparse, not filled with zeros"
        );

        // A hole `open` just made is not read: even piece 0, whose expected bytes are zeros,
        // counts as absent until the file has been written.
        assert!(!storage.check_piece(piece(&storage, 0)).unwrap());
        assert!(!storage.check_piece(target).unwrap());
        storage.write_piece(target, &target_data).unwrap();
        storage.write_piece(last, &last_data).unwrap();
        storage.sync().unwrap();

        assert!(storage.check_piece(target).unwrap());
        assert!(storage.check_piece(last).unwrap());
        assert!(
            storage.check_piece(piece(&storage, 0)).unwrap(),
            "nothing wrapped to 0"
        );
        let mut buf = Vec::new();
        storage.read_piece(target, &mut buf).unwrap();
        assert_eq!(buf, target_data);
        let span = storage.geometry().span(4096, 90, 20).unwrap(); // crosses big -> small
        let mut out = [0u8; 20];
        storage.read_block(span, &mut out).unwrap();
        assert_eq!(out, target_data[90..110]);
        let meta = std::fs::metadata(dir.path().join("huge/big.bin")).unwrap();
        assert_eq!(meta.len(), big, "the write did not grow or cut the file");
        assert!(meta.blocks() * 512 < 4 * MIB, "still sparse");
    });
}

// ---- Hashes made by real BitTorrent software ----

fn run(cmd: &mut Command, package: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {cmd:?} ({e}); install the Debian package {package} (scripts/test.sh does)"
        )
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asks libtorrent for a torrent's piece length, files and piece hashes, one per line.
const LIBTORRENT_DUMP: &str = r#"
import sys, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
print(ti.piece_length())
fs = ti.files()
print(fs.num_files())
for i in range(fs.num_files()):
    print(fs.file_size(i), fs.file_path(i))
for i in range(ti.num_pieces()):
    print(bytes(ti.hash_for_piece(i)).hex())
"#;

#[test]
fn content_hashed_by_mktorrent_rechecks_complete_and_a_flipped_byte_is_found() {
    bounded(60, || {
        let dir = tempfile::tempdir().unwrap();
        let content_dir = dir.path().join("show");
        std::fs::create_dir_all(content_dir.join("extras")).unwrap();
        let sizes = [
            ("ep1.mkv", 70_001usize),
            ("extras/notes.txt", 13),
            ("ep2.mkv", 50_000),
        ];
        for (i, (name, len)) in sizes.iter().enumerate() {
            let bytes: Vec<u8> = content(len + i * 11)[i * 11..].to_vec();
            std::fs::write(content_dir.join(name), bytes).unwrap();
        }
        let torrent = dir.path().join("show.torrent");
        // 2^15 = 32 KiB pieces; -a is required by mktorrent 1.1.
        run(
            Command::new("mktorrent")
                .args(["-l", "15", "-a", "http://127.0.0.1:1/announce", "-o"])
                .arg(&torrent)
                .arg(&content_dir),
            "mktorrent",
        );
        let dump = run(
            Command::new("/usr/bin/python3")
                .args(["-c", LIBTORRENT_DUMP])
                .arg(&torrent),
            "python3-libtorrent",
        );
        let text = String::from_utf8(dump.stdout).unwrap();
        let mut lines = text.lines();
        let piece_len: u32 = lines.next().unwrap().parse().unwrap();
        let file_count: usize = lines.next().unwrap().parse().unwrap();
        // Multi-file torrent: root = download dir, each path = name/components (libtorrent's
        // file_path already starts with the torrent's name).
        let files: Vec<(PathBuf, u64)> = (0..file_count)
            .map(|_| {
                let (size, path) = lines.next().unwrap().split_once(' ').unwrap();
                (PathBuf::from(path), size.parse().unwrap())
            })
            .collect();
        let piece_hashes: Vec<[u8; 20]> = lines
            .map(|l| hex::decode(l).unwrap().try_into().unwrap())
            .collect();
        let lens: Vec<u64> = files.iter().map(|f| f.1).collect();
        let geometry = Geometry::new(piece_len, &lens).unwrap();
        assert_eq!(geometry.piece_count() as usize, piece_hashes.len());
        let layout = StorageLayout::new(dir.path(), files.clone(), geometry, piece_hashes);

        let storage = Storage::open_existing(layout.clone()).unwrap();
        assert!(storage.recheck(&mut |_, _| {}).unwrap().is_complete());
        drop(storage);

        // Flip one byte of the last file in the torrent's order; exactly its piece goes.
        let (last_path, _) = files.last().unwrap();
        let full = dir.path().join(last_path);
        let mut bytes = std::fs::read(&full).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&full, bytes).unwrap();
        let stream_offset: u64 = lens[..lens.len() - 1].iter().sum::<u64>() + 5;
        let storage = Storage::open_existing(layout).unwrap();
        let damaged = storage.geometry().piece_at(stream_offset).unwrap();
        let present = storage.recheck(&mut |_, _| {}).unwrap();
        assert_eq!(present.count(), storage.geometry().piece_count() - 1);
        assert!(!present.has(damaged));
    });
}
