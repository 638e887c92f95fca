//! The background task that keeps one torrent announced: `started`, regular re-announces,
//! `completed`, exponential backoff on failure, and `stopped` on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::schedule::{AnnounceOutcome, SchedulePolicy, next_announce_delay};
use super::{AnnounceError, Announcer};
use crate::proto::tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse};
use crate::proto::{InfoHash, PeerId};

/// What we report to the tracker; the torrent task publishes it through a `watch` channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
}

#[derive(Debug, Clone)]
pub struct AnnounceLoopConfig {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    /// The port we accept peer connections on.
    pub port: u16,
    pub numwant: Option<u32>,
    pub key: Option<u32>,
    pub schedule: SchedulePolicy,
    /// Bound on the `stopped` announce at shutdown: quitting must not wait for a dead tracker.
    pub stop_timeout: Duration,
}

impl AnnounceLoopConfig {
    pub fn new(info_hash: InfoHash, peer_id: PeerId, port: u16) -> Self {
        AnnounceLoopConfig {
            info_hash,
            peer_id,
            port,
            numwant: Some(50),
            key: None,
            schedule: SchedulePolicy::default(),
            stop_timeout: Duration::from_secs(5),
        }
    }
}

/// What the loop last saw, for progress displays and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceStatus {
    pub attempts: u64,
    pub answers: u64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    /// Delay chosen after the last announce.
    pub next_in: Option<Duration>,
    /// Whether a `completed` announce has been accepted.
    pub completed_sent: bool,
}

/// Anything that can carry one announce: the real [`Announcer`], or a scripted stand-in in
/// unit tests of the loop's timing.
pub trait AnnounceTransport: Send + 'static {
    fn announce(
        &mut self,
        req: &AnnounceRequest,
    ) -> impl Future<Output = Result<AnnounceResponse, AnnounceError>> + Send;
}

impl AnnounceTransport for Announcer {
    fn announce(
        &mut self,
        req: &AnnounceRequest,
    ) -> impl Future<Output = Result<AnnounceResponse, AnnounceError>> + Send {
        Announcer::announce(self, req)
    }
}

enum Command {
    Completed,
    AnnounceNow,
    Shutdown,
}

/// Controls a running announce loop. Dropping it also stops the loop (with `stopped`).
pub struct AnnounceLoopHandle {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<AnnounceStatus>,
    task: JoinHandle<()>,
}

impl AnnounceLoopHandle {
    /// The download finished: announce `completed` now (once).
    pub fn completed(&self) {
        let _ = self.commands.send(Command::Completed);
    }

    /// Ask for peers now, as soon as the tracker's `min interval` allows.
    pub fn announce_now(&self) {
        let _ = self.commands.send(Command::AnnounceNow);
    }

    pub fn status(&self) -> watch::Receiver<AnnounceStatus> {
        self.status.clone()
    }

    /// Announces `stopped` (bounded by the configured stop timeout) and waits for the loop.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "announce loop panicked");
        }
    }
}

/// Starts the loop. New peers from each answer arrive on the returned receiver; if it is full,
/// a batch is dropped (the next announce brings more) rather than stalling the loop.
pub fn spawn_announce_loop<T: AnnounceTransport>(
    transport: T,
    config: AnnounceLoopConfig,
    stats: watch::Receiver<TransferStats>,
) -> (AnnounceLoopHandle, mpsc::Receiver<Vec<SocketAddr>>) {
    // Unbounded but fed only by this process (the handle's owner): `completed` once per
    // download, `announce_now` on our own triggers, `shutdown` once; never by a tracker.
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (peers_tx, peers_rx) = mpsc::channel(16);
    let (status_tx, status_rx) = watch::channel(AnnounceStatus::default());
    let state = LoopState {
        transport,
        config,
        stats,
        commands: command_rx,
        peers: peers_tx,
        status: status_tx,
        started_acked: false,
        completed_requested: false,
        completed_acked: false,
        consecutive_failures: 0,
        earliest_regular: Instant::now(),
        min_interval: Duration::ZERO,
    };
    let task = tokio::spawn(state.run());
    let handle = AnnounceLoopHandle {
        commands: command_tx,
        status: status_rx,
        task,
    };
    (handle, peers_rx)
}

struct LoopState<T> {
    transport: T,
    config: AnnounceLoopConfig,
    stats: watch::Receiver<TransferStats>,
    commands: mpsc::UnboundedReceiver<Command>,
    peers: mpsc::Sender<Vec<SocketAddr>>,
    status: watch::Sender<AnnounceStatus>,
    started_acked: bool,
    completed_requested: bool,
    completed_acked: bool,
    consecutive_failures: u32,
    /// The tracker's `min interval` after the last answer: `announce_now` waits for it.
    earliest_regular: Instant,
    /// The last `min interval` a tracker gave: a retry after a failure waits at least this
    /// long too, so short backoff never announces more often than the tracker allows.
    min_interval: Duration,
}

