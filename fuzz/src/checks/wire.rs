//! `wire_stream`: arbitrary bytes from a peer, optionally opening with a handshake, fed to the
//! decoder in arbitrary chunk sizes. The outcome (messages, then an error or a wait for more)
//! does not depend on the chunking; a wait consumes nothing; every decoded message respects the
//! caps; and what was decoded re-encodes to exactly the bytes it was decoded from (an unknown
//! message's skipped payload re-encodes as zeros).

use btvod::proto::wire::{
    HANDSHAKE_LEN, Handshake, MAX_BLOCK_LEN, Message, WireDecoder, WireError,
};
use bytes::BytesMut;

use super::Input;

#[derive(Debug, PartialEq)]
struct Outcome {
    handshake: Option<Handshake>,
    /// Each message with the stream offset its frame started at.
    messages: Vec<(usize, Message)>,
    consumed: usize,
    error: Option<WireError>,
}

pub fn wire_stream(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let with_handshake = flags & 1 != 0;
    let decoder = if flags & 2 != 0 {
        WireDecoder::for_piece_count(u32::from(input.u16()) << (flags >> 4 & 7))
    } else {
        WireDecoder::default()
    };
    let chunk_seed = input.u32();
    let stream = input.rest();

    let whole = run(
        decoder,
        with_handshake,
        stream,
        &mut std::iter::repeat(usize::MAX),
    );
    let mut state = chunk_seed | 1;
    let mut sizes = std::iter::from_fn(move || {
        // xorshift: chunk sizes 1..=64, sometimes a large one.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Some(if state.is_multiple_of(8) {
            1 + state as usize % 20_000
        } else {
            1 + state as usize % 64
        })
    });
    let chunked = run(decoder, with_handshake, stream, &mut sizes);
    assert_eq!(
        whole, chunked,
        "the outcome depends on how the bytes arrived"
    );

    let mut expected = stream[..whole.consumed].to_vec();
    let mut written = BytesMut::new();
    if let Some(h) = &whole.handshake {
        h.encode(&mut written);
    }
    for (offset, message) in &whole.messages {
        let before = written.len();
        message.encode(&mut written);
        assert_eq!(written.len() - before, 4 + message.body_len());
        assert!(message.body_len() <= decoder.max_frame() as usize);
        match message {
            Message::Piece { data, .. } => assert!(data.len() <= MAX_BLOCK_LEN as usize),
            Message::Unknown { len, .. } => {
                expected[offset + 5..offset + 5 + *len as usize].fill(0);
            }
            _ => {}
        }
    }
    assert_eq!(
        &written[..],
        &expected[..],
        "decoded messages re-encode differently"
    );
}

fn run(
    mut decoder: WireDecoder,
    with_handshake: bool,
    stream: &[u8],
    sizes: &mut dyn Iterator<Item = usize>,
) -> Outcome {
    let mut out = Outcome {
        handshake: None,
        messages: Vec::new(),
        consumed: 0,
        error: None,
    };
    let mut need_handshake = with_handshake;
    let mut buf = BytesMut::new();
    let mut fed = 0;
    while fed < stream.len() {
        let n = sizes.next().unwrap_or(1).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            let before = buf.len();
            let result = if need_handshake {
                Handshake::decode(&mut buf).map(|h| h.map(|h| (Some(h), None)))
            } else {
                decoder.decode(&mut buf).map(|m| m.map(|m| (None, Some(m))))
            };
            match result {
                Ok(None) => {
                    assert_eq!(buf.len(), before, "a wait for more bytes consumed some");
                    break;
                }
                Ok(Some((handshake, message))) => {
                    let taken = before - buf.len();
                    if let Some(h) = handshake {
                        assert_eq!(taken, HANDSHAKE_LEN);
                        out.handshake = Some(h);
                        need_handshake = false;
                    }
                    if let Some(m) = message {
                        out.messages.push((out.consumed, m));
                    }
                    out.consumed += taken;
                }
                Err(error) => {
                    // How much of a wrong protocol string was seen depends on the chunking.
                    out.error = Some(match error {
                        WireError::BadProtocol { .. } => {
                            WireError::BadProtocol { got: String::new() }
                        }
                        other => other,
                    });
                    return out;
                }
            }
        }
    }
    out
}
