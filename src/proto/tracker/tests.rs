//! Tests of response parsing/encoding and query parsing, across the tracker submodules.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::proto::{InfoHash, PeerId};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn addrs(r: &AnnounceResponse) -> Vec<SocketAddr> {
    r.peers.iter().map(|p| p.addr).collect()
}

#[test]
fn parses_compact_peers_and_fields() {
    let mut body =
        b"d8:completei5e10:incompletei3e8:intervali1800e12:min intervali60e5:peers12:".to_vec();
    body.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0, 80]);
    body.extend_from_slice(b"10:tracker id3:abc15:warning message4:slowe");
    let r = AnnounceResponse::parse(&body).unwrap();
    assert_eq!(addrs(&r), [addr("10.0.0.1:6881"), addr("192.168.1.2:80")]);
    assert_eq!(r.interval, Some(Duration::from_secs(1800)));
    assert_eq!(r.min_interval, Some(Duration::from_secs(60)));
    assert_eq!((r.complete, r.incomplete), (Some(5), Some(3)));
    assert_eq!(r.tracker_id.as_deref(), Some("abc"));
    assert_eq!(r.warning.as_deref(), Some("slow"));
}

#[test]
fn parses_dict_peers_skipping_hostnames_and_port_zero() {
    let body = b"d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:-XX0000-abcdefghijkl4:porti7000eed2:ip11:example.org4:porti1eed2:ip3:::14:porti9eed2:ip8:10.0.0.94:porti0eeee";
    let r = AnnounceResponse::parse(body).unwrap();
    assert_eq!(addrs(&r), [addr("127.0.0.1:7000"), addr("[::1]:9")]);
    assert_eq!(r.peers[0].peer_id, Some(PeerId(*b"-XX0000-abcdefghijkl")));
    assert_eq!(r.peers[1].peer_id, None);
}

#[test]
fn parses_peers6_and_unmaps_v4_mapped() {
    let mut body = b"d8:intervali60e5:peers0:6:peers636:".to_vec();
    let mut v6 = [0u8; 16];
    v6[15] = 1;
    body.extend_from_slice(&v6);
    body.extend_from_slice(&[0x1f, 0x90]);
    let mut mapped = [0u8; 16];
    mapped[10..12].copy_from_slice(&[0xff, 0xff]);
    mapped[12..].copy_from_slice(&[1, 2, 3, 4]);
    body.extend_from_slice(&mapped);
    body.extend_from_slice(&[0, 5]);
    body.push(b'e');
    let r = AnnounceResponse::parse(&body).unwrap();
    assert_eq!(addrs(&r), [addr("[::1]:8080"), addr("1.2.3.4:5")]);
}

#[test]
fn failure_reason_is_its_own_error() {
    let r = AnnounceResponse::parse(b"d14:failure reason17:torrent not founde");
    assert_eq!(
        r,
        Err(TrackerProtoError::Failure("torrent not found".into()))
    );
    let s = ScrapeResponse::parse(b"d14:failure reason4:nopee");
    assert_eq!(s, Err(TrackerProtoError::Failure("nope".into())));
}

