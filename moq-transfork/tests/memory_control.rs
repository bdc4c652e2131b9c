//! Control streams against a hand-driven peer over the in-memory transport, with the clock
//! paused: how long a subscription lingers while its publisher talks, and SUBSCRIBEs that
//! arrive in pieces.

mod memory_common;

use std::time::Duration;

use bytes::Bytes;
use memory_common::{
    encode, expect_group, path, raw_client, settle, subscribe, within, Messages, Upstream,
};
use moq_transfork::message::{FrameHeader, GroupDrop, Info, Subscribe};
use moq_transfork::model::Track;
use moq_transfork::transport::memory::Config;
use moq_transfork::{Encode, SessionOptions};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn group_drops_do_not_restart_the_linger() {
    const LINGER: Duration = Duration::from_secs(2);
    const EVERY: Duration = Duration::from_millis(500);
    let options = SessionOptions {
        linger: LINGER,
        ..Default::default()
    };
    let (mut upstream, track) = Upstream::start(options, Track::new(path(&["talky"]))).await;
    settle().await;

    // The last consumer goes; the publisher keeps sending GROUP_DROPs every 500 ms.
    let dropped = Instant::now();
    drop(track);
    let mut ticks = tokio::time::interval_at(dropped + EVERY, EVERY);
    let mut sent = 0u64;
    let fin = within("the subscriber's FIN", async {
        loop {
            tokio::select! {
                biased;
                res = upstream.request.next::<Subscribe>() => break res,
                _ = ticks.tick() => {
                    let drop = GroupDrop { sequence: sent, count: 0, code: 0 };
                    upstream
                        .send
                        .write_chunk(encode(&[&|b| drop.encode(b)]))
                        .await
                        .unwrap();
                    sent += 1;
                }
            }
        }
    })
    .await;

    // The subscriber unsubscribed (FIN) at the linger, counted from the drop of its consumer.
    assert_eq!(fin, Ok(None));
    let elapsed = dropped.elapsed();
    assert!(
        elapsed >= LINGER && elapsed <= LINGER + Duration::from_millis(5),
        "FIN after {elapsed:?}"
    );
    assert!(sent >= 3, "{sent} GROUP_DROPs during the linger");
}

#[tokio::test(start_paused = true)]
async fn a_subscribe_written_one_byte_at_a_time_is_decoded() {
    let (raw, server, _stream) = raw_client(Config::default(), SessionOptions::default()).await;
    // Three parts of 1 KiB: a SUBSCRIBE of over 3 KiB.
    let long = path(&[&"a".repeat(1024), &"b".repeat(1024), &"c".repeat(1024)]);
    let (producer, consumer) = Track::new(long.clone()).produce();
    server.publish(consumer).unwrap();
    let mut group = producer.append_group().unwrap();
    group.write_frame(Bytes::from_static(b"x"));
    group.finish();

    let (mut send, recv) = raw.open_bi().await.unwrap();
    let request = subscribe(0, long);
    assert!(request.len() > 3 * 1024);
    for i in 0..request.len() {
        send.write_chunk(request.slice(i..=i)).await.unwrap();
        if i % 512 == 0 {
            // Let the session read what has come so far.
            settle().await;
        }
    }

    let info: Info = within("INFO", Messages::new(recv).next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.group_latest, 0);
    let mut group = Messages::new(within("the group", raw.accept_uni()).await.unwrap());
    expect_group(&mut group, 0, 0).await;
    assert_eq!(
        group.next::<FrameHeader>().await,
        Ok(Some(FrameHeader { size: 1 }))
    );
}
