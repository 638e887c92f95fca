//! The DHT (BEP 5) with libtorrent on a loopback DHT: `btvod get MAGNET` finds a libtorrent
//! seed through libtorrent nodes with no tracker and no peer named, and libtorrent given only a
//! magnet joins the DHT through btvod's node (its only bootstrap) and finds btvod's seed. The
//! second needs btvod's node to answer libtorrent's 2-byte transaction ids
//! (vendor/mainline/PATCHED.md).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cli::{assert_exits_ok, btvod_get, btvod_seed};
use common::content::free_port;
use common::external::{LibtorrentPeer, LtOptions};
use common::movie_dir::MovieDir;

const MIB: usize = 1024 * 1024;
const BOUND: Duration = Duration::from_secs(90);

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A libtorrent session that only serves as a DHT node (it waits for an unknown torrent),
/// bootstrapping from `peer_node`.
fn dht_router(world: &MovieDir, port: u16, peer_node: u16) -> LibtorrentPeer {
    LibtorrentPeer::start(
        &world.torrent_path(),
        &world.root().join("router"),
        &LtOptions {
            listen_port: port,
            magnet: Some(format!("magnet:?xt=urn:btih:{}", "5".repeat(40))),
            dht_bootstrap: Some(localhost(peer_node)),
            ..LtOptions::default()
        },
    )
}

#[test]
fn btvod_gets_a_magnet_from_a_libtorrent_seed_found_through_the_dht() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 71);
    let (router_port, seed_port) = (free_port(), free_port());
    let _router = dht_router(&world, router_port, seed_port);
    let seed = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.seed_dir(),
        &LtOptions {
            listen_port: seed_port,
            dht_bootstrap: Some(localhost(router_port)),
            ..LtOptions::seed()
        },
    );
    seed.wait_port(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = world.leech_dir(0);
    // Only the info-hash: no tracker, no peer. btvod looks the DHT up every 10 s until the
    // seed has announced itself there.
    let link = format!("magnet:?xt=urn:btih:{}", world.meta.info_hash);
    let router = localhost(router_port).to_string();
    let get = btvod_get(&link, &out, &["--dht-bootstrap", &router]);
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get MAGNET through the DHT",
        &seed.report(),
    );
    world.assert_downloaded(0);
}

#[test]
fn libtorrent_given_only_a_magnet_joins_the_dht_through_btvods_node_and_finds_its_seed() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 72);
    let (router_port, dht_port) = (free_port(), free_port());
    // The router knows btvod's node; the leecher knows nothing but btvod's node.
    let _router = dht_router(&world, router_port, dht_port);
    let (router, dht_port_text) = (localhost(router_port).to_string(), dht_port.to_string());
    let seed = btvod_seed(
        &world,
        0,
        &[
            "--dht-port",
            &dht_port_text,
            "--dht-server",
            "--dht-bootstrap",
            &router,
        ],
    );
    let leech = LibtorrentPeer::start(
        &world.torrent_path(),
        &world.leech_dir(0),
        &LtOptions {
            magnet: Some(format!("magnet:?xt=urn:btih:{}", world.meta.info_hash)),
            dht_bootstrap: Some(localhost(dht_port)),
            exit_when_complete: true,
            max_seconds: Some(BOUND.as_secs()),
            ..LtOptions::default()
        },
    );
    leech
        .wait_metadata(BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.report()));
    leech
        .wait_complete(BOUND)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.report()));
    world.assert_downloaded(0);
}

/// A hostile DHT: nodes that answer every `get_peers` with hundreds of addresses where nothing
/// listens (a few thousand per lookup over all of them), and one answer of 5,000 peers in one
/// datagram. btvod still downloads from the seed its magnet names, its address book stays
/// capped, and it says once that it is full.
#[test]
fn dht_nodes_answering_with_thousands_of_peers_do_not_disturb_the_download() {
    let world = MovieDir::new(2 * MIB, 64 * 1024, 73);
    let hostile = HostileDht::start(16);
    let seed = LibtorrentPeer::start(&world.torrent_path(), &world.seed_dir(), &LtOptions::seed());
    let out = world.leech_dir(0);
    let link = format!(
        "magnet:?xt=urn:btih:{}&x.pe={}",
        world.meta.info_hash,
        seed.addr()
    );
    let bootstrap = hostile.first().to_string();
    // Slow enough that the DHT lookup answers while the download runs.
    let get = btvod_get(
        &link,
        &out,
        &["--dht-bootstrap", &bootstrap, "--max-download-rate", "256"],
    );
    assert_exits_ok(
        &get,
        BOUND,
        "btvod get beside a hostile DHT",
        &seed.report(),
    );
    world.assert_downloaded(0);
    let log = get.report();
    let served = hostile.peers_sent();
    assert!(
        served >= 2000,
        "the hostile nodes gave only {served} peers\n{log}"
    );
    assert_eq!(
        log.matches("the address book is full").count(),
        1,
        "said once, not per address\n{log}"
    );
}

