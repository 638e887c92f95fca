//! Property tests of the wire codec: arbitrary messages round-trip in any chunking, and no input
//! makes the decoders panic.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

fn spec(piece: u32, offset: u32, len: u32) -> BlockSpec {
    BlockSpec { piece, offset, len }
}

const KNOWN_IDS: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20];

fn any_spec() -> impl Strategy<Value = BlockSpec> {
    (any::<u32>(), any::<u32>(), any::<u32>())
        .prop_map(|(piece, offset, len)| spec(piece, offset, len))
}

fn any_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn any_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Choke),
        Just(Message::Unchoke),
        Just(Message::Interested),
        Just(Message::NotInterested),
        Just(Message::HaveAll),
        Just(Message::HaveNone),
        any::<u32>().prop_map(|piece| Message::Have { piece }),
        any::<u32>().prop_map(|piece| Message::Suggest { piece }),
        any::<u32>().prop_map(|piece| Message::AllowedFast { piece }),
        any_spec().prop_map(Message::Request),
        any_spec().prop_map(Message::Cancel),
        any_spec().prop_map(Message::Reject),
        any::<u16>().prop_map(Message::Port),
        any_bytes(300).prop_map(Message::Bitfield),
        (
            any::<u32>(),
            any::<u32>(),
            any_bytes(MAX_BLOCK_LEN as usize)
        )
            .prop_map(|(piece, offset, data)| Message::Piece {
                piece,
                offset,
                data
            }),
        (any::<u8>(), any_bytes(300)).prop_map(|(id, payload)| Message::Extended { id, payload }),
        (
            any::<u8>().prop_filter("unknown id", |id| !KNOWN_IDS.contains(id)),
            0u32..300
        )
            .prop_map(|(id, len)| Message::Unknown { id, len }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_messages_round_trip_in_any_chunking(
        messages in proptest::collection::vec(any_message(), 1..20),
        chunk in 1usize..5000,
    ) {
        let stream = super::tests::encode_all(&messages);
        let mut decoder = WireDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(msg) = decoder.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
                out.push(msg);
            }
        }
        prop_assert_eq!(out, messages);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        chunk in 1usize..64,
        pieces in any::<u32>(),
    ) {
        let mut decoder = WireDecoder::for_piece_count(pieces % 100_000);
        let _ = Handshake::decode(&mut BytesMut::from(&bytes[..]));
        let mut buf = BytesMut::new();
        'feed: for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    /// Frames with a plausible prefix and a random id and body reach the per-kind checks,
    /// which random bytes alone rarely do.
    #[test]
    fn random_bodies_behind_valid_prefixes_never_panic(
        id in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut buf = BytesMut::new();
        buf.put_u32(body.len() as u32 + 1);
        buf.put_u8(id);
        buf.put_slice(&body);
        let before = buf.len();
        match WireDecoder::default().decode(&mut buf) {
            Ok(Some(msg)) => {
                prop_assert!(buf.is_empty());
                prop_assert_eq!(4 + msg.body_len(), before);
            }
            Ok(None) => prop_assert!(false, "a complete frame must decode or fail"),
            Err(_) => {}
        }
    }
}
