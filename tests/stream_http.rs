//! `btvod stream`'s HTTP side, in process on 127.0.0.1: every Range form of RFC 9110, HEAD,
//! 416, unknown files, a reader that hangs up mid-body, 50 readers at once, only the files
//! read are downloaded, and no byte is ever sent before its piece is verified (a peer serving
//! corrupt blocks is the only source for a while).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use btvod::engine::session::{
    self, Content, Deadlines, PolicyKind, Session, SessionOptions, VodOptions,
};
use btvod::policy::picker::DeadlineConfig;
use btvod::policy::vod::VodParams;
use btvod::proto::geometry::BLOCK_LEN;
use btvod::proto::metainfo::Metainfo;
use btvod::proto::wire::{Handshake, Message, WireDecoder};
use btvod::service::stream::{self, StreamSource, file_url_path};
use bytes::BytesMut;
use common::content::deterministic_content;
use common::loopback::start_seed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

const KIB: usize = 1024;
/// Every test's own bound.
const BOUND: Duration = Duration::from_secs(40);

/// A streaming session (deadlines from readers, no VoD server) and its HTTP server.
struct Streamer {
    session: Session,
    http: SocketAddr,
    meta: Arc<Metainfo>,
    _dir: tempfile::TempDir,
}

async fn start_streamer(meta: &Metainfo, peers: Vec<SocketAddr>) -> Streamer {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SessionOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        peers,
        policy: PolicyKind::Deadline,
        seed: 7,
        // The liar below speaks only plaintext.
        torrent: common::session::plaintext(),
        vod: Some(VodOptions {
            params: VodParams::streaming(256 * 1024, Duration::from_secs(2)).unwrap(),
            file: meta.movie_file(None).expect("a movie"),
            server: None,
            deadline: DeadlineConfig::default(),
            deadlines: Deadlines::Readers {
                download_all: false,
            },
        }),
        ..SessionOptions::default()
    };
    let session = session::start(
        meta,
        Content::DownloadDir(dir.path().into()),
        options,
        |_, _| {},
    )
    .await
    .expect("start streaming");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let http = listener.local_addr().expect("http address");
    let meta = Arc::new(meta.clone());
    let (_notes_tx, notes) = watch::channel(serde_json::Map::new());
    let source = StreamSource {
        meta: Arc::clone(&meta),
        storage: Arc::clone(&session.storage),
        link: session.torrent.reader_link(),
        stats: session.torrent.stats.clone(),
        notes,
        sent: Arc::new(AtomicU64::new(0)),
    };
    tokio::spawn(stream::serve(listener, source, std::future::pending()));
    Streamer {
        session,
        http,
        meta,
        _dir: dir,
    }
}

/// One answer, read to the end of the connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 request (`Connection: close`), so that nothing between us and the server
/// rewrites ranges or headers.
async fn request(addr: SocketAddr, method: &str, path: &str, range: Option<&str>) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{range}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the answer");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers")
        + 4;
    let text = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split..].to_vec(),
    }
}

