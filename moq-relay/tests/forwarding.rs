//! The real `moq-relay` binary forwarding between library clients on loopback: fan-out,
//! deduplication, late joiners and FETCH from the cache, routing, the end of a publisher, and
//! the handover of subscribers to a restarted one.

mod common;

use bytes::Bytes;
use common::{
    expect_announcement, next_frame, next_group, path, timeout, wait_announced, Publisher, Relay,
    SCHEMES,
};
use moq_transfork::{Announced, Error, Track};
use tokio::sync::mpsc;

/// 50 subscribers, half on each transport, all receive every frame of every group, while the
/// publisher is asked for exactly one subscription; it is dropped soon after the last
/// subscriber leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_subscribers_share_one_upstream_subscription() {
    const SUBSCRIBERS: usize = 50;
    const GROUPS: u64 = 5;
    const FRAMES: usize = 5;
    common::init_tracing();
    let relay = Relay::start().await;
    let track = path(&["fan", "out"]);
    let publisher = Publisher::start(&relay, "moqf", &track).await;
    let watcher = relay.session("https").await;
    wait_announced(&watcher, &track).await;

    let mut first = publisher.producer.append_group().unwrap();
    first.write_frame(Bytes::from("0:0"));

    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let mut subscribers = tokio::task::JoinSet::new();
    for i in 0..SUBSCRIBERS {
        let session = relay.session(SCHEMES[i % 2]).await;
        let (track, ready) = (track.clone(), ready_tx.clone());
        subscribers.spawn(async move {
            let mut consumer = session.subscribe(Track::new(track));
            // Groups travel on streams of their own, so they may arrive in any order.
            let mut groups = tokio::task::JoinSet::new();
            for _ in 0..GROUPS {
                let mut group = consumer.next_group().await.unwrap().expect("a group");
                let ready = ready.clone();
                groups.spawn(async move {
                    let mut frames = Vec::new();
                    while let Some(frame) = group.read_frame().await.unwrap() {
                        if group.sequence() == 0 && frames.is_empty() {
                            ready.send(()).unwrap();
                        }
                        frames.push(String::from_utf8(frame.to_vec()).unwrap());
                    }
                    (group.sequence(), frames)
                });
            }
            let mut received = groups.join_all().await;
            received.sort();
            let received: Vec<String> = received.into_iter().flat_map(|(_, f)| f).collect();
            (session, received)
        });
    }
    // Every subscriber has the first frame: all subscriptions are live.
    for _ in 0..SUBSCRIBERS {
        timeout("subscriber ready", ready.recv()).await.unwrap();
    }
    assert_eq!(publisher.routed(), 1, "one upstream subscription for all");

    for frame in 1..FRAMES {
        first.write_frame(Bytes::from(format!("0:{frame}")));
    }
    first.finish();
    for sequence in 1..GROUPS {
        let mut group = publisher.producer.append_group().unwrap();
        for frame in 0..FRAMES {
            group.write_frame(Bytes::from(format!("{sequence}:{frame}")));
        }
    }

    let expected: Vec<String> = (0..GROUPS)
        .flat_map(|g| (0..FRAMES).map(move |f| format!("{g}:{f}")))
        .collect();
    let mut sessions = Vec::new();
    while let Some(done) = timeout("subscribers", subscribers.join_next()).await {
        let (session, received) = done.unwrap();
        assert_eq!(received, expected);
        sessions.push(session);
    }
    assert_eq!(sessions.len(), SUBSCRIBERS);
    assert_eq!(publisher.routed(), 1, "still one upstream subscription");

    // The last subscriber leaves: the relay drops its upstream subscription (after its
    // 200 ms linger), so the publisher serves no consumer any more.
    for session in &sessions {
        session.close(Error::Cancel);
    }
    drop(sessions);
    timeout("upstream unsubscribe", publisher.producer.unused()).await;
}

