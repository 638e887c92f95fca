//! Tests of the wire codec: round trips, every way a frame can be split, and every refusal.

use bytes::{BufMut, Bytes, BytesMut};

use super::*;
use crate::proto::{InfoHash, PeerId};

fn spec(piece: u32, offset: u32, len: u32) -> BlockSpec {
    BlockSpec { piece, offset, len }
}

/// One of every message kind, with values that would show a swapped or truncated field.
/// The messages one after another, as a peer would send them.
pub(super) fn encode_all(messages: &[Message]) -> BytesMut {
    let mut stream = BytesMut::new();
    for msg in messages {
        msg.encode(&mut stream);
    }
    stream
}

fn every_message() -> Vec<Message> {
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have { piece: 0x0102_0304 },
        Message::Bitfield(Bytes::from_static(&[0b1010_0000, 0xff, 0x80])),
        Message::Request(spec(7, 16384, 16384)),
        Message::Piece {
            piece: 3,
            offset: 32768,
            data: Bytes::from((0..=255u8).cycle().take(16384).collect::<Vec<_>>()),
        },
        Message::Cancel(spec(1, 2, 3)),
        Message::Port(6881),
        Message::Suggest { piece: 42 },
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(spec(u32::MAX, 0, 1)),
        Message::AllowedFast { piece: 9 },
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"d1:md11:ut_metadatai1eee"),
        },
        Message::Unknown { id: 99, len: 5 },
    ]
}

fn encoded(msg: &Message) -> BytesMut {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf);
    buf
}

/// Decodes everything `buf` holds; panics on an error (the input is known good).
fn drain(decoder: &mut WireDecoder, buf: &mut BytesMut, out: &mut Vec<Message>) {
    while let Some(msg) = decoder.decode(buf).expect("valid stream") {
        out.push(msg);
    }
}

#[test]
fn every_message_round_trips_with_its_declared_length() {
    for msg in every_message() {
        let mut buf = encoded(&msg);
        assert_eq!(buf.len(), 4 + msg.body_len(), "{msg:?}");
        let decoded = WireDecoder::default().decode(&mut buf).unwrap();
        assert_eq!(decoded.as_ref(), Some(&msg));
        assert!(buf.is_empty(), "{msg:?} left {} bytes", buf.len());
    }
}

#[test]
fn known_byte_layouts() {
    assert_eq!(&encoded(&Message::KeepAlive)[..], &[0, 0, 0, 0]);
    assert_eq!(
        &encoded(&Message::Have { piece: 258 })[..],
        &[0, 0, 0, 5, 4, 0, 0, 1, 2]
    );
    assert_eq!(
        &encoded(&Message::Request(spec(1, 16384, 16384)))[..],
        &[0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]
    );
    assert_eq!(
        &encoded(&Message::Port(0x1ae1))[..],
        &[0, 0, 0, 3, 9, 0x1a, 0xe1]
    );
    assert_eq!(&encoded(&Message::HaveAll)[..], &[0, 0, 0, 1, 14]);
    assert_eq!(&encoded(&Message::Reject(spec(0, 0, 0)))[4], &16);
}

#[test]
fn one_byte_at_a_time_gives_the_same_messages() {
    let messages = every_message();
    let stream = encode_all(&messages);
    let mut decoder = WireDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for &byte in stream.iter() {
        buf.put_u8(byte);
        drain(&mut decoder, &mut buf, &mut out);
    }
    assert_eq!(out, messages);
    assert!(buf.is_empty());
}

