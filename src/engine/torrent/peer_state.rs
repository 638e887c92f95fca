//! What the torrent task knows of one connected peer: choke and interest flags, rates, round
//! trips. What it has and what we asked of it are the picker's book's (`Torrent::picker`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pex::PexLink;
use crate::engine::peer::PeerCommand;
use crate::policy::PeerKey;
use crate::policy::pacing::{MAX_QUEUE, MIN_QUEUE, PIPELINE};
use crate::proto::PeerId;
use crate::proto::geometry::BLOCK_LEN;

/// Under a download limit, the requests in flight to all peers together hold at most this many
/// seconds of the limit, and at least `LIMITED_TOTAL_MIN` blocks.
const LIMITED_TOTAL_SECS: f64 = 8.0;
const LIMITED_TOTAL_MIN: usize = 4;

/// Under a download limit (bytes per second, 0 for none), how many blocks may be in flight to
/// all peers together. A block beyond that only waits in the limiter after it has arrived, and
/// with 50 peers each asked for its own queue a block waited minutes there: its sender looked
/// silent, was given up, and the blocks it had already sent were lost with the connection.
pub fn limited_total_queue(download_limit: u64) -> Option<usize> {
    (download_limit > 0).then(|| {
        let blocks = download_limit as f64 * LIMITED_TOTAL_SECS / f64::from(BLOCK_LEN);
        (blocks.ceil() as usize).max(LIMITED_TOTAL_MIN)
    })
}

/// Bytes per second, smoothed over a few one-second ticks.
#[derive(Debug, Default, Clone)]
pub struct RateMeter {
    this_tick: u64,
    rate: f64,
    pub total: u64,
}

impl RateMeter {
    pub fn add(&mut self, bytes: u64) {
        self.this_tick += bytes;
        self.total += bytes;
    }
    /// Called once per `elapsed` tick.
    pub fn tick(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(0.001);
        let sample = self.this_tick as f64 / secs;
        // Weight recent seconds more, but not so much that one quiet second zeroes a fast peer.
        self.rate = if self.rate == 0.0 {
            sample
        } else {
            0.6 * self.rate + 0.4 * sample
        };
        self.this_tick = 0;
    }
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

/// One connection as the torrent task sees it (only the torrent task touches it).
pub struct PeerState {
    pub addr: SocketAddr,
    pub peer_id: PeerId,
    pub fast: bool,
    /// It speaks BEP 10, and the id it wants `ut_metadata` sent under, once its extension
    /// handshake said so; metadata requests it made (a flood is refused past a cap).
    pub extensions: bool,
    pub ut_metadata: Option<u8>,
    pub metadata_requests: u32,
    /// Its `ut_pex` id and what we told each other (see `pex.rs`).
    pub pex: PexLink,
    /// The port it listens on, as its extension handshake said (for an incoming connection,
    /// the address peers can be told of).
    pub listen_port: Option<u16>,
    /// We dialled this connection (rather than accepted it).
    pub outgoing: bool,
    /// Its payload is RC4-encrypted (MSE).
    pub encrypted: bool,
    /// It runs over uTP.
    pub utp: bool,
    pub commands: mpsc::Sender<PeerCommand>,
    /// Ends the connection at once (see `PeerEvent::Connected`).
    kill: CancellationToken,
    /// We are choking them / they are choking us / interest both ways.
    pub am_choking: bool,
    pub peer_choking: bool,
    pub am_interested: bool,
    pub peer_interested: bool,
    pub download: RateMeter,
    /// Bytes of blocks it sent that we had never asked it for: dropped unread.
    pub unasked: u64,
    pub upload: RateMeter,
    pub connected_at: Instant,
    pub last_block_at: Option<Instant>,
    pub last_unchoked_us_at: Option<Instant>,
    /// Smoothed round trip from request to block, for sizing the pipeline.
    pub rtt: Duration,
    /// The quickest request-to-block time seen: the link's latency without queueing, which is
    /// what the deadline policy adds to its own queue estimate.
    pub min_rtt: Option<Duration>,
    /// Most requests in flight, when a download limit sets one.
    queue_cap: Option<usize>,
}

impl PeerState {
    /// Where it accepts connections, if we know: the address we dialled, or its address with
    /// the port its extension handshake gave.
    pub fn listening_addr(&self) -> Option<SocketAddr> {
        match self.outgoing {
            true => Some(self.addr),
            false => self
                .listen_port
                .map(|port| SocketAddr::new(self.addr.ip(), port)),
        }
    }

    pub fn new(
        addr: SocketAddr,
        peer_id: PeerId,
        fast: bool,
        commands: mpsc::Sender<PeerCommand>,
        kill: CancellationToken,
        now: Instant,
    ) -> Self {
        Self {
            addr,
            peer_id,
            fast,
            extensions: false,
            ut_metadata: None,
            metadata_requests: 0,
            pex: PexLink::default(),
            listen_port: None,
            outgoing: false,
            encrypted: false,
            utp: false,
            commands,
            kill,
            am_choking: true,
            peer_choking: true,
            am_interested: false,
            peer_interested: false,
            download: RateMeter::default(),
            unasked: 0,
            upload: RateMeter::default(),
            connected_at: now,
            last_block_at: None,
            last_unchoked_us_at: None,
            rtt: Duration::from_millis(100),
            min_rtt: None,
            queue_cap: None,
        }
    }

    /// How many requests to keep in flight: about two seconds of this peer's measured rate,
    /// with a floor so a new peer can show its speed and a cap under what peers accept queued
    /// (libtorrent's and Transmission's defaults are 250 and more).
    ///
    /// Not scaled by the measured round trip: that includes the time our own requests wait in
    /// the peer's queue, so a deeper queue would measure a longer trip and ask for a deeper
    /// queue again, until requests outlive the request timeout.
    pub fn desired_queue(&self) -> usize {
        let blocks = self.download.rate() * PIPELINE.as_secs_f64() / f64::from(BLOCK_LEN);
        let depth = (blocks as usize).clamp(MIN_QUEUE, MAX_QUEUE);
        self.queue_cap.map_or(depth, |cap| depth.min(cap))
    }

