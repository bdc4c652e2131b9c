//! Sessions over real QUIC on loopback, for both transports.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{timeout, Pair, SCHEMES};
use moq_transfork::model::{Announced, CacheConfig, Track};
use moq_transfork::{Error, Path, SessionOptions};

fn path(parts: &[&str]) -> Path {
    Path::from_iter(parts.iter().copied())
}

#[tokio::test]
async fn publish_subscribe_round_trip() {
    common::init_tracing();
    for scheme in SCHEMES {
        let pair = Pair::new(scheme).await;
        // The client publishes and the server subscribes: roles are symmetric.
        let (producer, consumer) = Track::new(path(&["demo", "clock"])).produce();
        pair.client.publish(consumer).unwrap();

        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"hello"));

        let mut track = pair.server.subscribe(Track::new(path(&["demo", "clock"])));
        let mut received = timeout("group", track.next_group()).await.unwrap().unwrap();
        assert_eq!(received.sequence(), 0);
        let frame = timeout("frame", received.read_frame())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame, "hello", "{scheme}");

        group.write_frame(Bytes::from_static(b"world"));
        let frame = timeout("frame", received.read_frame())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame, "world", "{scheme}");
        group.finish();
        assert_eq!(
            timeout("group end", received.read_frame()).await.unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn announcements_by_prefix() {
    for scheme in SCHEMES {
        let pair = Pair::new(scheme).await;
        let (ax, ax_consumer) = Track::new(path(&["a", "x"])).produce();
        let (_ay, ay_consumer) = Track::new(path(&["a", "y"])).produce();
        let (_b, b_consumer) = Track::new(path(&["ab", "z"])).produce();
        pair.server.publish(ax_consumer).unwrap();
        pair.server.publish(ay_consumer).unwrap();
        pair.server.publish(b_consumer).unwrap();

        let mut announced = pair.client.announced(path(&["a"]));
        let first = timeout("announce", announced.next()).await;
        let second = timeout("announce", announced.next()).await;
        assert_eq!(
            first,
            Some(Announced::Active(path(&["a", "x"]))),
            "{scheme}"
        );
        assert_eq!(
            second,
            Some(Announced::Active(path(&["a", "y"]))),
            "{scheme}"
        );

        // Ending a track withdraws its announcement.
        drop(ax);
        let ended = timeout("ended", announced.next()).await;
        assert_eq!(ended, Some(Announced::Ended(path(&["a", "x"]))), "{scheme}");
    }
}

#[tokio::test]
async fn late_subscriber_gets_latest_group_from_frame_zero() {
    for scheme in SCHEMES {
        let pair = Pair::new(scheme).await;
        let (producer, consumer) = Track::new(path(&["live"])).produce();
        pair.server.publish(consumer).unwrap();

        let mut old = producer.append_group().unwrap();
        old.write_frame(Bytes::from_static(b"old"));
        old.finish();
        let mut current = producer.append_group().unwrap();
        current.write_frame(Bytes::from_static(b"f0"));
        current.write_frame(Bytes::from_static(b"f1"));

        let mut track = pair.client.subscribe(Track::new(path(&["live"])));
        let mut group = timeout("group", track.next_group()).await.unwrap().unwrap();
        assert_eq!(group.sequence(), 1, "{scheme}");
        assert_eq!(
            timeout("f0", group.read_frame()).await.unwrap().unwrap(),
            "f0"
        );
        assert_eq!(
            timeout("f1", group.read_frame()).await.unwrap().unwrap(),
            "f1"
        );

        let mut next = producer.append_group().unwrap();
        next.write_frame(Bytes::from_static(b"next"));
        let mut group = timeout("next group", track.next_group())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(group.sequence(), 2, "{scheme}");
        assert_eq!(
            timeout("next", group.read_frame()).await.unwrap().unwrap(),
            "next"
        );
    }
}

#[tokio::test]
async fn many_concurrent_groups() {
    const GROUPS: u64 = 50;
    const FRAMES: usize = 20;
    for scheme in SCHEMES {
        // Every group must stay cached and in flight at once on both sides.
        let cache = CacheConfig {
            max_groups: GROUPS as usize + 1,
            ..Default::default()
        };
        let server_options = SessionOptions {
            max_inflight_groups: GROUPS as usize + 1,
            ..Default::default()
        };
        let client_options = SessionOptions {
            cache: cache.clone(),
            ..Default::default()
        };
        let pair = Pair::with_options(scheme, server_options, client_options).await;
        let (producer, consumer) = Track::new(path(&["many"])).produce_with(cache);
        pair.server.publish(consumer).unwrap();

        // A first group proves the subscription is live before the burst.
        let mut first = producer.append_group().unwrap();
        let mut track = pair.client.subscribe(Track::new(path(&["many"])));
        first.write_frame(Bytes::from_static(b"start"));
        first.finish();
        let mut group = timeout("first", track.next_group()).await.unwrap().unwrap();
        assert_eq!(
            timeout("start", group.read_frame()).await.unwrap().unwrap(),
            "start"
        );

        // Every group stays open while frames are written to all of them in turn.
        let mut groups: Vec<_> = (0..GROUPS)
            .map(|_| producer.append_group().unwrap())
            .collect();
        for frame in 0..FRAMES {
            for group in &mut groups {
                group.write_frame(Bytes::from(format!("{}:{frame}", group.sequence())));
            }
        }
        drop(groups);

        let mut readers = Vec::new();
        for _ in 0..GROUPS {
            let mut group = timeout("group", track.next_group()).await.unwrap().unwrap();
            readers.push(tokio::spawn(async move {
                let mut count = 0;
                while let Some(frame) = group.read_frame().await.unwrap() {
                    assert_eq!(frame, format!("{}:{count}", group.sequence()));
                    count += 1;
                }
                count
            }));
        }
        for reader in readers {
            assert_eq!(timeout("reader", reader).await.unwrap(), FRAMES, "{scheme}");
        }
    }
}

#[tokio::test]
async fn groups_dropped_past_the_byte_window_do_not_stall_the_connection() {
    // A burst of groups of one 1 MiB frame each, four times the byte window: every newer
    // group drops the one before it while the transport still holds some of its bytes
    // unsent. Those bytes never leave once the stream is reset; counted as still ahead of
    // the wire, they held every later write of the connection back, while the headers of
    // new groups trickled out and looked like progress (a relay fed at high rate stood
    // still for seconds).
    const BURST: u8 = 40;
    const SIZE: usize = 1 << 20;
    const SMALL: usize = 2048;
    for scheme in SCHEMES {
        let server_options = SessionOptions {
            max_inflight_bytes: 256 * 1024,
            ..Default::default()
        };
        let pair = Pair::with_options(scheme, server_options, SessionOptions::default()).await;
        let (producer, consumer) = Track::new(path(&["big"])).produce();
        pair.server.publish(consumer).unwrap();
        let mut track = pair.client.subscribe(Track::new(path(&["big"])));

        for fill in 0..BURST {
            let mut group = producer.append_group().unwrap();
            group.write_frame(Bytes::from(vec![fill; SIZE]));
            group.finish();
            tokio::task::yield_now().await;
        }

        // Then small groups, one every 5 ms, until five arrive whole.
        let publishing = tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            for _ in 0..2000 {
                pace.tick().await;
                let mut group = producer.append_group().unwrap();
                group.write_frame(Bytes::from(vec![u8::MAX; SMALL]));
                group.finish();
            }
        });
        timeout("five small groups, whole", async {
            let mut whole = 0;
            while whole < 5 {
                let mut group = track.next_group().await.unwrap().unwrap();
                if let Ok(Some(frame)) = group.read_frame().await {
                    if frame.len() == SMALL {
                        whole += 1;
                    }
                }
            }
        })
        .await;
        publishing.abort();
        assert!(publishing.await.unwrap_err().is_cancelled(), "{scheme}");
    }
}

