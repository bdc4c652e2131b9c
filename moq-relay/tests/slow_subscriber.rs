//! A subscriber that never reads its group streams costs the relay bounded memory and does not
//! delay anyone else: the relay drops its stale groups (GROUP_DROP) and keeps serving the rest.

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use common::{path, timeout, try_decode, wait_announced, Publisher, Relay};
use moq_transfork::message::{BiStream, GroupDrop, Info, Subscribe};
use moq_transfork::{Encode, GroupOrder, Track};
use tokio::sync::mpsc;

const NORMAL_SUBSCRIBERS: usize = 10;
/// Tiny groups first: each is a stream of its own, and a client that accepts none of them
/// runs out of stream credit after 256 (the transport's limit), so the relay can no longer
/// send it anything. Readers are not required to get all of these: on a loaded machine a tiny
/// group overtaken by 8 newer ones is skipped by design (subscribers want the newest).
const SMALL_GROUPS: usize = 272;
const SMALL_INTERVAL: Duration = Duration::from_millis(2);
/// Then a few MB in larger groups, which the relay would have to hold for the stalled
/// subscriber if it did not drop them.
const LARGE_GROUPS: usize = 48;
const FRAMES_PER_GROUP: usize = 4;
const FRAME_SIZE: usize = 32 * 1024;
const FRAME_INTERVAL: Duration = Duration::from_millis(20);
const LARGE_FRAMES: usize = LARGE_GROUPS * FRAMES_PER_GROUP;
/// How late any frame may reach a reading subscriber (loopback; debug build; 2 cores).
const MAX_LATENCY: Duration = Duration::from_millis(1000);
/// How much the relay's resident memory may grow while it forwards the large groups (6 MiB).
/// Without dropping, the stalled subscriber alone would pin all of them (measured: +6.8 MiB);
/// with it, the relay holds at most 8 in-flight groups for it plus its cache (about 2 MiB).
const MAX_RSS_GROWTH_KIB: u64 = 7 * 512;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_delays_nobody_and_costs_bounded_memory() {
    common::init_tracing();
    let relay = Relay::start().await;
    let track = path(&["bulk"]);
    let publisher = Publisher::start(&relay, "moqf", &track).await;
    let watcher = relay.session("moqf").await;
    wait_announced(&watcher, &track).await;
    let mut producer_group = publisher.producer.append_group().unwrap();
    producer_group.write_frame(Bytes::from_static(b"warm-up"));

    // Ten subscribers that read everything, recording how late each frame arrives: every
    // payload starts with its publish time in microseconds since `epoch`.
    let epoch = Instant::now();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..NORMAL_SUBSCRIBERS {
        let session = relay.session(common::SCHEMES[i % 2]).await;
        let (track, ready) = (track.clone(), ready_tx.clone());
        readers.spawn(async move {
            let mut consumer = session.subscribe(Track::new(track));
            let mut groups = tokio::task::JoinSet::new();
            // Until the end marker: it is created last, after a pause, so every large group
            // has been handed out by then.
            let (ended_tx, mut ended) = mpsc::unbounded_channel();
            loop {
                let mut group = tokio::select! {
                    group = consumer.next_group() => group.unwrap().expect("a group"),
                    Some(()) = ended.recv() => break,
                };
                let (ready, ended_tx) = (ready.clone(), ended_tx.clone());
                groups.spawn(async move {
                    let (mut large, mut worst) = (0, Duration::ZERO);
                    // A group the relay dropped for this reader ends with an error: a tiny
                    // one may be (see SMALL_GROUPS); a large one shows in the frame count.
                    while let Ok(Some(frame)) = group.read_frame().await {
                        if frame == "warm-up" {
                            ready.send(()).unwrap();
                            continue;
                        }
                        if frame == "end" {
                            ended_tx.send(()).unwrap();
                            return (large, worst);
                        }
                        let sent = Duration::from_micros((&frame[..8]).get_u64());
                        worst = worst.max(epoch.elapsed().saturating_sub(sent));
                        large += usize::from(frame.len() == FRAME_SIZE);
                    }
                    (large, worst)
                });
            }
            let (mut frames, mut worst) = (0, Duration::ZERO);
            for (f, w) in groups.join_all().await {
                frames += f;
                worst = worst.max(w);
            }
            drop(session);
            (frames, worst)
        });
    }
    for _ in 0..NORMAL_SUBSCRIBERS {
        timeout("readers ready", ready.recv()).await.unwrap();
    }

    // The stalled subscriber: SETUP and SUBSCRIBE by hand, then it never accepts a group
    // stream. It reads only its subscribe stream, to see INFO and the GROUP_DROPs.
    let stalled = relay.connect("moqf").await;
    let _session_stream = common::raw_handshake(&stalled).await;
    let (mut send, mut recv) = stalled.open_bi().await.unwrap();
    let mut request = BytesMut::new();
    BiStream::Subscribe.encode(&mut request);
    Subscribe {
        id: 0,
        path: track.clone(),
        priority: 0,
        group_order: GroupOrder::Descending,
        group_expires: Duration::ZERO,
        group_min: None,
        group_max: None,
    }
    .encode(&mut request);
    send.write_chunk(request.freeze()).await.unwrap();
    let (info_tx, info_rx) = tokio::sync::oneshot::channel();
    let drops = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut info_tx = Some(info_tx);
        let mut drops = Vec::new();
        while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX).await {
            buf.extend_from_slice(&chunk);
            if info_tx.is_some() {
                let Some(info) = try_decode::<Info>(&mut buf) else {
                    continue;
                };
                let _ = info_tx.take().unwrap().send(info);
            }
            while let Some(drop) = try_decode::<GroupDrop>(&mut buf) {
                drops.push(drop);
            }
        }
        drops
    });
    timeout("INFO for the stalled subscriber", info_rx)
        .await
        .unwrap();
    producer_group.finish();

    // Every payload starts with its publish time.
    let frame = |size: usize| {
        let mut frame = BytesMut::with_capacity(size);
        frame.extend_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
        frame.resize(size, 0x55);
        frame.freeze()
    };
    let mut interval = tokio::time::interval(SMALL_INTERVAL);
    for _ in 0..SMALL_GROUPS {
        interval.tick().await;
        let mut group = publisher.producer.append_group().unwrap();
        group.write_frame(frame(64));
    }
    let baseline = relay.rss_kib();
    let mut peak = baseline;
    let mut interval = tokio::time::interval(FRAME_INTERVAL);
    for _ in 0..LARGE_GROUPS {
        let mut group = publisher.producer.append_group().unwrap();
        for _ in 0..FRAMES_PER_GROUP {
            interval.tick().await;
            group.write_frame(frame(FRAME_SIZE));
        }
        peak = peak.max(relay.rss_kib());
    }
    interval.tick().await;
    let mut last = publisher.producer.append_group().unwrap();
    last.write_frame(Bytes::from_static(b"end"));
    last.finish();

    let mut worst = Duration::ZERO;
    while let Some(done) = timeout("readers", readers.join_next()).await {
        let (frames, latency) = done.unwrap();
        assert_eq!(frames, LARGE_FRAMES, "a reader lost frames");
        worst = worst.max(latency);
    }
    peak = peak.max(relay.rss_kib());
    let (baseline, peak) = (baseline.unwrap_or(0), peak.unwrap_or(0));
    eprintln!(
        "burst of {} KiB: worst frame latency {worst:?}; relay RSS {baseline} KiB -> peak {peak} KiB",
        LARGE_GROUPS * FRAMES_PER_GROUP * FRAME_SIZE / 1024
    );
    assert!(worst < MAX_LATENCY, "a reader was delayed: {worst:?}");
    assert!(
        peak.saturating_sub(baseline) < MAX_RSS_GROWTH_KIB,
        "relay memory grew from {baseline} KiB to {peak} KiB"
    );

    // The relay told the stalled subscriber which groups it dropped.
    stalled.close(0, "done");
    let drops = timeout("stalled subscriber", drops).await.unwrap();
    eprintln!("the stalled subscriber got {} GROUP_DROPs", drops.len());
    assert!(
        !drops.is_empty(),
        "no GROUP_DROP reached the stalled subscriber"
    );
    assert!(drops.iter().all(|drop| drop.code == 0), "{drops:?}");
}