    /// One line of the per-peer trace (target `btvod::peer_trace`, trace level; see
    /// `Torrent::trace_peers`): the choke and interest flags both ways, requests in flight
    /// against the queue wanted, rate and bytes received, pieces the peer has (the last two
    /// from the picker's book).
    pub fn trace(&self, at_s: f64, policy: &str, key: PeerKey, in_flight: usize, has: u32) {
        tracing::trace!(
            target: "btvod::peer_trace",
            t = format_args!("{at_s:.1}"),
            policy,
            %key,
            peer = %self.addr,
            choking_us = self.peer_choking,
            we_choke = self.am_choking,
            we_want = self.am_interested,
            it_wants = self.peer_interested,
            in_flight,
            queue = self.desired_queue(),
            commands = self.commands.max_capacity() - self.commands.capacity(),
            rate = format_args!("{:.0}", self.download.rate()),
            received = self.download.total,
            unasked = self.unasked,
            has,
        );
    }

    /// Under a download limit, more than the limit's worth of requests only queues blocks
    /// behind each other (and, for a VoD client, urgent blocks behind idle ones).
    pub fn cap_queue_for_limit(&mut self, download_limit: u64) {
        self.queue_cap = (download_limit > 0).then(|| {
            let blocks =
                (download_limit as f64 * PIPELINE.as_secs_f64() / f64::from(BLOCK_LEN)).ceil();
            (blocks as usize).max(2)
        });
    }

    /// Requests to add to the `in_flight` ones (the book's count) to reach the wanted queue.
    pub fn free_slots(&self, in_flight: usize) -> usize {
        self.desired_queue().saturating_sub(in_flight)
    }

    pub fn note_rtt(&mut self, sample: Duration) {
        self.rtt = (self.rtt * 7 + sample) / 8;
        self.min_rtt = Some(self.min_rtt.map_or(sample, |m| m.min(sample)));
    }

    /// Sends a command without waiting. A peer whose queue is full is too slow to matter (or
    /// does not read what we send) and is closed. A queue that is closed belongs to a task
    /// that has already ended: nothing to close, its `Gone` event is on its way. Either way
    /// the command is dropped.
    pub fn send(&self, command: PeerCommand) -> bool {
        match self.commands.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(_)) => {
                if !self.kill.is_cancelled() {
                    tracing::info!(addr = %self.addr, "closing a peer whose command queue is full");
                }
                self.kill.cancel();
                false
            }
        }
    }

    /// Whether the connection is being ended (its `Gone` event is still to come).
    pub fn is_closing(&self) -> bool {
        self.kill.is_cancelled() || self.commands.is_closed()
    }

    /// Ends the connection now, dropping whatever is queued for it.
    pub fn close(&self) {
        self.kill.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter_smooths_and_counts() {
        let mut m = RateMeter::default();
        m.add(1000);
        m.tick(Duration::from_secs(1));
        assert_eq!(m.rate(), 1000.0);
        m.tick(Duration::from_secs(1));
        assert_eq!(m.rate(), 600.0);
        assert_eq!(m.total, 1000);
    }

    #[test]
    fn only_a_full_queue_closes_the_peer() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let (tx, rx) = mpsc::channel(1);
        let kill = CancellationToken::new();
        let p = PeerState::new(
            addr,
            PeerId([0; 20]),
            true,
            tx,
            kill.clone(),
            Instant::now(),
        );
        assert!(p.send(PeerCommand::Close));
        assert!(!p.send(PeerCommand::Close), "the second does not fit");
        assert!(
            kill.is_cancelled(),
            "a peer that does not drain its queue is closed"
        );

        // A task that has ended (its receiver dropped) is not "full": nothing to close.
        drop(rx);
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let kill = CancellationToken::new();
        let p = PeerState::new(
            addr,
            PeerId([0; 20]),
            true,
            tx,
            kill.clone(),
            Instant::now(),
        );
        assert!(!p.send(PeerCommand::Close));
        assert!(!kill.is_cancelled());
        assert!(p.is_closing(), "its Gone event is still to come");
    }

    #[test]
    fn a_download_limit_caps_the_request_queue() {
        let (tx, _rx) = mpsc::channel(1);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let kill = CancellationToken::new();
        let mut p = PeerState::new(addr, PeerId([0; 20]), true, tx, kill, Instant::now());
        assert_eq!(p.desired_queue(), MIN_QUEUE, "a new peer gets the floor");
        // 8 KiB/s for two seconds is one block: the cap never goes below two.
        p.cap_queue_for_limit(8 * 1024);
        assert_eq!(p.desired_queue(), 2);
        p.cap_queue_for_limit(1024 * 1024);
        assert_eq!(
            p.desired_queue(),
            MIN_QUEUE,
            "a generous limit leaves the floor alone"
        );
        p.cap_queue_for_limit(0);
        assert_eq!(p.desired_queue(), MIN_QUEUE);
    }

    #[test]
    fn a_download_limit_caps_the_requests_to_all_peers_together() {
        assert_eq!(limited_total_queue(0), None, "no limit, no cap");
        // 4 KiB/s for eight seconds is two blocks: never fewer than four.
        assert_eq!(limited_total_queue(4 * 1024), Some(LIMITED_TOTAL_MIN));
        // 1 MiB/s for eight seconds is 512 blocks.
        assert_eq!(limited_total_queue(1024 * 1024), Some(512));
    }
}
