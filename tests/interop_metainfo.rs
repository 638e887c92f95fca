//! Torrents cross the boundary with real tools: what `make_torrent` writes, libtorrent and
//! Transmission read with the same info-hash and piece count; what mktorrent and libtorrent
//! write, `Metainfo::load` reads with the info-hash those tools report, and its piece hashes
//! match the content on disk read in the parsed file order.
//!
//! Needs the Debian packages python3-libtorrent, transmission-cli and mktorrent (installed by
//! scripts/test.sh); a missing one fails the test with the package name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use btvod::make_torrent::{MakeTorrentOptions, make_torrent};
use btvod::proto::metainfo::Metainfo;
use sha1::{Digest, Sha1};

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
const PYTHON: &str = "/usr/bin/python3";

/// What a third-party tool says about a torrent.
#[derive(Debug, PartialEq, Eq)]
struct Reported {
    info_hash: String,
    pieces: u32,
}

/// Runs a program to completion within [`TOOL_TIMEOUT`]; a missing program names its package.
async fn run(program: &str, args: &[OsString], package: &str) -> String {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(TOOL_TIMEOUT, cmd.output()).await {
        Err(_) => panic!("{program} did not finish within {TOOL_TIMEOUT:?}"),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "{program} is missing: install the Debian package `{package}` (scripts/test.sh does)"
            )
        }
        Ok(Err(e)) => panic!("cannot run {program}: {e}"),
        Ok(Ok(output)) => output,
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'libtorrent'") {
        panic!(
            "{PYTHON} cannot import libtorrent: install the Debian package `python3-libtorrent`"
        );
    }
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}): {stderr}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn python(script: &str, args: &[&Path]) -> String {
    let mut argv: Vec<OsString> = vec!["-c".into(), script.into()];
    argv.extend(args.iter().map(|p| p.as_os_str().to_owned()));
    run(PYTHON, &argv, "python3-libtorrent").await
}

const LT_INFO: &str = r#"
import sys, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
print(ti.info_hashes().v1, ti.num_pieces(), ti.total_size())
"#;

async fn libtorrent_reports(torrent: &Path) -> (Reported, u64) {
    let out = python(LT_INFO, &[torrent]).await;
    let fields: Vec<&str> = out.split_whitespace().collect();
    let [hash, pieces, total] = fields[..] else {
        panic!("unexpected libtorrent output: {out:?}");
    };
    let reported = Reported {
        info_hash: hash.to_string(),
        pieces: pieces.parse().expect("piece count"),
    };
    (reported, total.parse().expect("total size"))
}

async fn transmission_reports(torrent: &Path) -> Reported {
    let out = run(
        "transmission-show",
        &[torrent.as_os_str().to_owned()],
        "transmission-cli",
    )
    .await;
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no `{label}` in transmission-show output:\n{out}"))
    };
    Reported {
        info_hash: field("Hash:"),
        pieces: field("Piece Count:").parse().expect("piece count"),
    }
}

fn ours(m: &Metainfo) -> Reported {
    Reported {
        info_hash: m.info_hash.to_hex(),
        pieces: m.geometry.piece_count(),
    }
}

/// Deterministic test bytes (xorshift), different per seed.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A single 300,001-byte file (short last piece at any power-of-two piece length).
fn single_file(dir: &Path) -> PathBuf {
    let path = dir.join("movie.bin");
    std::fs::write(&path, content(7, 300_001)).unwrap();
    path
}

/// A directory whose files straddle piece boundaries, with an empty file and nesting.
fn directory(dir: &Path) -> PathBuf {
    let root = dir.join("show");
    std::fs::create_dir_all(root.join("season1/extras")).unwrap();
    std::fs::write(root.join("season1/e01.bin"), content(1, 70_000)).unwrap();
    std::fs::write(root.join("season1/e02.bin"), content(2, 50_001)).unwrap();
    std::fs::write(root.join("season1/extras/empty.txt"), b"").unwrap();
    std::fs::write(root.join("season1/extras/notes.txt"), content(3, 12_345)).unwrap();
    std::fs::write(root.join("readme.txt"), content(4, 1_000)).unwrap();
    root
}

/// Checks every piece hash against the files on disk, read in the parsed order. `base` is the
/// directory that holds the torrent's top-level name. BEP 47 padding files read as zeros.
fn assert_pieces_match_disk(m: &Metainfo, base: &Path) {
    let mut stream = Vec::new();
    for (i, file) in m.files.iter().enumerate() {
        let path = base.join(m.relative_path(i));
        if file.path.first().is_some_and(|c| c == ".pad") && !path.exists() {
            stream.resize(stream.len() + file.length as usize, 0);
        } else {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(bytes.len() as u64, file.length, "{}", path.display());
            stream.extend(bytes);
        }
    }
    assert_eq!(stream.len() as u64, m.total_len());
    let piece_len = m.geometry.piece_len() as usize;
    for (piece, chunk) in m.geometry.pieces().zip(stream.chunks(piece_len)) {
        let expected: [u8; 20] = Sha1::digest(chunk).into();
        assert_eq!(m.piece_hash(piece), expected, "piece {piece}");
    }
}

