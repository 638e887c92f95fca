use proptest::prelude::*;

use super::*;

const HEX: &str = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
// The same hash in base32, computed independently (Python's base64.b32encode).
const B32: &str = "3WBFL3G4PSSV7MF37AJSHWDQMLNR63I4";

fn hash() -> InfoHash {
    InfoHash::from_hex(HEX).unwrap()
}

#[test]
fn a_hex_and_a_base32_info_hash_name_the_same_torrent() {
    let a = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}")).unwrap();
    let b = Magnet::parse(&format!("magnet:?xt=urn:btih:{B32}")).unwrap();
    let c = Magnet::parse(&format!("MAGNET:?xt=URN:BTIH:{}", B32.to_ascii_lowercase())).unwrap();
    assert_eq!(a.info_hash, hash());
    assert_eq!(b.info_hash, hash());
    assert_eq!(c.info_hash, hash());
    assert_eq!(base32::encode_20(&hash().0), B32);
}

#[test]
fn every_hint_is_read_and_decoded() {
    let uri = format!(
        "magnet:?xt=urn:btih:{HEX}&dn=Big+Buck%20Bunny&xl=276445467\
         &tr=udp%3A%2F%2Ftracker.example%3A1337%2Fannounce&tr=http://t.example/announce\
         &tr=udp%3A%2F%2Ftracker.example%3A1337%2Fannounce\
         &ws=https%3A%2F%2Fcdn.example%2Fmovie%2F&x.pe=127.0.0.1:6881&x.pe=%5B%3A%3A1%5D:6882\
         &x.pe=Peer.Example:51413&so=0,2,4-6&kt=ignored+keywords"
    );
    let m = Magnet::parse(&uri).unwrap();
    assert_eq!(m.display_name.as_deref(), Some("Big Buck Bunny"));
    assert_eq!(m.exact_length, Some(276_445_467));
    assert_eq!(
        m.trackers,
        [
            "udp://tracker.example:1337/announce",
            "http://t.example/announce"
        ]
    );
    assert_eq!(m.web_seeds, ["https://cdn.example/movie/"]);
    assert_eq!(
        m.peers,
        [
            PeerHint::Addr("127.0.0.1:6881".parse().unwrap()),
            PeerHint::Addr("[::1]:6882".parse().unwrap()),
            PeerHint::Host {
                host: "peer.example".into(),
                port: 51413
            },
        ]
    );
    assert_eq!(m.select_only, Some(vec![0..=0, 2..=2, 4..=6]));
    assert!(m.selects(5) && !m.selects(3) && !m.selects(7));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn numbered_keys_mean_the_same_as_bare_ones() {
    let uri = format!("magnet:?xt.1=urn:btih:{HEX}&tr.1=http://a/announce&tr.2=http://b/announce");
    let m = Magnet::parse(&uri).unwrap();
    assert_eq!(m.info_hash, hash());
    assert_eq!(m.trackers.len(), 2);
}

#[test]
fn a_hybrid_link_is_read_by_its_v1_hash_and_a_v2_only_link_is_refused() {
    let btmh = "1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
    let hybrid = format!("magnet:?xt=urn:btmh:{btmh}&xt=urn:btih:{HEX}");
    assert_eq!(Magnet::parse(&hybrid).unwrap().info_hash, hash());
    let v2 = format!("magnet:?xt=urn:btmh:{btmh}&dn=x");
    assert_eq!(Magnet::parse(&v2), Err(MagnetError::V2Only));
}

#[test]
fn bad_links_get_one_clear_error() {
    let cases = [
        ("http://example.com/x.torrent", MagnetError::NotMagnet),
        ("magnet:", MagnetError::NotMagnet),
        ("magnet:?dn=nothing", MagnetError::MissingInfoHash),
        ("magnet:?xt=urn:sha1:ABCDEF", MagnetError::MissingInfoHash),
        (
            "magnet:?xt=urn:btih:1234",
            MagnetError::BadInfoHash("1234".into()),
        ),
        (
            "magnet:?xt=urn:btih:zz8255ecdc7ca55fb0bbf81323d87062db1f6d1c",
            MagnetError::BadInfoHash("zz8255ecdc7ca55fb0bbf81323d87062db1f6d1c".into()),
        ),
        (
            "magnet:?xt=urn:btih:11WBFL3G4PSSV7MF37AJSHWDQMLNR63I",
            MagnetError::BadInfoHash("11WBFL3G4PSSV7MF37AJSHWDQMLNR63I".into()),
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(Magnet::parse(uri), Err(want), "{uri}");
    }
    let two = format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}", "0".repeat(40));
    assert!(matches!(
        Magnet::parse(&two),
        Err(MagnetError::TwoTorrents(..))
    ));
    let long = format!("magnet:?xt=urn:btih:{HEX}&dn={}", "a".repeat(MAX_URI_LEN));
    assert!(matches!(Magnet::parse(&long), Err(MagnetError::TooLong(_))));
    // The messages are what a user reads: they say what was wrong.
    assert!(MagnetError::V2Only.to_string().contains("v2"));
}

#[test]
fn hints_that_do_not_parse_are_dropped_with_a_warning() {
    let uri = format!(
        "magnet:?xt=urn:btih:{HEX}&tr=not+a+url&tr=ftp://x/&ws=udp://x:1/&x.pe=nope\
         &x.pe=1.2.3.4:0&so=3-1&xl=-5"
    );
    let m = Magnet::parse(&uri).unwrap();
    assert!(m.trackers.is_empty() && m.web_seeds.is_empty() && m.peers.is_empty());
    assert_eq!(m.select_only, None);
    assert_eq!(m.exact_length, None);
    let keys: Vec<&str> = m
        .warnings
        .iter()
        .map(|w| match w {
            MagnetWarning::BadHint { key, .. } => *key,
            MagnetWarning::TooMany(k) => k,
        })
        .collect();
    assert_eq!(keys, ["tr", "tr", "ws", "x.pe", "x.pe", "so", "xl"]);
}

#[test]
fn lists_are_capped() {
    let mut uri = format!("magnet:?xt=urn:btih:{HEX}");
    for i in 0..MAX_HINTS + 10 {
        uri.push_str(&format!("&tr=http://t{i}.example/announce"));
    }
    let m = Magnet::parse(&uri).unwrap();
    assert_eq!(m.trackers.len(), MAX_HINTS);
    assert_eq!(m.warnings, [MagnetWarning::TooMany("tr")]);
}

#[test]
fn the_canonical_form_parses_back_to_the_same_link() {
    let uri = format!(
        "magnet:?xt=urn:btih:{B32}&dn=a%26b%3Dc&tr=http://t.example/a%3Fx%3D1&x.pe=[::1]:7\
         &ws=http://w.example/&so=1,3-4&xl=10"
    );
    let m = Magnet::parse(&uri).unwrap();
    let again = Magnet::parse(&m.to_uri()).unwrap();
    assert_eq!(again, m);
    assert_eq!(m.display_name.as_deref(), Some("a&b=c"));
    assert!(
        m.to_uri()
            .starts_with(&format!("magnet:?xt=urn:btih:{HEX}&dn=a%26b%3Dc&"))
    );
}

proptest! {
    #[test]
    fn parsing_any_string_never_panics(s in "magnet:\\?[ -~]{0,300}") {
        let _ = Magnet::parse(&s);
    }

    #[test]
    fn base32_round_trips(bytes in any::<[u8; 20]>()) {
        prop_assert_eq!(base32::decode_20(&base32::encode_20(&bytes)), Some(bytes));
    }
}