/// A body and a check of the error it must give.
type MalformedCase = (&'static [u8], fn(&TrackerProtoError) -> bool);

#[test]
fn malformed_bodies_are_errors() {
    let cases: &[MalformedCase] = &[
        (b"d5:peers5:abcdee", |e| {
            matches!(e, TrackerProtoError::CompactLength { len: 5, width: 6 })
        }),
        (b"d6:peers67:abcdefge", |e| {
            matches!(e, TrackerProtoError::CompactLength { .. })
        }),
        (b"<html><body>Hello</body></html>", |e| {
            *e == TrackerProtoError::Html
        }),
        (b"  \n<!DOCTYPE html>", |e| *e == TrackerProtoError::Html),
        (b"li1ee", |e| *e == TrackerProtoError::NotADictionary),
        (b"d8:intervali-5ee", |e| {
            *e == TrackerProtoError::BadField("interval")
        }),
        (b"d8:interval2:60e", |e| {
            *e == TrackerProtoError::BadField("interval")
        }),
        (b"d5:peersi3ee", |e| {
            *e == TrackerProtoError::BadField("peers")
        }),
        (b"", |e| matches!(e, TrackerProtoError::NotBencode(_))),
        (b"d8:intervali60e", |e| {
            matches!(e, TrackerProtoError::NotBencode(_))
        }),
    ];
    for (body, check) in cases {
        let err = AnnounceResponse::parse(body).expect_err(&String::from_utf8_lossy(body));
        assert!(
            check(&err),
            "{:?} gave {err:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn compact_peer_count_is_capped() {
    let n = MAX_PEERS_PER_RESPONSE + 10;
    let mut body = format!("d5:peers{}:", n * 6).into_bytes();
    for i in 0..n {
        body.extend_from_slice(&[10, 0, (i >> 8) as u8, i as u8, 0, 1]);
    }
    body.push(b'e');
    let r = AnnounceResponse::parse(&body).unwrap();
    assert_eq!(r.peers.len(), MAX_PEERS_PER_RESPONSE);
}

fn sample_response() -> AnnounceResponse {
    AnnounceResponse {
        interval: Some(Duration::from_secs(60)),
        min_interval: Some(Duration::from_secs(30)),
        warning: Some("hi".into()),
        tracker_id: Some("id".into()),
        complete: Some(1),
        incomplete: Some(2),
        peers: vec![
            TrackerPeer {
                addr: addr("127.0.0.1:6881"),
                peer_id: Some(PeerId([b'a'; 20])),
            },
            TrackerPeer {
                addr: addr("[2001:db8::7]:443"),
                peer_id: Some(PeerId([b'b'; 20])),
            },
        ],
    }
}

#[test]
fn encoded_responses_parse_back() {
    let r = sample_response();
    let dicts = AnnounceResponse::parse(&r.encode(PeerListFormat::Dicts {
        include_peer_id: true,
    }));
    assert_eq!(dicts.unwrap(), r);

    let compact = AnnounceResponse::parse(&r.encode(PeerListFormat::Compact)).unwrap();
    let mut expected = r.clone();
    expected.peers.iter_mut().for_each(|p| p.peer_id = None);
    assert_eq!(compact, expected);
    let raw = r.encode(PeerListFormat::Compact);
    assert!(
        raw.windows(11).any(|w| w == b"6:peers618:"),
        "IPv6 goes into peers6"
    );

    let no_ids = r.encode(PeerListFormat::Dicts {
        include_peer_id: false,
    });
    assert!(!no_ids.windows(7).any(|w| w == b"peer id"));

    let failure = AnnounceResponse::parse(&encode_failure("go away"));
    assert_eq!(failure, Err(TrackerProtoError::Failure("go away".into())));
}

#[test]
fn encoded_response_is_canonical_bencode() {
    let mut expected =
        b"d8:completei1e10:incompletei2e8:intervali60e12:min intervali30e5:peers6:".to_vec();
    expected.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
    expected.extend_from_slice(b"6:peers618:");
    expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    expected.extend_from_slice(&[0x01, 0xbb]);
    expected.extend_from_slice(b"10:tracker id2:id15:warning message2:hie");
    assert_eq!(
        String::from_utf8_lossy(&sample_response().encode(PeerListFormat::Compact)),
        String::from_utf8_lossy(&expected)
    );
    let dicts = sample_response().encode(PeerListFormat::Dicts {
        include_peer_id: false,
    });
    assert!(
        dicts.starts_with(b"d8:completei1e10:incompletei2e8:intervali60e12:min intervali30e5:peersld2:ip9:127.0.0.14:porti6881eed2:ip11:2001:db8::74:porti443eee"),
        "{}",
        String::from_utf8_lossy(&dicts)
    );
    assert_eq!(encode_failure("no"), b"d14:failure reason2:noe");
    let mut scrape = ScrapeResponse::default();
    scrape.files.insert(
        InfoHash([b'h'; 20]),
        ScrapeStats {
            complete: 4,
            incomplete: 5,
            downloaded: 6,
        },
    );
    assert_eq!(
        scrape.encode(),
        b"d5:filesd20:hhhhhhhhhhhhhhhhhhhhd8:completei4e10:downloadedi6e10:incompletei5eeee"
    );
}

#[test]
fn lenient_about_key_order_trailing_bytes_and_repeated_keys() {
    // Unsorted keys, a repeated `interval` (the last one wins), and a trailing newline.
    let body = b"d8:intervali5e5:peers6:\x0a\x00\x00\x01\x00\x508:completei2e8:intervali900ee\n";
    let r = AnnounceResponse::parse(body).unwrap();
    assert_eq!(r.interval, Some(Duration::from_secs(900)));
    assert_eq!(r.complete, Some(2));
    assert_eq!(addrs(&r), [addr("10.0.0.1:80")]);
    let s = ScrapeResponse::parse(b"d5:filesdee\r\n").unwrap();
    assert!(s.files.is_empty());
    // The first value itself must still be well-formed.
    assert!(matches!(
        AnnounceResponse::parse(b"d8:intervali060ee\n"),
        Err(TrackerProtoError::NotBencode(_))
    ));
}

#[test]
fn scrape_round_trips() {
    let mut s = ScrapeResponse::default();
    s.files.insert(
        InfoHash([3; 20]),
        ScrapeStats {
            complete: 1,
            incomplete: 2,
            downloaded: 3,
        },
    );
    s.files.insert(InfoHash([1; 20]), ScrapeStats::default());
    assert_eq!(ScrapeResponse::parse(&s.encode()).unwrap(), s);
    let junk = ScrapeResponse::parse(b"d5:filesd3:abcd8:completei1eeee").unwrap();
    assert!(
        junk.files.is_empty(),
        "keys that are not 20 bytes are skipped"
    );
}

fn query_for(hash: &[u8], id: &[u8], rest: &str) -> String {
    format!(
        "info_hash={}&peer_id={}{rest}",
        percent_encode(hash),
        percent_encode(id)
    )
}

#[test]
fn announce_query_round_trips_the_client_request() {
    let req = AnnounceRequest {
        info_hash: InfoHash(std::array::from_fn(|i| (i * 13) as u8)),
        peer_id: PeerId(*b"-BV0100-%&=+ \x00\xffxyzwv"),
        port: 51413,
        uploaded: 10,
        downloaded: 20,
        left: 0,
        event: Some(AnnounceEvent::Completed),
        numwant: Some(7),
        key: None,
        tracker_id: None,
        compact: true,
    };
    let url = req.to_url(&url::Url::parse("http://h/announce?passkey=p").unwrap());
    let q = AnnounceQuery::parse(url.query().unwrap()).unwrap();
    assert_eq!(q.info_hash, req.info_hash);
    assert_eq!(q.peer_id, req.peer_id);
    assert_eq!(
        (q.port, q.uploaded, q.downloaded, q.left),
        (51413, 10, 20, Some(0))
    );
    assert_eq!(q.event, Some(AnnounceEvent::Completed));
    assert_eq!(q.numwant, Some(7));
    assert!(q.compact && !q.no_peer_id);
    assert_eq!(q.ip, None);
}

#[test]
fn announce_query_refuses_bad_input() {
    let h = [7u8; 20];
    let ok = query_for(&h, &h, "&port=1&ip=10.1.2.3&no_peer_id=1&event=");
    let q = AnnounceQuery::parse(&ok).unwrap();
    assert_eq!(q.ip, Some("10.1.2.3".parse().unwrap()));
    assert!(q.no_peer_id && q.event.is_none() && q.left.is_none());

    let cases = [
        (
            query_for(&h[..19], &h, "&port=1"),
            TrackerProtoError::NotTwentyBytes {
                name: "info_hash",
                len: 19,
            },
        ),
        (
            query_for(&h, &[1; 21], "&port=1"),
            TrackerProtoError::NotTwentyBytes {
                name: "peer_id",
                len: 21,
            },
        ),
        (
            query_for(&h, &h, ""),
            TrackerProtoError::MissingParameter("port"),
        ),
        (
            query_for(&h, &h, "&port=70000"),
            TrackerProtoError::BadParameter("port"),
        ),
        (
            query_for(&h, &h, "&port=1&left=-1"),
            TrackerProtoError::BadParameter("left"),
        ),
        (
            query_for(&h, &h, "&port=1&event=exploded"),
            TrackerProtoError::BadParameter("event"),
        ),
        (
            format!("peer_id={}&port=1", percent_encode(&h)),
            TrackerProtoError::MissingParameter("info_hash"),
        ),
        (
            "info_hash=%zz".to_string(),
            TrackerProtoError::Percent(PercentError { offset: 0 }),
        ),
        (
            "a".repeat(MAX_QUERY_LEN + 1),
            TrackerProtoError::QueryTooLong(MAX_QUERY_LEN),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(AnnounceQuery::parse(&query), Err(expected), "{query}");
    }
}

#[test]
fn scrape_query_collects_hashes() {
    let q = ScrapeQuery::parse(&format!(
        "info_hash={}&x=1&info_hash={}",
        percent_encode(&[1; 20]),
        percent_encode(&[2; 20])
    ))
    .unwrap();
    assert_eq!(q.info_hashes, [InfoHash([1; 20]), InfoHash([2; 20])]);
    assert_eq!(ScrapeQuery::parse("").unwrap().info_hashes, []);
    assert!(ScrapeQuery::parse("info_hash=abc").is_err());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = AnnounceResponse::parse(&body);
            let _ = ScrapeResponse::parse(&body);
            let text = String::from_utf8_lossy(&body);
            let _ = AnnounceQuery::parse(&text);
            let _ = ScrapeQuery::parse(&text);
        }

        #[test]
        fn parser_never_panics_on_bencode_like_bytes(
            parts in proptest::collection::vec(prop_oneof![
                Just(b"d".to_vec()), Just(b"l".to_vec()), Just(b"e".to_vec()),
                Just(b"5:peers".to_vec()), Just(b"6:peers6".to_vec()), Just(b"8:interval".to_vec()),
                Just(b"2:ip".to_vec()), Just(b"4:port".to_vec()), Just(b"i-1e".to_vec()),
                Just(b"i65536e".to_vec()), Just(b"14:failure reason".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..8),
            ], 0..40)
        ) {
            let _ = AnnounceResponse::parse(&parts.concat());
            let _ = ScrapeResponse::parse(&parts.concat());
        }

        #[test]
        fn percent_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(percent_decode(&percent_encode(&bytes)).unwrap(), bytes);
        }
    }
}
