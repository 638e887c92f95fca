use proptest::prelude::*;

use super::*;

fn announce() -> UdpAnnounce {
    UdpAnnounce {
        info_hash: InfoHash([0xab; 20]),
        peer_id: PeerId(*b"-BV0100-abcdefghijkl"),
        downloaded: 1,
        left: 2,
        uploaded: 3,
        event: Some(AnnounceEvent::Started),
        ip: None,
        key: 0xdead_beef,
        num_want: None,
        port: 6881,
    }
}

#[test]
fn a_connect_request_is_the_bep_15_bytes() {
    let packet = UdpRequest::Connect {
        transaction: 0x0102_0304,
    }
    .encode();
    assert_eq!(
        packet,
        [
            0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4
        ]
    );
}

#[test]
fn an_announce_is_98_bytes_and_round_trips() {
    let req = UdpRequest::Announce {
        connection: 42,
        transaction: 7,
        announce: announce(),
    };
    let packet = req.encode();
    assert_eq!(packet.len(), 98);
    // num_want -1 ("the tracker's default") and event 2 (started) where BEP 15 puts them.
    assert_eq!(&packet[92..96], &[0xff; 4]);
    assert_eq!(&packet[80..84], &[0, 0, 0, 2]);
    assert_eq!(UdpRequest::parse(&packet), Ok(req));
    let scrape = UdpRequest::Scrape {
        connection: 9,
        transaction: 8,
        info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
    };
    assert_eq!(UdpRequest::parse(&scrape.encode()), Ok(scrape));
}

#[test]
fn replies_round_trip_in_both_families() {
    let v4: Vec<SocketAddr> = vec![
        "127.0.0.1:6881".parse().unwrap(),
        "10.0.0.2:1".parse().unwrap(),
    ];
    let v6: Vec<SocketAddr> = vec!["[2001:db8::1]:51413".parse().unwrap()];
    let all: Vec<SocketAddr> = v4.iter().chain(&v6).copied().collect();
    let reply = |peers: Vec<SocketAddr>| UdpReply::Announce {
        transaction: 5,
        interval: 60,
        leechers: 3,
        seeders: 4,
        peers,
    };
    // Each family hears only its own peers.
    assert_eq!(
        UdpReply::parse(&reply(all.clone()).encode(false), 5, false),
        Ok(reply(v4))
    );
    assert_eq!(
        UdpReply::parse(&reply(all).encode(true), 5, true),
        Ok(reply(v6))
    );
    for r in [
        UdpReply::Connect {
            transaction: 5,
            connection: u64::MAX,
        },
        UdpReply::Scrape {
            transaction: 5,
            stats: vec![ScrapeStats {
                complete: 1,
                incomplete: 2,
                downloaded: 3,
            }],
        },
        UdpReply::Error {
            transaction: 5,
            message: "not whitelisted".into(),
        },
    ] {
        assert_eq!(UdpReply::parse(&r.encode(false), 5, false), Ok(r));
    }
    let response = reply(vec!["127.0.0.1:6881".parse().unwrap()])
        .into_response()
        .unwrap();
    assert_eq!(response.interval, Some(Duration::from_secs(60)));
    assert_eq!((response.complete, response.incomplete), (Some(4), Some(3)));
    assert_eq!(response.peers.len(), 1);
}

#[test]
fn hostile_replies_are_refused_with_a_reason() {
    let good = UdpReply::Connect {
        transaction: 5,
        connection: 1,
    }
    .encode(false);
    assert_eq!(
        UdpReply::parse(&good, 6, false),
        Err(UdpTrackerError::WrongTransaction {
            got: 5,
            expected: 6
        })
    );
    assert_eq!(
        UdpReply::parse(&good[..10], 5, false),
        Err(UdpTrackerError::TooShort(10))
    );
    let mut ragged = UdpReply::Announce {
        transaction: 5,
        interval: 1,
        leechers: 0,
        seeders: 0,
        peers: vec![],
    }
    .encode(false);
    ragged.extend([1, 2, 3, 4, 5]);
    assert_eq!(
        UdpReply::parse(&ragged, 5, false),
        Err(UdpTrackerError::PeerListLength(5))
    );
    let mut unknown = good.clone();
    unknown[3] = 9;
    assert_eq!(
        UdpReply::parse(&unknown, 5, false),
        Err(UdpTrackerError::UnknownAction(9))
    );
    // Port 0 and unspecified addresses are dropped, not dialled.
    let mut zeros = UdpReply::Announce {
        transaction: 5,
        interval: 1,
        leechers: 0,
        seeders: 0,
        peers: vec![],
    }
    .encode(false);
    zeros.extend([0, 0, 0, 0, 0x1a, 0xe1, 127, 0, 0, 1, 0, 0]);
    let Ok(UdpReply::Announce { peers, .. }) = UdpReply::parse(&zeros, 5, false) else {
        panic!("parses");
    };
    assert!(peers.is_empty());
}

#[test]
fn hostile_requests_are_refused_with_a_reason() {
    let mut bad_event = UdpRequest::Announce {
        connection: 1,
        transaction: 2,
        announce: announce(),
    }
    .encode();
    bad_event[83] = 9;
    assert_eq!(
        UdpRequest::parse(&bad_event),
        Err(UdpTrackerError::BadEvent(9))
    );
    assert_eq!(
        UdpRequest::parse(&bad_event[..50]),
        Err(UdpTrackerError::TooShort(50))
    );
    let mut not_connect = UdpRequest::Connect { transaction: 1 }.encode();
    not_connect[0] = 1;
    assert!(matches!(
        UdpRequest::parse(&not_connect),
        Err(UdpTrackerError::NotConnect(_))
    ));
    let mut big_scrape = UdpRequest::Scrape {
        connection: 1,
        transaction: 1,
        info_hashes: vec![],
    }
    .encode();
    big_scrape.extend(vec![0; 20 * (MAX_SCRAPE + 1)]);
    assert_eq!(
        UdpRequest::parse(&big_scrape),
        Err(UdpTrackerError::TooManyHashes(MAX_SCRAPE + 1))
    );
}

#[test]
fn retransmissions_back_off_as_bep_15_says() {
    let first = Duration::from_secs(15);
    assert_eq!(retransmit_after(first, 0), Duration::from_secs(15));
    assert_eq!(retransmit_after(first, 3), Duration::from_secs(120));
    assert_eq!(retransmit_after(first, 8), Duration::from_secs(3840));
    assert_eq!(retransmit_after(first, 20), Duration::from_secs(3840));
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), v6 in any::<bool>()) {
        let _ = UdpRequest::parse(&bytes);
        let _ = UdpReply::parse(&bytes, 0, v6);
    }
}
