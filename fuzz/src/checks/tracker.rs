//! `tracker_response` and `announce_query`: what a tracker sends us and what a client sends our
//! tracker. Whatever parses is within the documented limits, and our own encoding of a parsed
//! value (our tracker's reply, our client's announce URL) parses back to the same value.

use std::net::{IpAddr, SocketAddr};

use btvod::proto::tracker::{
    AnnounceEvent, AnnounceQuery, AnnounceRequest, AnnounceResponse, MAX_PEERS_PER_RESPONSE,
    MAX_SCRAPE_FILES, PeerListFormat, ScrapeQuery, ScrapeResponse, TrackerPeer, TrackerProtoError,
    encode_failure, percent_decode, percent_encode, scrape_url,
};
use btvod::proto::{InfoHash, PeerId};

use super::Input;

/// Texts from a tracker are cut to this many bytes (the documented `MAX_TEXT_LEN`).
const MAX_TEXT_LEN: usize = 1024;

pub fn tracker_response(data: &[u8]) {
    match AnnounceResponse::parse(data) {
        Ok(r) => {
            assert!(r.peers.len() <= MAX_PEERS_PER_RESPONSE);
            for p in &r.peers {
                assert_ne!(p.addr.port(), 0);
                assert!(!p.addr.ip().is_unspecified());
                if let SocketAddr::V6(a) = p.addr {
                    assert!(
                        a.ip().to_ipv4_mapped().is_none(),
                        "v4-mapped address kept as v6"
                    );
                }
            }
            for text in [&r.warning, &r.tracker_id].into_iter().flatten() {
                assert!(
                    text.len() <= MAX_TEXT_LEN,
                    "a {}-byte tracker text",
                    text.len()
                );
            }
            let back = AnnounceResponse::parse(&r.encode(PeerListFormat::Dicts {
                include_peer_id: true,
            }))
            .expect("our tracker's reply parses");
            assert_eq!(back, r, "dictionary peer list round trip");
            let back = AnnounceResponse::parse(&r.encode(PeerListFormat::Compact))
                .expect("our tracker's compact reply parses");
            let (v4, v6): (Vec<&TrackerPeer>, Vec<_>) =
                r.peers.iter().partition(|p| p.addr.is_ipv4());
            let compact: Vec<SocketAddr> = v4.into_iter().chain(v6).map(|p| p.addr).collect();
            let got: Vec<SocketAddr> = back.peers.iter().map(|p| p.addr).collect();
            assert_eq!(got, compact, "compact peer list round trip");
            assert!(back.peers.iter().all(|p| p.peer_id.is_none()));
        }
        Err(TrackerProtoError::Failure(reason)) => {
            assert!(
                reason.len() <= MAX_TEXT_LEN,
                "a {}-byte failure reason",
                reason.len()
            );
            assert_eq!(
                AnnounceResponse::parse(&encode_failure(&reason)),
                Err(TrackerProtoError::Failure(reason)),
                "failure round trip"
            );
        }
        Err(_) => {}
    }
    if let Ok(s) = ScrapeResponse::parse(data) {
        assert!(s.files.len() <= MAX_SCRAPE_FILES);
        let back = ScrapeResponse::parse(&s.encode()).expect("our scrape reply parses");
        assert_eq!(back, s, "scrape round trip");
    }
}

pub fn announce_query(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    if mode & 1 == 0 {
        raw_query(&String::from_utf8_lossy(input.rest()));
    } else {
        client_request(&mut input);
    }
}

/// A query string as a client might send it: parsed, written back canonically, parsed again.
fn raw_query(query: &str) {
    if let Ok(q) = AnnounceQuery::parse(query) {
        let mut again = format!(
            "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&compact={}&no_peer_id={}",
            percent_encode(&q.info_hash.0),
            percent_encode(&q.peer_id.0),
            q.port,
            q.uploaded,
            q.downloaded,
            u8::from(q.compact),
            u8::from(q.no_peer_id),
        );
        if let Some(left) = q.left {
            again += &format!("&left={left}");
        }
        if let Some(event) = q.event {
            again += &format!("&event={}", event.as_str());
        }
        if let Some(n) = q.numwant {
            again += &format!("&numwant={n}");
        }
        if let Some(ip) = q.ip {
            again += &format!("&ip={}", percent_encode(ip.to_string().as_bytes()));
        }
        assert_eq!(
            AnnounceQuery::parse(&again),
            Ok(q),
            "announce query round trip"
        );
    }
    if let Ok(s) = ScrapeQuery::parse(query) {
        let again: Vec<String> = s
            .info_hashes
            .iter()
            .map(|h| format!("info_hash={}", percent_encode(&h.0)))
            .collect();
        assert_eq!(
            ScrapeQuery::parse(&again.join("&")),
            Ok(s),
            "scrape query round trip"
        );
    }
}

