//! `lan`: the datagrams strangers on the LAN send us, LSD announces (BEP 14) and btvod search
//! queries and answers. Whatever parses is within the caps, and re-encodes to the same value.

use btvod::proto::lsd::{LsdAnnounce, MAX_INFO_HASHES};
use btvod::proto::search::{Answer, MAX_ANSWER, Query};

pub fn lan(data: &[u8]) {
    if let Ok(a) = LsdAnnounce::parse(data) {
        assert!(a.port != 0 && !a.info_hashes.is_empty());
        assert!(a.info_hashes.len() <= MAX_INFO_HASHES);
        let back = LsdAnnounce::parse(&a.encode("239.192.152.143:6771"));
        // A cookie with spaces inside survives; one with control characters may not be ours.
        if a.cookie
            .as_deref()
            .is_none_or(|c| !c.chars().any(char::is_control))
        {
            assert_eq!(back.map(|b| b.info_hashes), Ok(a.info_hashes));
        }
    }
    if let Ok(q) = Query::parse(data) {
        let back = Query::parse(&q.encode()).expect("our query parses");
        assert_eq!(back.id, q.id);
    }
    if let Ok(a) = Answer::parse(data) {
        let bytes = a.encode();
        assert!(
            bytes.len() <= MAX_ANSWER,
            "an answer of {} bytes",
            bytes.len()
        );
        let back = Answer::parse(&bytes).expect("our answer parses");
        assert_eq!(
            (back.id, back.info_hash, back.size, back.port),
            (a.id, a.info_hash, a.size, a.port)
        );
    }
}
