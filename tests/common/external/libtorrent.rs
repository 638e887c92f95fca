//! `LibtorrentPeer`: a running `scripts/lt_peer.py` (one libtorrent session, one torrent) and
//! the JSON events it prints.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::START_TIMEOUT;
use crate::common::content::require_python_libtorrent;
use crate::common::process::{OutputLine, ProcessGuard, SYSTEM_PYTHON, Watched};

const LT_PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lt_peer.py");

/// How `scripts/lt_peer.py` runs; `Default` is an unlimited leecher that dials nobody.
#[derive(Debug, Clone, Default)]
pub struct LtOptions {
    /// 0 = any free port (the peer reports the one bound).
    pub listen_port: u16,
    pub connect: Vec<SocketAddr>,
    /// Bytes per second, 0 = unlimited.
    pub upload_limit: u64,
    pub download_limit: u64,
    /// The save path holds the whole content; the peer fails if libtorrent's check disagrees.
    pub seed_mode: bool,
    pub sequential: bool,
    /// After this many seconds, a deadline on every piece (libtorrent's streaming mode).
    pub deadlines_after: Option<f64>,
    pub exit_when_complete: bool,
    pub max_seconds: Option<u64>,
    /// Start from this magnet link instead of the torrent file (its metadata fetched).
    pub magnet: Option<String>,
    /// Listen here instead of 127.0.0.1 (e.g. `::1`).
    pub listen_host: Option<String>,
    /// Turn the DHT on, joining through this node (and announce every 2 s).
    pub dht_bootstrap: Option<SocketAddr>,
    /// MSE/PE both ways: "enabled" or "forced" (RC4 payload only); plaintext when None.
    pub encryption: Option<&'static str>,
    /// Peer transports both ways: "utp" (uTP only) or "both"; TCP only when None.
    pub transport: Option<&'static str>,
    /// Local service discovery (BEP 14) on.
    pub lsd: bool,
    /// libtorrent's `connections_limit`; its default (200) when None.
    pub max_connections: Option<u32>,
}

impl LtOptions {
    /// A seed of content already in the save path.
    pub fn seed() -> Self {
        Self {
            seed_mode: true,
            ..Self::default()
        }
    }

    /// A leecher that dials `peer` and exits once it has everything.
    pub fn download_from(peer: SocketAddr) -> Self {
        Self {
            connect: vec![peer],
            exit_when_complete: true,
            ..Self::default()
        }
    }

    fn to_args(&self, torrent: &Path, save_path: &Path) -> Vec<String> {
        let (source, value) = match &self.magnet {
            Some(link) => ("--magnet", link.clone()),
            None => ("--torrent", torrent.display().to_string()),
        };
        let mut args = vec![
            LT_PEER_SCRIPT.to_string(),
            source.into(),
            value,
            "--save-path".into(),
            save_path.display().to_string(),
            "--listen-port".into(),
            self.listen_port.to_string(),
            "--listen-host".into(),
            self.listen_host
                .clone()
                .unwrap_or_else(|| "127.0.0.1".into()),
            "--upload-limit".into(),
            self.upload_limit.to_string(),
            "--download-limit".into(),
            self.download_limit.to_string(),
        ];
        for peer in &self.connect {
            args.extend(["--connect".into(), peer.to_string()]);
        }
        let flags = [
            (self.seed_mode, "--seed-mode"),
            (self.sequential, "--sequential"),
            (self.exit_when_complete, "--exit-when-complete"),
            (self.lsd, "--lsd"),
        ];
        args.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, flag)| flag.to_string()),
        );
        if let Some(seconds) = self.deadlines_after {
            args.extend(["--deadlines-after".into(), seconds.to_string()]);
        }
        if let Some(node) = self.dht_bootstrap {
            args.extend(["--dht-bootstrap".into(), node.to_string()]);
        }
        if let Some(seconds) = self.max_seconds {
            args.extend(["--max-seconds".into(), seconds.to_string()]);
        }
        if let Some(policy) = self.encryption {
            args.extend(["--encryption".into(), policy.into()]);
        }
        if let Some(transport) = self.transport {
            args.extend(["--transport".into(), transport.into()]);
        }
        if let Some(n) = self.max_connections {
            args.extend(["--max-connections".into(), n.to_string()]);
        }
        args
    }
}

/// One `status` line of `lt_peer.py` (byte counts are payload; rates in bytes/s).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Status {
    pub progress: f64,
    pub state: String,
    /// Payload bytes received and sent this session.
    pub downloaded: u64,
    pub uploaded: u64,
    /// Bytes of verified content present.
    pub have: u64,
    pub peers: u32,
    pub download_rate: u64,
    pub upload_rate: u64,
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum LtEvent {
    Listening { port: u16 },
    Status(Status),
    Complete,
    Metadata { seconds: f64 },
    TrackerReply { peers: u32 },
    TrackerError { message: String },
}

