//! Decoding throughput of the wire codec on a stream of full 16 KiB PIECE frames, the frame a
//! downloading client spends nearly all its decoding time on.

use std::hint::black_box;

use btvod::proto::wire::{Message, WireDecoder};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FRAMES: usize = 256;

fn piece_stream() -> BytesMut {
    let data = Bytes::from(vec![0xa5u8; 16384]);
    let mut stream = BytesMut::new();
    for i in 0..FRAMES as u32 {
        Message::Piece {
            piece: i / 4,
            offset: (i % 4) * 16384,
            data: data.clone(),
        }
        .encode(&mut stream);
    }
    stream
}

fn decode_pieces(c: &mut Criterion) {
    let stream = piece_stream();
    let mut group = c.benchmark_group("wire_decode");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    // The whole stream already buffered: the decoder's own cost, zero-copy splits.
    group.bench_function("piece_frames_buffered", |b| {
        b.iter_batched(
            || stream.clone(),
            |mut buf| {
                let mut decoder = WireDecoder::default();
                let mut n = 0;
                while let Ok(Some(msg)) = decoder.decode(&mut buf) {
                    black_box(&msg);
                    n += 1;
                }
                assert_eq!(n, FRAMES);
            },
            criterion::BatchSize::LargeInput,
        )
    });
    // Arriving in 1460-byte TCP segments into one read buffer, as Framed sees a socket.
    group.bench_function("piece_frames_in_segments", |b| {
        b.iter(|| {
            let mut decoder = WireDecoder::default();
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut n = 0;
            for segment in stream.chunks(1460) {
                buf.extend_from_slice(segment);
                while let Ok(Some(msg)) = decoder.decode(&mut buf) {
                    black_box(&msg);
                    n += 1;
                }
            }
            assert_eq!(n, FRAMES);
        })
    });
    group.finish();
}

criterion_group!(benches, decode_pieces);
criterion_main!(benches);
