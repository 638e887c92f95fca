//! `Transmission`: a running transmission-cli 3.00 with its own config dir, and how to tell
//! that it has the whole file.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{POLL, START_TIMEOUT, wait_listening};
use crate::common::content::require_program;
use crate::common::process::{ProcessGuard, SYSTEM_PYTHON};

/// A running `transmission-cli` 3.00 with its own config dir. It accepts peers on 127.x only
/// when they dial it, and requests data at its ~10 s rechoke pulse: the other side must
/// connect to `port()`, and waits should allow ~90 s.
pub struct Transmission {
    port: u16,
    download_dir: PathBuf,
    process: ProcessGuard,
    _config_dir: TempDir,
}

impl Transmission {
    /// Starts downloading `torrent` into `download_dir`, listening on 127.0.0.1:`port`, with
    /// no speed limits and unencrypted connections preferred. Returns once it is listening.
    pub fn start(torrent: &Path, download_dir: &Path, port: u16) -> Self {
        require_program("transmission-cli", "transmission-cli");
        require_program(SYSTEM_PYTHON, "python3");
        let config_dir = tempfile::Builder::new()
            .prefix("transmission-config")
            .tempdir()
            .expect("create a config dir for transmission-cli");
        // Nothing may leave loopback or collide with a parallel test (RPC port 9091 is shared).
        let settings = serde_json::json!({
            "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1",
            "blocklist-enabled": false,
            "dht-enabled": false,
            "encryption": 0,
            "lpd-enabled": false,
            "message-level": 2,
            "peer-port-random-on-start": false,
            "pex-enabled": false,
            "port-forwarding-enabled": false,
            "rename-partial-files": true,
            "rpc-enabled": false,
            "utp-enabled": false,
        });
        fs::write(
            config_dir.path().join("settings.json"),
            settings.to_string(),
        )
        .expect("write transmission-cli settings.json");
        let args: Vec<String> = vec![
            "-g".into(),
            config_dir.path().display().to_string(),
            "-w".into(),
            download_dir.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-et".into(),
            "-D".into(),
            "-U".into(),
            "-M".into(),
            torrent.display().to_string(),
        ];
        let process = ProcessGuard::spawn(
            "transmission-cli",
            "transmission-cli",
            &args,
            download_dir,
            |_| {},
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let transmission = Self {
            port,
            download_dir: download_dir.to_path_buf(),
            process,
            _config_dir: config_dir,
        };
        if let Err(err) = wait_listening(port, START_TIMEOUT, &transmission.process) {
            panic!(
                "transmission-cli did not listen on port {port}: {err}\n{}",
                transmission.report()
            );
        }
        transmission
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits until `file_name` in the download dir holds exactly `expected`, under its final
    /// name (Transmission keeps `NAME.part` until the file is complete and verified).
    pub fn wait_complete(
        &self,
        file_name: &str,
        expected: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        let path = self.download_dir.join(file_name);
        let part = self.download_dir.join(format!("{file_name}.part"));
        let deadline = Instant::now() + timeout;
        loop {
            let complete_size = path
                .metadata()
                .is_ok_and(|m| m.len() == expected.len() as u64);
            if complete_size && !part.exists() && fs::read(&path).is_ok_and(|got| got == expected) {
                return Ok(());
            }
            if let Some(status) = self.process.exited() {
                return Err(format!(
                    "transmission-cli exited ({status}) before completing\n{}",
                    self.process.report()
                ));
            }
            if Instant::now() >= deadline {
                let size = |p: &Path| {
                    p.metadata()
                        .map_or("absent".to_string(), |m| format!("{} bytes", m.len()))
                };
                return Err(format!(
                    "transmission-cli did not complete {file_name} within {timeout:?} ({}: {}, {}: {}, {} expected)\n{}",
                    path.display(),
                    size(&path),
                    part.display(),
                    size(&part),
                    expected.len(),
                    self.process.report()
                ));
            }
            thread::sleep(POLL);
        }
    }

    pub fn report(&self) -> String {
        self.process.report()
    }
}
