//! Tracker interop on 127.0.0.1: btvod's announcer against a real opentracker and against
//! broken trackers, and btvod's built-in tracker serving a real libtorrent session.
//!
//! Needs the Debian packages `opentracker` and `python3-libtorrent` (scripts/test.sh installs
//! them); a missing one fails the test with its name.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use btvod::engine::announce::{
    AnnounceError, AnnounceLoopConfig, Announcer, AnnouncerConfig, SchedulePolicy, TrackerError,
    TransferStats, spawn_announce_loop,
};
use btvod::proto::tracker::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, ScrapeResponse, ScrapeStats,
    TrackerProtoError, TrackerTiers, scrape_url,
};
use btvod::proto::{InfoHash, PeerId};
use btvod::service::tracker::{TrackerConfig, serve};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use url::Url;

/// Every test finishes within this, or fails.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Kills and reaps a child process when the test ends, pass or fail.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now (bound then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn peer_id(tag: u8) -> PeerId {
    PeerId::ours([tag; 12])
}

/// An info-hash full of bytes that need escaping, so a wrong encoding cannot go unnoticed.
fn awkward_hash(tag: u8) -> InfoHash {
    let mut h = [0u8; 20];
    let awkward = [0x00, b' ', b'+', b'%', b'&', b'=', 0x7f, 0x80, 0xff, b'/'];
    for (i, b) in h.iter_mut().enumerate() {
        *b = awkward[i % awkward.len()] ^ if i == 19 { tag } else { 0 };
    }
    InfoHash(h)
}

fn request(
    hash: InfoHash,
    tag: u8,
    port: u16,
    left: u64,
    event: Option<AnnounceEvent>,
) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: hash,
        peer_id: peer_id(tag),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        numwant: Some(50),
        key: Some(u32::from(tag)),
        tracker_id: None,
        compact: true,
    }
}

fn announcer(tiers: Vec<Vec<String>>, timeout: Duration) -> Announcer {
    let tiers = TrackerTiers::new(tiers, &mut StdRng::seed_from_u64(1));
    let config = AnnouncerConfig {
        request_timeout: timeout,
        ..AnnouncerConfig::default()
    };
    Announcer::new(tiers, config).unwrap()
}

