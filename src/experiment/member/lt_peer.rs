//! A world peer played by libtorrent: `scripts/lt_peer.py` as a child process on the world's address,
//! its status lines read into a watch channel, stopped with SIGTERM (and taken down with the
//! world however the world ends: the script stops when its stdin closes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::MemberStats;
use crate::experiment::scenario::Limits;
use crate::proto::bitfield::Bitfield;

/// The interpreter that imports libtorrent and the peer script.
#[derive(Debug, Clone)]
pub struct LtProgram {
    pub python: PathBuf,
    pub script: PathBuf,
}

impl Default for LtProgram {
    fn default() -> Self {
        LtProgram {
            python: PathBuf::from("/usr/bin/python3"),
            script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lt_peer.py")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LtPeerError {
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("lt_peer.py ended before it was ready: {0}")]
    NoListen(String),
}

/// One line of lt_peer.py's output (only the fields used here).
#[derive(Debug, Deserialize)]
struct Line {
    event: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    pieces: u32,
    #[serde(default)]
    downloaded: u64,
    #[serde(default)]
    uploaded: u64,
    #[serde(default)]
    progress: f64,
    #[serde(default)]
    state: String,
    /// The pieces held, as a wire bitfield in hex.
    #[serde(default)]
    bitfield: String,
}

impl Line {
    fn stats(&self, piece_count: u32) -> MemberStats {
        MemberStats {
            pieces_have: self.pieces,
            piece_count,
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            complete: self.progress >= 1.0,
            have: hex_bytes(&self.bitfield)
                .and_then(|bytes| Bitfield::from_wire(&bytes, piece_count).ok())
                .map(Arc::new),
        }
    }
}

/// A running libtorrent peer.
pub(crate) struct LtPeer {
    child: Child,
    /// Held open: lt_peer.py stops when it closes (`--stop-on-eof`).
    lifeline: Option<ChildStdin>,
    listen: SocketAddr,
    stats: watch::Receiver<MemberStats>,
    reader: JoinHandle<()>,
}

impl LtPeer {
    /// Starts libtorrent on the torrent with its content (complete or partial) in `save_path`,
    /// under the class's limits, listening on `listen` (port 0: any); returns once it listens
    /// and has checked its files.
    pub async fn start(
        program: &LtProgram,
        torrent: &Path,
        save_path: &Path,
        limits: Limits,
        piece_count: u32,
        listen: SocketAddr,
    ) -> Result<LtPeer, LtPeerError> {
        let mut child = Command::new(&program.python)
            .arg(&program.script)
            .arg("--torrent")
            .arg(torrent)
            .arg("--save-path")
            .arg(save_path)
            .args(["--upload-limit", &limits.upload.to_string()])
            .args(["--download-limit", &limits.download.to_string()])
            .args(max_connections_args(limits))
            .args(["--listen-port", &listen.port().to_string()])
            .args(["--listen-host", &listen.ip().to_string()])
            .arg("--stop-on-eof")
            // Peer exchange would hand out the addresses behind a world's latency relays.
            .arg("--no-pex")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LtPeerError::Spawn {
                program: program.python.clone(),
                source,
            })?;
        let lifeline = child.stdin.take();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(LtPeerError::NoListen("no pipes to the child".into()));
        };
        let mut lines = BufReader::new(stdout).lines();
        // Ready once listening and done checking its files, so the pieces it starts with are
        // what the world records.
        let mut port = None;
        let first = loop {
            let read = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
            let text = match read {
                Ok(Ok(Some(text))) => text,
                Ok(_) => return Err(LtPeerError::NoListen(last_line(stderr).await)),
                Err(_) => return Err(LtPeerError::NoListen("not ready within 30 s".into())),
            };
            let Ok(line) = serde_json::from_str::<Line>(&text) else {
                continue;
            };
            match line.event.as_str() {
                "listening" => port = Some(line.port),
                "status" if port.is_some() && !line.state.starts_with("checking") => {
                    break line.stats(piece_count);
                }
                _ => {}
            }
        };
        let port = port.unwrap_or_default();
        tokio::spawn(async move {
            // Drained so a chatty libtorrent never blocks on a full pipe.
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!("lt_peer.py: {line}");
            }
        });
        let (tx, stats) = watch::channel(first);
        let reader = tokio::spawn(async move {
            while let Ok(Some(text)) = lines.next_line().await {
                let Ok(line) = serde_json::from_str::<Line>(&text) else {
                    continue;
                };
                if line.event == "status" {
                    let _ = tx.send(line.stats(piece_count));
                }
            }
        });
        Ok(LtPeer {
            child,
            lifeline,
            listen: SocketAddr::new(listen.ip(), port),
            stats,
            reader,
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn stats(&self) -> watch::Receiver<MemberStats> {
        self.stats.clone()
    }

    /// SIGTERM, then up to 10 s for libtorrent to announce `stopped` and exit; killed after.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        drop(self.lifeline.take());
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.reader).await;
        self.reader.abort();
    }
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn last_line(stderr: tokio::process::ChildStderr) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut last = String::new();
    let read_all = async {
        while let Ok(Some(line)) = lines.next_line().await {
            last = line;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read_all).await;
    last
}

/// `--max-connections N` when the class caps its connections (else libtorrent's default).
pub(crate) fn max_connections_args(limits: Limits) -> Vec<String> {
    limits
        .max_peers
        .map(|n| vec!["--max-connections".to_string(), n.to_string()])
        .unwrap_or_default()
}
