//! Talking to HTTP and UDP trackers: one announce across BEP 12 tiers ([`Announcer`]), and the
//! background loop that keeps a torrent announced ([`spawn_announce_loop`]).

mod announce_loop;
mod schedule;
mod udp;

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use url::Url;

use crate::proto::tracker::{AnnounceRequest, AnnounceResponse, TrackerProtoError, TrackerTiers};

pub use announce_loop::{
    AnnounceLoopConfig, AnnounceLoopHandle, AnnounceStatus, AnnounceTransport, TransferStats,
    spawn_announce_loop,
};
pub use schedule::{AnnounceOutcome, SchedulePolicy, next_announce_delay};

/// HTTP behaviour of the tracker client.
#[derive(Debug, Clone)]
pub struct AnnouncerConfig {
    /// Whole request, connect to last body byte. A tracker slower than this counts as down.
    pub request_timeout: Duration,
    /// Replies larger than this are refused (a real one is a few KiB).
    pub max_body_bytes: usize,
    pub max_redirects: usize,
    pub user_agent: String,
    /// UDP trackers (BEP 15): the wait before the first retransmission (the BEP's 15 s; each
    /// next wait doubles) and how many retransmissions before the tracker counts as down.
    pub udp_first_timeout: Duration,
    pub udp_retransmits: u32,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            request_timeout: Duration::from_secs(15),
            max_body_bytes: 4 * 1024 * 1024,
            max_redirects: 3,
            user_agent: format!("btvod/{}", env!("CARGO_PKG_VERSION")),
            // 15 s, then 30 s: a dead UDP tracker holds an announce 45 s before the next tier.
            udp_first_timeout: Duration::from_secs(15),
            udp_retransmits: 1,
        }
    }
}

/// Why one tracker did not give us a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(reqwest::Error),
    #[error("HTTP request failed: {0}")]
    Http(reqwest::Error),
    #[error("tracker answered HTTP {0}")]
    Status(StatusCode),
    #[error("reply is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("UDP: {0}")]
    Udp(std::io::Error),
    #[error(transparent)]
    Protocol(#[from] TrackerProtoError),
}

/// One tracker's failure; the URL has its query (which may hold a passkey) removed.
#[derive(Debug)]
pub struct TrackerFailure {
    pub tracker: String,
    pub error: TrackerError,
}

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("the torrent lists no usable http(s) or udp tracker")]
    NoTrackers,
    #[error("could not set up the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("no tracker answered: {}", summarize(.0))]
    AllFailed(Vec<TrackerFailure>),
}

fn summarize(failures: &[TrackerFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.tracker, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A tracker URL fit for logs: no query, since private trackers put a passkey there.
pub fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

/// A torrent's trackers and the HTTP client that reaches them.
pub struct Announcer {
    tiers: TrackerTiers,
    http: reqwest::Client,
    config: AnnouncerConfig,
    /// `tracker id` each tracker gave us, echoed back on later announces.
    tracker_ids: HashMap<Url, String>,
    udp: udp::UdpClient,
}

impl Announcer {
    pub fn new(tiers: TrackerTiers, config: AnnouncerConfig) -> Result<Announcer, AnnounceError> {
        for skipped in tiers.skipped() {
            tracing::info!(tracker = %skipped.url, reason = %skipped.reason, "tracker skipped");
        }
        if tiers.is_empty() {
            return Err(AnnounceError::NoTrackers);
        }
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::limited(config.max_redirects))
            .user_agent(config.user_agent.clone())
            // Announces are minutes apart, and trackers such as opentracker close the socket
            // after each reply: a pooled connection would only fail with "connection reset".
            .pool_max_idle_per_host(0)
            .build()
            .map_err(AnnounceError::Client)?;
        Ok(Announcer {
            tiers,
            http,
            config,
            tracker_ids: HashMap::new(),
            udp: udp::UdpClient::default(),
        })
    }

    pub fn tiers(&self) -> &TrackerTiers {
        &self.tiers
    }

    /// Tries the trackers in BEP 12 order; the first usable answer wins and its tracker moves
    /// to the front of its tier. Every failure is kept in the error if none answers.
    pub async fn announce(
        &mut self,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, AnnounceError> {
        let mut failures = Vec::new();
        for (pos, url) in self.tiers.attempt_order() {
            let mut req = req.clone();
            if req.tracker_id.is_none() {
                req.tracker_id = self.tracker_ids.get(&url).cloned();
            }
            match self.announce_to(&url, &req).await {
                Ok(response) => {
                    if let Some(warning) = &response.warning {
                        tracing::warn!(tracker = %redacted(&url), %warning, "tracker warning");
                    }
                    if let Some(id) = &response.tracker_id {
                        self.tracker_ids.insert(url.clone(), id.clone());
                    }
                    self.tiers.promote(pos);
                    return Ok(response);
                }
                Err(error) => {
                    tracing::debug!(tracker = %redacted(&url), %error, "tracker did not answer");
                    failures.push(TrackerFailure {
                        tracker: redacted(&url),
                        error,
                    });
                }
            }
        }
        Err(AnnounceError::AllFailed(failures))
    }

    /// One announce to one tracker, without tiers.
    pub async fn announce_to(
        &self,
        announce_url: &Url,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        if announce_url.scheme() == "udp" {
            let timing = udp::UdpTiming {
                first_timeout: self.config.udp_first_timeout,
                retransmits: self.config.udp_retransmits,
            };
            return self.udp.announce(announce_url, req, timing).await;
        }
        let (body, status) = self.get_capped(req.to_url(announce_url)).await?;
        match (AnnounceResponse::parse(&body), status.is_success()) {
            (Ok(response), true) => Ok(response),
            // A failure reason is worth more than the status code that came with it.
            (Err(e @ TrackerProtoError::Failure(_)), _) | (Err(e), true) => Err(e.into()),
            (_, false) => Err(TrackerError::Status(status)),
        }
    }

    /// GETs `url` and reads the body in chunks, refusing it once it passes the cap.
    async fn get_capped(&self, url: Url) -> Result<(Vec<u8>, StatusCode), TrackerError> {
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                TrackerError::Timeout(self.config.request_timeout)
            } else if e.is_connect() {
                TrackerError::Connect(e)
            } else {
                TrackerError::Http(e)
            }
        };
        let mut response = self.http.get(url).send().await.map_err(classify)?;
        let status = response.status();
        let cap = self.config.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(TrackerError::BodyTooLarge(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > cap {
                return Err(TrackerError::BodyTooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, status))
    }
}