/// Our client's announce (and scrape) URL, read by our tracker's query parser.
fn client_request(input: &mut Input<'_>) {
    let twenty = |input: &mut Input<'_>| {
        let mut a = [0u8; 20];
        a.iter_mut().for_each(|b| *b = input.u8());
        a
    };
    let info_hash = InfoHash(twenty(input));
    let peer_id = PeerId(twenty(input));
    let flags = input.u8();
    let request = AnnounceRequest {
        info_hash,
        peer_id,
        port: input.u16(),
        uploaded: input.u64(),
        downloaded: input.u64(),
        left: input.u64(),
        event: match flags & 3 {
            0 => None,
            1 => Some(AnnounceEvent::Started),
            2 => Some(AnnounceEvent::Completed),
            _ => Some(AnnounceEvent::Stopped),
        },
        numwant: (flags & 4 != 0).then(|| input.u32()),
        key: (flags & 8 != 0).then(|| input.u32()),
        tracker_id: (flags & 16 != 0)
            .then(|| String::from_utf8_lossy(input.short_bytes()).into_owned()),
        compact: flags & 32 != 0,
    };
    let passkey = input.short_bytes();
    assert_eq!(
        percent_decode(&percent_encode(passkey)).as_deref(),
        Ok(passkey)
    );
    let base = if flags & 64 != 0 {
        format!(
            "http://127.0.0.1:6969/announce?passkey={}",
            percent_encode(passkey)
        )
    } else {
        "http://127.0.0.1:6969/announce".to_string()
    };
    let base = url::Url::parse(&base).expect("a valid base URL");
    let url = request.to_url(&base);
    let q = AnnounceQuery::parse(url.query().expect("an announce has a query"))
        .expect("our tracker reads our client's announce");
    assert_eq!(q.info_hash, request.info_hash);
    assert_eq!(q.peer_id, request.peer_id);
    assert_eq!(q.port, request.port);
    assert_eq!(q.uploaded, request.uploaded);
    assert_eq!(q.downloaded, request.downloaded);
    assert_eq!(q.left, Some(request.left));
    assert_eq!(q.event, request.event);
    assert_eq!(q.numwant, request.numwant);
    assert_eq!(q.compact, request.compact);
    assert_eq!(q.ip, None::<IpAddr>);

    let hashes: Vec<InfoHash> = (0..input.below(4))
        .map(|_| InfoHash(twenty(input)))
        .collect();
    let scrape = scrape_url(&base, &hashes).expect("an /announce URL has a scrape URL");
    let parsed = ScrapeQuery::parse(scrape.query().unwrap_or_default())
        .expect("our tracker reads our client's scrape");
    assert_eq!(parsed.info_hashes, hashes);
}

/// `udp_tracker`: BEP 15 packets both ways. The first 4 bytes choose the transaction id a
/// reply must answer; whatever parses is within the limits, and a parsed request re-encodes to
/// a packet that parses back to it.
pub fn udp_tracker(data: &[u8]) {
    use btvod::proto::tracker::udp::{UdpReply, UdpRequest};
    let expected = data
        .first_chunk::<4>()
        .map_or(0, |b| u32::from_be_bytes(*b));
    let packet = data.get(4..).unwrap_or_default();
    for v6 in [false, true] {
        if let Ok(UdpReply::Announce { peers, .. }) = UdpReply::parse(packet, expected, v6) {
            assert!(peers.len() <= MAX_PEERS_PER_RESPONSE);
            assert!(
                peers
                    .iter()
                    .all(|p| p.port() != 0 && !p.ip().is_unspecified())
            );
        }
    }
    if let Ok(request) = UdpRequest::parse(packet) {
        let back = UdpRequest::parse(&request.encode()).expect("our request parses");
        assert_eq!(back, request, "udp request round trip");
    }
}
