//! The delaying relay on real TCP (127.0.0.1, port 0): round trips take the configured RTT
//! (the minimum over pings, since scheduling only ever adds delay), per-source links, large
//! transfers intact and in order, half-close, bounded buffering, and a stop that closes all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use btvod::service::relay::{LinkDelay, Relay, RelayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SECOND_CLASS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A server on 127.0.0.1 that echoes every connection back until it ends; also reports the
/// address each connection came from.
async fn echo_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<SocketAddr>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    let (peers_tx, peers_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            let _ = peers_tx.send(peer);
            tokio::spawn(async move {
                stream.set_nodelay(true).expect("nodelay");
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, peers_rx)
}

fn config(target: SocketAddr, delay: LinkDelay) -> RelayConfig {
    RelayConfig {
        delay,
        seed: 42,
        ..RelayConfig::new(SocketAddr::new(LOCALHOST, 0), target)
    }
}

async fn connect_from(local: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(local, 0)).expect("bind client");
    let stream = socket.connect(to).await.expect("connect to relay");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Round-trip times of `count` one-byte ping-pongs on `stream`.
async fn ping_pong(stream: &mut TcpStream, count: usize) -> Vec<Duration> {
    let mut rtts = Vec::with_capacity(count);
    for i in 0..count {
        let byte = [i as u8];
        let sent = Instant::now();
        stream.write_all(&byte).await.expect("ping");
        let mut back = [0u8; 1];
        stream.read_exact(&mut back).await.expect("pong");
        rtts.push(sent.elapsed());
        assert_eq!(back, byte);
    }
    rtts
}

async fn min_rtt_from(local: IpAddr, relay: SocketAddr, count: usize) -> Duration {
    let mut client = connect_from(local, relay).await;
    let rtts = ping_pong(&mut client, count).await;
    rtts.into_iter().min().expect("some pings")
}

#[tokio::test]
async fn round_trip_through_a_100ms_relay_takes_100ms() {
    timeout(LIMIT, async {
        let (echo, _) = echo_server().await;
        let relay = Relay::bind(config(echo, LinkDelay::rtt(ms(100))))
            .await
            .expect("relay");
        let min = min_rtt_from(LOCALHOST, relay.local_addr(), 10).await;
        println!("rtt 100 ms: min round trip {min:?}");
        assert!(min >= ms(100) && min <= ms(110), "min round trip {min:?}");
        let stats = relay.stop().await;
        assert_eq!(stats.relayed_to_target, 10);
        assert_eq!(stats.relayed_to_source, 10);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_zero_rtt_relay_adds_almost_nothing() {
    timeout(LIMIT, async {
        let (echo, _) = echo_server().await;
        let relay = Relay::bind(config(echo, LinkDelay::default()))
            .await
            .expect("relay");
        let min = min_rtt_from(LOCALHOST, relay.local_addr(), 10).await;
        println!("rtt 0: min round trip {min:?}");
        assert!(min < ms(3), "min round trip {min:?}");
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

/// Deterministic bytes that show any reordering, loss or duplication.
fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn four_mib_arrive_intact_and_in_order_both_ways_under_jitter() {
    timeout(LIMIT, async {
        let (echo, _) = echo_server().await;
        let delay = LinkDelay {
            rtt: ms(10),
            jitter: ms(10),
        };
        let relay = Relay::bind(config(echo, delay)).await.expect("relay");
        let sent = pattern(4 * 1024 * 1024);
        let client = connect_from(LOCALHOST, relay.local_addr()).await;
        let (mut r, mut w) = client.into_split();
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&to_send).await.expect("send");
            w.shutdown().await.expect("shutdown");
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.expect("read back");
        writer.await.expect("writer");
        assert_eq!(back.len(), sent.len());
        assert!(back == sent, "the echoed bytes differ from those sent");
        let stats = relay.stop().await;
        assert_eq!(stats.relayed_to_target, sent.len() as u64);
        assert_eq!(stats.relayed_to_source, sent.len() as u64);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn each_source_address_gets_its_own_link() {
    timeout(LIMIT, async {
        let (echo, _) = echo_server().await;
        let mut config = config(echo, LinkDelay::rtt(ms(20)));
        config
            .by_source
            .insert(SECOND_CLASS, LinkDelay::rtt(ms(120)));
        let relay = Relay::bind(config).await.expect("relay");
        let default_min = min_rtt_from(LOCALHOST, relay.local_addr(), 10).await;
        let class_min = min_rtt_from(SECOND_CLASS, relay.local_addr(), 10).await;
        println!("from 127.0.0.1 (20 ms): {default_min:?}; from 127.0.0.2 (120 ms): {class_min:?}");
        assert!(
            default_min >= ms(20) && default_min <= ms(30),
            "{default_min:?}"
        );
        assert!(
            class_min >= ms(120) && class_min <= ms(130),
            "{class_min:?}"
        );
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn the_target_is_dialled_from_the_configured_source_ip() {
    timeout(LIMIT, async {
        let (echo, mut peers) = echo_server().await;
        let source_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        let relay = Relay::bind(RelayConfig {
            source_ip: Some(source_ip),
            ..config(echo, LinkDelay::default())
        })
        .await
        .expect("relay");
        let mut client = connect_from(LOCALHOST, relay.local_addr()).await;
        ping_pong(&mut client, 1).await;
        let seen = peers
            .recv()
            .await
            .expect("the echo server saw a connection");
        assert_eq!(seen.ip(), source_ip);
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_half_close_is_passed_on_and_the_reply_still_arrives() {
    timeout(LIMIT, async {
        // Reads to the end, then answers and closes.
        let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let target = listener.local_addr().expect("addr");
        let (saw_eof_tx, saw_eof) = oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            stream.read_to_end(&mut request).await.expect("read to EOF");
            let _ = saw_eof_tx.send(request.clone());
            stream.write_all(b"reply:").await.expect("reply");
            stream.write_all(&request).await.expect("reply");
        });
        let relay = Relay::bind(config(target, LinkDelay::rtt(ms(20))))
            .await
            .expect("relay");
        let mut client = connect_from(LOCALHOST, relay.local_addr()).await;
        client.write_all(b"hello").await.expect("send");
        client.shutdown().await.expect("half-close");
        assert_eq!(saw_eof.await.expect("server saw EOF"), b"hello");
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.expect("read reply");
        assert_eq!(reply, b"reply:hello");
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn stop_closes_live_connections_and_ends_its_tasks() {
    timeout(LIMIT, async {
        let (echo, _) = echo_server().await;
        // Long enough that the bytes sent just before stop() are still held when it comes.
        let relay = Relay::bind(config(echo, LinkDelay::rtt(ms(200))))
            .await
            .expect("relay");
        let addr = relay.local_addr();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut client = connect_from(LOCALHOST, addr).await;
            ping_pong(&mut client, 1).await;
            clients.push(client);
        }
        assert_eq!(relay.stats().connections_open, 3);
        // Bytes still held in the delay when it stops are dropped, not delivered.
        clients[0].write_all(b"late").await.expect("send");
        let stats = relay.stop().await;
        assert_eq!(
            stats.connections_open, 0,
            "a connection task outlived stop()"
        );
        for mut client in clients {
            let mut buf = [0u8; 16];
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => {}
                Ok(n) => panic!("read {n} bytes from a stopped relay"),
            }
        }
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still listening after stop"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn jitter_keeps_round_trips_between_rtt_and_rtt_plus_jitter() {
    timeout(LIMIT, async {
        let (echo, _) = echo_server().await;
        let delay = LinkDelay {
            rtt: ms(40),
            jitter: ms(40),
        };
        let relay = Relay::bind(config(echo, delay)).await.expect("relay");
        let mut client = connect_from(LOCALHOST, relay.local_addr()).await;
        let rtts = ping_pong(&mut client, 30).await;
        let min = *rtts.iter().min().expect("pings");
        let max = *rtts.iter().max().expect("pings");
        println!("rtt 40 ms, jitter 40 ms: min {min:?}, max {max:?}");
        assert!(min >= ms(40), "min {min:?} below the rtt");
        // The max may also carry scheduling delay, hence a little slack.
        assert!(max <= ms(80 + 10), "max {max:?} beyond rtt + jitter");
        assert!(max - min >= ms(10), "no jitter seen: {min:?}..{max:?}");
        relay.stop().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_target_that_does_not_read_fills_only_the_bounded_buffer() {
    timeout(LIMIT, async {
        // Accepts and then never reads, so everything piles up in front of it.
        let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let target = listener.local_addr().expect("addr");
        let (hold_tx, hold) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.expect("accept");
            let _ = hold.await;
        });
        let buffer_bytes = 256 * 1024;
        let relay = Relay::bind(RelayConfig {
            buffer_bytes,
            ..config(target, LinkDelay::rtt(ms(10)))
        })
        .await
        .expect("relay");
        let mut client = connect_from(LOCALHOST, relay.local_addr()).await;
        let flood = vec![7u8; 64 * 1024 * 1024];
        // The writes stall once the relay stops reading; they never finish.
        let stalled = timeout(ms(1500), client.write_all(&flood)).await;
        assert!(
            stalled.is_err(),
            "64 MiB went into a target that reads nothing"
        );
        let stats = relay.stats();
        let held = stats.received_from_source - stats.relayed_to_target;
        println!(
            "received {}, relayed {}, held {held}",
            stats.received_from_source, stats.relayed_to_target
        );
        assert!(stats.received_from_source > 0);
        assert!(held <= buffer_bytes as u64, "the relay holds {held} bytes");
        relay.stop().await;
        let _ = hold_tx.send(());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn an_unreachable_target_closes_the_connection_and_the_relay_serves_on() {
    timeout(LIMIT, async {
        // A port that was free a moment ago: nothing listens there.
        let gone = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let target = gone.local_addr().expect("addr");
        drop(gone);
        let relay = Relay::bind(config(target, LinkDelay::default()))
            .await
            .expect("relay");
        for _ in 0..2 {
            let mut client = connect_from(LOCALHOST, relay.local_addr()).await;
            let mut buf = [0u8; 4];
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => {}
                Ok(n) => panic!("read {n} bytes with no target"),
            }
        }
        let stats = relay.stop().await;
        assert_eq!(stats.connections_accepted, 2);
        assert_eq!(stats.relayed_to_target, 0);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn dropping_the_relay_closes_its_connections_too() {
    timeout(LIMIT, async {
        let (echo, _) = echo_server().await;
        let relay = Relay::bind(config(echo, LinkDelay::default()))
            .await
            .expect("relay");
        let mut client = connect_from(LOCALHOST, relay.local_addr()).await;
        ping_pong(&mut client, 1).await;
        drop(relay);
        let mut buf = [0u8; 4];
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("read {n} bytes from a dropped relay"),
        }
    })
    .await
    .expect("test timed out");
}