#[test]
fn two_halves_at_every_split_point_give_the_same_message() {
    for msg in every_message() {
        let whole = encoded(&msg);
        for split in 0..=whole.len() {
            let mut decoder = WireDecoder::default();
            let mut buf = BytesMut::from(&whole[..split]);
            let mut out = Vec::new();
            drain(&mut decoder, &mut buf, &mut out);
            if split < whole.len() {
                // A partial frame must never yield a message nor be consumed.
                assert!(out.is_empty(), "{msg:?} decoded from {split} bytes");
                assert_eq!(buf.len(), split, "a partial frame must not be consumed");
            }
            buf.extend_from_slice(&whole[split..]);
            drain(&mut decoder, &mut buf, &mut out);
            assert_eq!(out, vec![msg.clone()], "split at {split}");
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn many_messages_back_to_back_all_decode() {
    let messages: Vec<Message> = (0..200).flat_map(|_| every_message()).collect();
    let mut buf = BytesMut::new();
    for msg in &messages {
        msg.encode(&mut buf);
    }
    let mut out = Vec::new();
    drain(&mut WireDecoder::default(), &mut buf, &mut out);
    assert_eq!(out, messages);
}

#[test]
fn piece_data_shares_the_read_buffer() {
    let mut buf = encoded(&Message::Piece {
        piece: 1,
        offset: 0,
        data: Bytes::from(vec![7u8; 16384]),
    });
    let start = buf.as_ptr() as usize;
    let Some(Message::Piece { data, .. }) = WireDecoder::default().decode(&mut buf).unwrap() else {
        panic!("expected a PIECE");
    };
    assert_eq!(data.as_ptr() as usize, start + 13, "block data was copied");
}

#[test]
fn a_partial_frame_reserves_room_for_the_whole_frame() {
    let whole = encoded(&Message::Piece {
        piece: 0,
        offset: 0,
        data: Bytes::from(vec![1u8; 16384]),
    });
    let mut buf = BytesMut::with_capacity(8);
    buf.extend_from_slice(&whole[..6]);
    assert_eq!(WireDecoder::default().decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() >= whole.len(), "capacity {}", buf.capacity());
}

#[test]
fn piece_header_plus_data_equals_an_encoded_piece() {
    let data = Bytes::from(vec![5u8; 1000]);
    let mut buf = BytesMut::new();
    piece_header(4, 16384, 1000, &mut buf);
    assert_eq!(buf.len(), 13);
    buf.extend_from_slice(&data);
    let msg = Message::Piece {
        piece: 4,
        offset: 16384,
        data,
    };
    assert_eq!(buf, encoded(&msg));
}

#[test]
fn a_four_gib_prefix_is_refused_with_only_four_bytes_buffered() {
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert_eq!(
        WireDecoder::default().decode(&mut buf),
        Err(WireError::FrameTooLarge {
            len: u32::MAX,
            max: DEFAULT_MAX_FRAME
        })
    );
}

#[test]
fn the_cap_is_exact_and_grows_with_the_bitfield() {
    let mut at_cap = BytesMut::new();
    at_cap.put_u32(DEFAULT_MAX_FRAME);
    assert_eq!(WireDecoder::default().decode(&mut at_cap), Ok(None));
    let mut over = BytesMut::new();
    over.put_u32(DEFAULT_MAX_FRAME + 1);
    assert!(matches!(
        WireDecoder::default().decode(&mut over),
        Err(WireError::FrameTooLarge { .. })
    ));

    assert_eq!(
        WireDecoder::for_piece_count(0).max_frame(),
        DEFAULT_MAX_FRAME
    );
    assert_eq!(
        WireDecoder::for_piece_count(8 * 16384).max_frame(),
        DEFAULT_MAX_FRAME
    );
    let pieces = 1_000_001;
    let mut big = WireDecoder::for_piece_count(pieces);
    assert_eq!(big.max_frame(), 125_001 + 1);
    let bitfield = Message::Bitfield(Bytes::from(vec![0u8; 125_001]));
    let mut buf = encoded(&bitfield);
    assert_eq!(big.decode(&mut buf), Ok(Some(bitfield.clone())));
    let mut buf = encoded(&bitfield);
    assert!(matches!(
        WireDecoder::default().decode(&mut buf),
        Err(WireError::FrameTooLarge { len: 125_002, .. })
    ));
}

#[test]
fn piece_over_sixteen_kib_is_refused_even_under_a_large_cap() {
    let mut decoder = WireDecoder::for_piece_count(10_000_000);
    let mut buf = BytesMut::new();
    piece_header(0, 0, MAX_BLOCK_LEN + 1, &mut buf);
    // Refused from the 13-byte header alone, before any data arrives.
    assert_eq!(
        decoder.decode(&mut buf),
        Err(WireError::BlockTooLong {
            len: MAX_BLOCK_LEN + 1
        })
    );
}

#[test]
fn every_fixed_size_message_refuses_any_other_length() {
    let fixed = [
        (MessageId::Choke, 1),
        (MessageId::Unchoke, 1),
        (MessageId::Interested, 1),
        (MessageId::NotInterested, 1),
        (MessageId::HaveAll, 1),
        (MessageId::HaveNone, 1),
        (MessageId::Have, 5),
        (MessageId::Suggest, 5),
        (MessageId::AllowedFast, 5),
        (MessageId::Request, 13),
        (MessageId::Cancel, 13),
        (MessageId::Reject, 13),
        (MessageId::Port, 3),
    ];
    for (kind, right) in fixed {
        for wrong in [1, right - 1, right + 1, 100]
            .into_iter()
            .filter(|&l| l != right && l > 0)
        {
            // Only the prefix and id are buffered: the error must not wait for the body.
            let mut buf = BytesMut::new();
            buf.put_u32(wrong);
            buf.put_u8(kind as u8);
            assert_eq!(
                WireDecoder::default().decode(&mut buf),
                Err(WireError::BadLength {
                    message: kind,
                    len: wrong,
                    expected: ExpectedLen::Exactly(right),
                }),
                "{kind} with body {wrong}"
            );
        }
    }
}

#[test]
fn variable_messages_refuse_bodies_shorter_than_their_header() {
    for (kind, len) in [
        (MessageId::Piece, 8),
        (MessageId::Piece, 1),
        (MessageId::Extended, 1),
    ] {
        let mut buf = BytesMut::new();
        buf.put_u32(len);
        buf.put_u8(kind as u8);
        assert!(
            matches!(
                WireDecoder::default().decode(&mut buf),
                Err(WireError::BadLength { message, .. }) if message == kind
            ),
            "{kind} with body {len}"
        );
    }
}

#[test]
fn unknown_ids_are_skipped_and_the_stream_goes_on() {
    let mut buf = BytesMut::new();
    buf.put_u32(4);
    buf.put_slice(&[21, 0xde, 0xad, 0xbe]);
    Message::Have { piece: 5 }.encode(&mut buf);
    let mut out = Vec::new();
    drain(&mut WireDecoder::default(), &mut buf, &mut out);
    assert_eq!(
        out,
        vec![
            Message::Unknown { id: 21, len: 3 },
            Message::Have { piece: 5 }
        ]
    );

    let mut too_big = BytesMut::new();
    too_big.put_u32(DEFAULT_MAX_FRAME + 1);
    too_big.put_u8(200);
    assert!(matches!(
        WireDecoder::default().decode(&mut too_big),
        Err(WireError::FrameTooLarge { .. })
    ));
}

#[test]
fn a_truncated_frame_waits_without_consuming() {
    let whole = encoded(&Message::Request(spec(1, 2, 3)));
    for cut in [0, 3, 4, 5, 16] {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert_eq!(
            WireDecoder::default().decode(&mut buf),
            Ok(None),
            "cut {cut}"
        );
        assert_eq!(&buf[..], &whole[..cut]);
    }
}

fn handshake() -> Handshake {
    Handshake::ours(InfoHash([0xab; 20]), PeerId::ours([3; 12]))
}

#[test]
fn handshake_round_trips_in_every_split() {
    let hs = handshake();
    let mut whole = BytesMut::new();
    hs.encode(&mut whole);
    assert_eq!(whole.len(), HANDSHAKE_LEN);
    assert_eq!(&whole[..20], PROTOCOL);
    // A message right behind the handshake stays in the buffer for the message decoder.
    Message::Interested.encode(&mut whole);
    for split in 0..=HANDSHAKE_LEN {
        let mut buf = BytesMut::from(&whole[..split]);
        if split < HANDSHAKE_LEN {
            assert_eq!(Handshake::decode(&mut buf), Ok(None), "split {split}");
            assert_eq!(buf.len(), split);
        }
        buf.extend_from_slice(&whole[split..]);
        assert_eq!(Handshake::decode(&mut buf), Ok(Some(hs)));
        assert_eq!(
            WireDecoder::default().decode(&mut buf),
            Ok(Some(Message::Interested))
        );
    }
}

#[test]
fn handshake_reserved_bits() {
    let ours = handshake();
    assert!(ours.supports_fast());
    assert!(
        ours.supports_extensions(),
        "btvod speaks BEP 10 (ut_metadata)"
    );
    assert_eq!(ours.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    // libtorrent's usual reserved bytes: extensions (BEP 10), DHT and Fast.
    let theirs = Handshake {
        reserved: [0, 0, 0, 0, 0, 0x10, 0, 0x05],
        ..ours
    };
    assert!(theirs.supports_fast() && theirs.supports_extensions());
    let plain = Handshake {
        reserved: [0; 8],
        ..ours
    };
    assert!(!plain.supports_fast() && !plain.supports_extensions());
}

#[test]
fn a_wrong_protocol_string_is_refused_at_the_first_wrong_byte() {
    for bad in [&b"\x12"[..], b"GET / HTTP/1.1", b"\x13BitTorrent protocoX"] {
        let mut buf = BytesMut::from(bad);
        assert!(
            matches!(
                Handshake::decode(&mut buf),
                Err(WireError::BadProtocol { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(Handshake::decode(&mut BytesMut::new()), Ok(None));
    assert_eq!(
        Handshake::decode(&mut BytesMut::from(&b"\x13BitT"[..])),
        Ok(None)
    );
}

#[test]
fn error_messages_name_the_problem() {
    let err = WireError::BadLength {
        message: MessageId::Have,
        len: 9,
        expected: ExpectedLen::Exactly(5),
    };
    assert_eq!(
        err.to_string(),
        "HAVE (id 4) message has a 9-byte body, expected exactly 5"
    );
    let err = WireError::FrameTooLarge {
        len: u32::MAX,
        max: DEFAULT_MAX_FRAME,
    };
    assert!(err.to_string().contains("4294967295-byte frame"), "{err}");
}
