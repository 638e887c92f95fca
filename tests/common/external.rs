//! Third-party BitTorrent programs as test fixtures: a libtorrent peer (`scripts/lt_peer.py`),
//! transmission-cli and opentracker, each a guard that stops its process on Drop.
// Each test binary uses a subset of these, and the re-exports are for them.
#![allow(dead_code, unused_imports)]

mod libtorrent;
mod opentracker;
mod transmission;

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

pub use super::content::{
    deterministic_content, free_port, make_torrent_with_libtorrent, require_program,
    require_python_libtorrent,
};
use super::process::ProcessGuard;
pub use libtorrent::{LibtorrentPeer, LtOptions, Status};
pub use opentracker::OpenTracker;
pub use transmission::Transmission;

/// How long a guard waits for its program to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(200);

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
fn wait_accepting(port: u16, timeout: Duration, process: &ProcessGuard) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(timeout, process, || {
        TcpStream::connect_timeout(&addr, POLL).is_ok()
    })
}

/// Waits until a socket listens on `port`, read from /proc/net/tcp{,6} so that no probe
/// connection reaches the program as a bogus peer.
pub fn wait_listening(port: u16, timeout: Duration, process: &ProcessGuard) -> Result<(), String> {
    const LISTEN: &str = "0A";
    let listening = || {
        ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
            fs::read_to_string(table)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .any(|row| {
                    let fields: Vec<&str> = row.split_whitespace().collect();
                    let local_port = fields.get(1).and_then(|addr| addr.rsplit(':').next());
                    let port_matches =
                        local_port.and_then(|hex| u16::from_str_radix(hex, 16).ok()) == Some(port);
                    port_matches && fields.get(3) == Some(&LISTEN)
                })
        })
    };
    wait_until(timeout, process, listening)
}

fn wait_until(
    timeout: Duration,
    process: &ProcessGuard,
    ready: impl Fn() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = process.exited() {
            return Err(format!("it exited ({status})"));
        }
        if Instant::now() >= deadline {
            return Err(format!("not ready within {timeout:?}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
}
