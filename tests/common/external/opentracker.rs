//! `OpenTracker`: a running opentracker on a fresh loopback port with a whitelist of
//! info-hashes (the Debian build serves nothing else).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tempfile::TempDir;

use super::wait_accepting;
use crate::common::content::{free_port, require_program};
use crate::common::process::{ProcessGuard, SYSTEM_PYTHON};

/// A running opentracker on a fresh 127.0.0.1 port, serving only whitelisted info-hashes.
pub struct OpenTracker {
    port: u16,
    process: ProcessGuard,
    _root: TempDir,
}

impl OpenTracker {
    /// Starts opentracker for `info_hashes` (hex); returns once it accepts TCP connections.
    pub fn start(info_hashes: &[String]) -> Self {
        require_program("opentracker", "opentracker");
        require_program(SYSTEM_PYTHON, "python3");
        // It chroots to the root dir and drops to `nobody`: the dir must be 755, the list 644.
        let root = tempfile::Builder::new()
            .prefix("opentracker")
            .tempdir()
            .expect("create opentracker root dir");
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755))
            .expect("chmod 755 opentracker root");
        let whitelist = root.path().join("whitelist.txt");
        let lines: String = info_hashes
            .iter()
            .map(|hash| format!("{}\n", hash.to_lowercase()))
            .collect();
        fs::write(&whitelist, lines).expect("write opentracker whitelist");
        fs::set_permissions(&whitelist, fs::Permissions::from_mode(0o644))
            .expect("chmod 644 whitelist");
        let config = root.path().join("opentracker.conf");

        let mut failures = String::new();
        for _attempt in 0..3 {
            // A fresh port each try: a stale opentracker (SO_REUSEPORT) would share an old one.
            let port = free_port();
            let text = format!(
                "listen.tcp_udp 127.0.0.1:{port}\naccess.whitelist /whitelist.txt\ntracker.rootdir {}\n",
                root.path().display()
            );
            fs::write(&config, text).expect("write opentracker config");
            let args = vec!["-f".to_string(), config.display().to_string()];
            let process =
                ProcessGuard::spawn("opentracker", "opentracker", &args, root.path(), |_| {})
                    .unwrap_or_else(|err| panic!("{err}"));
            match wait_accepting(port, Duration::from_secs(5), &process) {
                Ok(()) => {
                    return Self {
                        port,
                        process,
                        _root: root,
                    };
                }
                Err(err) => {
                    let _ = writeln!(failures, "port {port}: {err}\n{}", process.report());
                }
            }
        }
        panic!("opentracker did not come up in 3 tries:\n{failures}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP announce URL (libtorrent only announces to loopback when the path is /announce).
    pub fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// The same tracker over UDP (BEP 15): `listen.tcp_udp` serves both on one port.
    pub fn udp_announce_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }

    pub fn report(&self) -> String {
        self.process.report()
    }
}