#[tokio::test]
async fn unsubscribe_ends_the_upstream_subscription() {
    for scheme in SCHEMES {
        // Served through a router, so the publisher holds no consumer of its own and
        // `unused` tells when the subscription is gone.
        let (producer, _) = Track::new(path(&["routed"])).produce();
        let router_producer = producer.clone();
        let options = SessionOptions {
            router: Some(Arc::new(move |track: &Track| {
                if track.path == router_producer.info().path {
                    Ok(router_producer.subscribe())
                } else {
                    Err(Error::NotFound)
                }
            })),
            ..Default::default()
        };
        let pair = Pair::with_options(scheme, options, SessionOptions::default()).await;
        let mut track = pair.client.subscribe(Track::new(path(&["routed"])));
        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"x"));
        timeout("group", track.next_group()).await.unwrap().unwrap();
        assert!(producer.consumer_count() > 0);

        drop(track);
        timeout("unused after unsubscribe", producer.unused()).await;
        assert_eq!(producer.consumer_count(), 0, "{scheme}");
    }
}

#[tokio::test]
async fn subscribing_twice_shares_one_upstream_subscription() {
    for scheme in SCHEMES {
        let (producer, _) = Track::new(path(&["dedup"])).produce();
        let routed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let options = {
            let producer = producer.clone();
            let routed = routed.clone();
            SessionOptions {
                router: Some(Arc::new(move |_: &Track| {
                    routed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(producer.subscribe())
                })),
                ..Default::default()
            }
        };
        let pair = Pair::with_options(scheme, options, SessionOptions::default()).await;
        let mut a = pair.client.subscribe(Track::new(path(&["dedup"])));
        let mut b = pair.client.subscribe(Track::new(path(&["dedup"])));
        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"x"));
        timeout("a", a.next_group()).await.unwrap().unwrap();
        timeout("b", b.next_group()).await.unwrap().unwrap();
        assert_eq!(
            routed.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn subscribe_to_unknown_path_fails_with_not_found() {
    for scheme in SCHEMES {
        let pair = Pair::new(scheme).await;
        let mut track = pair.client.subscribe(Track::new(path(&["nobody"])));
        let result = timeout("not found", track.next_group()).await;
        assert_eq!(result.err(), Some(Error::NotFound), "{scheme}");
    }
}

#[tokio::test]
async fn track_end_and_publisher_disconnect_end_the_subscription() {
    for scheme in SCHEMES {
        // A track that ends cleanly ends the subscription cleanly, after its last group.
        let pair = Pair::new(scheme).await;
        let (producer, consumer) = Track::new(path(&["ending"])).produce();
        pair.server.publish(consumer).unwrap();
        let mut track = pair.client.subscribe(Track::new(path(&["ending"])));
        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"last"));
        group.finish();
        let mut group = timeout("group", track.next_group()).await.unwrap().unwrap();
        assert_eq!(
            timeout("last", group.read_frame()).await.unwrap().unwrap(),
            "last"
        );
        drop(producer);
        assert_eq!(
            timeout("end", track.next_group())
                .await
                .map(|g| g.is_none()),
            Ok(true),
            "{scheme}"
        );

        // A publisher that disconnects ends the subscription with an error.
        let pair = Pair::new(scheme).await;
        let (producer, consumer) = Track::new(path(&["gone"])).produce();
        pair.server.publish(consumer).unwrap();
        let mut track = pair.client.subscribe(Track::new(path(&["gone"])));
        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"x"));
        timeout("group", track.next_group()).await.unwrap().unwrap();
        pair.server.close(Error::Cancel);
        let end = timeout("end", track.next_group()).await;
        assert!(end.is_err(), "{scheme}: {end:?}");
    }
}