fn movie_path(meta: &Metainfo) -> String {
    file_url_path(meta, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_range_form_head_416_404_and_the_pages() {
    timeout(BOUND, async {
        let seed = start_seed(1536 * KIB, 64 * 1024, 11).await;
        let content = deterministic_content(1536 * KIB, 11);
        let s = start_streamer(&seed.meta, vec![seed.addr()]).await;
        let path = movie_path(&s.meta);
        let len = content.len();

        let whole = request(s.http, "GET", &path, None).await;
        assert_eq!(whole.status, 200);
        assert_eq!(whole.body, content, "the whole file, byte for byte");
        assert_eq!(
            whole.header("content-length"),
            Some(len.to_string().as_str())
        );
        assert_eq!(whole.header("accept-ranges"), Some("bytes"));
        assert_eq!(
            whole.header("content-type"),
            Some("application/octet-stream")
        );

        for (range, span) in [
            ("bytes=100-199", 100..200),
            ("bytes=1000000-", 1_000_000..len),
            ("bytes=-5000", len - 5000..len),
            ("bytes=65530-65545", 65_530..65_546), // across a piece boundary
            ("bytes=0-99999999", 0..len),          // an end past the file is clamped
        ] {
            let a = request(s.http, "GET", &path, Some(range)).await;
            assert_eq!(a.status, 206, "{range}");
            assert_eq!(a.body, &content[span.clone()], "{range}");
            assert_eq!(
                a.header("content-range"),
                Some(format!("bytes {}-{}/{len}", span.start, span.end - 1).as_str()),
                "{range}"
            );
        }
        let head = request(s.http, "HEAD", &path, Some("bytes=10-19")).await;
        assert_eq!(head.status, 206);
        assert!(head.body.is_empty(), "HEAD has no body");
        assert_eq!(head.header("content-length"), Some("10"));

        let past = request(s.http, "GET", &path, Some(&format!("bytes={len}-"))).await;
        assert_eq!(past.status, 416);
        assert_eq!(
            past.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );

        assert_eq!(
            request(s.http, "GET", "/file/1/movie.bin", None)
                .await
                .status,
            404
        );
        assert_eq!(
            request(s.http, "GET", "/file/x/movie.bin", None)
                .await
                .status,
            404
        );

        let index = String::from_utf8(request(s.http, "GET", "/", None).await.body).unwrap();
        assert!(index.contains(&format!("href=\"{path}\"")), "{index}");
        let playlist =
            String::from_utf8(request(s.http, "GET", "/playlist.m3u", None).await.body).unwrap();
        assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
        assert!(
            playlist.contains(&format!("http://{}{path}", s.http)),
            "{playlist}"
        );
        let status: serde_json::Value =
            serde_json::from_slice(&request(s.http, "GET", "/status", None).await.body).unwrap();
        for key in ["server_bytes", "peer_bytes", "stall_s", "readers", "seeks"] {
            assert!(status.get(key).is_some(), "/status lacks {key}: {status}");
        }
        assert_eq!(status["server_bytes"], 0);
        s.session.shutdown().await;
        seed.session.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_readers_at_once_each_get_their_bytes() {
    timeout(BOUND, async {
        let len = 2048 * KIB;
        let seed = start_seed(len, 32 * 1024, 12).await;
        let content = Arc::new(deterministic_content(len, 12));
        let s = start_streamer(&seed.meta, vec![seed.addr()]).await;
        let path = movie_path(&s.meta);
        let mut readers = Vec::new();
        for i in 0..50usize {
            // Spread over the file, some overlapping, some crossing pieces.
            let start = (i * 40_961) % (len - 70_000);
            let end = start + 1 + (i * 1_237) % 65_000;
            let (path, content, http) = (path.clone(), Arc::clone(&content), s.http);
            readers.push(tokio::spawn(async move {
                let a = request(
                    http,
                    "GET",
                    &path,
                    Some(&format!("bytes={start}-{}", end - 1)),
                )
                .await;
                assert_eq!(a.status, 206);
                assert!(a.body == content[start..end], "reader {i} got other bytes");
            }));
        }
        for r in readers {
            r.await.expect("a reader");
        }
        s.session.shutdown().await;
        seed.session.shutdown().await;
    })
    .await
    .expect("bounded");
}

/// Open readers as `/status` lists them.
async fn open_readers(http: SocketAddr) -> usize {
    let status: serde_json::Value =
        serde_json::from_slice(&request(http, "GET", "/status", None).await.body).expect("json");
    status["readers"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_hangs_up_mid_body_is_closed_and_others_go_on() {
    timeout(BOUND, async {
        let len = 2048 * KIB;
        let seed = start_seed(len, 64 * 1024, 13).await;
        let s = start_streamer(&seed.meta, vec![seed.addr()]).await;
        let path = movie_path(&s.meta);
        let mut stream = TcpStream::connect(s.http).await.expect("connect");
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("send");
        let mut first = vec![0; 32 * KIB];
        stream
            .read_exact(&mut first)
            .await
            .expect("some of the body");
        // Reading no more, the reader is paused, then the connection goes.
        let paused_by = Instant::now() + Duration::from_secs(5);
        loop {
            let status: serde_json::Value =
                serde_json::from_slice(&request(s.http, "GET", "/status", None).await.body)
                    .unwrap();
            if status["readers"][0]["paused"] == true {
                break;
            }
            assert!(
                Instant::now() < paused_by,
                "a reader not read for a second is paused: {status}"
            );
            sleep(Duration::from_millis(100)).await;
        }
        drop(stream);
        let closed_by = Instant::now() + Duration::from_secs(5);
        while open_readers(s.http).await > 0 {
            assert!(Instant::now() < closed_by, "the reader was not closed");
            sleep(Duration::from_millis(50)).await;
        }
        let a = request(s.http, "GET", &path, Some("bytes=-1000")).await;
        assert_eq!(a.body, deterministic_content(len, 13)[len - 1000..]);
        s.session.shutdown().await;
        seed.session.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_files_read_are_downloaded() {
    timeout(BOUND, async {
        // Two files; the larger is the movie.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("show");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("a-extra.bin"),
            deterministic_content(256 * KIB, 1),
        )
        .unwrap();
        std::fs::write(
            root.join("b-movie.bin"),
            deterministic_content(1024 * KIB, 2),
        )
        .unwrap();
        let seed = common::loopback::start_seed_of(&root, 32 * 1024).await;
        let s = start_streamer(&seed.meta, vec![seed.addr()]).await;
        let movie = file_url_path(&s.meta, 1);
        let a = request(s.http, "GET", &movie, None).await;
        assert_eq!(a.body, deterministic_content(1024 * KIB, 2));
        // Nothing asked for the extra file: none of its pieces but the one it shares.
        sleep(Duration::from_millis(500)).await;
        let have = s.session.torrent.stats.borrow().pieces_have;
        let movie_pieces = s.meta.geometry.pieces_of_file(1).len() as u32;
        assert_eq!(have, movie_pieces, "only the movie's pieces are fetched");
        // Once read, it is fetched too.
        let extra = request(s.http, "GET", &file_url_path(&s.meta, 0), None).await;
        assert_eq!(extra.body, deterministic_content(256 * KIB, 1));
        s.session.shutdown().await;
        seed.session.shutdown().await;
    })
    .await
    .expect("bounded");
}

/// Answers every request with garbage; the only source until the honest seed is added.
async fn start_liar(meta: &Metainfo) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (info_hash, pieces) = (meta.info_hash, meta.geometry.piece_count());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut out = BytesMut::new();
                Handshake::ours(info_hash, btvod::proto::PeerId(*b"-XX0000-streamliar!!"))
                    .encode(&mut out);
                Message::HaveAll.encode(&mut out);
                Message::Unchoke.encode(&mut out);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                let mut buf = BytesMut::new();
                let mut decoder = WireDecoder::for_piece_count(pieces);
                let mut handshaken = false;
                loop {
                    if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if !handshaken {
                        if buf.len() < 68 {
                            continue;
                        }
                        let _ = buf.split_to(68);
                        handshaken = true;
                    }
                    while let Ok(Some(message)) = decoder.decode(&mut buf) {
                        if let Message::Request(spec) = message {
                            let mut out = BytesMut::new();
                            Message::Piece {
                                piece: spec.piece,
                                offset: spec.offset,
                                data: vec![0xEE; spec.len as usize].into(),
                            }
                            .encode(&mut out);
                            if stream.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_is_never_sent_a_byte_before_its_piece_is_verified() {
    timeout(BOUND, async {
        let len = 512 * KIB;
        let seed = start_seed(len, 64 * 1024, 14).await;
        let content = deterministic_content(len, 14);
        let liar = start_liar(&seed.meta).await;
        let s = start_streamer(&seed.meta, vec![liar]).await;
        let path = movie_path(&s.meta);
        let http = s.http;
        let reader = tokio::spawn(async move { request(http, "GET", &path, None).await });
        // Only the liar serves: its blocks fail their checks and nothing is sent.
        sleep(Duration::from_secs(2)).await;
        let stats = s.session.torrent.stats.borrow().clone();
        assert!(
            stats.hash_failures >= 1,
            "the liar's pieces were checked: {stats:?}"
        );
        assert!(!reader.is_finished());
        s.session.torrent.add_peers(vec![seed.addr()]);
        let a = reader.await.expect("the reader");
        assert_eq!(a.status, 200);
        assert!(
            !a.body
                .windows(BLOCK_LEN as usize)
                .any(|w| w.iter().all(|&b| b == 0xEE)),
            "garbage was sent"
        );
        assert_eq!(a.body, content);
        s.session.shutdown().await;
        seed.session.shutdown().await;
    })
    .await
    .expect("bounded");
}