/// A subscriber that joins mid-group gets the current group from frame 0 out of the relay's
/// cache (no new upstream subscription), and FETCH is answered from the same cache.
#[tokio::test]
async fn late_joiner_and_fetch_are_served_from_the_cache() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let track = path(&["late"]);
        let publisher = Publisher::start(&relay, scheme, &track).await;
        let early = relay.session(scheme).await;
        wait_announced(&early, &track).await;

        let mut consumer = early.subscribe(Track::new(track.clone()));
        let mut old = publisher.producer.append_group().unwrap();
        old.write_frame(Bytes::from_static(b"old"));
        old.finish();
        let mut group = next_group("group 0", &mut consumer).await;
        assert_eq!(group.sequence(), 0, "{scheme}");
        assert_eq!(next_frame("old", &mut group).await, "old");
        let mut current = publisher.producer.append_group().unwrap();
        current.write_frame(Bytes::from_static(b"f0"));
        current.write_frame(Bytes::from_static(b"f1"));
        // The early subscriber reads up to the second frame of group 1.
        let mut group = loop {
            let group = next_group("group", &mut consumer).await;
            if group.sequence() == 1 {
                break group;
            }
        };
        for expected in ["f0", "f1"] {
            let frame = next_frame("frame", &mut group).await;
            assert_eq!(frame, expected, "{scheme}");
        }

        let late = relay.session(scheme).await;
        let mut late_consumer = late.subscribe(Track::new(track.clone()));
        let mut late_group = next_group("late group", &mut late_consumer).await;
        assert_eq!(late_group.sequence(), 1, "{scheme}");
        for expected in ["f0", "f1"] {
            let frame = next_frame("late frame", &mut late_group).await;
            assert_eq!(frame, expected, "{scheme}");
        }
        current.write_frame(Bytes::from_static(b"f2"));
        let frame = next_frame("live frame", &mut late_group).await;
        assert_eq!(frame, "f2", "{scheme}");
        assert_eq!(
            publisher.routed(),
            1,
            "{scheme}: the late joiner was deduplicated"
        );

        // FETCH of a cached group, from frame 1, answered by the relay.
        let mut fetched = late.fetch(track.clone(), 0, 1, 1).unwrap();
        for expected in ["f1", "f2"] {
            let frame = next_frame("fetched frame", &mut fetched).await;
            assert_eq!(frame, expected, "{scheme}");
        }
        current.finish();
        assert_eq!(timeout("fetch end", fetched.read_frame()).await, Ok(None));
        let mut old = late.fetch(track.clone(), 0, 0, 0).unwrap();
        assert_eq!(next_frame("old group", &mut old).await, "old");
        let mut missing = late.fetch(track.clone(), 0, 9, 0).unwrap();
        assert_eq!(
            timeout("missing group", missing.read_frame()).await,
            Err(Error::NotFound),
            "{scheme}"
        );
        assert_eq!(
            publisher.routed(),
            1,
            "{scheme}: FETCH shares the subscription"
        );
    }
}

/// A SUBSCRIBE for a path nobody announced fails at once with NotFound.
#[tokio::test]
async fn subscribe_to_an_unannounced_path_is_not_found() {
    let relay = Relay::start().await;
    for scheme in SCHEMES {
        let session = relay.session(scheme).await;
        let mut consumer = session.subscribe(Track::new(path(&["nobody", "here"])));
        assert_eq!(
            timeout("not found", consumer.next_group()).await.err(),
            Some(Error::NotFound),
            "{scheme}"
        );
    }
}

/// Announcements reach every session that asked for a matching prefix, and only those.
#[tokio::test]
async fn announcements_are_forwarded_by_prefix() {
    let relay = Relay::start().await;
    let publisher_a = Publisher::start(&relay, "moqf", &path(&["room", "a"])).await;
    let _publisher_b = Publisher::start(&relay, "https", &path(&["other", "b"])).await;
    let viewer = relay.session("https").await;
    let mut room = viewer.announced(path(&["room"]));
    let mut all = viewer.announced(path(&[]));
    expect_announcement(&mut all, Announced::Active(path(&["other", "b"]))).await;
    expect_announcement(&mut all, Announced::Active(path(&["room", "a"]))).await;
    assert_eq!(
        timeout("room", room.next()).await,
        Some(Announced::Active(path(&["room", "a"])))
    );

    // The publisher leaves: its path is withdrawn everywhere.
    publisher_a.session.close(Error::Cancel);
    assert_eq!(
        timeout("room ended", room.next()).await,
        Some(Announced::Ended(path(&["room", "a"])))
    );
    expect_announcement(&mut all, Announced::Ended(path(&["room", "a"]))).await;
}

/// A publisher that disconnects ends its subscribers' track and its announcement; one that
/// announces the path again is routed to by new subscriptions.
#[tokio::test]
async fn publisher_disconnect_and_reconnect() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let track = path(&["comeback"]);
        let subscriber = relay.session(scheme).await;
        let mut announced = subscriber.announced(path(&[]));

        let publisher = Publisher::start(&relay, scheme, &track).await;
        expect_announcement(&mut announced, Announced::Active(track.clone())).await;
        let mut consumer = subscriber.subscribe(Track::new(track.clone()));
        let mut group = publisher.producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"first"));
        let mut received = next_group("group", &mut consumer).await;
        assert_eq!(next_frame("frame", &mut received).await, "first");

        // The publisher goes away mid-group.
        publisher.session.close(Error::Cancel);
        drop(publisher);
        expect_announcement(&mut announced, Announced::Ended(track.clone())).await;
        // The cut group does not look complete, and the track ends.
        assert!(
            timeout("group end", received.read_frame()).await.is_err(),
            "{scheme}"
        );
        let end = timeout("track end", consumer.next_group()).await;
        assert!(matches!(end, Ok(None) | Err(_)), "{scheme}: {end:?}");
        drop(consumer);

        // A new publisher of the same path is routed to.
        let publisher = Publisher::start(&relay, scheme, &track).await;
        expect_announcement(&mut announced, Announced::Active(track.clone())).await;
        let mut consumer = subscriber.subscribe(Track::new(track.clone()));
        let mut group = publisher.producer.create_group(7).unwrap();
        group.write_frame(Bytes::from_static(b"again"));
        let mut received = next_group("group", &mut consumer).await;
        assert_eq!(received.sequence(), 7, "{scheme}");
        assert_eq!(next_frame("frame", &mut received).await, "again");
        assert_eq!(publisher.routed(), 1, "{scheme}");
    }
}

