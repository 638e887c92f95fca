//! Third-party BitTorrent programs as test fixtures: a libtorrent peer (`scripts/lt_peer.py`),
//! transmission-cli and opentracker, each a guard that stops its process on Drop.
#![allow(dead_code, unused_imports)]

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

pub use super::content::{
    deterministic_content, free_port, make_torrent_with_libtorrent, require_program,
    require_python_libtorrent,
};
use super::process::{OutputLine, ProcessGuard, SYSTEM_PYTHON, Watched};

const LT_PEER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lt_peer.py");
/// How long `port()` waits for a program to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(200);

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
    pub exit_when_complete: bool,
    pub max_seconds: Option<u64>,
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
        let mut args = vec![
            LT_PEER_SCRIPT.to_string(),
            "--torrent".into(),
            torrent.display().to_string(),
            "--save-path".into(),
            save_path.display().to_string(),
            "--listen-port".into(),
            self.listen_port.to_string(),
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
        ];
        args.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, flag)| flag.to_string()),
        );
        if let Some(seconds) = self.max_seconds {
            args.extend(["--max-seconds".into(), seconds.to_string()]);
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
    TrackerReply { peers: u32 },
    TrackerError { message: String },
}

/// Everything `lt_peer.py` has reported so far.
#[derive(Debug, Default)]
struct LtReport {
    port: Option<u16>,
    last_status: Option<Status>,
    complete: bool,
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

    /// Ends the peer now (as Drop does).
    pub fn stop(&self) {
        self.process.stop();
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
            Some(Err(why)) => Err(format!(
                "libtorrent peer did not {what}: {why}\n{}",
                self.report()
            )),
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
            LtEvent::TrackerReply { peers } => self.tracker_replies.push(peers),
            LtEvent::TrackerError { message } => self.tracker_errors.push(message),
        }
    }
}

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

    pub fn report(&self) -> String {
        self.process.report()
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
fn wait_accepting(port: u16, timeout: Duration, process: &ProcessGuard) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(timeout, process, || {
        TcpStream::connect_timeout(&addr, POLL).is_ok()
    })
}

/// Waits until a socket listens on `port`, read from /proc/net/tcp{,6} so that no probe
/// connection reaches the program (Transmission would count it as a failed peer).
fn wait_listening(port: u16, timeout: Duration, process: &ProcessGuard) -> Result<(), String> {
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
