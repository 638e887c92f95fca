//! Unit tests of metainfo parsing: hand-built bencode so that every malformed shape is reachable.

use sha1::{Digest, Sha1};

use super::*;

/// A bencode value encoded exactly in the order given (so tests can write non-canonical dicts).
#[derive(Clone)]
enum B {
    I(i64),
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(&'static str, B)>),
}

fn s(text: &str) -> B {
    B::S(text.as_bytes().to_vec())
}

fn path(components: &[&str]) -> B {
    B::L(components.iter().map(|c| s(c)).collect())
}

impl B {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            B::I(n) => out.extend(format!("i{n}e").bytes()),
            B::S(b) => {
                out.extend(format!("{}:", b.len()).bytes());
                out.extend(b);
            }
            B::L(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.encode_into(out));
                out.push(b'e');
            }
            B::D(pairs) => {
                out.push(b'd');
                for (k, v) in pairs {
                    s(k).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
    /// Sets (or appends) a key of a dict.
    fn set(mut self, key: &'static str, value: B) -> B {
        if let B::D(pairs) = &mut self {
            match pairs.iter_mut().find(|(k, _)| *k == key) {
                Some(pair) => pair.1 = value,
                None => pairs.push((key, value)),
            }
        }
        self
    }
    fn remove(mut self, key: &str) -> B {
        if let B::D(pairs) = &mut self {
            pairs.retain(|(k, _)| *k != key);
        }
        self
    }
}

const PIECE: i64 = 16384;

fn hashes(count: usize) -> B {
    B::S((0..count * 20).map(|i| i as u8).collect())
}

/// A valid single-file info dict: 40000 bytes in 3 pieces of 16 KiB.
fn single_info() -> B {
    B::D(vec![
        ("length", B::I(40000)),
        ("name", s("movie.mkv")),
        ("piece length", B::I(PIECE)),
        ("pieces", hashes(3)),
    ])
}

/// A valid multi-file info dict: files of 10000, 0 and 30000 bytes in 3 pieces.
fn multi_info(files: Vec<B>) -> B {
    B::D(vec![
        ("files", B::L(files)),
        ("name", s("show")),
        ("piece length", B::I(PIECE)),
        ("pieces", hashes(3)),
    ])
}

fn file(length: i64, components: &[&str]) -> B {
    B::D(vec![("length", B::I(length)), ("path", path(components))])
}

fn default_files() -> Vec<B> {
    vec![
        file(10000, &["a.mkv"]),
        file(0, &["sub", "empty.txt"]),
        file(30000, &["sub", "b.srt"]),
    ]
}

fn torrent(info: B) -> Vec<u8> {
    B::D(vec![
        ("announce", s("http://tracker.example/announce")),
        ("info", info),
    ])
    .encode()
}

fn parse_info(info: B) -> Result<Metainfo, MetainfoError> {
    Metainfo::from_bytes(&torrent(info))
}

#[test]
fn single_file_torrent_parses() {
    let m = parse_info(single_info()).unwrap();
    assert_eq!(m.name, "movie.mkv");
    assert!(m.is_single_file);
    assert_eq!(m.total_len(), 40000);
    assert_eq!(m.geometry.piece_count(), 3);
    assert_eq!(
        m.files,
        vec![FileEntry {
            path: vec!["movie.mkv".into()],
            length: 40000
        }]
    );
    assert_eq!(m.relative_path(0), PathBuf::from("movie.mkv"));
    let last = m.geometry.last_piece();
    let expected: Vec<u8> = (40..60).collect();
    assert_eq!(m.piece_hash(last).to_vec(), expected);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert!(!m.private);
}

#[test]
fn multi_file_torrent_parses_with_empty_file() {
    let m = parse_info(multi_info(default_files())).unwrap();
    assert!(!m.is_single_file);
    assert_eq!(m.files.len(), 3);
    assert_eq!(
        m.files[1],
        FileEntry {
            path: vec!["sub".into(), "empty.txt".into()],
            length: 0
        }
    );
    assert_eq!(m.relative_path(2), PathBuf::from("show/sub/b.srt"));
    assert_eq!(m.relative_path(9), PathBuf::new());
    assert_eq!(m.geometry.files()[2].offset, 10000);
}

#[test]
fn info_hash_is_sha1_of_the_raw_info_slice() {
    let info = single_info().encode();
    let expected: [u8; 20] = Sha1::digest(&info).into();
    let m = parse_info(single_info()).unwrap();
    assert_eq!(m.info_hash.0, expected);
    assert_eq!(m.raw_info(), &info[..]);
    // Keys around `info` change nothing.
    let with_more = B::D(vec![
        ("comment", s("x")),
        ("info", single_info()),
        ("zzz", B::L(vec![B::I(1)])),
    ]);
    assert_eq!(
        Metainfo::from_bytes(&with_more.encode())
            .unwrap()
            .info_hash
            .0,
        expected
    );
}

#[test]
fn non_canonical_info_hashes_the_bytes_as_written() {
    // `name` before `length`, and an unknown key out of order: not canonical bencode.
    let unsorted = B::D(vec![
        ("name", s("movie.mkv")),
        ("length", B::I(40000)),
        ("x-unknown", B::D(vec![("b", B::I(1)), ("a", B::I(2))])),
        ("piece length", B::I(PIECE)),
        ("pieces", hashes(3)),
    ]);
    let raw = unsorted.encode();
    let m = parse_info(unsorted).unwrap();
    let as_written: [u8; 20] = Sha1::digest(&raw).into();
    assert_eq!(m.info_hash.0, as_written);
    assert_ne!(m.info_hash, parse_info(single_info()).unwrap().info_hash);
    assert!(m.warnings.contains(&MetainfoWarning::NonCanonicalInfo));
    assert_eq!(m.total_len(), 40000);
}

#[test]
fn non_bencode_and_trailing_bytes_are_refused() {
    assert!(matches!(
        Metainfo::from_bytes(b"<html>"),
        Err(MetainfoError::Bencode(_))
    ));
    assert!(matches!(
        Metainfo::from_bytes(b""),
        Err(MetainfoError::Bencode(_))
    ));
    let mut bytes = torrent(single_info());
    bytes.extend(b"junk");
    let err = Metainfo::from_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
    assert!(matches!(
        Metainfo::from_bytes(b"li1ee"),
        Err(MetainfoError::NotADictionary("a list"))
    ));
}

#[test]
fn missing_and_wrong_typed_keys_name_the_key() {
    let no_info = B::D(vec![("announce", s("x"))]).encode();
    assert!(
        matches!(Metainfo::from_bytes(&no_info), Err(MetainfoError::MissingKey(k)) if k == "info")
    );
    let err = Metainfo::from_bytes(&B::D(vec![("info", s("x"))]).encode()).unwrap_err();
    assert!(
        matches!(&err, MetainfoError::WrongType { key, .. } if key == "info"),
        "{err}"
    );

    for key in ["name", "piece length", "pieces"] {
        let err = parse_info(single_info().remove(key)).unwrap_err();
        assert!(
            matches!(&err, MetainfoError::MissingKey(k) if *k == format!("info.{key}")),
            "{key}: {err}"
        );
        assert!(err.to_string().contains(key), "{err}");
    }
    let err = parse_info(single_info().set("length", s("40000"))).unwrap_err();
    assert!(
        matches!(&err, MetainfoError::WrongType { key, expected: "an integer", found: "a string" } if key == "info.length")
    );
    assert!(err.to_string().contains("info.length"), "{err}");
    let err = parse_info(single_info().set("private", s("yes"))).unwrap_err();
    assert!(matches!(&err, MetainfoError::WrongType { key, .. } if key == "info.private"));

    let mut files = default_files();
    files[2] = B::D(vec![("length", B::I(30000)), ("path", s("sub/b.srt"))]);
    let err = parse_info(multi_info(files)).unwrap_err();
    assert!(
        matches!(&err, MetainfoError::WrongType { key, .. } if key == "info.files[2].path"),
        "{err}"
    );
    let mut files = default_files();
    files[0] = B::D(vec![("path", path(&["a"]))]);
    let err = parse_info(multi_info(files)).unwrap_err();
    assert!(
        matches!(&err, MetainfoError::MissingKey(k) if k == "info.files[0].length"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_are_refused() {
    let info = B::D(vec![
        ("length", B::I(40000)),
        ("name", s("a")),
        ("piece length", B::I(PIECE)),
        ("pieces", hashes(3)),
        ("name", s("b")),
    ]);
    assert!(matches!(parse_info(info), Err(MetainfoError::DuplicateKey(k)) if k == "info.name"));
}

#[test]
fn piece_length_checks() {
    assert!(matches!(
        parse_info(single_info().set("piece length", B::I(0))),
        Err(MetainfoError::ZeroPieceLength)
    ));
    assert!(matches!(
        parse_info(single_info().set("piece length", B::I(-16384))),
        Err(MetainfoError::OutOfRange { .. })
    ));
    assert!(matches!(
        parse_info(single_info().set("piece length", B::I(512 << 20))),
        Err(MetainfoError::OutOfRange { .. })
    ));
    // 20000-byte pieces: 2 pieces for 40000 bytes, accepted with a warning.
    let m = parse_info(
        single_info()
            .set("piece length", B::I(20000))
            .set("pieces", hashes(2)),
    )
    .unwrap();
    assert_eq!(
        m.warnings,
        vec![MetainfoWarning::PieceLengthNotPowerOfTwo(20000)]
    );
    assert_eq!(m.geometry.piece_count(), 2);
}

#[test]
fn pieces_must_match_the_geometry() {
    let odd = B::S(vec![0; 59]);
    assert!(matches!(
        parse_info(single_info().set("pieces", odd)),
        Err(MetainfoError::PiecesNotMultipleOf20(59))
    ));
    for count in [2, 4, 0] {
        let err = parse_info(single_info().set("pieces", hashes(count))).unwrap_err();
        assert!(
            matches!(err, MetainfoError::PieceCountMismatch { hashes, expected: 3, .. } if hashes == count),
            "{err}"
        );
    }
}

#[test]
fn absurd_sizes_are_refused_without_allocating() {
    // 2^62 bytes in 16 KiB pieces is 2^48 pieces: refused before any per-piece allocation.
    let err = parse_info(single_info().set("length", B::I(1 << 62))).unwrap_err();
    assert!(matches!(err, MetainfoError::TooManyPieces { .. }), "{err}");
    // 4 TiB in 16 MiB pieces is a legal shape, but 3 hashes do not cover it.
    let err = parse_info(
        single_info()
            .set("length", B::I(4 << 40))
            .set("piece length", B::I(16 << 20)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MetainfoError::PieceCountMismatch {
                expected: 262_144,
                ..
            }
        ),
        "{err}"
    );
    let files = vec![
        file(i64::MAX, &["a"]),
        file(i64::MAX, &["b"]),
        file(2, &["c"]),
    ];
    assert!(matches!(
        parse_info(multi_info(files)),
        Err(MetainfoError::TotalLengthOverflow)
    ));
    let err = parse_info(single_info().set("length", B::I(-1))).unwrap_err();
    assert!(matches!(err, MetainfoError::OutOfRange { .. }), "{err}");
    assert!(matches!(
        parse_info(single_info().set("length", B::I(0))),
        Err(MetainfoError::Empty)
    ));
}

#[test]
fn exactly_one_of_length_and_files() {
    let both = single_info().set("files", B::L(default_files()));
    assert!(matches!(
        parse_info(both),
        Err(MetainfoError::BothLengthAndFiles)
    ));
    let neither = single_info().remove("length");
    assert!(matches!(
        parse_info(neither),
        Err(MetainfoError::NeitherLengthNorFiles)
    ));
    assert!(matches!(
        parse_info(multi_info(vec![])),
        Err(MetainfoError::NoFiles)
    ));
}

#[test]
fn v2_only_torrents_are_refused_with_a_clear_reason() {
    let v2 = B::D(vec![
        ("file tree", B::D(vec![("a", B::D(vec![]))])),
        ("meta version", B::I(2)),
        ("name", s("x")),
        ("piece length", B::I(PIECE)),
    ]);
    let err = parse_info(v2).unwrap_err();
    assert!(matches!(err, MetainfoError::V2Only), "{err}");
    assert!(err.to_string().contains("v2"));
}

#[test]
fn unsafe_paths_are_refused() {
    let bad_components: [&[&str]; 8] = [
        &["..", "etc", "passwd"],
        &["sub", "..", "..", "x"],
        &[".", "a"],
        &["sub", "", "a"],
        &["/etc/passwd"],
        &["sub\\..\\..\\x"],
        &["a\0b"],
        &[],
    ];
    for components in bad_components {
        let mut files = default_files();
        files[1] = file(0, components);
        let err = parse_info(multi_info(files)).unwrap_err();
        assert!(
            matches!(&err, MetainfoError::UnsafePath { key, .. } if key == "info.files[1].path"),
            "{components:?} gave {err}"
        );
    }
    for name in ["..", ".", "", "a/b", "/abs", "C:\\x", "a\0"] {
        let err = parse_info(single_info().set("name", s(name))).unwrap_err();
        assert!(
            matches!(&err, MetainfoError::UnsafePath { key, .. } if key == "info.name"),
            "{name:?} gave {err}"
        );
        let err = parse_info(multi_info(default_files()).set("name", s(name))).unwrap_err();
        assert!(matches!(err, MetainfoError::UnsafePath { .. }), "{name:?}");
    }
}

#[test]
fn a_path_may_be_used_once_and_not_as_both_file_and_directory() {
    let mut files = default_files();
    files[1] = file(0, &["a.mkv"]);
    assert!(
        matches!(parse_info(multi_info(files)), Err(MetainfoError::DuplicatePath(p)) if p == "a.mkv")
    );
    let mut files = default_files();
    files[1] = file(0, &["a.mkv", "inner"]);
    let err = parse_info(multi_info(files)).unwrap_err();
    assert!(
        matches!(&err, MetainfoError::FileIsAlsoDirectory { file, other } if file == "a.mkv" && other == "a.mkv/inner"),
        "{err}"
    );
    // Same directory, different files: fine.
    let files = vec![
        file(10000, &["d", "x"]),
        file(0, &["d", "y"]),
        file(30000, &["d2"]),
    ];
    assert!(parse_info(multi_info(files)).is_ok());
}

#[test]
fn utf8_variants_are_preferred_and_invalid_utf8_is_lossy_with_a_warning() {
    let info = single_info()
        .set("name", B::S(vec![b'f', 0xff, b'.', b'm']))
        .set("name.utf-8", s("film.mkv"));
    let m = parse_info(info).unwrap();
    assert_eq!(m.name, "film.mkv");
    assert!(
        !m.warnings
            .iter()
            .any(|w| matches!(w, MetainfoWarning::LossyUtf8(_))),
        "{:?}",
        m.warnings
    );

    let m = parse_info(single_info().set("name", B::S(vec![b'f', 0xff]))).unwrap();
    assert_eq!(m.name, "f\u{fffd}");
    assert_eq!(
        m.warnings,
        vec![MetainfoWarning::LossyUtf8("info.name".into())]
    );

    let mut files = default_files();
    files[0] = B::D(vec![
        ("length", B::I(10000)),
        ("path", B::L(vec![B::S(vec![0xe9, b't', b'e'])])),
        ("path.utf-8", path(&["\u{e9}t\u{e9}"])),
    ]);
    let m = parse_info(multi_info(files)).unwrap();
    assert_eq!(m.files[0].path, vec!["\u{e9}t\u{e9}".to_string()]);
}

#[test]
fn lossy_names_that_collide_are_duplicates() {
    let mut files = default_files();
    files[0] = B::D(vec![
        ("length", B::I(10000)),
        ("path", B::L(vec![B::S(vec![0xfe])])),
    ]);
    files[1] = B::D(vec![
        ("length", B::I(0)),
        ("path", B::L(vec![B::S(vec![0xff])])),
    ]);
    assert!(matches!(
        parse_info(multi_info(files)),
        Err(MetainfoError::DuplicatePath(_))
    ));
}

#[test]
fn padding_files_are_ordinary_files() {
    let files = vec![
        file(10000, &["a.mkv"]),
        B::D(vec![
            ("attr", s("p")),
            ("length", B::I(6384)),
            ("path", path(&[".pad", "6384"])),
        ]),
        file(23616, &["b.mkv"]),
    ];
    let m = parse_info(multi_info(files)).unwrap();
    assert_eq!(m.files.len(), 3);
    assert_eq!(
        m.geometry.files()[2].offset,
        16384,
        "b.mkv starts on a piece boundary"
    );
}

#[test]
fn trackers_web_seeds_and_descriptive_keys() {
    let doc = B::D(vec![
        ("announce", s("http://a/announce")),
        (
            "announce-list",
            B::L(vec![
                B::L(vec![s("http://t1/announce"), s("udp://t1b:80")]),
                B::L(vec![]),
                B::I(5),
                B::L(vec![s(""), s("http://t2/announce")]),
            ]),
        ),
        ("comment", s("plain")),
        ("comment.utf-8", s("caf\u{e9}")),
        ("created by", s("maker 1.0")),
        ("creation date", B::I(1_700_000_000)),
        ("info", single_info().set("private", B::I(1))),
        ("url-list", s("http://seed/movie.mkv")),
    ]);
    let m = Metainfo::from_bytes(&doc.encode()).unwrap();
    let tiers = vec![
        vec!["http://t1/announce".to_string(), "udp://t1b:80".to_string()],
        vec!["http://t2/announce".to_string()],
    ];
    assert_eq!(m.announce_list, tiers);
    assert_eq!(m.tracker_tiers(), tiers);
    assert_eq!(m.url_list, vec!["http://seed/movie.mkv".to_string()]);
    assert_eq!(m.comment.as_deref(), Some("caf\u{e9}"));
    assert_eq!(m.created_by.as_deref(), Some("maker 1.0"));
    assert_eq!(m.creation_date, Some(1_700_000_000));
    assert!(m.private);
    assert!(
        m.warnings.iter().any(
            |w| matches!(w, MetainfoWarning::IgnoredKey { key, .. } if key == "announce-list")
        ),
        "{:?}",
        m.warnings
    );

    let text = m.describe();
    for needle in [
        "movie.mkv",
        &m.info_hash.to_hex(),
        "40000 bytes (39.1 KiB)",
        "3 x 16384",
        "Private:      yes",
        "tier 1: http://t1/announce, udp://t1b:80",
        "tier 2: http://t2/announce",
        "http://seed/movie.mkv",
        "caf\u{e9}",
        "maker 1.0",
        "2023-11-14 22:13:20 UTC",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn tracker_tiers_fall_back_to_announce_then_nothing() {
    let m = parse_info(single_info()).unwrap();
    assert_eq!(
        m.tracker_tiers(),
        vec![vec!["http://tracker.example/announce".to_string()]]
    );
    let bare = B::D(vec![("info", single_info())]).encode();
    let m = Metainfo::from_bytes(&bare).unwrap();
    assert!(m.tracker_tiers().is_empty());
    // Wrong-typed descriptive keys are ignored, not fatal.
    let odd = B::D(vec![
        ("announce", B::I(1)),
        ("creation date", s("yesterday")),
        ("info", single_info()),
        ("url-list", B::I(3)),
    ]);
    let m = Metainfo::from_bytes(&odd.encode()).unwrap();
    assert_eq!(m.announce, None);
    assert_eq!(m.creation_date, None);
    assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
}

#[test]
fn load_reports_the_path_on_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.torrent");
    let err = Metainfo::load(&missing).unwrap_err();
    assert!(matches!(&err, MetainfoError::Io { path, .. } if *path == missing));
    assert!(err.to_string().contains("nope.torrent"), "{err}");

    let good = dir.path().join("good.torrent");
    std::fs::write(&good, torrent(single_info())).unwrap();
    assert_eq!(Metainfo::load(&good).unwrap().name, "movie.mkv");
}

mod robustness {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Untrusted bytes never panic the parser: arbitrary input, and valid torrents with
        /// bytes overwritten or cut short.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Metainfo::from_bytes(&bytes);
        }

        #[test]
        fn damaged_torrents_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = torrent(multi_info(default_files()));
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = Metainfo::from_bytes(&bytes);
            let _ = Metainfo::from_bytes(&bytes[..cut.index(bytes.len())]);
        }
    }
}
