//! The paid VoD server the client falls back on for pieces the swarm did not deliver in time:
//! a complete local copy (`file:`) or an HTTP origin asked with Range requests (`http(s)://`,
//! BEP 19 URL layout). Meters every body byte received and learns how long fetches take.

mod estimator;
mod http;
mod local;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proto::geometry::Geometry;
use crate::proto::metainfo::{MAX_PIECE_LEN, Metainfo};

pub use estimator::{EstimateReading, Estimator};

/// The most one [`VodServer::fetch`] returns: one piece of the largest size accepted.
pub const MAX_FETCH_LEN: u64 = MAX_PIECE_LEN as u64;

/// How the HTTP fetcher waits and retries.
#[derive(Debug, Clone)]
pub struct VodServerConfig {
    pub connect_timeout: Duration,
    /// Request sent to response headers.
    pub response_timeout: Duration,
    /// Longest silence inside a body before the transfer counts as stalled.
    pub stall_timeout: Duration,
    /// Tries per file slice, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, capped at `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Throughput assumed until a body has been measured.
    pub assumed_bytes_per_s: u64,
    /// `check` looks at most this many files (a HEAD each).
    pub max_checked_files: usize,
}

impl Default for VodServerConfig {
    fn default() -> Self {
        VodServerConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(10),
            max_attempts: 4,
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            assumed_bytes_per_s: 1 << 20,
            max_checked_files: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VodServerError {
    #[error(
        "unsupported VoD server `{0}`: give file:/path/to/complete/copy or http://host:port/..."
    )]
    UnsupportedUrl(String),
    #[error("invalid VoD server URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("could not set up the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("VoD server {url} is unreachable (is it running?): {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("VoD server {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("VoD server {url} stopped sending for {timeout:?} in the middle of a body")]
    Stalled { url: String, timeout: Duration },
    #[error("VoD server {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("VoD server answered HTTP {status} for {url}")]
    Status { url: String, status: u16 },
    #[error(
        "VoD server {url} does not serve byte ranges ({detail}); it must answer Range \
         requests with 206 Partial Content"
    )]
    NoRanges { url: String, detail: String },
    #[error("VoD server {url} sent {got} body bytes where {expected} were asked for")]
    WrongBodyLength {
        url: String,
        expected: u64,
        got: u64,
    },
    #[error(
        "{what} is {actual} bytes but the torrent says {expected}: is it the complete copy of \
         this torrent?"
    )]
    LengthMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("cannot read the VoD copy {}: {source}", path.display())]
    FileIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("byte range {start}..{end} is not inside the torrent (length {total})")]
    RangeOutOfBounds { start: u64, end: u64, total: u64 },
    #[error("a fetch of {0} bytes is more than the {MAX_FETCH_LEN}-byte limit; fetch by piece")]
    RangeTooLarge(u64),
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<VodServerError>,
    },
    #[error("a file read task failed: {0}")]
    Task(String),
}

impl VodServerError {
    /// Whether trying again might succeed (the server was down, slow or cut a body short).
    pub fn is_transient(&self) -> bool {
        match self {
            VodServerError::Unreachable { .. }
            | VodServerError::Timeout { .. }
            | VodServerError::Stalled { .. }
            | VodServerError::Transport { .. } => true,
            VodServerError::Status { status, .. } => *status >= 500 || *status == 429,
            // Short is transient (the connection dropped); longer is a broken server.
            VodServerError::WrongBodyLength { expected, got, .. } => got < expected,
            _ => false,
        }
    }
}

/// The client side of the penalty meter. Shared, lock-free, readable at any time.
#[derive(Debug, Default)]
pub struct VodServerMeter {
    bytes_received: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// A reading of [`VodServerMeter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterReading {
    /// Body bytes received from the server, every one counted once, including bytes of an
    /// attempt that failed midway (the next attempt asks only for the rest).
    pub bytes_received: u64,
    /// Requests the server answered (HEAD included); for `file:`, slices read.
    pub requests: u64,
    /// Attempts retried after a transient failure.
    pub retries: u64,
}

