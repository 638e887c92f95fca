use proptest::prelude::*;
use sha1::{Digest, Sha1};

use super::metadata::*;
use super::*;
use crate::proto::InfoHash;
use crate::proto::metainfo::Metainfo;

/// The shape of libtorrent 2.0's handshake (keys as it sends them, `yourip` 127.0.0.1).
const LIBTORRENT_HANDSHAKE: &[u8] = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e\
11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e\
1:pi6881e4:reqqi500e11:upload_onlyi0e1:v18:libtorrent/2.0.8.06:yourip4:\x7f\x00\x00\x01e";

#[test]
fn a_libtorrent_handshake_is_read() {
    let h = ExtendedHandshake::parse(LIBTORRENT_HANDSHAKE).unwrap();
    assert_eq!(h.id_of(UT_METADATA), Some(2));
    assert_eq!(h.id_of("ut_pex"), Some(1));
    assert_eq!(h.extensions.len(), 6);
    assert_eq!(h.metadata_size, Some(31235));
    assert_eq!(h.listen_port, Some(6881));
    assert_eq!(h.request_queue, Some(500));
    assert_eq!(h.client.as_deref(), Some("libtorrent/2.0.8.0"));
    assert_eq!(h.your_ip, Some("127.0.0.1".parse().unwrap()));
}

#[test]
fn our_handshake_round_trips_and_is_canonical() {
    let mut ours = ExtendedHandshake::ours(Some(40_000), Some(51413));
    ours.your_ip = Some("::1".parse().unwrap());
    let bytes = ours.encode();
    assert_eq!(ExtendedHandshake::parse(&bytes).unwrap(), ours);
    // bendy's strict decoder refuses unsorted keys: accepting it proves the order.
    let strict: Result<Vec<_>, _> = bendy::decoding::Decoder::new(&bytes).tokens().collect();
    assert!(strict.is_ok(), "{}", String::from_utf8_lossy(&bytes));
    assert!(bytes.starts_with(b"d1:md11:ut_metadatai3ee13:metadata_sizei40000e"));
}

#[test]
fn disabled_and_malformed_extensions_are_left_out() {
    let h = ExtendedHandshake::parse(
        b"d1:md5:a_offi0e6:bigonei300e4:goodi9e3:negi-1ee13:metadata_size3:abc1:pi0ee",
    )
    .unwrap();
    assert_eq!(h.extensions, BTreeMap::from([("good".to_owned(), 9)]));
    assert_eq!(h.metadata_size, None);
    assert_eq!(h.listen_port, None);
}

#[test]
fn a_handshake_without_m_or_oversized_is_refused() {
    assert_eq!(
        ExtendedHandshake::parse(b"d1:v3:abce"),
        Err(ExtensionError::BadField("m"))
    );
    assert_eq!(
        ExtendedHandshake::parse(b"li1ee"),
        Err(ExtensionError::NotADictionary)
    );
    let big = vec![b'x'; MAX_HANDSHAKE_LEN + 1];
    assert!(matches!(
        ExtendedHandshake::parse(&big),
        Err(ExtensionError::HandshakeTooLong(_))
    ));
}

#[test]
fn metadata_messages_round_trip() {
    let cases = [
        MetadataMessage::Request { piece: 0 },
        MetadataMessage::Reject { piece: 7 },
        MetadataMessage::Data {
            piece: 2,
            total_size: 40_000,
            data: vec![9; 40_000 - 2 * METADATA_PIECE_LEN],
        },
    ];
    for m in cases {
        assert_eq!(MetadataMessage::parse(&m.encode()).unwrap(), m);
    }
    // The exact bytes BEP 9 gives for a request.
    assert_eq!(
        MetadataMessage::Request { piece: 0 }.encode(),
        b"d8:msg_typei0e5:piecei0ee"
    );
}

