//! Defaults that do not expose the user: `btvod tracker` and `btvod origin` started without
//! `--bind` listen on 127.0.0.1 only (read back from the kernel's socket table), `--bind`
//! widens that when asked, and `--help` says so.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::content::free_port;
use common::process::ProcessGuard;

const BTVOD: &str = env!("CARGO_BIN_EXE_btvod");

/// The local addresses (hex as in /proc/net/tcp, e.g. `0100007F`) listening on `port`.
fn listening_on(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port_hex = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (addr, local_port) = fields.get(1)?.split_once(':')?;
            // State 0A is LISTEN.
            (local_port == port_hex && fields.get(3) == Some(&"0A")).then(|| addr.to_string())
        })
        .collect()
}

/// Starts `btvod args...` and waits (bounded) until it listens on `port`; returns the
/// addresses it listens on and the guard that stops it.
fn start_listening(what: &str, args: &[String], port: u16) -> (Vec<String>, ProcessGuard) {
    let guard = ProcessGuard::spawn(what, BTVOD, args, Path::new("."), |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let addrs = listening_on(port);
        if !addrs.is_empty() {
            return (addrs, guard);
        }
        if let Some(status) = guard.exited() {
            panic!("{what} exited ({status})\n{}", guard.report());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within 20 s\n{}",
            guard.report()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const LOOPBACK: &str = "0100007F";
const ANY: &str = "00000000";

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_tracker_and_the_origin_listen_on_loopback_unless_told_otherwise() {
    let dir = tempfile::tempdir().expect("temp dir");
    let content = dir.path().join("movie.bin");
    std::fs::write(&content, vec![7u8; 4096]).expect("write content");
    let content = content.display().to_string();

    let port = free_port();
    let (addrs, _tracker) = start_listening(
        "btvod tracker",
        &args(&["tracker", "--port", &port.to_string()]),
        port,
    );
    assert_eq!(addrs, [LOOPBACK], "btvod tracker without --bind");

    let port = free_port();
    let (addrs, _origin) = start_listening(
        "btvod origin",
        &args(&["origin", "--content", &content, "--port", &port.to_string()]),
        port,
    );
    assert_eq!(addrs, [LOOPBACK], "btvod origin without --bind");

    // Asked for, they listen on every address.
    let port = free_port();
    let (addrs, _wide) = start_listening(
        "btvod tracker --bind 0.0.0.0",
        &args(&["tracker", "--port", &port.to_string(), "--bind", "0.0.0.0"]),
        port,
    );
    assert_eq!(addrs, [ANY], "btvod tracker --bind 0.0.0.0");
}

#[test]
fn help_states_the_listen_defaults() {
    for sub in ["tracker", "origin"] {
        let out = Command::new(BTVOD)
            .args([sub, "--help"])
            .output()
            .expect("run btvod --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "btvod {sub} --help failed");
        let bind = help
            .lines()
            .skip_while(|l| !l.contains("--bind"))
            .take(4)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            bind.contains("127.0.0.1"),
            "btvod {sub} --help does not give 127.0.0.1 as --bind's default:\n{help}"
        );
    }
}