/// Garbage from one client (bad stream types, oversized and malformed messages, bogus group
/// streams, a connection that never sets up) does not disturb a publisher and a subscriber
/// on the same relay.
#[tokio::test]
async fn garbage_from_one_client_does_not_disturb_the_others() {
    common::init_tracing();
    let relay = Relay::start().await;
    let track = path(&["steady"]);
    let publisher = Publisher::start(&relay, "moqf", &track).await;
    let subscriber = relay.session("https").await;
    wait_announced(&subscriber, &track).await;
    let mut consumer = subscriber.subscribe(Track::new(track.clone()));
    let mut group = publisher.producer.append_group().unwrap();
    group.write_frame(Bytes::from_static(b"before"));
    let mut received = next_group("group", &mut consumer).await;
    assert_eq!(next_frame("frame", &mut received).await, "before");

    for scheme in SCHEMES {
        // A first stream that is not a session stream: the relay refuses the connection.
        let conn = relay.connect(scheme).await;
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&[0x02, 0xff, 0xff, 0xff]).await.unwrap();
        timeout("refused", conn.closed()).await;

        // A set-up session that then sends garbage of every kind.
        let conn = relay.connect(scheme).await;
        let _session_stream = common::raw_handshake(&conn).await;
        let garbage: [&[u8]; 5] = [
            &[0x3f, 0x01, 0x02],                         // unknown bidi stream type
            &[0x02, 0x00, 0x01, 0x02, 0xff, 0xfe, 0x80], // path that is not UTF-8
            &[0x01, 0x40, 0x40],                         // prefix with 64 parts, cut short
            &[
                0x03, 0x01, 0x06, b's', b't', b'e', b'a', b'd', b'y', 0x80, 0x63, 0x00,
            ],
            &[0x04, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ];
        for bytes in garbage {
            let (mut send, _recv) = conn.open_bi().await.unwrap();
            send.write_all(bytes).await.unwrap();
            let _ = send.finish();
        }
        let mut huge = vec![0x02, 0x00, 0x01, 0x80, 0x10, 0x00, 0x00];
        huge.resize(huge.len() + 100_000, b'a');
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let _ = send.write_all(&huge).await;
        // Group streams for subscriptions the relay never made, and an unknown uni type.
        for bytes in [
            &[0x00, 0x05, 0x01, 0x03, b'b', b'a', b'd'][..],
            &[0x07, 0x00],
        ] {
            let mut uni = conn.open_uni().await.unwrap();
            let _ = uni.write_all(bytes).await;
            let _ = uni.finish();
        }
        // A connection that never sends SETUP at all, left open.
        let _silent = relay.connect(scheme).await;

        // The publisher and the subscriber carry on.
        let text = format!("after {scheme}");
        group.write_frame(Bytes::from(text.clone()));
        let frame = next_frame("frame after garbage", &mut received).await;
        assert_eq!(frame, text);
    }
    // And new sessions still work.
    let late = relay.session("moqf").await;
    let mut late_consumer = late.subscribe(Track::new(track));
    let mut late_group = next_group("late group", &mut late_consumer).await;
    assert_eq!(next_frame("frame", &mut late_group).await, "before");
}

/// A publisher that restarts announces the path on a new session before the relay has
/// noticed that the old one is gone: the subscriber that stayed connected keeps its
/// subscription and receives the new session's groups, numbered afresh, without
/// resubscribing; the new session is asked for one subscription.
#[tokio::test]
async fn restarted_publisher_takes_over_subscribers() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let track = path(&["handover"]);
        let subscriber = relay.session(scheme).await;
        let old = Publisher::start(&relay, scheme, &track).await;
        wait_announced(&subscriber, &track).await;
        let mut consumer = subscriber.subscribe(Track::new(track.clone()));
        let mut group = old.producer.create_group(5).unwrap();
        group.write_frame(Bytes::from_static(b"old"));
        drop(group);
        let mut received = next_group("old group", &mut consumer).await;
        assert_eq!(received.sequence(), 5, "{scheme}");
        assert_eq!(next_frame("old frame", &mut received).await, "old");

        // The new session announces the path; the relay subscribes to it at once.
        let new = Publisher::start(&relay, scheme, &track).await;
        timeout("subscription to the new session", async {
            while new.routed() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        // Then the old session dies.
        old.session.close(Error::Cancel);
        drop(old);

        for sequence in [0, 1] {
            let mut group = new.producer.create_group(sequence).unwrap();
            group.write_frame(Bytes::from(format!("new {sequence}")));
            drop(group);
            let mut received = next_group("new group", &mut consumer).await;
            assert_eq!(received.sequence(), sequence, "{scheme}");
            assert_eq!(
                next_frame("new frame", &mut received).await,
                format!("new {sequence}")
            );
        }
        assert_eq!(new.routed(), 1, "{scheme}");
    }
}