impl<T: AnnounceTransport> LoopState<T> {
    async fn run(mut self) {
        let mut next_at = Instant::now();
        'outer: loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_at) => {}
                command = self.commands.recv() => {
                    match command {
                        Some(Command::Completed) => {
                            self.completed_requested = true;
                            if self.started_acked && !self.completed_acked {
                                next_at = Instant::now();
                            }
                        }
                        Some(Command::AnnounceNow) => {
                            next_at = next_at.min(self.earliest_regular.max(Instant::now()));
                        }
                        Some(Command::Shutdown) | None => break 'outer,
                    }
                    continue;
                }
            }
            let req = self.request(self.next_event());
            self.status.send_modify(|s| s.attempts += 1);
            // Keep listening for commands while the tracker thinks, so shutdown is prompt.
            let result = {
                let announce = self.transport.announce(&req);
                tokio::pin!(announce);
                loop {
                    tokio::select! {
                        result = &mut announce => break Some(result),
                        command = self.commands.recv() => match command {
                            Some(Command::Completed) => self.completed_requested = true,
                            Some(Command::AnnounceNow) => {}
                            Some(Command::Shutdown) | None => break None,
                        },
                    }
                }
            };
            let Some(result) = result else { break };
            next_at = Instant::now() + self.handle_result(req.event, result);
        }
        self.send_stopped().await;
    }

    fn next_event(&self) -> Option<AnnounceEvent> {
        if !self.started_acked {
            Some(AnnounceEvent::Started)
        } else if self.completed_requested && !self.completed_acked {
            Some(AnnounceEvent::Completed)
        } else {
            None
        }
    }

    fn request(&self, event: Option<AnnounceEvent>) -> AnnounceRequest {
        let stats = *self.stats.borrow();
        AnnounceRequest {
            info_hash: self.config.info_hash,
            peer_id: self.config.peer_id,
            port: self.config.port,
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
            left: stats.left,
            event,
            numwant: self.config.numwant,
            key: self.config.key,
            tracker_id: None,
            compact: true,
        }
    }

    /// Updates state after an announce and returns the delay until the next one.
    fn handle_result(
        &mut self,
        event: Option<AnnounceEvent>,
        result: Result<AnnounceResponse, AnnounceError>,
    ) -> Duration {
        let policy = &self.config.schedule;
        match result {
            Ok(response) => {
                self.consecutive_failures = 0;
                match event {
                    Some(AnnounceEvent::Started) => self.started_acked = true,
                    Some(AnnounceEvent::Completed) => self.completed_acked = true,
                    _ => {}
                }
                let min_interval = response.min_interval.unwrap_or_default();
                self.min_interval = min_interval;
                self.earliest_regular = Instant::now() + min_interval.max(policy.interval_floor);
                let mut delay = next_announce_delay(
                    policy,
                    AnnounceOutcome::Answered {
                        interval: response.interval,
                        min_interval: response.min_interval,
                    },
                );
                // A completion that came in while `started` was in flight goes out right away.
                if self.next_event() == Some(AnnounceEvent::Completed) {
                    delay = Duration::ZERO;
                }
                let peers: Vec<SocketAddr> = response.peers.iter().map(|p| p.addr).collect();
                tracing::debug!(peers = peers.len(), next_in = ?delay, "announce answered");
                self.status.send_modify(|s| {
                    s.answers += 1;
                    s.consecutive_failures = 0;
                    s.seeders = response.complete;
                    s.leechers = response.incomplete;
                    s.next_in = Some(delay);
                    s.completed_sent = self.completed_acked;
                });
                if !peers.is_empty()
                    && let Err(mpsc::error::TrySendError::Full(batch)) = self.peers.try_send(peers)
                {
                    tracing::debug!(
                        dropped = batch.len(),
                        "peer receiver is busy; batch dropped"
                    );
                }
                delay
            }
            Err(error) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let consecutive = self.consecutive_failures;
                let delay = next_announce_delay(policy, AnnounceOutcome::Failed { consecutive })
                    .max(self.min_interval);
                tracing::warn!(
                    "announce failed ({consecutive} in a row); retrying in {}s: {error}",
                    delay.as_secs_f32()
                );
                self.status.send_modify(|s| {
                    s.consecutive_failures = consecutive;
                    s.last_error = Some(error.to_string());
                    s.next_in = Some(delay);
                });
                delay
            }
        }
    }

    async fn send_stopped(&mut self) {
        if !self.started_acked {
            return;
        }
        let req = self.request(Some(AnnounceEvent::Stopped));
        let timeout = self.config.stop_timeout;
        match tokio::time::timeout(timeout, self.transport.announce(&req)).await {
            Ok(Ok(_)) => tracing::debug!("announced stopped"),
            Ok(Err(error)) => tracing::warn!("could not announce stopped: {error}"),
            Err(_) => tracing::warn!("tracker did not take 'stopped' within {timeout:?}"),
        }
    }
}

#[cfg(test)]
#[path = "announce_loop_tests.rs"]
mod tests;
