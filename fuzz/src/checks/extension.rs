//! `magnet`, `extension` and `pex`: links a user pastes, and BEP 10 / BEP 9 / BEP 11 payloads a
//! peer sends.
//! Whatever parses is within the documented caps, and our own encoding of a parsed value parses
//! back to the same value.

use btvod::proto::extension::ExtendedHandshake;
use btvod::proto::extension::metadata::{METADATA_PIECE_LEN, MetadataMessage};
use btvod::proto::extension::pex::{MAX_PEX_PEERS, PexMessage};
use btvod::proto::magnet::{MAX_HINTS, Magnet};

pub fn magnet(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut m) = Magnet::parse(text) else {
        return;
    };
    assert!(m.trackers.len() <= MAX_HINTS);
    assert!(m.peers.len() <= MAX_HINTS && m.web_seeds.len() <= MAX_HINTS);
    let back = Magnet::parse(&m.to_uri()).expect("our canonical link parses");
    m.warnings.clear();
    assert_eq!(back, m, "magnet round trip");
}

pub fn extension(data: &[u8]) {
    if let Ok(h) = ExtendedHandshake::parse(data) {
        assert!(
            h.extensions.values().all(|&id| id != 0),
            "a disabled extension kept"
        );
        assert!(h.extensions.len() <= 64);
        let back = ExtendedHandshake::parse(&h.encode()).expect("our handshake parses");
        assert_eq!(back, h, "extension handshake round trip");
    }
    if let Ok(m) = MetadataMessage::parse(data) {
        if let MetadataMessage::Data { data, .. } = &m {
            assert!(data.len() <= METADATA_PIECE_LEN);
        }
        let back = MetadataMessage::parse(&m.encode()).expect("our ut_metadata message parses");
        assert_eq!(back, m, "ut_metadata round trip");
    }
}

pub fn pex(data: &[u8]) {
    let Ok(parsed) = PexMessage::parse(data) else {
        return;
    };
    let m = &parsed.message;
    assert!(m.added.len() <= MAX_PEX_PEERS && m.dropped.len() <= MAX_PEX_PEERS);
    let all = m.added.iter().map(|(a, _)| a).chain(&m.dropped);
    for a in all {
        assert!(a.port() != 0 && !a.ip().is_unspecified(), "{a} kept");
    }
    let back = PexMessage::parse(&m.encode()).expect("our ut_pex message parses");
    assert_eq!(back.unread, 0);
    assert_eq!(&back.message, m, "ut_pex round trip");
}