#[tokio::test]
async fn fetch_and_info_of_cached_groups() {
    for scheme in SCHEMES {
        let pair = Pair::new(scheme).await;
        let (producer, consumer) = Track::new(path(&["cached"])).produce();
        pair.server.publish(consumer).unwrap();
        for i in 0..3 {
            let mut group = producer.append_group().unwrap();
            group.write_frame(Bytes::from(format!("{i}a")));
            group.write_frame(Bytes::from(format!("{i}b")));
            group.finish();
        }

        let info = timeout("info", pair.client.info(path(&["cached"])))
            .await
            .unwrap();
        assert_eq!(info.group_latest, 2, "{scheme}");

        let mut group = pair.client.fetch(path(&["cached"]), 0, 1, 1).unwrap();
        assert_eq!(
            timeout("frame", group.read_frame()).await.unwrap().unwrap(),
            "1b"
        );
        assert_eq!(timeout("end", group.read_frame()).await.unwrap(), None);

        let mut missing = pair.client.fetch(path(&["cached"]), 0, 99, 0).unwrap();
        assert_eq!(
            timeout("missing", missing.read_frame()).await.err(),
            Some(Error::NotFound)
        );
        let missing = timeout("info", pair.client.info(path(&["nope"]))).await;
        assert_eq!(missing.err(), Some(Error::NotFound), "{scheme}");
    }
}

#[tokio::test]
async fn expired_groups_are_not_sent() {
    use std::time::Duration;
    const EXPIRES: Duration = Duration::from_millis(100);
    for scheme in SCHEMES {
        let pair = Pair::new(scheme).await;
        let (producer, consumer) = Track::new(path(&["expiring"]))
            .with_group_expires(EXPIRES)
            .produce();
        pair.server.publish(consumer).unwrap();
        let mut stale = producer.append_group().unwrap();
        stale.write_frame(Bytes::from_static(b"stale"));
        stale.finish();
        // Time passing is the point of this test: the group must outlive its expiry.
        tokio::time::sleep(EXPIRES * 2).await;

        let mut track = pair.client.subscribe(Track::new(path(&["expiring"])));
        let mut fresh = producer.append_group().unwrap();
        fresh.write_frame(Bytes::from_static(b"fresh"));
        let mut group = timeout("fresh group", track.next_group())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(group.sequence(), 1, "{scheme}: the expired group was sent");
        assert_eq!(
            timeout("frame", group.read_frame()).await.unwrap().unwrap(),
            "fresh"
        );
    }
}

#[tokio::test]
async fn a_publisher_learns_when_nobody_subscribes() {
    for scheme in SCHEMES {
        let pair = Pair::new(scheme).await;
        let (producer, consumer) = Track::new(path(&["watched"])).produce();
        pair.server.publish(consumer).unwrap();
        // Publishing alone keeps no consumer.
        timeout("unused before any subscriber", producer.unused()).await;

        let mut track = pair.client.subscribe(Track::new(path(&["watched"])));
        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"x"));
        timeout("group", track.next_group()).await.unwrap().unwrap();
        assert_eq!(
            producer.consumer_count(),
            1,
            "{scheme}: one subscription served"
        );

        drop(track);
        timeout("unused after the last subscriber", producer.unused()).await;
    }
}

#[tokio::test]
async fn closed_reports_the_peers_reason() {
    for scheme in SCHEMES {
        for _ in 0..5 {
            let pair = Pair::new(scheme).await;
            pair.server.close(Error::App(7));
            let reason = timeout("close", pair.client.closed()).await;
            assert_eq!(reason, Error::App(7), "{scheme}");
        }
    }
}