fn addrs(r: &AnnounceResponse) -> Vec<SocketAddr> {
    r.peers.iter().map(|p| p.addr).collect()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until something accepts TCP connections on `port`.
async fn wait_for_listener(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(local(port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running opentracker that serves only `whitelist`.
struct OpenTracker {
    _process: ChildGuard,
    _root: tempfile::TempDir,
    url: String,
}

async fn start_opentracker(whitelist: &[InfoHash]) -> OpenTracker {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    // It chroots into the root and drops to `nobody`, who must be able to read the list.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let list: String = whitelist
        .iter()
        .map(|h| format!("{}\n", h.to_hex()))
        .collect();
    let list_path = root.path().join("whitelist.txt");
    std::fs::write(&list_path, list).unwrap();
    std::fs::set_permissions(&list_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let config = root.path().join("opentracker.conf");
    std::fs::write(
        &config,
        format!(
            "listen.tcp_udp 127.0.0.1:{port}\naccess.whitelist /whitelist.txt\ntracker.rootdir {}\n",
            root.path().display()
        ),
    )
    .unwrap();
    let child = Command::new("opentracker")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run opentracker ({e}): install the Debian package `opentracker`")
        });
    let process = ChildGuard(child);
    wait_for_listener(port, "opentracker").await;
    let url = format!("http://127.0.0.1:{port}/announce");
    // It reads the whitelist in the background after it starts listening: wait until a
    // `stopped` probe (which adds no peer) is accepted for each torrent.
    let probe_client = announcer(vec![vec![url.clone()]], Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(10);
    for hash in whitelist {
        let probe = request(*hash, 200, 1, 0, Some(AnnounceEvent::Stopped));
        while let Err(e) = probe_client
            .announce_to(&Url::parse(&url).unwrap(), &probe)
            .await
        {
            assert!(
                Instant::now() < deadline,
                "opentracker never loaded its whitelist: {e}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    OpenTracker {
        _process: process,
        _root: root,
        url,
    }
}

/// btvod's tracker on a fresh port; it stops when the returned sender is dropped.
async fn start_builtin_tracker() -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, TrackerConfig::default(), async move {
        let _ = stopped.await;
    }));
    (format!("http://127.0.0.1:{port}/announce"), stop)
}

const SEED_SCRIPT: &str = r#"
import os, sys, time
import libtorrent as lt
workdir, tracker_url = sys.argv[1], sys.argv[2]
data = os.path.join(workdir, "movie.bin")
with open(data, "wb") as f:
    f.write(os.urandom(256 * 1024))
fs = lt.file_storage()
lt.add_files(fs, data)
ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)
ct.add_tracker(tracker_url)
lt.set_piece_hashes(ct, workdir)
ti = lt.torrent_info(ct.generate())
ses = lt.session({
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "alert_mask": lt.alert.category_t.tracker_notification,
})
ses.add_torrent({"ti": ti, "save_path": workdir})
deadline = time.time() + 10
while ses.listen_port() == 0 and time.time() < deadline:
    ses.wait_for_alert(100)
    ses.pop_alerts()
print(str(ti.info_hashes().v1), ses.listen_port(), flush=True)
while True:
    ses.wait_for_alert(1000)
    for a in ses.pop_alerts():
        print("libtorrent:", a.message(), file=sys.stderr, flush=True)
"#;

/// A libtorrent session seeding a fresh torrent that names `tracker_url`.
struct LibtorrentSeed {
    _process: ChildGuard,
    _dir: tempfile::TempDir,
    info_hash: InfoHash,
    port: u16,
}

async fn start_libtorrent_seed(tracker_url: &str) -> LibtorrentSeed {
    let check = Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .output();
    match check {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "`/usr/bin/python3 -c 'import libtorrent'` failed: install the Debian package \
             `python3-libtorrent`"
        ),
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("seed.py");
    std::fs::write(&script, SEED_SCRIPT).unwrap();
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(dir.path())
        .arg(tracker_url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = ChildGuard(child);
    let read_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(30), read_line)
        .await
        .expect("libtorrent seed did not report its info-hash within 30 s")
        .unwrap();
    let mut fields = line.split_whitespace();
    let info_hash = fields.next().and_then(InfoHash::from_hex);
    let port = fields
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    let (Some(info_hash), Some(port)) = (info_hash, port) else {
        panic!("libtorrent seed printed {line:?}, expected '<hex info-hash> <port>'");
    };
    LibtorrentSeed {
        _process: process,
        _dir: dir,
        info_hash,
        port,
    }
}

/// Announces until the response lists `wanted`, or panics after `limit`.
async fn announce_until_peer(
    announcer: &mut Announcer,
    req: &AnnounceRequest,
    wanted: SocketAddr,
    limit: Duration,
) -> AnnounceResponse {
    let deadline = Instant::now() + limit;
    loop {
        let response = announcer.announce(req).await.unwrap();
        if addrs(&response).contains(&wanted) {
            return response;
        }
        assert!(
            Instant::now() < deadline,
            "tracker never returned {wanted}; last peers {:?}",
            addrs(&response)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(announce_url: &str, hash: InfoHash) -> Option<ScrapeStats> {
    let url = scrape_url(&Url::parse(announce_url).unwrap(), &[hash]).unwrap();
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    ScrapeResponse::parse(&body)
        .unwrap()
        .files
        .get(&hash)
        .copied()
}

/// Polls a scrape until `check` holds, or panics after 10 s.
async fn scrape_until(
    announce_url: &str,
    hash: InfoHash,
    what: &str,
    check: impl Fn(ScrapeStats) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = scrape(announce_url, hash).await.unwrap_or_default();
        if check(stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scrape never showed {what}; last {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server that answers every request with a web page, counting requests.
async fn start_html_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let page = "<html><body><h1>Welcome to nginx!</h1></body></html>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}/announce"), hits)
}

/// A server that accepts connections and never answers, counting connections.
async fn start_hanging_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("http://127.0.0.1:{port}/announce"), hits)
}

#[tokio::test]
async fn announcer_finds_peers_through_opentracker() {
    tokio::time::timeout(TEST_LIMIT, async {
        let hash = awkward_hash(1);
        let tracker = start_opentracker(&[hash]).await;
        let mut first = announcer(vec![vec![tracker.url.clone()]], Duration::from_secs(5));
        let mut second = announcer(vec![vec![tracker.url.clone()]], Duration::from_secs(5));

        first
            .announce(&request(hash, 1, 7001, 100, Some(AnnounceEvent::Started)))
            .await
            .unwrap();
        let seen_by_second = second
            .announce(&request(hash, 2, 7002, 100, Some(AnnounceEvent::Started)))
            .await
            .unwrap();
        assert!(
            addrs(&seen_by_second).contains(&local(7001)),
            "opentracker should hand the first peer to the second; got {:?}",
            addrs(&seen_by_second)
        );
        assert_eq!(seen_by_second.incomplete, Some(2));
        assert!(seen_by_second.interval.is_some());

        let seen_by_first = first
            .announce(&request(hash, 1, 7001, 100, None))
            .await
            .unwrap();
        assert!(addrs(&seen_by_first).contains(&local(7002)));

        // A torrent the tracker does not serve: its failure reason comes back as an error.
        let unknown = first
            .announce(&request(
                awkward_hash(2),
                1,
                7001,
                100,
                Some(AnnounceEvent::Started),
            ))
            .await;
        match unknown {
            Err(AnnounceError::AllFailed(failures)) => assert!(
                matches!(
                    failures.as_slice(),
                    [f] if matches!(f.error, TrackerError::Protocol(TrackerProtoError::Failure(_)))
                ),
                "expected a failure reason, got {failures:?}"
            ),
            other => panic!("a non-whitelisted torrent must be refused, got {other:?}"),
        }
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn builtin_tracker_hands_libtorrents_address_to_btvod() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (url, _stop) = start_builtin_tracker().await;
        let seed = start_libtorrent_seed(&url).await;
        let mut ours = announcer(vec![vec![url.clone()]], Duration::from_secs(5));
        let req = request(seed.info_hash, 9, 7009, 1, Some(AnnounceEvent::Started));
        let response =
            announce_until_peer(&mut ours, &req, local(seed.port), Duration::from_secs(30)).await;
        assert_eq!(
            response.complete,
            Some(1),
            "libtorrent seeds, so it counts as a seeder"
        );
        assert!(
            !addrs(&response).contains(&local(7009)),
            "never handed ourselves"
        );
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn builtin_tracker_scrape_and_status_page_show_the_swarm() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (url, _stop) = start_builtin_tracker().await;
        let seed = start_libtorrent_seed(&url).await;
        let mut ours = announcer(vec![vec![url.clone()]], Duration::from_secs(5));
        let req = request(seed.info_hash, 9, 7019, 4096, Some(AnnounceEvent::Started));
        announce_until_peer(&mut ours, &req, local(seed.port), Duration::from_secs(30)).await;

        let stats = scrape(&url, seed.info_hash)
            .await
            .expect("torrent missing from scrape");
        assert_eq!((stats.complete, stats.incomplete), (1, 1));
        let everything = reqwest::get(url.replace("/announce", "/scrape"))
            .await
            .unwrap();
        let everything = ScrapeResponse::parse(&everything.bytes().await.unwrap()).unwrap();
        assert_eq!(everything.files.get(&seed.info_hash), Some(&stats));

        let page = reqwest::get(url.replace("/announce", "/")).await.unwrap();
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = page.text().await.unwrap();
        assert!(
            page.contains(&seed.info_hash.to_hex()),
            "status page lists the torrent"
        );
        assert!(
            page.contains(&format!("127.0.0.1:{}", seed.port)),
            "and libtorrent"
        );
        assert!(page.contains("127.0.0.1:7019"), "and our peer");
        assert!(page.contains("<td>4096</td>"), "with what it has left");
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn builtin_tracker_serves_dict_lists_ipv6_peers_and_failures() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (url, _stop) = start_builtin_tracker().await;
        let base = Url::parse(&url).unwrap();
        let hash = awkward_hash(3);
        // From loopback, the `ip` parameter is believed: an IPv6 peer joins the swarm.
        let mut v6 = request(hash, 1, 7101, 10, Some(AnnounceEvent::Started)).to_url(&base);
        let query = format!("{}&ip=2001:db8::5", v6.query().unwrap());
        v6.set_query(Some(&query));
        let body = reqwest::get(v6).await.unwrap().bytes().await.unwrap();
        AnnounceResponse::parse(&body).unwrap();

        let compact = request(hash, 2, 7102, 10, None).to_url(&base);
        let body = reqwest::get(compact).await.unwrap().bytes().await.unwrap();
        assert!(
            body.windows(6).any(|w| w == b"peers6"),
            "IPv6 peers travel in peers6"
        );
        let v6_peer: SocketAddr = "[2001:db8::5]:7101".parse().unwrap();
        assert_eq!(addrs(&AnnounceResponse::parse(&body).unwrap()), [v6_peer]);

        let mut dicts = request(hash, 3, 7103, 10, None);
        dicts.compact = false;
        let body = reqwest::get(dicts.to_url(&base))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let listed = AnnounceResponse::parse(&body).unwrap();
        let mut got: Vec<_> = listed.peers.iter().map(|p| (p.addr, p.peer_id)).collect();
        got.sort();
        let mut want = vec![(v6_peer, Some(peer_id(1))), (local(7102), Some(peer_id(2)))];
        want.sort();
        assert_eq!(got, want, "a dictionary list carries peer ids");

        let bad = reqwest::get(format!("{url}?info_hash=short&port=1"))
            .await
            .unwrap();
        assert_eq!(
            bad.status(),
            200,
            "trackers refuse with 200 and a failure reason"
        );
        let refused = AnnounceResponse::parse(&bad.bytes().await.unwrap());
        assert!(matches!(refused, Err(TrackerProtoError::Failure(r)) if r.contains("info_hash")));
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn announcer_falls_through_tiers_and_promotes_the_tracker_that_answered() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (good, _stop) = start_builtin_tracker().await;
        let (html, html_hits) = start_html_server().await;
        let refused = format!("http://127.0.0.1:{}/announce", free_port());
        let tiers = vec![vec![refused], vec![html.clone(), good.clone()]];
        // Pick the shuffle that puts the HTML tracker first, so promotion has work to do.
        let seed = (0..64)
            .find(|s| {
                let t = TrackerTiers::new(tiers.clone(), &mut StdRng::seed_from_u64(*s));
                t.tiers()[1][0].as_str() == html
            })
            .unwrap();
        let tiers = TrackerTiers::new(tiers, &mut StdRng::seed_from_u64(seed));
        let mut client = Announcer::new(tiers, AnnouncerConfig::default()).unwrap();
        let req = request(awkward_hash(4), 1, 7201, 10, Some(AnnounceEvent::Started));
        client.announce(&req).await.unwrap();
        assert_eq!(
            html_hits.load(Ordering::SeqCst),
            1,
            "the HTML tracker was tried first"
        );
        assert_eq!(
            client.tiers().tiers()[1][0].as_str(),
            good,
            "the answering one moved up"
        );
        client
            .announce(&request(awkward_hash(4), 1, 7201, 10, None))
            .await
            .unwrap();
        assert_eq!(
            html_hits.load(Ordering::SeqCst),
            1,
            "the promoted tracker is asked first"
        );
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn client_survives_down_html_and_hanging_trackers() {
    tokio::time::timeout(TEST_LIMIT, async {
        let refused = format!("http://127.0.0.1:{}/announce", free_port());
        let (html, html_hits) = start_html_server().await;
        let (hang, hang_hits) = start_hanging_server().await;
        let timeout = Duration::from_millis(300);
        let hash = awkward_hash(5);
        let req = request(hash, 1, 7301, 10, Some(AnnounceEvent::Started));

        let started = Instant::now();
        let errors: Vec<TrackerError> = {
            let mut out = Vec::new();
            for url in [&refused, &html, &hang] {
                match announcer(vec![vec![url.clone()]], timeout)
                    .announce(&req)
                    .await
                {
                    Err(AnnounceError::AllFailed(mut f)) if f.len() == 1 => {
                        out.push(f.remove(0).error)
                    }
                    other => panic!("{url}: expected one failure, got {other:?}"),
                }
            }
            out
        };
        assert!(
            matches!(errors[0], TrackerError::Connect(_)),
            "{:?}",
            errors[0]
        );
        assert!(
            matches!(errors[1], TrackerError::Protocol(TrackerProtoError::Html)),
            "{:?}",
            errors[1]
        );
        assert!(
            matches!(errors[2], TrackerError::Timeout(_)),
            "{:?}",
            errors[2]
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the hang is cut by the timeout"
        );

        // The loop keeps retrying all three with backoff, and still shuts down promptly.
        let client = announcer(vec![vec![refused], vec![html], vec![hang]], timeout);
        let mut config = AnnounceLoopConfig::new(hash, peer_id(1), 7301);
        config.schedule = SchedulePolicy {
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(100),
            ..SchedulePolicy::default()
        };
        let (_stats_tx, stats) = watch::channel(TransferStats::default());
        let (handle, _peers) = spawn_announce_loop(client, config, stats);
        let mut status = handle.status();
        status
            .wait_for(|s| s.consecutive_failures >= 3)
            .await
            .unwrap();
        assert!(
            html_hits.load(Ordering::SeqCst) >= 4,
            "html tracker retried"
        );
        assert!(
            hang_hits.load(Ordering::SeqCst) >= 4,
            "hanging tracker retried"
        );
        let last = status.borrow().last_error.clone().unwrap_or_default();
        assert!(
            last.contains("HTML") && last.contains("no answer within"),
            "{last}"
        );
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .expect("shutdown must not wait on a dead tracker");
    })
    .await
    .expect("test took too long");
}

#[tokio::test]
async fn announce_loop_delivers_peers_and_reports_completed_and_stopped() {
    tokio::time::timeout(TEST_LIMIT, async {
        let (url, _stop) = start_builtin_tracker().await;
        let hash = awkward_hash(6);
        let mut other = announcer(vec![vec![url.clone()]], Duration::from_secs(5));
        other
            .announce(&request(hash, 2, 7402, 50, Some(AnnounceEvent::Started)))
            .await
            .unwrap();

        let client = announcer(vec![vec![url.clone()]], Duration::from_secs(5));
        let config = AnnounceLoopConfig::new(hash, peer_id(1), 7401);
        let (stats_tx, stats) = watch::channel(TransferStats {
            left: 100,
            ..TransferStats::default()
        });
        let (handle, mut peers) = spawn_announce_loop(client, config, stats);
        let batch = peers.recv().await.expect("the loop delivers peers");
        assert_eq!(batch, [local(7402)]);
        scrape_until(&url, hash, "our leecher", |s| s.incomplete == 2).await;

        stats_tx.send_modify(|s| {
            s.downloaded = 100;
            s.left = 0;
        });
        handle.completed();
        scrape_until(&url, hash, "the completion", |s| {
            s.downloaded == 1 && s.complete == 1 && s.incomplete == 1
        })
        .await;

        handle.shutdown().await;
        let after = scrape(&url, hash).await.unwrap();
        assert_eq!(
            (after.complete, after.incomplete),
            (0, 1),
            "stopped removed us"
        );
    })
    .await
    .expect("test took too long");
}
