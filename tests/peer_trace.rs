//! The per-peer trace (`btvod::peer_trace`): silent unless its target is enabled, and then a
//! line per peer per tick with the fields the README promises. A real seed on 127.0.0.1 and a
//! raw peer; bounded in time.

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btvod::proto::PeerId;
use common::loopback::{empty_interested_opening, start_seed};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing_subscriber::fmt::MakeWriter;

/// Everything the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs a seed with one interested raw peer for a little over two ticks, logging with
/// `filter`, and returns what was logged.
async fn seed_with_one_peer(filter: &str) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // The runtime is single-threaded, so every task of the session logs through this.
    let _guard = tracing::subscriber::set_default(subscriber);

    let seed = start_seed(128 * 1024, 32 * 1024, 3).await;
    let mut peer = TcpStream::connect(seed.addr()).await.expect("connect");
    let opening = empty_interested_opening(seed.meta.info_hash, PeerId(*b"-XX0000-tracedpeer!!"));
    peer.write_all(&opening).await.expect("send the handshake");
    // The torrent ticks once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    seed.session.shutdown().await;
    captured.text()
}

#[tokio::test(flavor = "current_thread")]
async fn the_peer_trace_prints_each_peer_once_a_tick_when_asked_and_nothing_otherwise() {
    let traced = seed_with_one_peer("btvod::peer_trace=trace").await;
    let lines: Vec<&str> = traced
        .lines()
        .filter(|l| l.contains("choking_us="))
        .collect();
    assert!(
        (1..=4).contains(&lines.len()),
        "one peer over about two ticks: {traced}"
    );
    for field in [
        "policy=",
        "peer=127.0.0.1:",
        "we_choke=false",
        "it_wants=true",
        "in_flight=",
        "queue=",
        "rate=",
        "received=",
        "has=0",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }

    let quiet = seed_with_one_peer("btvod=debug").await;
    assert!(
        !quiet.contains("choking_us="),
        "off unless its target is enabled at trace level: {quiet}"
    );
}