/// `count` fake DHT nodes on 127.0.0.1 (one thread): each names all the others in its answers
/// and floods `get_peers` with addresses in 127.66.0.0/16, where nothing listens. `peers_sent`
/// counts the peers of answers small enough to be read (not the 5,000 of the first).
struct HostileDht {
    addrs: Vec<SocketAddr>,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// As many as fit, beside the nodes, in the 2048 bytes a mainline node reads of a datagram.
const PEERS_PER_ANSWER: usize = 150;

impl HostileDht {
    fn start(count: usize) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let sockets: Vec<std::net::UdpSocket> = (0..count)
            .map(|_| {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let nodes: Vec<u8> = addrs
            .iter()
            .enumerate()
            .flat_map(|(i, a)| {
                let mut entry = vec![i as u8 + 1; 20];
                entry.extend_from_slice(&compact(*a));
                entry
            })
            .collect();
        let sent = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut next_peer: u32 = 0;
            let mut flooded = false;
            while !stop2.load(Ordering::Relaxed) {
                let mut idle = true;
                for (i, socket) in sockets.iter().enumerate() {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    idle = false;
                    let Some((t, query)) = parse_query(&buf[..n]) else {
                        continue;
                    };
                    let id = vec![i as u8 + 1; 20];
                    let values = if query == b"get_peers" {
                        // The first answer is one datagram of 5,000 peers.
                        let many = if flooded { PEERS_PER_ANSWER } else { 5000 };
                        flooded = true;
                        let peers: Vec<[u8; 6]> = (0..many)
                            .map(|_| {
                                next_peer += 1;
                                let [_, _, a, b] = next_peer.to_be_bytes();
                                compact(SocketAddr::from(([127, 66, a, b], 9)))
                            })
                            .collect();
                        if many == PEERS_PER_ANSWER {
                            sent2.fetch_add(many, Ordering::Relaxed);
                        }
                        Some(peers)
                    } else {
                        None
                    };
                    let reply = answer(&t, &id, &nodes, values.as_deref());
                    let _ = socket.send_to(&reply, from);
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        HostileDht {
            addrs,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    fn first(&self) -> SocketAddr {
        self.addrs[0]
    }

    fn peers_sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for HostileDht {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn compact(addr: SocketAddr) -> [u8; 6] {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    let mut out = [0u8; 6];
    out[..4].copy_from_slice(&v4.ip().octets());
    out[4..].copy_from_slice(&v4.port().to_be_bytes());
    out
}

/// The transaction id and method of a KRPC query.
fn parse_query(packet: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let dict = btvod::proto::bencode::decode(packet).ok()?.as_dict()?;
    let t = dict.get(b"t")?.as_bytes()?.to_vec();
    let q = dict.get(b"q")?.as_bytes()?.to_vec();
    Some((t, q))
}

/// A KRPC response: keys in sorted order, as bencoding wants.
fn answer(t: &[u8], id: &[u8], nodes: &[u8], values: Option<&[[u8; 6]]>) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(format!("{}:", b.len()).as_bytes());
        out.extend_from_slice(b);
    }
    let mut out = b"d1:rd".to_vec();
    bytes(&mut out, b"id");
    bytes(&mut out, id);
    bytes(&mut out, b"nodes");
    bytes(&mut out, nodes);
    if let Some(values) = values {
        bytes(&mut out, b"token");
        bytes(&mut out, b"hostile");
        bytes(&mut out, b"values");
        out.push(b'l');
        for v in values {
            bytes(&mut out, v);
        }
        out.push(b'e');
    }
    out.extend_from_slice(b"e1:t");
    bytes(&mut out, t);
    out.extend_from_slice(b"1:y1:re");
    out
}