impl VodServerMeter {
    pub fn reading(&self) -> MeterReading {
        MeterReading {
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
    fn add_bytes(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }
    fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VodServerKind {
    /// A complete copy on this machine: bytes are copied, fetches take ~no time.
    File,
    /// An HTTP(S) origin asked with Range requests.
    Http,
}

enum Source {
    File(local::LocalCopy),
    Http(http::HttpOrigin),
}

/// One VoD server for one torrent. Share it behind an `Arc`: every method takes `&self`.
pub struct VodServer {
    source: Source,
    geometry: Geometry,
    meter: Arc<VodServerMeter>,
    estimator: Mutex<Estimator>,
    shown: String,
}

impl VodServer {
    /// `file:/path` (the file of a single-file torrent, the top directory of a multi-file
    /// one; `file:relative/path` is relative to the working directory) or `http(s)://...`.
    pub fn parse(url: &str, meta: &Metainfo) -> Result<VodServer, VodServerError> {
        Self::with_config(url, meta, VodServerConfig::default())
    }

    pub fn with_config(
        url: &str,
        meta: &Metainfo,
        config: VodServerConfig,
    ) -> Result<VodServer, VodServerError> {
        let estimator = Mutex::new(Estimator::new(config.assumed_bytes_per_s));
        let (source, shown) = if let Some(rest) = url.strip_prefix("file:") {
            let copy = local::LocalCopy::new(url, rest, meta)?;
            let shown = format!("file:{}", copy.root().display());
            (Source::File(copy), shown)
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let origin = http::HttpOrigin::new(url, meta, config)?;
            let shown = origin.shown().to_string();
            (Source::Http(origin), shown)
        } else {
            return Err(VodServerError::UnsupportedUrl(url.to_string()));
        };
        Ok(VodServer {
            source,
            geometry: meta.geometry.clone(),
            meter: Arc::new(VodServerMeter::default()),
            estimator,
            shown,
        })
    }

    pub fn kind(&self) -> VodServerKind {
        match self.source {
            Source::File(_) => VodServerKind::File,
            Source::Http(_) => VodServerKind::Http,
        }
    }

    /// The server as it may be shown to the user (no passwords or query strings).
    pub fn display_url(&self) -> &str {
        &self.shown
    }

    /// Checks that every file of the torrent is there with its torrent length (for HTTP, a
    /// HEAD per file, at most `max_checked_files`). Call it before relying on the server.
    pub async fn check(&self) -> Result<(), VodServerError> {
        match &self.source {
            Source::File(copy) => copy.check().await,
            Source::Http(origin) => origin.check(&self.meter, &self.estimator).await,
        }
    }

    /// The bytes `range` of the torrent's byte stream (it may span files): one read or one
    /// Range request per file slice, retried on transient failures without asking twice for
    /// a byte already received.
    pub async fn fetch(&self, range: Range<u64>) -> Result<Vec<u8>, VodServerError> {
        let total = self.geometry.total_len();
        if range.start > range.end || range.end > total {
            return Err(VodServerError::RangeOutOfBounds {
                start: range.start,
                end: range.end,
                total,
            });
        }
        let len = range.end - range.start;
        if len > MAX_FETCH_LEN {
            return Err(VodServerError::RangeTooLarge(len));
        }
        let slices = self.geometry.file_slices(range);
        // Bounded by MAX_FETCH_LEN above.
        let mut out = Vec::with_capacity(len as usize);
        match &self.source {
            Source::File(copy) => {
                out = copy.read(slices, out, &self.meter).await?;
            }
            Source::Http(origin) => {
                for slice in slices {
                    origin
                        .fetch_slice(slice, &mut out, &self.meter, &self.estimator)
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// Expected time to fetch `bytes` in one request. ~0 for `file:`.
    pub fn estimate(&self, bytes: u64) -> Duration {
        self.estimate_requests(bytes, 1)
    }

    /// Expected time to fetch `bytes` in `requests` requests, one after the other.
    pub fn estimate_requests(&self, bytes: u64, requests: u32) -> Duration {
        match self.source {
            Source::File(_) => Duration::ZERO,
            Source::Http(_) => self.estimator().estimate(bytes, requests),
        }
    }

    /// Expected time to [`fetch`](Self::fetch) `range`: one time-to-first-byte per file slice.
    pub fn estimate_range(&self, range: Range<u64>) -> Duration {
        match self.source {
            Source::File(_) => Duration::ZERO,
            Source::Http(_) => {
                let slices = self.geometry.file_slices(range.clone());
                let requests = u32::try_from(slices.len()).unwrap_or(u32::MAX).max(1);
                let bytes = range.end.saturating_sub(range.start);
                self.estimator().estimate(bytes, requests)
            }
        }
    }

    pub fn estimate_reading(&self) -> EstimateReading {
        self.estimator().reading()
    }

    pub fn meter(&self) -> MeterReading {
        self.meter.reading()
    }

    /// The live meter, for a report that outlives this server.
    pub fn meter_handle(&self) -> Arc<VodServerMeter> {
        self.meter.clone()
    }

    fn estimator(&self) -> std::sync::MutexGuard<'_, Estimator> {
        self.estimator.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for VodServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VodServer")
            .field("url", &self.shown)
            .field("meter", &self.meter.reading())
            .finish_non_exhaustive()
    }
}
