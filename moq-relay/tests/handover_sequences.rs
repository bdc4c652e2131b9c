//! A handover to a new publisher whose sequence numbers restart, and so repeat those of
//! groups still in flight, while a subscriber is receiving: the relay's in-flight groups are
//! told apart, the old group ends, and every new group is delivered.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{next_frame, next_group, path, timeout, wait_announced, Publisher, Relay};
use moq_transfork::{CacheConfig, Error, SessionOptions, Track};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_that_reuses_sequences_keeps_the_subscriber_receiving() {
    common::init_tracing();
    let relay = Relay::start().await;
    let track = path(&["reuse"]);
    let options = SessionOptions {
        cache: CacheConfig {
            max_groups: 64,
            ..CacheConfig::default()
        },
        ..SessionOptions::default()
    };
    let subscriber = relay.session_with("moqf", options).await;
    let old = Publisher::start(&relay, "moqf", &track).await;
    wait_announced(&subscriber, &track).await;
    let mut consumer = subscriber.subscribe(Track::new(track.clone()));
    let baseline = relay.rss_kib().unwrap_or(0);

    // The old publisher's group 5 is in flight, unfinished, when the handover comes.
    let mut old_five = old.producer.create_group(5).unwrap();
    old_five.write_frame(Bytes::from_static(b"old 5"));
    let mut received_old = next_group("the old group 5", &mut consumer).await;
    assert_eq!(received_old.sequence(), 5);
    assert_eq!(next_frame("old 5", &mut received_old).await, "old 5");

    let new = Publisher::start(&relay, "moqf", &track).await;
    timeout("subscription to the new publisher", async {
        while new.routed() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // The new publisher numbers from 0 again, through 5 and beyond.
    for sequence in 0..8u64 {
        let mut group = new.producer.create_group(sequence).unwrap();
        group.write_frame(Bytes::from(format!("new {sequence}")));
        group.finish();
    }
    // The subscriber gets every new group but 5, which its own track already had (a library
    // subscriber refuses a sequence it has seen; the relay sent it).
    let mut got = Vec::new();
    while got.len() < 7 {
        let mut group = next_group("a new group", &mut consumer).await;
        let sequence = group.sequence();
        assert_ne!(sequence, 5);
        assert_eq!(
            next_frame("its frame", &mut group).await,
            format!("new {sequence}")
        );
        got.push(sequence);
    }
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3, 4, 6, 7]);

    // The old group 5 never completes: the relay stops it once it leaves its caches, or the
    // old publisher abandons it (a reset). Either way the subscriber's copy ends with an
    // error, never as a complete group.
    old_five.close(Error::Cancel);
    let end = timeout("the end of the old group 5", async {
        loop {
            match received_old.read_frame().await {
                Ok(Some(frame)) => assert_eq!(frame, "old 5"),
                end => break end,
            }
        }
    })
    .await;
    assert!(end.is_err(), "the old group 5 looked complete: {end:?}");

    // The new publisher goes on; the old one leaving changes nothing.
    drop(old);
    let mut group = new.producer.create_group(8).unwrap();
    group.write_frame(Bytes::from_static(b"new 8"));
    group.finish();
    let mut received = next_group("group 8", &mut consumer).await;
    assert_eq!(received.sequence(), 8);
    assert_eq!(next_frame("new 8", &mut received).await, "new 8");
    assert_eq!(new.routed(), 1);
    let growth = relay.rss_kib().unwrap_or(0).saturating_sub(baseline);
    assert!(growth < 8 * 1024, "relay RSS grew by {growth} KiB");
}
