//! Timing of the announce loop under paused tokio time, with a scripted transport standing in
//! for the network (the real one is exercised against live trackers in tests/tracker.rs).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::proto::tracker::TrackerPeer;

/// What the scripted tracker does on one call.
enum Reply {
    Answer {
        interval: u64,
        peers: Vec<SocketAddr>,
    },
    AnswerWithMin {
        interval: u64,
        min_interval: u64,
    },
    Fail,
    Hang,
}

type Calls = Arc<Mutex<Vec<(Option<AnnounceEvent>, Duration, u64)>>>;

struct Scripted {
    replies: VecDeque<Reply>,
    calls: Calls,
    start: Instant,
}

impl AnnounceTransport for Scripted {
    fn announce(
        &mut self,
        req: &AnnounceRequest,
    ) -> impl Future<Output = Result<AnnounceResponse, AnnounceError>> + Send {
        let at = Instant::now() - self.start;
        self.calls.lock().unwrap().push((req.event, at, req.left));
        let reply = self.replies.pop_front().unwrap_or(Reply::Answer {
            interval: 1000,
            peers: vec![],
        });
        async move {
            match reply {
                Reply::Answer { interval, peers } => Ok(AnnounceResponse {
                    interval: Some(Duration::from_secs(interval)),
                    peers: peers
                        .into_iter()
                        .map(|addr| TrackerPeer {
                            addr,
                            peer_id: None,
                        })
                        .collect(),
                    ..AnnounceResponse::default()
                }),
                Reply::AnswerWithMin {
                    interval,
                    min_interval,
                } => Ok(AnnounceResponse {
                    interval: Some(Duration::from_secs(interval)),
                    min_interval: Some(Duration::from_secs(min_interval)),
                    ..AnnounceResponse::default()
                }),
                Reply::Fail => Err(AnnounceError::AllFailed(vec![])),
                Reply::Hang => std::future::pending().await,
            }
        }
    }
}

struct Harness {
    handle: AnnounceLoopHandle,
    peers: mpsc::Receiver<Vec<SocketAddr>>,
    calls: Calls,
    stats: watch::Sender<TransferStats>,
}

fn start(replies: Vec<Reply>) -> Harness {
    let calls = Calls::default();
    let transport = Scripted {
        replies: replies.into(),
        calls: calls.clone(),
        start: Instant::now(),
    };
    let (stats, stats_rx) = watch::channel(TransferStats {
        left: 500,
        ..TransferStats::default()
    });
    let config = AnnounceLoopConfig::new(InfoHash([1; 20]), PeerId([2; 20]), 6881);
    let (handle, peers) = spawn_announce_loop(transport, config, stats_rx);
    Harness {
        handle,
        peers,
        calls,
        stats,
    }
}

fn events_and_secs(calls: &Calls) -> Vec<(Option<AnnounceEvent>, u64)> {
    let calls = calls.lock().unwrap();
    calls.iter().map(|(e, at, _)| (*e, at.as_secs())).collect()
}

use AnnounceEvent::{Completed, Started, Stopped};

#[tokio::test(start_paused = true)]
async fn announces_started_then_every_interval_then_stopped() {
    let peer: SocketAddr = "10.0.0.7:6881".parse().unwrap();
    let mut h = start(vec![Reply::Answer {
        interval: 100,
        peers: vec![peer],
    }]);
    h.stats.send_modify(|s| s.left = 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.peers.recv().await, Some(vec![peer]));
    tokio::time::sleep(Duration::from_secs(1100)).await;
    h.handle.shutdown().await;
    assert_eq!(
        events_and_secs(&h.calls),
        [
            (Some(Started), 0),
            (None, 100),
            (None, 1100),
            (Some(Stopped), 1101)
        ]
    );
    assert_eq!(
        h.calls.lock().unwrap()[1].2,
        0,
        "current stats are reported"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_and_keep_the_started_event() {
    let h = start(vec![Reply::Fail, Reply::Fail, Reply::Fail, Reply::Fail]);
    let status = h.handle.status();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(status.borrow().consecutive_failures, 4);
    assert!(status.borrow().last_error.is_some());
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(status.borrow().consecutive_failures, 0);
    h.handle.shutdown().await;
    // 2 s, then doubling: a tracker down at start is reached soon after it comes up.
    assert_eq!(
        events_and_secs(&h.calls),
        [
            (Some(Started), 0),
            (Some(Started), 2),
            (Some(Started), 6),
            (Some(Started), 14),
            (Some(Started), 30),
            (Some(Stopped), 40)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_failure_keeps_the_trackers_min_interval() {
    // Answered with min interval 60; the regular announce at 100 fails: the retry waits 60 s,
    // not the 2 s backoff.
    let h = start(vec![
        Reply::AnswerWithMin {
            interval: 100,
            min_interval: 60,
        },
        Reply::Fail,
        Reply::Fail,
    ]);
    tokio::time::sleep(Duration::from_secs(300)).await;
    h.handle.shutdown().await;
    assert_eq!(
        events_and_secs(&h.calls),
        [
            (Some(Started), 0),
            (None, 100),
            (None, 160),
            (None, 220),
            (Some(Stopped), 300)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn completed_goes_out_at_once_and_only_once() {
    let h = start(vec![]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.handle.completed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.handle.completed();
    tokio::time::sleep(Duration::from_secs(1009)).await;
    assert!(h.handle.status().borrow().completed_sent);
    h.handle.shutdown().await;
    assert_eq!(
        events_and_secs(&h.calls),
        [
            (Some(Started), 0),
            (Some(Completed), 10),
            (None, 1010),
            (Some(Stopped), 1020)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_prompt_even_when_the_tracker_hangs() {
    // Started answers; the next regular announce hangs, and so does `stopped`.
    let h = start(vec![
        Reply::Answer {
            interval: 60,
            peers: vec![],
        },
        Reply::Hang,
        Reply::Hang,
    ]);
    tokio::time::sleep(Duration::from_secs(100)).await;
    let began = Instant::now();
    h.handle.shutdown().await;
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(5),
        "bounded by stop_timeout"
    );
    assert_eq!(
        events_and_secs(&h.calls),
        [(Some(Started), 0), (None, 60), (Some(Stopped), 100)]
    );
}

#[tokio::test(start_paused = true)]
async fn no_stopped_without_an_accepted_start_and_announce_now_respects_the_floor() {
    let h = start(vec![Reply::Fail]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.handle.shutdown().await;
    assert_eq!(events_and_secs(&h.calls), [(Some(Started), 0)]);

    let h = start(vec![]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.handle.announce_now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    h.handle.shutdown().await;
    // The 15 s floor holds back the early announce.
    assert_eq!(
        events_and_secs(&h.calls),
        [(Some(Started), 0), (None, 15), (Some(Stopped), 21)]
    );
}