/// Everything `lt_peer.py` has reported so far.
#[derive(Debug, Default)]
struct LtReport {
    port: Option<u16>,
    last_status: Option<Status>,
    complete: bool,
    /// Seconds from start to the metadata of a magnet link.
    metadata_after: Option<f64>,
    tracker_replies: Vec<u32>,
    tracker_errors: Vec<String>,
    stdout_closed: bool,
}

/// A running `scripts/lt_peer.py`: one libtorrent session with one torrent on 127.0.0.1.
pub struct LibtorrentPeer {
    report: Arc<Watched<LtReport>>,
    process: ProcessGuard,
}

impl LibtorrentPeer {
    /// Starts the peer; panics (with the package to install) if libtorrent is missing.
    pub fn start(torrent: &Path, save_path: &Path, options: &LtOptions) -> Self {
        require_python_libtorrent();
        let report = Arc::new(Watched::new(LtReport::default()));
        let sink = Arc::clone(&report);
        let process = ProcessGuard::spawn(
            "lt_peer.py",
            SYSTEM_PYTHON,
            &options.to_args(torrent, save_path),
            Path::new(env!("CARGO_MANIFEST_DIR")),
            move |line| match line {
                // Lines that are not events stay in the output tail for failure messages.
                OutputLine::Line(text) => {
                    if let Ok(event) = serde_json::from_str::<LtEvent>(text) {
                        sink.update(|report| report.record(event));
                    }
                }
                OutputLine::Closed => sink.update(|report| report.stdout_closed = true),
            },
        )
        .unwrap_or_else(|err| panic!("{err}"));
        Self { report, process }
    }

    /// The port the peer listens on; panics if it does not report one within 20 s.
    pub fn port(&self) -> u16 {
        self.wait_port(START_TIMEOUT)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    pub fn wait_port(&self, timeout: Duration) -> Result<u16, String> {
        self.wait("report its listening port", timeout, |report| report.port)
    }

    /// Waits for the `complete` event (every piece present and verified).
    pub fn wait_complete(&self, timeout: Duration) -> Result<(), String> {
        self.wait("complete", timeout, |report| report.complete.then_some(()))
    }

    /// Waits for a magnet's metadata; the seconds it took from start.
    pub fn wait_metadata(&self, timeout: Duration) -> Result<f64, String> {
        self.wait("get the metadata", timeout, |report| report.metadata_after)
    }

    /// Waits for a status line that satisfies `accept`.
    pub fn wait_status(
        &self,
        timeout: Duration,
        accept: impl Fn(&Status) -> bool,
    ) -> Result<Status, String> {
        self.wait("report the expected status", timeout, |report| {
            report.last_status.clone().filter(|status| accept(status))
        })
    }

    /// Waits for a successful announce; returns how many peers the tracker gave.
    pub fn wait_tracker_reply(&self, timeout: Duration) -> Result<u32, String> {
        self.wait("get a tracker reply", timeout, |report| {
            report.tracker_replies.last().copied()
        })
    }

    pub fn last_status(&self) -> Option<Status> {
        self.report.lock().last_status.clone()
    }

    /// Waits for the process to exit (after `exit_when_complete` or `max_seconds`); its code.
    pub fn wait_exit(&self, timeout: Duration) -> Result<Option<i32>, String> {
        self.process.wait_exit(timeout).map(|status| status.code())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Ends the peer now (as Drop does); its exit code (0 when it stopped cleanly).
    pub fn stop(&self) -> Option<i32> {
        self.process.stop().and_then(|status| status.code())
    }

    /// What the peer printed lately, and tracker errors: for failure messages.
    pub fn report(&self) -> String {
        let errors = self.report.lock().tracker_errors.join("\n    ");
        format!(
            "--- tracker errors:\n    {errors}\n{}",
            self.process.report()
        )
    }

    fn wait<R>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&LtReport) -> Option<R>,
    ) -> Result<R, String> {
        let outcome = self.report.wait_for(timeout, |report| match check(report) {
            Some(found) => Some(Ok(found)),
            None if report.stdout_closed => Some(Err("it exited first")),
            None => None,
        });
        match outcome {
            Some(Ok(found)) => Ok(found),
            Some(Err(why)) => {
                // Its exit status tells a crash (128 + signal) from a clean exit.
                let status = self
                    .process
                    .wait_exit(Duration::from_secs(2))
                    .map_or_else(|_| "still running".to_string(), |status| status.to_string());
                Err(format!(
                    "libtorrent peer did not {what}: {why} ({status})\n{}",
                    self.report()
                ))
            }
            None => Err(format!(
                "libtorrent peer did not {what} within {timeout:?}\n{}",
                self.report()
            )),
        }
    }
}

impl LtReport {
    fn record(&mut self, event: LtEvent) {
        match event {
            LtEvent::Listening { port } => self.port = Some(port),
            LtEvent::Status(status) => self.last_status = Some(status),
            LtEvent::Complete => self.complete = true,
            LtEvent::Metadata { seconds } => self.metadata_after = Some(seconds),
            LtEvent::TrackerReply { peers } => self.tracker_replies.push(peers),
            LtEvent::TrackerError { message } => self.tracker_errors.push(message),
        }
    }
}
