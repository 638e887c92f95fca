//! Test inputs made without btvod: free ports, required programs, deterministic content, and
//! torrents created by libtorrent (a third party) rather than by our own code.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::process::SYSTEM_PYTHON;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// A port free for TCP and UDP on 127.0.0.1 below Linux's ephemeral range (32768 and up), for
/// a server that starts later at a fixed port: no connection's or socket's automatic port can
/// take it meanwhile, as one can take a port `free_port` gave back.
pub fn free_port_below_ephemeral() -> u16 {
    use std::net::UdpSocket;
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..10_000u16)
        .map(|i| 20_000 + (start - 20_000 + i * 7) % 12_000)
        .find(|&p| {
            TcpListener::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok()
        })
        .expect("a free port in 20000-31999")
}

/// Panics with the Debian package to install when `program` is not on PATH.
pub fn require_program(program: &str, debian_package: &str) {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| is_executable(&dir.join(program)))
    });
    assert!(
        on_path || is_executable(Path::new(program)),
        "`{program}` not found: install Debian package {debian_package} (scripts/test.sh does)"
    );
}

/// Panics unless `/usr/bin/python3` can import libtorrent (checked once per test binary).
pub fn require_python_libtorrent() {
    static IMPORTABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = IMPORTABLE.get_or_init(|| {
        let output = Command::new(SYSTEM_PYTHON)
            .args(["-c", "import libtorrent"])
            .output();
        match output {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(err) => Err(format!("cannot run {SYSTEM_PYTHON}: {err}")),
        }
    });
    if let Err(why) = result {
        panic!(
            "{SYSTEM_PYTHON} cannot import libtorrent ({why}): install Debian package \
             python3-libtorrent (scripts/test.sh does)"
        );
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// `len` pseudo-random bytes fixed by `seed` (xorshift64*): same seed, same content.
pub fn deterministic_content(len: usize, seed: u64) -> Vec<u8> {
    // xorshift is stuck at zero; mixing in a constant keeps every seed (0 included) moving.
    let mut state = (seed ^ 0x9E37_79B9_7F4A_7C15).max(1);
    let mut content = Vec::with_capacity(len + 8);
    while content.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        content.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    content.truncate(len);
    content
}

const MAKE_TORRENT_PY: &str = r#"
import os, sys
import libtorrent as lt
content, piece_len, out, trackers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
fs = lt.file_storage()
lt.add_files(fs, content)
t = lt.create_torrent(fs, piece_len, flags=lt.create_torrent.v1_only)
for tier, url in enumerate(trackers):
    t.add_tracker(url, tier)
t.set_creator("libtorrent " + lt.__version__ + " (btvod test harness)")
lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(content)))
with open(out, "wb") as f:
    f.write(lt.bencode(t.generate()))
print(lt.torrent_info(out).info_hashes().v1)
"#;

/// Makes `<content minus extension>.torrent` next to `content_path` (a file, or a directory
/// for a multi-file torrent) with libtorrent: v1 only, one tracker tier per URL. Returns the
/// torrent's path and its info-hash in lowercase hex.
pub fn make_torrent_with_libtorrent(
    content_path: &Path,
    piece_len: u32,
    trackers: &[String],
) -> (PathBuf, String) {
    require_python_libtorrent();
    let torrent = content_path.with_extension("torrent");
    let output = Command::new(SYSTEM_PYTHON)
        .args(["-c", MAKE_TORRENT_PY])
        .arg(content_path)
        .arg(piece_len.to_string())
        .arg(&torrent)
        .args(trackers)
        .output()
        .expect("run /usr/bin/python3 to make a torrent");
    assert!(
        output.status.success(),
        "libtorrent could not make a torrent of {}: {}",
        content_path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let info_hash = String::from_utf8_lossy(&output.stdout)
        .trim()
        .to_lowercase();
    assert!(
        info_hash.len() == 40 && info_hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "libtorrent printed {info_hash:?} where an info-hash was expected"
    );
    (torrent, info_hash)
}
