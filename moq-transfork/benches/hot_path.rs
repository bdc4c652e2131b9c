//! Benchmarks of the per-frame hot path: the codec of group and frame headers, a SUBSCRIBE,
//! and fan-out of frames from one producer to many consumers through the model.
//!
//! Run with `cargo bench -p moq-transfork --bench hot_path`; figures are in
//! docs/performance.md.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_main, BatchSize, Criterion, Throughput};
use futures::FutureExt;
use moq_transfork::message::{FrameHeader, GroupHeader, Subscribe};
use moq_transfork::{Decode, Encode, GroupOrder, Path, Track};

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));

    group.bench_function("encode group+frame header", |b| {
        let mut buf = BytesMut::with_capacity(64);
        b.iter(|| {
            buf.clear();
            GroupHeader {
                subscribe: 3,
                sequence: black_box(1_000_000),
            }
            .encode(&mut buf);
            FrameHeader {
                size: black_box(1200),
            }
            .encode(&mut buf);
            black_box(&buf);
        })
    });

    let mut header = BytesMut::new();
    FrameHeader { size: 1200 }.encode(&mut header);
    let header = header.freeze();
    group.bench_function("decode frame header", |b| {
        b.iter(|| {
            let mut cursor = black_box(&header[..]);
            black_box(FrameHeader::decode(&mut cursor).unwrap())
        })
    });

    let subscribe = Subscribe {
        id: 70,
        path: Path::from_iter(["demo", "bbb", "video"]),
        priority: -1,
        group_order: GroupOrder::Ascending,
        group_expires: std::time::Duration::from_secs(10),
        group_min: Some(0),
        group_max: Some(9),
    };
    let mut encoded = BytesMut::new();
    subscribe.encode(&mut encoded);
    let encoded = encoded.freeze();
    group.bench_function("decode subscribe", |b| {
        b.iter(|| {
            let mut cursor = black_box(encoded.clone());
            black_box(Subscribe::decode(&mut cursor).unwrap())
        })
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    const FRAMES: usize = 100;
    let mut group = c.benchmark_group("model fan-out");
    for consumers in [1usize, 10, 100] {
        group.throughput(Throughput::Elements((FRAMES * consumers) as u64));
        group.bench_function(format!("{FRAMES} frames to {consumers} consumers"), |b| {
            let payload = Bytes::from(vec![0u8; 1200]);
            b.iter_batched(
                || {
                    let (producer, consumer) = Track::new(Path::from_iter(["bench"])).produce();
                    let consumers: Vec<_> = (0..consumers).map(|_| consumer.subscribe()).collect();
                    (producer, consumers)
                },
                |(producer, mut consumers)| {
                    let mut group = producer.append_group().unwrap();
                    for _ in 0..FRAMES {
                        group.write_frame(payload.clone());
                    }
                    group.finish();
                    for consumer in &mut consumers {
                        let mut group = consumer
                            .next_group()
                            .now_or_never()
                            .unwrap()
                            .unwrap()
                            .unwrap();
                        while let Some(frame) = group.read_frame().now_or_never().unwrap().unwrap()
                        {
                            black_box(frame);
                        }
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod generated {
    criterion::criterion_group!(benches, super::codec, super::fan_out);
}
criterion_main!(generated::benches);
