//! The deadline policy's settings with their documented defaults, and its errors.

use std::time::Duration;

use crate::policy::picker::PickerError;

/// Every knob of the deadline policy. The defaults are the values measured best in the policy
/// simulator (`policy::sim`); see the field notes for what each one trades.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadlineConfig {
    /// The urgent window, in seconds of playback (deadlines advance one second per second of
    /// playback): pieces due within it are fetched in deadline order. Default 10 s.
    pub urgent_window: Duration,
    /// The window always holds at least this many pieces, for low rates and large pieces
    /// (Give-to-Get's "5 pieces"). Default 4.
    pub urgent_min_pieces: u32,
    /// A block is asked of a peer only if it is estimated to arrive this long before its
    /// deadline; absorbs rate and RTT jitter. Default 0.25 s.
    pub safety_margin: Duration,
    /// BiToS' p: the share of each peer's requests that serve the urgent window first; the
    /// rest go first to pieces beyond the window that are at risk (see `at_risk_holders`), so
    /// they are fetched while their holders are present. Either kind fills the slots the other
    /// leaves. In 0..=1. Default 0.8.
    pub urgent_share: f64,
    /// `urgent_share` applies only while more than this many connected peers still lack
    /// pieces; with fewer, every slot serves the urgent window first. A crowd of downloaders
    /// (viewers arriving together) trades the pieces few hold, so fetching them pays; a
    /// viewer among few downloaders only makes its own urgent blocks wait. Default 8, the
    /// viewer's unchoke slots: a crowd is more peers than it can upload to. In the local
    /// worlds (BENCHMARKS.md "Penalty") the share cut flash-crowd (12 viewers) from 51% to
    /// 35% and cost matched, multifile and scarce (one viewer) 4 to 11 points.
    pub crowd_size: usize,
    /// A piece held by at most this many connected peers is at risk of vanishing with them.
    /// Pieces everyone has are not worth fetching out of deadline order: with a tight swarm
    /// that only makes earlier pieces late. Default 2: in the local worlds (`btvod experiment`,
    /// BENCHMARKS.md "Penalty") two holders cut the penalty against 1 in matched, scarce, churn
    /// and flash-crowd, where churning or choking holders take their pieces away; 3 was no
    /// better than 2.
    pub at_risk_holders: u32,
    /// The order of the movie pieces beyond the urgent window (after the at-risk ones).
    /// Default `Deadline`.
    pub ahead_order: AheadOrder,
    /// Work that is not urgent (at-risk and further movie pieces) is asked of a peer only
    /// while its pipe holds less than this much: peers serve requests in order, so a deep queue
    /// of far pieces would make every block that turns urgent wait behind it. `None`: no
    /// bound. Default 8 s: in the local worlds, scarce paid 34-35% with 4-8 s against 41% with
    /// 2 s and 57% unbounded; flash-crowd, whose viewers trade what they hold, 32% with 8 s
    /// against 37-48% with 4, 10 s or no bound.
    pub ahead_horizon: Option<Duration>,
    /// At most this many peers are asked for one block at once; 1 disables duplicate requests
    /// of stuck urgent blocks. Default 2.
    pub max_requesters: usize,
    /// Whether stuck urgent blocks are raced outside a crowd too (see `crowd_size`). Default
    /// false: among few peers, races of libtorrent peers' blocks came back twice (they send
    /// what is in their send buffer whatever the CANCEL) and the penalty was lower without
    /// them; in crowd-200 no races cost 9 points (BENCHMARKS.md "Tuning, tenth round").
    pub race_alone: bool,
    /// A stuck urgent block is raced by another peer only if that peer's estimate beats the
    /// current one by at least this much. Default 0.5 s.
    pub duplicate_gain: Duration,
    /// Take back requests estimated to arrive this long after their deadline (they cannot save
    /// any penalty and hold up the pipe); `None` keeps them. Default `None`: the estimates
    /// rest on demand-limited rates and take back blocks that would have come in time (with
    /// 0.5 s, same-load runs paid 2-3 points more in churn, scarce and slow, 2 less in
    /// flash-crowd; BENCHMARKS.md, "Tuning, fourth round").
    pub cancel_late_after: Option<Duration>,
    /// A peer that has not delivered yet is asked for any block that could reach it before
    /// its deadline, and its requests are not judged late, instead of being held to
    /// `unmeasured_rate`. Default false: in fast it gave 4.2 +- 3.5% against 4.0 +- 0.9%
    /// without (four runs each), no gain for the first pieces it was meant to save. At the
    /// start, while no peer is measured yet, new peers are trusted regardless: there is no
    /// faster peer to keep a block for.
    pub trust_new_peers: bool,
    /// While no peer is measured yet (the first second of a download), a new peer may hold up
    /// to this many queued blocks it could deliver in time even where `unmeasured_rate` would
    /// give it fewer (the pieces due first); it never gets fewer than that guess gives. 0
    /// holds it to `unmeasured_rate` from the start. A cap, because a peer
    /// that sends every block it was asked for, cancelled or not (libtorrent reads requests
    /// into its send buffer), turns a deep opening queue into late blocks. Default 4.
    pub opening_blocks: usize,
    /// Per peer, the margin grows to the smoothed lateness of its blocks (arrival minus the
    /// estimate they were asked on) plus this many smoothed deviations, as TCP sets its
    /// retransmission timer from the RTT (RFC 6298), up to `MAX_LEARNED_MARGIN_S`: a peer
    /// whose upload comes in bursts (libtorrent's rate limiter) gets the blocks due soon only
    /// with the slack its record needs. `None`: `safety_margin` for every peer. Default 2:
    /// in matched's libtorrent world it cut the penalty from 10.1 +- 1.2% to 7.5 +- 1.3% and
    /// the duplicates by half, and moved matched and scarce in btvod worlds and scarce in the
    /// libtorrent world by less than a spread (BENCHMARKS.md, "Learned margins").
    pub lateness_margin: Option<f64>,
    /// The rate assumed for a peer that has not delivered yet. Low on purpose: an unmeasured
    /// peer gets work with slack, not the most urgent blocks. Default an eighth of the
    /// playback rate R: a fixed 16 KiB/s was a quarter of R in the shipped worlds and a
    /// sixteenth in the policy simulator's, and 8 KiB/s (R/8 there) cut churn's btvod world
    /// from 28.1 +- 3.1% to 21.4 +- 1.1% (BENCHMARKS.md, "Tuning, seventh round").
    pub unmeasured_rate: UnmeasuredRate,
    /// RTT assumed before one is measured. Default 200 ms.
    pub unmeasured_rtt: Duration,
    /// A peer's requests due after the urgent window are taken back when that lets an urgent
    /// block nobody was asked for arrive from it in time (`preempt.rs`). Default true.
    pub make_room_for_urgent: bool,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        Self {
            urgent_window: Duration::from_secs(10),
            urgent_min_pieces: 4,
            safety_margin: Duration::from_millis(250),
            urgent_share: 0.8,
            crowd_size: 8,
            at_risk_holders: 2,
            ahead_order: AheadOrder::Deadline,
            ahead_horizon: Some(Duration::from_secs(8)),
            max_requesters: 2,
            race_alone: false,
            duplicate_gain: Duration::from_millis(500),
            cancel_late_after: None,
            trust_new_peers: false,
            opening_blocks: 4,
            lateness_margin: Some(2.0),
            unmeasured_rate: UnmeasuredRate::ShareOfPlayback(0.125),
            unmeasured_rtt: Duration::from_millis(200),
            make_room_for_urgent: true,
        }
    }
}

