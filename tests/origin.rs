//! The metered VoD origin and the fetcher that pays for it, on 127.0.0.1: HTTP Range
//! semantics, refused traversal, fetches across file boundaries through `file:` and `http://`,
//! the two meters agreeing to the byte, the fetch-time estimate against a slowed origin, and
//! failures (server down, mute, cutting bodies short) as error values.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btvod::engine::vod_server::{VodServer, VodServerConfig, VodServerError, VodServerKind};
use btvod::service::origin::{OriginConfig, OriginMeter, OriginStats, serve};
use common::content::deterministic_content;
use common::movie_dir::torrent_of;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every test finishes within this, or fails.
const TEST_LIMIT: Duration = Duration::from_secs(60);

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test took longer than its limit")
}

/// An origin running on a port of its own; stopped (and its final meter returned) by `stop`.
struct Origin {
    addr: SocketAddr,
    meter: Arc<OriginMeter>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<OriginStats>>,
}

impl Origin {
    async fn start(content: &Path, tune: impl FnOnce(&mut OriginConfig)) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = OriginConfig::new(content);
        tune(&mut config);
        let meter = config.meter.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        Origin {
            addr,
            meter,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    async fn stop(mut self) -> OriginStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .expect("origin task panicked")
            .expect("origin failed")
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` exactly as written (no client-side path normalisation, unlike any
/// HTTP library) with `extra` header lines, and reads the reply to the end.
async fn raw(addr: SocketAddr, method: &str, path: &str, extra: &[&str]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header block");
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status: status.parse().unwrap(),
        headers,
        body: bytes[split + 4..].to_vec(),
    }
}

async fn stats_of(origin: &Origin) -> OriginStats {
    let body = raw(origin.addr, "GET", "/stats", &[]).await;
    assert_eq!(body.status, 200);
    serde_json::from_slice(&body.body).expect("/stats is OriginStats JSON")
}

/// `show/` with two files whose boundary falls inside a piece; returns (dir, concatenation).
fn two_file_show(base: &Path) -> (PathBuf, Vec<u8>) {
    let root = base.join("show");
    std::fs::create_dir_all(&root).unwrap();
    let a = deterministic_content(100_000, 1);
    let b = deterministic_content(150_000, 2);
    std::fs::write(root.join("a.bin"), &a).unwrap();
    std::fs::write(root.join("b.bin"), &b).unwrap();
    (root, [a, b].concat())
}

fn quick_retries() -> VodServerConfig {
    VodServerConfig {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_millis(500),
        stall_timeout: Duration::from_millis(500),
        max_attempts: 3,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(50),
        ..VodServerConfig::default()
    }
}

#[tokio::test]
async fn ranges_follow_rfc_9110_with_only_the_first_of_several_served() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let film = dir.path().join("film.bin");
        let content = deterministic_content(10_000, 7);
        std::fs::write(&film, &content).unwrap();
        let origin = Origin::start(&film, |_| {}).await;
        let addr = origin.addr;

        let whole = raw(addr, "GET", "/", &[]).await;
        assert_eq!(whole.status, 200);
        assert!(whole.body == content, "the whole file differs");
        assert_eq!(whole.header("accept-ranges"), Some("bytes"));
        assert_eq!(whole.header("content-length"), Some("10000"));

        let cases: [(&str, u16, std::ops::Range<usize>); 5] = [
            ("bytes=0-99", 206, 0..100),
            ("bytes=9000-", 206, 9000..10_000),
            ("bytes=-300", 206, 9700..10_000),
            ("bytes=9990-20000", 206, 9990..10_000),
            ("bytes=500-599,0-9", 206, 500..600),
        ];
        let mut body_bytes = whole.body.len();
        for (range, status, span) in cases {
            let reply = raw(addr, "GET", "/film.bin", &[&format!("Range: {range}")]).await;
            assert_eq!(reply.status, status, "{range}");
            assert!(reply.body == content[span.clone()], "{range}: wrong bytes");
            let expected = format!("bytes {}-{}/10000", span.start, span.end - 1);
            assert_eq!(reply.header("content-range"), Some(expected.as_str()));
            assert_eq!(reply.header("accept-ranges"), Some("bytes"));
            body_bytes += reply.body.len();
        }

        let past = raw(addr, "GET", "/", &["Range: bytes=10000-"]).await;
        assert_eq!(past.status, 416);
        assert_eq!(past.header("content-range"), Some("bytes */10000"));
        assert!(past.body.is_empty());

        let head = raw(addr, "HEAD", "/film.bin", &["Range: bytes=100-199"]).await;
        assert_eq!(head.status, 206);
        assert_eq!(head.header("content-length"), Some("100"));
        assert_eq!(head.header("content-range"), Some("bytes 100-199/10000"));
        assert!(head.body.is_empty(), "HEAD sends no body");

        let ignored = raw(addr, "GET", "/", &["Range: bytes=5-1"]).await;
        assert_eq!(ignored.status, 200, "an invalid Range is ignored");
        body_bytes += ignored.body.len();
        let if_range = raw(addr, "GET", "/", &["Range: bytes=0-1", "If-Range: \"x\""]).await;
        assert_eq!(
            if_range.status, 200,
            "an If-Range we cannot match means the whole file"
        );
        body_bytes += if_range.body.len();
        let post = raw(addr, "POST", "/", &["Content-Length: 0"]).await;
        assert_eq!(post.status, 405);
        assert_eq!(raw(addr, "GET", "/other.bin", &[]).await.status, 404);

        let stats = stats_of(&origin).await;
        assert_eq!(stats.bytes_served, body_bytes as u64);
        assert_eq!(stats.requests, 12, "/stats is not counted");
        assert_eq!(stats.partial_responses, 6);
        assert_eq!(stats.full_responses, 3);
        assert_eq!(stats.refused, 3);
        assert_eq!(stats.files["film.bin"].bytes_served, body_bytes as u64);
        let last = origin.stop().await;
        assert_eq!(last, stats, "serve returns the final meter");
    })
    .await;
}

#[tokio::test]
async fn paths_outside_the_content_are_refused() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let secret = b"outside-the-root-secret";
        std::fs::write(dir.path().join("secret"), secret).unwrap();
        let (root, _) = two_file_show(dir.path());
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("leak")).unwrap();
        let origin = Origin::start(&root, |_| {}).await;

        for path in [
            "/../secret",
            "/show/../secret",
            "/show/../../secret",
            "/%2e%2e/secret",
            "/show/%2E%2E/secret",
            "/a.bin/..%2f..%2fsecret",
            "//secret",
            "/leak",
            "/show/leak",
            &format!("/{}", dir.path().join("secret").display()),
        ] {
            let reply = raw(origin.addr, "GET", path, &[]).await;
            assert!(
                reply.status == 403 || reply.status == 404,
                "{path} answered {}",
                reply.status
            );
            assert!(
                !reply.body.windows(secret.len()).any(|w| w == secret),
                "{path} leaked the secret"
            );
        }
        // The same server does serve what is inside.
        assert_eq!(
            raw(origin.addr, "GET", "/show/a.bin", &[]).await.status,
            200
        );
        assert_eq!(raw(origin.addr, "GET", "/b.bin", &[]).await.status, 200);
        assert_eq!(stats_of(&origin).await.files.len(), 2);
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_fetch_across_two_files_is_exact_through_file_and_http() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (root, all) = two_file_show(dir.path());
        let meta = torrent_of(&root, 32 * 1024, &[]);
        let origin = Origin::start(&root, |_| {}).await;
        let servers = [
            VodServer::parse(&format!("file:{}", root.display()), &meta).unwrap(),
            VodServer::parse(&origin.url(), &meta).unwrap(),
            // BEP 19: without the trailing slash the name is still appended for multi-file.
            VodServer::parse(&format!("http://{}", origin.addr), &meta).unwrap(),
        ];
        assert_eq!(servers[0].kind(), VodServerKind::File);
        assert_eq!(servers[1].kind(), VodServerKind::Http);
        // Piece 3 is bytes 98304..131072: it holds the end of a.bin and the start of b.bin.
        let piece = meta.geometry.piece(3).unwrap();
        let span = meta.geometry.piece_range(piece);
        assert!(
            span.contains(&100_000),
            "the test piece must straddle the files"
        );
        for server in &servers {
            server.check().await.unwrap();
            let got = server.fetch(span.clone()).await.unwrap();
            assert!(
                got == all[98_304..131_072],
                "{}: wrong bytes",
                server.display_url()
            );
            let tail = server.fetch(249_990..250_000).await.unwrap();
            assert!(
                tail == all[249_990..],
                "{}: wrong tail",
                server.display_url()
            );
            assert!(server.fetch(5..5).await.unwrap().is_empty());
            assert!(matches!(
                server.fetch(249_990..250_001).await,
                Err(VodServerError::RangeOutOfBounds { .. })
            ));
        }
        assert_eq!(servers[0].meter().bytes_received, 32 * 1024 + 10);
        assert_eq!(servers[0].estimate(1 << 20), Duration::ZERO);
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_origin_and_the_client_meter_the_same_bytes() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (root, all) = two_file_show(dir.path());
        let meta = torrent_of(&root, 16 * 1024, &[]);
        let origin = Origin::start(&root, |_| {}).await;
        let server = VodServer::parse(&origin.url(), &meta).unwrap();
        server.check().await.unwrap();
        let geometry = &meta.geometry;
        let mut fetched = 0u64;
        // Every third piece, an odd span across the boundary, and a one-byte fetch.
        let mut spans: Vec<_> = geometry
            .pieces()
            .step_by(3)
            .map(|p| geometry.piece_range(p))
            .collect();
        spans.extend([99_000..101_234, 0..1]);
        for span in spans {
            let got = server.fetch(span.clone()).await.unwrap();
            assert!(
                got == all[span.start as usize..span.end as usize],
                "wrong bytes for {span:?}"
            );
            fetched += span.end - span.start;
        }
        let client = server.meter();
        let live = stats_of(&origin).await;
        assert_eq!(
            live,
            origin.meter.snapshot(),
            "/stats shows the shared meter"
        );
        assert_eq!(client.bytes_received, fetched);
        assert_eq!(live.bytes_served, client.bytes_received);
        assert_eq!(live.requests, client.requests, "HEADs and GETs alike");
        assert_eq!(client.retries, 0);
        let last = origin.stop().await;
        assert_eq!(last.bytes_served, client.bytes_received);
    })
    .await;
}

#[tokio::test]
async fn the_estimate_reflects_a_slow_distant_origin() {
    bounded(async {
        const MIB: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let film = dir.path().join("film.bin");
        std::fs::write(&film, deterministic_content(2 * MIB as usize, 3)).unwrap();
        let meta = torrent_of(&film, 256 * 1024, &[]);
        let origin = Origin::start(&film, |c| {
            c.latency = Duration::from_millis(200);
            c.rate = Some(MIB);
        })
        .await;
        let server = VodServer::parse(&origin.url(), &meta).unwrap();
        server.check().await.unwrap();
        for piece in 0..3 {
            let span = meta
                .geometry
                .piece_range(meta.geometry.piece(piece).unwrap());
            let started = tokio::time::Instant::now();
            server.fetch(span).await.unwrap();
            // 200 ms latency + 256 KiB at 1 MiB/s.
            assert!(started.elapsed() >= Duration::from_millis(400));
        }
        let reading = server.estimate_reading();
        let ttfb = reading.time_to_first_byte.unwrap();
        assert!(
            ttfb >= Duration::from_millis(190) && ttfb <= Duration::from_millis(600),
            "{ttfb:?}"
        );
        let rate = reading.bytes_per_s.unwrap();
        assert!(
            rate >= 0.6 * MIB as f64 && rate <= 1.3 * MIB as f64,
            "{rate} B/s"
        );
        let one_mib = server.estimate(MIB);
        assert!(
            one_mib >= Duration::from_millis(950) && one_mib <= Duration::from_millis(2300),
            "{one_mib:?}"
        );
        // Two file slices pay the latency twice; here the range is one file, so once.
        assert_eq!(server.estimate_range(0..MIB), one_mib);
        origin.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_server_that_is_down_gives_errors_not_panics() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (root, _) = two_file_show(dir.path());
        let meta = torrent_of(&root, 16 * 1024, &[]);
        // Bound then released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/");
        let server = VodServer::with_config(&url, &meta, quick_retries()).unwrap();
        let error = server.check().await.unwrap_err();
        assert!(
            matches!(error, VodServerError::Unreachable { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("unreachable") && message.contains(&url),
            "{message}"
        );
        match server.fetch(0..1000).await {
            Err(VodServerError::GaveUp { attempts: 3, last }) => {
                assert!(last.is_transient(), "{last}");
            }
            other => panic!("expected GaveUp after 3 attempts, got {other:?}"),
        }
        assert_eq!(server.meter().bytes_received, 0);
        assert_eq!(server.meter().retries, 2);

        let missing = VodServer::parse("file:/nonexistent/btvod/copy", &meta).unwrap();
        assert!(matches!(
            missing.check().await,
            Err(VodServerError::FileIo { .. })
        ));
        assert!(matches!(
            VodServer::parse("ftp://example.com/x", &meta),
            Err(VodServerError::UnsupportedUrl(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_copy_of_the_wrong_length_fails_the_check() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (root, _) = two_file_show(dir.path());
        let meta = torrent_of(&root, 16 * 1024, &[]);
        std::fs::write(root.join("b.bin"), b"short").unwrap();
        let origin = Origin::start(&root, |_| {}).await;
        for url in [format!("file:{}", root.display()), origin.url()] {
            let server = VodServer::parse(&url, &meta).unwrap();
            let error = server.check().await.unwrap_err();
            match &error {
                VodServerError::LengthMismatch {
                    expected: 150_000,
                    actual: 5,
                    ..
                } => {}
                other => panic!("{url}: expected a length mismatch, got {other:?}"),
            }
            assert!(error.to_string().contains("complete copy"), "{error}");
        }
        origin.stop().await;
    })
    .await;
}

/// A hand-made origin: the first GET gets its headers and only `cut` body bytes before the
/// connection drops; later ones are answered in full. Records each Range asked and the body
/// bytes it wrote.
async fn flaky_origin(
    content: Vec<u8>,
    cut: usize,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>, Arc<Mutex<u64>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let written = Arc::new(Mutex::new(0u64));
    let (seen, sent) = (ranges.clone(), written.clone());
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut range = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("range:") {
                    range = value.trim().to_string();
                }
            }
            seen.lock().unwrap().push(range.clone());
            let (a, b) = range
                .strip_prefix("bytes=")
                .and_then(|r| r.split_once('-'))
                .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
                .unwrap();
            let body = &content[a..=b];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\nConnection: close\r\n\r\n",
                body.len(),
                content.len()
            );
            let mut stream = reader.into_inner();
            stream.write_all(head.as_bytes()).await.unwrap();
            let part = if first { &body[..cut] } else { body };
            first = false;
            stream.write_all(part).await.unwrap();
            *sent.lock().unwrap() += part.len() as u64;
            stream.shutdown().await.unwrap();
        }
    });
    (addr, ranges, written)
}

#[tokio::test]
async fn a_body_cut_short_is_resumed_without_asking_twice_for_a_byte() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let film = dir.path().join("film.bin");
        let content = deterministic_content(64 * 1024, 9);
        std::fs::write(&film, &content).unwrap();
        let meta = torrent_of(&film, 16 * 1024, &[]);
        let (addr, ranges, written) = flaky_origin(content.clone(), 1000).await;
        let server =
            VodServer::with_config(&format!("http://{addr}/"), &meta, quick_retries()).unwrap();
        let got = server.fetch(16_384..32_768).await.unwrap();
        assert!(got == content[16_384..32_768], "wrong bytes after resuming");
        assert_eq!(
            *ranges.lock().unwrap(),
            ["bytes=16384-32767", "bytes=17384-32767"]
        );
        let meter = server.meter();
        assert_eq!(meter.bytes_received, 16_384);
        assert_eq!(meter.bytes_received, *written.lock().unwrap());
        assert_eq!((meter.requests, meter.retries), (2, 1));
    })
    .await;
}

#[tokio::test]
async fn a_mute_server_times_out() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let film = dir.path().join("film.bin");
        std::fs::write(&film, deterministic_content(20_000, 4)).unwrap();
        let meta = torrent_of(&film, 16 * 1024, &[]);
        // Accepts connections and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let server =
            VodServer::with_config(&format!("http://{addr}/"), &meta, quick_retries()).unwrap();
        let started = tokio::time::Instant::now();
        match server.fetch(0..100).await {
            Err(VodServerError::GaveUp { attempts: 3, last }) => {
                assert!(matches!(*last, VodServerError::Timeout { .. }), "{last:?}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        held.abort();
    })
    .await;
}

#[test]
fn the_origin_command_prints_its_url_and_a_final_meter_line() {
    use common::process::{OutputLine, ProcessGuard};
    use std::io::{Read, Write};
    use std::sync::mpsc;

    let dir = tempfile::tempdir().unwrap();
    let film = dir.path().join("film.bin");
    std::fs::write(&film, deterministic_content(5000, 5)).unwrap();
    let (tx, rx) = mpsc::channel();
    let command = format!(
        "exec {} origin --content {} --port 0 2>&1",
        env!("CARGO_BIN_EXE_btvod"),
        film.display()
    );
    // Messages go to stderr; the shell folds them into stdout, which the guard reads.
    let guard = ProcessGuard::spawn(
        "btvod origin",
        "/bin/sh",
        &["-c".into(), command],
        dir.path(),
        move |line| {
            if let OutputLine::Line(l) = line {
                let _ = tx.send(l.to_string());
            }
        },
    )
    .expect("start btvod origin");
    let next_line = || {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("btvod origin went quiet:\n{}", guard.report()))
    };
    let host = loop {
        let line = next_line();
        if let Some(rest) = line.split(" at http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /film.bin HTTP/1.1\r\nHost: {host}\r\nRange: bytes=100-199\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 206"), "{reply:?}");
    // Stopping sends SIGTERM, which the origin treats like Ctrl-C.
    let status = guard.stop();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", guard.report());
    let summary = loop {
        let line = next_line();
        if line.contains("stopped") {
            break line;
        }
    };
    assert!(summary.contains("bytes_served=100 requests=1"), "{summary}");
}
