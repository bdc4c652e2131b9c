//! Sessions over the in-memory transport: the session's state machines without sockets, on a
//! single-threaded runtime whose clock only moves when the test says so (or when every task is
//! idle), so each run takes the same path.

mod memory_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use memory_common::{path, settle};
use moq_transfork::model::Track;
use moq_transfork::transport::{memory, TransportKind};
use moq_transfork::{Error, Session, SessionOptions, TrackConsumer, TrackProducer};

/// A client and a server session over a fresh in-memory pair.
async fn sessions_with(client: SessionOptions, server: SessionOptions) -> (Session, Session) {
    let (a, b) = memory::pair();
    tokio::try_join!(
        Session::connect_with(a, client),
        Session::accept_with(b, server)
    )
    .expect("SETUP")
}

async fn sessions() -> (Session, Session) {
    sessions_with(SessionOptions::default(), SessionOptions::default()).await
}

/// Options whose router serves `producer` for its path (so the publisher holds no consumer of
/// its own) and counts the lookups.
fn routed(producer: &TrackProducer) -> (SessionOptions, Arc<AtomicUsize>) {
    let lookups = Arc::new(AtomicUsize::new(0));
    let options = {
        let (producer, lookups) = (producer.clone(), lookups.clone());
        SessionOptions {
            router: Some(Arc::new(move |track: &Track| {
                lookups.fetch_add(1, Ordering::SeqCst);
                if track.path == producer.info().path {
                    Ok(producer.subscribe())
                } else {
                    Err(Error::NotFound)
                }
            })),
            ..Default::default()
        }
    };
    (options, lookups)
}

/// The next group's frames, up to its end.
async fn frames(track: &mut TrackConsumer) -> (u64, Vec<Bytes>) {
    let mut group = track.next_group().await.unwrap().expect("a group");
    let mut frames = Vec::new();
    while let Some(frame) = group.read_frame().await.unwrap() {
        frames.push(frame);
    }
    (group.sequence(), frames)
}

#[tokio::test(start_paused = true)]
async fn setup_runs_over_memory_and_either_side_publishes() {
    let (client, server) = sessions().await;
    assert_eq!(client.transport(), TransportKind::Memory);
    assert_eq!(server.transport(), TransportKind::Memory);

    // Each side publishes one track and subscribes to the other's.
    for (publisher, subscriber, name) in [(&client, &server, "up"), (&server, &client, "down")] {
        let (producer, consumer) = Track::new(path(&[name])).produce();
        publisher.publish(consumer).unwrap();
        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"hello"));
        group.write_frame(Bytes::from(name));
        group.finish();

        let mut track = subscriber.subscribe(Track::new(path(&[name])));
        let (sequence, received) = frames(&mut track).await;
        assert_eq!(sequence, 0);
        assert_eq!(received, [Bytes::from("hello"), Bytes::from(name)]);

        // A track whose producers are gone ends the subscription cleanly.
        drop(producer);
        assert!(matches!(track.next_group().await, Ok(None)), "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn frames_stream_in_as_they_are_written() {
    let (client, server) = sessions().await;
    let (producer, consumer) = Track::new(path(&["live"])).produce();
    server.publish(consumer).unwrap();
    let mut track = client.subscribe(Track::new(path(&["live"])));

    let mut group = producer.append_group().unwrap();
    let mut received = track.next_group().await.unwrap().unwrap();
    assert!(
        received.read_frame().now_or_never().is_none(),
        "no frame yet"
    );
    for i in 0..3 {
        let payload = Bytes::from(format!("frame {i}"));
        group.write_frame(payload.clone());
        assert_eq!(received.read_frame().await, Ok(Some(payload)));
    }
    // A chunked frame arrives whole.
    let mut frame = group.create_frame(6);
    frame.write(Bytes::from_static(b"abc")).unwrap();
    settle().await;
    assert!(
        received.read_frame().now_or_never().is_none(),
        "half a frame"
    );
    frame.write(Bytes::from_static(b"def")).unwrap();
    assert_eq!(received.read_frame().await, Ok(Some(Bytes::from("abcdef"))));
    // An empty frame goes out at once, not with the next frame.
    group.write_frame(Bytes::new());
    settle().await;
    assert_eq!(
        received.read_frame().now_or_never(),
        Some(Ok(Some(Bytes::new()))),
        "an empty frame"
    );
    group.finish();
    assert_eq!(received.read_frame().await, Ok(None));
}

#[tokio::test(start_paused = true)]
async fn late_subscriber_gets_the_latest_group_from_frame_zero() {
    let (client, server) = sessions().await;
    let (producer, consumer) = Track::new(path(&["live"])).produce();
    server.publish(consumer).unwrap();
    let mut old = producer.append_group().unwrap();
    old.write_frame(Bytes::from_static(b"old"));
    old.finish();
    let mut current = producer.append_group().unwrap();
    current.write_frame(Bytes::from_static(b"f0"));
    current.write_frame(Bytes::from_static(b"f1"));

    let mut track = client.subscribe(Track::new(path(&["live"])));
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(group.sequence(), 1, "only the latest group");
    assert_eq!(group.read_frame().await, Ok(Some(Bytes::from("f0"))));
    assert_eq!(group.read_frame().await, Ok(Some(Bytes::from("f1"))));
    current.write_frame(Bytes::from_static(b"f2"));
    assert_eq!(group.read_frame().await, Ok(Some(Bytes::from("f2"))));

    // Then every newer group, and never the old one.
    let mut next = producer.append_group().unwrap();
    next.write_frame(Bytes::from_static(b"next"));
    next.finish();
    assert_eq!(frames(&mut track).await, (2, vec![Bytes::from("next")]));
}