#[test]
fn bad_metadata_messages_are_refused() {
    let too_long = [
        b"d8:msg_typei1e5:piecei0e10:total_sizei99999ee".as_slice(),
        &[0; 16385],
    ]
    .concat();
    let cases: [(&[u8], ExtensionError); 5] = [
        (
            b"d8:msg_typei9e5:piecei0ee",
            ExtensionError::UnknownMetadataType(9),
        ),
        (b"d8:msg_typei0ee", ExtensionError::BadField("piece")),
        (
            b"d8:msg_typei0e5:piecei-1ee",
            ExtensionError::BadField("piece"),
        ),
        (
            b"d8:msg_typei1e5:piecei0ee",
            ExtensionError::BadField("total_size"),
        ),
        (
            b"d8:msg_typei0e5:piecei0eexx",
            ExtensionError::TrailingData("request"),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(MetadataMessage::parse(bytes), Err(want));
    }
    assert_eq!(
        MetadataMessage::parse(&too_long),
        Err(ExtensionError::MetadataPieceTooLong(16385))
    );
}

/// A real info dictionary of `len` bytes or so (a single file with many pieces).
fn info_dict(pieces: usize) -> Vec<u8> {
    let hashes = vec![7u8; 20 * pieces];
    let mut info = format!(
        "d6:lengthi{}e4:name5:movie12:piece lengthi16384e6:pieces{}:",
        16384 * pieces,
        hashes.len()
    )
    .into_bytes();
    info.extend_from_slice(&hashes);
    info.push(b'e');
    info
}

#[test]
fn metadata_fetched_in_pieces_in_any_order_becomes_a_torrent() {
    let info = info_dict(2000); // about 40 KB: three metadata pieces
    let hash = InfoHash(Sha1::digest(&info).into());
    let size = info.len() as u32;
    let mut asm = MetadataAssembly::new(hash, size).unwrap();
    assert_eq!(asm.missing().collect::<Vec<_>>(), [0, 1, 2]);
    for p in [2, 0] {
        let got = asm.on_data(p, size, piece_of(&info, p).unwrap().to_vec());
        assert_eq!(got, Ok(None));
    }
    assert_eq!(asm.missing().collect::<Vec<_>>(), [1]);
    let done = asm.on_data(1, size, piece_of(&info, 1).unwrap().to_vec());
    assert_eq!(done, Ok(Some(info.clone())));

    let file = torrent_file(
        &info,
        &["udp://t.example:1/announce".into()],
        &["http://w/".into()],
    );
    let meta = Metainfo::from_bytes(&file).unwrap();
    assert_eq!(meta.info_hash, hash);
    assert_eq!(meta.tracker_tiers(), [["udp://t.example:1/announce"]]);
    assert_eq!(meta.url_list, ["http://w/"]);
    assert!(meta.warnings.is_empty(), "{:?}", meta.warnings);
}

#[test]
fn metadata_that_does_not_hash_to_the_info_hash_is_dropped() {
    let info = info_dict(10);
    let size = info.len() as u32;
    let mut asm = MetadataAssembly::new(InfoHash([1; 20]), size).unwrap();
    assert_eq!(
        asm.on_data(0, size, info.clone()),
        Err(AssemblyError::HashMismatch(InfoHash([1; 20])))
    );
    // Everything is asked for again.
    assert_eq!(asm.missing().collect::<Vec<_>>(), [0]);
}

#[test]
fn hostile_sizes_and_pieces_are_refused() {
    let h = InfoHash([0; 20]);
    assert_eq!(
        MetadataAssembly::new(h, 1 << 31).unwrap_err(),
        AssemblyError::TooLarge(1 << 31)
    );
    assert_eq!(
        MetadataAssembly::new(h, 0).unwrap_err(),
        AssemblyError::Empty
    );
    let mut asm = MetadataAssembly::new(h, 20_000).unwrap();
    let short = asm.on_data(0, 20_000, vec![0; 100]);
    assert!(matches!(
        short,
        Err(AssemblyError::WrongPieceLen {
            expected: 16384,
            ..
        })
    ));
    let last_wrong = asm.on_data(1, 20_000, vec![0; 16384]);
    assert!(matches!(
        last_wrong,
        Err(AssemblyError::WrongPieceLen { expected: 3616, .. })
    ));
    assert_eq!(
        asm.on_data(2, 20_000, vec![]),
        Err(AssemblyError::NoSuchPiece(2))
    );
    assert!(matches!(
        asm.on_data(0, 30_000, vec![0; 16384]),
        Err(AssemblyError::SizeDisagrees { .. })
    ));
    assert_eq!(asm.missing().count(), 2);
}

#[test]
fn pieces_served_cover_the_dictionary_exactly() {
    let info = info_dict(2000);
    let n = piece_count(info.len() as u32);
    let joined: Vec<u8> = (0..n)
        .flat_map(|p| piece_of(&info, p).unwrap().to_vec())
        .collect();
    assert_eq!(joined, info);
    assert_eq!(piece_of(&info, n), None);
    assert_eq!(piece_of(&info, u32::MAX), None);
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = ExtendedHandshake::parse(&bytes);
        let _ = MetadataMessage::parse(&bytes);
    }
}