/// The rate assumed for a peer that has not delivered yet (`DeadlineConfig::unmeasured_rate`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnmeasuredRate {
    /// Bytes per second, whatever the movie's rate.
    Fixed(f64),
    /// This share of the playback rate R (the fastest playhead's).
    ShareOfPlayback(f64),
}

/// What `ShareOfPlayback` assumes while no playhead has a piece due (nothing is then urgent,
/// so the guess orders only work with slack): the fixed guess measured before the share.
const NO_PLAYBACK_GUESS: f64 = 16.0 * 1024.0;

impl UnmeasuredRate {
    /// Bytes per second, given the deadline table's playback rate.
    pub fn bytes_per_sec(self, playback: Option<f64>) -> f64 {
        let rate = match self {
            Self::Fixed(rate) => rate,
            Self::ShareOfPlayback(share) => playback.map_or(NO_PLAYBACK_GUESS, |r| share * r),
        };
        rate.max(1.0)
    }
}

/// How the policy orders the pieces it asks for beyond the urgent window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AheadOrder {
    /// Nearest deadline first: they are the next to turn urgent. In a swarm short of upload,
    /// pieces due long after are better fetched later, when the swarm has grown.
    Deadline,
    /// Rarest first: spreads different pieces over the viewers, so that they can trade.
    Rarest,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeadlineError {
    #[error(transparent)]
    Book(#[from] PickerError),
    #[error("deadline policy: {setting} = {value} is out of range; it must be {expected}")]
    BadSetting {
        setting: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the deadline table was made for another torrent ({got} pieces, expected {expected})")]
    ScheduleMismatch { got: u32, expected: u32 },
}

impl DeadlineConfig {
    pub(super) fn check(&self) -> Result<(), DeadlineError> {
        let bad = |setting, value: String, expected| DeadlineError::BadSetting {
            setting,
            value,
            expected,
        };
        if !(0.0..=1.0).contains(&self.urgent_share) {
            return Err(bad(
                "urgent_share",
                self.urgent_share.to_string(),
                "between 0 and 1",
            ));
        }
        if self.max_requesters == 0 {
            return Err(bad("max_requesters", "0".into(), "at least 1"));
        }
        let (UnmeasuredRate::Fixed(guess) | UnmeasuredRate::ShareOfPlayback(guess)) =
            self.unmeasured_rate;
        if !(guess.is_finite() && guess > 0.0) {
            return Err(bad(
                "unmeasured_rate",
                format!("{:?}", self.unmeasured_rate),
                "a positive rate or share of the playback rate",
            ));
        }
        if self
            .lateness_margin
            .is_some_and(|k| !(k.is_finite() && k >= 0.0))
        {
            return Err(bad(
                "lateness_margin",
                format!("{:?}", self.lateness_margin),
                "a number of deviations zero or more",
            ));
        }
        Ok(())
    }
}