#[tokio::test(start_paused = true)]
async fn subscribing_twice_shares_one_subscription() {
    let (producer, _) = Track::new(path(&["dedup"])).produce();
    let (options, lookups) = routed(&producer);
    let (client, _server) = sessions_with(SessionOptions::default(), options).await;

    let mut a = client.subscribe(Track::new(path(&["dedup"])));
    let mut b = client.subscribe(Track::new(path(&["dedup"])));
    let mut group = producer.append_group().unwrap();
    group.write_frame(Bytes::from_static(b"x"));
    group.finish();
    assert_eq!(frames(&mut a).await, (0, vec![Bytes::from("x")]));
    assert_eq!(frames(&mut b).await, (0, vec![Bytes::from("x")]));
    assert_eq!(lookups.load(Ordering::SeqCst), 1, "one SUBSCRIBE");
    assert_eq!(producer.consumer_count(), 1, "one serving consumer");
}

#[tokio::test(start_paused = true)]
async fn unsubscribing_releases_the_publisher_after_the_linger() {
    const LINGER: Duration = Duration::from_secs(1);
    let (producer, _) = Track::new(path(&["routed"])).produce();
    let (options, lookups) = routed(&producer);
    let client_options = SessionOptions {
        linger: LINGER,
        ..Default::default()
    };
    let (client, _server) = sessions_with(client_options, options).await;

    let mut track = client.subscribe(Track::new(path(&["routed"])));
    producer.append_group().unwrap().finish();
    track.next_group().await.unwrap().unwrap();
    assert_eq!(producer.consumer_count(), 1);

    // A consumer that comes back within the linger reuses the subscription.
    drop(track);
    tokio::time::advance(LINGER / 2).await;
    let track = client.subscribe(Track::new(path(&["routed"])));
    settle().await;
    assert_eq!(lookups.load(Ordering::SeqCst), 1);

    // Once the linger has passed with no consumer, the publisher's consumer goes.
    drop(track);
    tokio::time::advance(LINGER - Duration::from_millis(10)).await;
    assert!(
        producer.unused().now_or_never().is_none(),
        "still lingering"
    );
    tokio::time::advance(Duration::from_millis(20)).await;
    settle().await;
    assert!(producer.unused().now_or_never().is_some(), "unsubscribed");

    // A new consumer now means a new SUBSCRIBE.
    let _track = client.subscribe(Track::new(path(&["routed"])));
    settle().await;
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
    assert_eq!(producer.consumer_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn subscribing_to_an_unknown_path_fails_with_not_found() {
    let (client, server) = sessions().await;
    let mut track = client.subscribe(Track::new(path(&["nobody"])));
    assert_eq!(track.next_group().await.err(), Some(Error::NotFound));
    assert_eq!(
        client.info(path(&["nobody"])).await.err(),
        Some(Error::NotFound)
    );

    // The refusal ends that request only; a retry after the path appears works.
    let (producer, consumer) = Track::new(path(&["nobody"])).produce();
    server.publish(consumer).unwrap();
    producer.append_group().unwrap().finish();
    let mut track = client.subscribe(Track::new(path(&["nobody"])));
    assert_eq!(frames(&mut track).await, (0, vec![]));
}

#[tokio::test(start_paused = true)]
async fn expired_groups_are_not_sent() {
    const EXPIRES: Duration = Duration::from_millis(100);
    let (client, server) = sessions().await;
    let (producer, consumer) = Track::new(path(&["expiring"]))
        .with_group_expires(EXPIRES)
        .produce();
    server.publish(consumer).unwrap();
    let mut stale = producer.append_group().unwrap();
    stale.write_frame(Bytes::from_static(b"stale"));
    stale.finish();
    // Just within its expiry a group is still sent...
    tokio::time::advance(EXPIRES - Duration::from_millis(1)).await;
    let mut track = client.subscribe(Track::new(path(&["expiring"])));
    assert_eq!(frames(&mut track).await, (0, vec![Bytes::from("stale")]));
    drop(track);

    // ...and past it, it is not: the subscriber starts with the next group.
    tokio::time::advance(Duration::from_millis(2)).await;
    let mut track = client.subscribe(Track::new(path(&["expiring"])));
    settle().await;
    assert!(
        track.next_group().now_or_never().is_none(),
        "stale group sent"
    );
    let mut fresh = producer.append_group().unwrap();
    fresh.write_frame(Bytes::from_static(b"fresh"));
    fresh.finish();
    assert_eq!(frames(&mut track).await, (1, vec![Bytes::from("fresh")]));
}

#[tokio::test(start_paused = true)]
async fn closing_a_session_ends_the_peers_subscriptions() {
    let (client, server) = sessions().await;
    let (producer, consumer) = Track::new(path(&["gone"])).produce();
    server.publish(consumer).unwrap();
    let mut track = client.subscribe(Track::new(path(&["gone"])));
    producer.append_group().unwrap().finish();
    track.next_group().await.unwrap().unwrap();

    server.close(Error::App(3));
    assert_eq!(client.closed().await, Error::App(3));
    assert!(track.next_group().await.is_err());
    // Later subscriptions fail at once.
    let mut late = client.subscribe(Track::new(path(&["gone"])));
    assert!(late.next_group().await.is_err());
}