async fn check_ours_is_read_alike(content_path: &Path, piece_length: Option<u32>) {
    let dir = tempfile::tempdir().unwrap();
    let opts = MakeTorrentOptions {
        path: content_path.to_path_buf(),
        piece_length,
        announce: vec!["http://127.0.0.1:1/announce".into()],
        ..Default::default()
    };
    let bytes = make_torrent(&opts, &mut |_, _| {}).unwrap();
    let torrent = dir.path().join("ours.torrent");
    std::fs::write(&torrent, &bytes).unwrap();
    let m = Metainfo::load(&torrent).unwrap();

    let (lt, lt_total) = libtorrent_reports(&torrent).await;
    assert_eq!(lt, ours(&m), "libtorrent disagrees");
    assert_eq!(lt_total, m.total_len());
    assert_eq!(
        transmission_reports(&torrent).await,
        ours(&m),
        "transmission-show disagrees"
    );
}

#[tokio::test]
async fn our_single_file_torrent_reads_the_same_in_libtorrent_and_transmission() {
    let dir = tempfile::tempdir().unwrap();
    check_ours_is_read_alike(&single_file(dir.path()), Some(32 * 1024)).await;
}

#[tokio::test]
async fn our_directory_torrent_reads_the_same_in_libtorrent_and_transmission() {
    let dir = tempfile::tempdir().unwrap();
    let root = directory(dir.path());
    check_ours_is_read_alike(&root, Some(16 * 1024)).await;
    check_ours_is_read_alike(&root, None).await;
}

async fn mktorrent(content_path: &Path, out: &Path) {
    let args: Vec<OsString> = vec![
        "-l".into(),
        "15".into(),
        "-a".into(),
        "http://127.0.0.1:1/announce".into(),
        "-o".into(),
        out.as_os_str().to_owned(),
        content_path.as_os_str().to_owned(),
    ];
    run("mktorrent", &args, "mktorrent").await;
}

#[tokio::test]
async fn mktorrent_torrents_load_with_the_hash_the_tools_report() {
    let dir = tempfile::tempdir().unwrap();
    for content_path in [single_file(dir.path()), directory(dir.path())] {
        let torrent = dir.path().join("mk.torrent");
        let _ = std::fs::remove_file(&torrent);
        mktorrent(&content_path, &torrent).await;
        let m = Metainfo::load(&torrent).unwrap();
        assert_eq!(m.geometry.piece_len(), 1 << 15);
        assert_eq!(libtorrent_reports(&torrent).await.0, ours(&m));
        assert_eq!(transmission_reports(&torrent).await, ours(&m));
        assert_eq!(
            m.tracker_tiers(),
            vec![vec!["http://127.0.0.1:1/announce".to_string()]]
        );
        assert_pieces_match_disk(&m, dir.path());
    }
}

const LT_CREATE: &str = r#"
import sys, os, libtorrent as lt
content, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
fs = lt.file_storage()
lt.add_files(fs, content)
flags = lt.create_torrent.v1_only if mode == "v1" else 0
ct = lt.create_torrent(fs, 16384, flags=flags)
ct.add_tracker("http://127.0.0.1:1/announce", 0)
ct.add_tracker("http://127.0.0.1:2/announce", 1)
ct.add_url_seed("http://127.0.0.1:3/files/")
lt.set_piece_hashes(ct, os.path.dirname(content))
open(out, "wb").write(lt.bencode(ct.generate()))
"#;

#[tokio::test]
async fn libtorrent_torrents_load_with_the_hash_libtorrent_reports() {
    let dir = tempfile::tempdir().unwrap();
    for content_path in [single_file(dir.path()), directory(dir.path())] {
        // "hybrid" is libtorrent's default: v1+v2 with BEP 47 padding files between files.
        for mode in ["v1", "hybrid"] {
            let torrent = dir.path().join(format!("lt-{mode}.torrent"));
            python(LT_CREATE, &[&content_path, &torrent, Path::new(mode)]).await;
            let m = Metainfo::load(&torrent).unwrap();
            let (lt, lt_total) = libtorrent_reports(&torrent).await;
            assert_eq!(lt, ours(&m), "{mode} {}", content_path.display());
            assert_eq!(lt_total, m.total_len());
            assert_eq!(
                m.tracker_tiers(),
                vec![
                    vec!["http://127.0.0.1:1/announce".to_string()],
                    vec!["http://127.0.0.1:2/announce".to_string()]
                ]
            );
            assert_eq!(m.url_list, vec!["http://127.0.0.1:3/files/".to_string()]);
            assert_pieces_match_disk(&m, dir.path());
        }
    }
}

#[tokio::test]
async fn non_canonical_info_hashes_like_libtorrent() {
    // Keys out of order inside `info`: the info-hash must be over these bytes as written.
    let dir = tempfile::tempdir().unwrap();
    let data = content(9, 40_000);
    let mut pieces = Vec::new();
    for chunk in data.chunks(16384) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let mut info = Vec::new();
    info.extend(b"d4:name9:movie.bin6:lengthi40000e6:pieces60:");
    info.extend(&pieces);
    info.extend(b"12:piece lengthi16384ee");
    let mut doc = b"d8:announce27:http://127.0.0.1:1/announce4:info".to_vec();
    doc.extend(&info);
    doc.push(b'e');
    let torrent = dir.path().join("unsorted.torrent");
    std::fs::write(&torrent, &doc).unwrap();

    let m = Metainfo::load(&torrent).unwrap();
    let raw_hash: [u8; 20] = Sha1::digest(&info).into();
    assert_eq!(m.info_hash.0, raw_hash);
    assert_eq!(libtorrent_reports(&torrent).await.0, ours(&m));
}
