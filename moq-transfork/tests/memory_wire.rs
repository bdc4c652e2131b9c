//! A hand-driven peer against a session over the in-memory transport: literal bytes and exact
//! stream events, with the clock paused, so every run takes the same path.

mod memory_common;

use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use memory_common::{
    accept_subscribe, encode, expect_group, path, raw_client, raw_server, send_info, settle,
    subscribe, within, Messages, CLIENT_SETUP,
};
use moq_transfork::message::{
    BiStream, FrameHeader, GroupDrop, GroupHeader, Info, Subscribe, UniStream,
};
use moq_transfork::model::Track;
use moq_transfork::transport::memory::{self, Config};
use moq_transfork::transport::{Connection, RecvStream, SendStream};
use moq_transfork::{Encode, Error, Session, SessionOptions};

#[tokio::test(start_paused = true)]
async fn setup_bytes_both_ways() {
    // Literal CLIENT_SETUP to a server session, literal SERVER_SETUP back (checked inside).
    let (_raw, server, _stream) = raw_client(Config::default(), SessionOptions::default()).await;
    // And the other way round.
    let (_raw, client, _stream) = raw_server().await;
    assert!(server.closed().now_or_never().is_none());
    assert!(client.closed().now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn setup_without_our_version_closes_with_version() {
    let (raw, theirs) = memory::pair();
    let handshake = async {
        let (mut send, mut recv) = raw.open_bi().await.unwrap();
        // Only version 0xff0bad01.
        send.write_all(&[
            0x00, 0x01, 0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x01, 0x00,
        ])
        .await
        .unwrap();
        (recv.read_chunk(64).await, send.stopped().await)
    };
    let (accepted, (read, stopped)) = tokio::join!(Session::accept(theirs), handshake);
    assert_eq!(accepted.err(), Some(Error::Version));
    // The connection closes with Version. The session stream's reset and stop went out just
    // before, but a close discards what is still pending, in memory as in QUIC.
    assert_eq!(raw.closed().await, Error::Version);
    assert!(read.is_err());
    assert!(stopped.is_err());
}

#[tokio::test(start_paused = true)]
async fn setup_on_a_request_stream_closes_with_unexpected_stream() {
    let (raw, theirs) = memory::pair();
    let handshake = async {
        let (mut send, _recv) = raw.open_bi().await.unwrap();
        send.write_chunk(subscribe(0, path(&["x"]))).await.unwrap();
        raw.closed().await
    };
    let (accepted, closed) = tokio::join!(Session::accept(theirs), handshake);
    assert_eq!(accepted.err(), Some(Error::UnexpectedStream));
    assert_eq!(closed, Error::UnexpectedStream);
}

#[tokio::test(start_paused = true)]
async fn setup_that_never_comes_times_out() {
    let (_raw, theirs) = memory::pair();
    let started = tokio::time::Instant::now();
    let accepted = Session::accept(theirs).await;
    assert!(matches!(accepted, Err(Error::Transport(_))), "{accepted:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn fin_of_the_session_stream_ends_the_session_with_cancel() {
    let (raw, server, (mut send, _recv)) =
        raw_client(Config::default(), SessionOptions::default()).await;
    let mut track = server.subscribe(Track::new(path(&["any"])));
    settle().await;
    let (_send, _recv) = raw.accept_bi().await.expect("the server's SUBSCRIBE");

    send.finish().unwrap();
    assert_eq!(raw.closed().await, Error::Cancel);
    assert!(
        matches!(server.closed().await, Error::Transport(_)),
        "closed locally"
    );
    assert!(
        track.next_group().await.is_err(),
        "subscriptions end with the session"
    );
}

#[tokio::test(start_paused = true)]
async fn reset_of_the_session_stream_ends_the_session_with_transport() {
    let (raw, _server, (mut send, _recv)) =
        raw_client(Config::default(), SessionOptions::default()).await;
    send.reset(Error::NotFound.code());
    // Spec §4.4: a reset ends the session with code 4, whatever the reset's code.
    assert_eq!(
        raw.closed().await.code(),
        Error::Transport(moq_transfork::TransportError::Remote).code()
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_bidi_stream_type_is_reset_with_decode_and_the_session_lives() {
    let (raw, server, _stream) = raw_client(Config::default(), SessionOptions::default()).await;
    let (mut send, mut recv) = raw.open_bi().await.unwrap();
    send.write_all(&[0x09, 0x01, 0x02]).await.unwrap();
    assert_eq!(recv.read_chunk(64).await.unwrap_err().code(), 5);
    assert_eq!(send.stopped().await, Ok(Some(5)));

    // A second session stream is refused with UnexpectedStream.
    let (mut send, mut recv) = raw.open_bi().await.unwrap();
    send.write_all(CLIENT_SETUP).await.unwrap();
    assert_eq!(
        recv.read_chunk(64).await.err(),
        Some(Error::UnexpectedStream)
    );

    // The session still serves requests.
    let (producer, consumer) = Track::new(path(&["still"])).produce();
    server.publish(consumer).unwrap();
    producer.append_group().unwrap().finish();
    let (mut send, recv) = raw.open_bi().await.unwrap();
    send.write_chunk(subscribe(0, path(&["still"])))
        .await
        .unwrap();
    let info: Info = Messages::new(recv).next().await.unwrap().unwrap();
    assert_eq!(info.group_latest, 0);
    let mut group = Messages::new(raw.accept_uni().await.unwrap());
    expect_group(&mut group, 0, 0).await;
    assert_eq!(
        group.next::<FrameHeader>().await,
        Ok(None),
        "no frames, FIN"
    );
}

#[tokio::test(start_paused = true)]
async fn one_subscribe_per_path_and_unsubscribe_is_fin_plus_stop() {
    let (raw, client, _stream) = raw_server().await;
    let a = client.subscribe(Track::new(path(&["dedup"])));
    let mut b = client.subscribe(Track::new(path(&["dedup"])));
    let (mut send, mut request, subscribe) = accept_subscribe(&raw).await;
    assert_eq!(
        (subscribe.id, subscribe.path.clone()),
        (0, path(&["dedup"]))
    );
    settle().await;
    assert!(
        raw.accept_bi().now_or_never().is_none(),
        "one SUBSCRIBE for two consumers"
    );

    // INFO, then a group: both consumers see it.
    send_info(&mut send).await;
    let mut group = raw.open_uni().await.unwrap();
    let header = GroupHeader {
        subscribe: 0,
        sequence: 5,
    };
    group
        .write_chunk(encode(&[
            &|b| UniStream::Group.encode(b),
            &|b| header.encode(b),
            &|b| FrameHeader { size: 2 }.encode(b),
        ]))
        .await
        .unwrap();
    group.write_all(b"hi").await.unwrap();
    group.finish().unwrap();
    let mut received = b.next_group().await.unwrap().unwrap();
    assert_eq!(received.sequence(), 5);
    assert_eq!(received.read_frame().await, Ok(Some(Bytes::from("hi"))));

    // Dropping one consumer changes nothing; dropping the last unsubscribes: FIN + STOP 0.
    drop(a);
    settle().await;
    assert!(send.stopped().now_or_never().is_none());
    drop((b, received));
    assert_eq!(request.next::<Subscribe>().await, Ok(None), "FIN");
    assert_eq!(send.stopped().await, Ok(Some(Error::Cancel.code())));

    // A group of the ended subscription is stopped with Cancel (spec §5.3).
    let mut late = raw.open_uni().await.unwrap();
    late.write_chunk(encode(&[&|b| UniStream::Group.encode(b), &|b| {
        header.encode(b)
    }]))
    .await
    .unwrap();
    assert_eq!(late.stopped().await, Ok(Some(Error::Cancel.code())));

    // A new consumer is a new subscription, with the next id.
    let _c = client.subscribe(Track::new(path(&["dedup"])));
    let mut request = Messages::new(raw.accept_bi().await.unwrap().1);
    request.next::<BiStream>().await.unwrap();
    let subscribe: Subscribe = request.next().await.unwrap().unwrap();
    assert_eq!(subscribe.id, 1);
}

/// A raw client subscribed to a track published by a server session.
struct Stalled {
    raw: Connection,
    /// INFO already read; GROUP_DROPs follow.
    replies: Messages,
    producer: moq_transfork::TrackProducer,
    /// The session and the streams that must stay open for the test to run.
    _keep: (Session, (SendStream, RecvStream), SendStream),
}

/// A raw client with the given stream window, subscribed to `track` on a server session that
/// allows `max_inflight` groups in flight; it reads nothing unless the test does.
async fn stalled_subscriber(window: usize, max_inflight: usize, track: Track) -> Stalled {
    let options = SessionOptions {
        max_inflight_groups: max_inflight,
        ..Default::default()
    };
    stalled_subscriber_with(window, options, track).await
}

/// [`stalled_subscriber`] with any server options.
async fn stalled_subscriber_with(window: usize, options: SessionOptions, track: Track) -> Stalled {
    let config = Config {
        stream_window: window,
        ..Config::default()
    };
    let (raw, server, session_stream) = raw_client(config, options).await;
    let (producer, consumer) = track.clone().produce();
    server.publish(consumer).unwrap();
    let (mut send, recv) = raw.open_bi().await.unwrap();
    send.write_chunk(subscribe(0, track.path)).await.unwrap();
    let mut replies = Messages::new(recv);
    let _info: Info = replies.next().await.unwrap().unwrap();
    Stalled {
        raw,
        replies,
        producer,
        _keep: (server, session_stream, send),
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_subscriber_gets_group_drops_and_costs_bounded_memory() {
    const WINDOW: usize = 1024;
    const MAX_INFLIGHT: usize = 2;
    const GROUPS: u64 = 20;
    let Stalled {
        raw,
        mut replies,
        producer,
        _keep,
    } = stalled_subscriber(WINDOW, MAX_INFLIGHT, Track::new(path(&["clock"]))).await;

    // Every group is larger than the window, so each unread group stream stalls.
    let payload = Bytes::from(vec![7u8; 4 * WINDOW]);
    let mut streams = Vec::new();
    for _ in 0..GROUPS {
        let mut group = producer.append_group().unwrap();
        group.write_frame(payload.clone());
        group.finish();
        settle().await;
        while let Some(stream) = raw.accept_uni().now_or_never() {
            streams.push(stream.unwrap());
        }
    }

    // Every group got a stream, and all but the newest MAX_INFLIGHT were reset with Cancel:
    // the publisher holds at most MAX_INFLIGHT stalled streams of at most WINDOW bytes each.
    assert_eq!(streams.len(), GROUPS as usize);
    let mut live = Vec::new();
    for (sequence, recv) in streams.iter_mut().enumerate() {
        match recv.read_chunk(usize::MAX).now_or_never() {
            Some(Err(Error::Cancel)) => {}
            Some(Ok(Some(chunk))) => {
                assert!(chunk.len() <= WINDOW);
                live.push(sequence as u64);
            }
            other => panic!("group {sequence}: {other:?}"),
        }
    }
    assert_eq!(live, [GROUPS - 2, GROUPS - 1]);

    // Each dropped group was reported with GROUP_DROP, oldest first.
    for sequence in 0..GROUPS - MAX_INFLIGHT as u64 {
        let drop: GroupDrop = replies.next().await.unwrap().unwrap();
        assert_eq!((drop.sequence, drop.count, drop.code), (sequence, 0, 0));
    }
    settle().await;
    assert!(replies.next::<GroupDrop>().now_or_never().is_none());
    assert!(producer.cached_groups() <= 8);
}

#[tokio::test(start_paused = true)]
async fn the_session_stats_count_what_is_sent_dropped_and_reset() {
    const WINDOW: usize = 1024;
    const GROUPS: u64 = 10;
    let stats = std::sync::Arc::new(moq_transfork::SessionStats::default());
    let options = SessionOptions {
        max_inflight_groups: 2,
        stats: stats.clone(),
        ..Default::default()
    };
    // The replies stay open: dropping them would end the subscription.
    let Stalled {
        raw,
        replies: _replies,
        producer,
        _keep,
    } = stalled_subscriber_with(WINDOW, options, Track::new(path(&["clock"]))).await;
    let payload = Bytes::from(vec![7u8; 4 * WINDOW]);
    let mut streams = Vec::new();
    for _ in 0..GROUPS {
        let mut group = producer.append_group().unwrap();
        group.write_frame(payload.clone());
        group.finish();
        settle().await;
        while let Some(stream) = raw.accept_uni().now_or_never() {
            streams.push(stream.unwrap());
        }
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.subscriptions_downstream, 1);
    assert_eq!(snapshot.subscriptions_upstream, 0);
    assert_eq!(
        (snapshot.groups_sent, snapshot.frames_sent),
        (GROUPS, GROUPS)
    );
    // All but the newest two were dropped, each stream reset with Cancel (0).
    assert_eq!(snapshot.groups_dropped, GROUPS - 2);
    let resets: Vec<_> = stats.resets().collect();
    assert_eq!(resets, [(Some(0), GROUPS - 2)]);
    // Bytes are counted as they are handed to the transport: at most a window per stream.
    assert!(snapshot.bytes_sent > 0 && snapshot.bytes_sent <= GROUPS * 4 * WINDOW as u64);
    assert_eq!(snapshot.bytes_received, 0);
}

#[tokio::test(start_paused = true)]
async fn a_group_stalled_until_its_expiry_is_dropped() {
    const WINDOW: usize = 1024;
    const EXPIRES: Duration = Duration::from_millis(100);
    let track = Track::new(path(&["expiring"])).with_group_expires(EXPIRES);
    let Stalled {
        raw,
        mut replies,
        producer,
        _keep,
    } = stalled_subscriber(WINDOW, 8, track).await;

    let created = tokio::time::Instant::now();
    let mut group = producer.append_group().unwrap();
    group.write_frame(Bytes::from(vec![7u8; 4 * WINDOW]));
    group.finish();
    let mut stream = raw.accept_uni().await.unwrap();

    // Stalled, but not expired yet: nothing is dropped.
    tokio::time::advance(EXPIRES - Duration::from_millis(5)).await;
    settle().await;
    assert!(replies.next::<GroupDrop>().now_or_never().is_none());

    // At its expiry the group is reset and reported.
    let drop: GroupDrop = replies.next().await.unwrap().unwrap();
    assert_eq!((drop.sequence, drop.count, drop.code), (0, 0, 0));
    // Exactly at the deadline: the paused clock moved straight to the expiry timer.
    assert_eq!(created.elapsed(), EXPIRES);
    assert_eq!(
        stream.read_chunk(usize::MAX).await.err(),
        Some(Error::Cancel)
    );
}

/// A live group still being written when a newer one arrives gets `max_inflight_lag` to
/// finish; then it is dropped and the newer group goes, so a subscriber on a slow path stays
/// at most that far behind however small the track's bitrate.
#[tokio::test(start_paused = true)]
async fn a_group_overtaken_by_a_newer_one_has_the_lag_bound_to_finish() {
    const WINDOW: usize = 1024;
    const LAG: Duration = Duration::from_millis(300);
    let options = SessionOptions {
        max_inflight_lag: LAG,
        ..Default::default()
    };
    let Stalled {
        raw,
        mut replies,
        producer,
        _keep,
    } = stalled_subscriber_with(WINDOW, options, Track::new(path(&["lagging"]))).await;

    // Group 0 stalls on the subscriber's stream window; group 1 overtakes it.
    let payload = Bytes::from(vec![7u8; 4 * WINDOW]);
    let mut first = producer.append_group().unwrap();
    first.write_frame(payload.clone());
    first.finish();
    let mut old = raw.accept_uni().await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    // Not overtaken yet: nothing is dropped however long it stalls (no expiry).
    assert!(replies.next::<GroupDrop>().now_or_never().is_none());
    let overtaken = tokio::time::Instant::now();
    let mut second = producer.append_group().unwrap();
    second.write_frame(payload);
    second.finish();
    // The session sees it within the settling millisecond.
    settle().await;
    tokio::time::advance(LAG - Duration::from_millis(5)).await;
    settle().await;
    assert!(replies.next::<GroupDrop>().now_or_never().is_none());

    // At the bound, group 0 is reset and reported, and group 1 gets its stream.
    let drop: GroupDrop = within("the drop", replies.next()).await.unwrap().unwrap();
    assert_eq!((drop.sequence, drop.code), (0, 0));
    let elapsed = overtaken.elapsed();
    assert!(
        (LAG..=LAG + Duration::from_millis(1)).contains(&elapsed),
        "{elapsed:?}"
    );
    let mut chunks = 0;
    loop {
        match within("the reset", old.read_chunk(usize::MAX)).await {
            Ok(Some(_)) => chunks += 1,
            Err(err) => break assert_eq!(err, Error::Cancel),
            Ok(None) => panic!("group 0 finished after {chunks} chunks"),
        }
    }
    let mut new = within("group 1", raw.accept_uni()).await.unwrap();
    assert!(within("group 1's bytes", new.read_chunk(usize::MAX))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(start_paused = true)]
async fn the_in_flight_window_is_bounded_in_bytes() {
    const WINDOW: usize = 1024;
    const GROUP: usize = 4 * WINDOW;
    const GROUPS: u64 = 12;
    // Room for 8 groups, but only for two of these in bytes.
    let options = SessionOptions {
        max_inflight_groups: 8,
        max_inflight_bytes: 2 * GROUP as u64,
        ..Default::default()
    };
    let Stalled {
        raw,
        mut replies,
        producer,
        _keep,
    } = stalled_subscriber_with(WINDOW, options, Track::new(path(&["bytes"]))).await;

    let payload = Bytes::from(vec![7u8; GROUP]);
    let mut streams = Vec::new();
    for _ in 0..GROUPS {
        let mut group = producer.append_group().unwrap();
        group.write_frame(payload.clone());
        group.finish();
        settle().await;
        while let Some(stream) = raw.accept_uni().now_or_never() {
            streams.push(stream.unwrap());
        }
    }
    // A new group starts once the older ones fit in the byte window: two of them, plus it.
    let mut live = Vec::new();
    for (sequence, recv) in streams.iter_mut().enumerate() {
        match recv.read_chunk(usize::MAX).now_or_never() {
            Some(Err(Error::Cancel)) => {}
            Some(Ok(Some(_))) => live.push(sequence as u64),
            other => panic!("group {sequence}: {other:?}"),
        }
    }
    assert_eq!(live, [GROUPS - 3, GROUPS - 2, GROUPS - 1]);
    // The stale groups were reported, not queued.
    for sequence in 0..GROUPS - 3 {
        let drop: GroupDrop = replies.next().await.unwrap().unwrap();
        assert_eq!((drop.sequence, drop.code), (sequence, 0));
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_group_larger_than_the_byte_window_is_not_cut_short() {
    const GROUP: usize = 16 * 1024;
    // The stream window takes a whole group, the byte window a quarter of one.
    let options = SessionOptions {
        max_inflight_bytes: GROUP as u64 / 4,
        ..Default::default()
    };
    let Stalled {
        raw,
        mut replies,
        producer,
        _keep,
    } = stalled_subscriber_with(4 * GROUP, options, Track::new(path(&["large"]))).await;

    let payload = Bytes::from(vec![7u8; GROUP]);
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut group = producer.append_group().unwrap();
        group.write_frame(payload.clone());
        group.finish();
        settle().await;
        streams.push(within("a group stream", raw.accept_uni()).await.unwrap());
    }
    // Group 0, alone in flight, was not cut short by group 1; with two in flight and over
    // the byte window, group 2 dropped it.
    let [zero, one, two] = &mut streams[..] else {
        unreachable!()
    };
    assert_eq!(
        within("group 0", read_to_end_or_error(zero)).await,
        Err(Error::Cancel)
    );
    let drop: GroupDrop = within("GROUP_DROP", replies.next()).await.unwrap().unwrap();
    assert_eq!(drop.sequence, 0);
    for stream in [one, two] {
        let read = within("group 1 and 2", read_to_end_or_error(stream)).await;
        assert!(read.unwrap().ends_with(&payload[GROUP - 8..]));
    }
}

#[tokio::test(start_paused = true)]
async fn in_flight_groups_with_one_sequence_are_told_apart_after_a_handover() {
    // Room for two groups being written; every group fits the stream window.
    let Stalled {
        raw,
        mut replies,
        producer,
        _keep,
    } = stalled_subscriber(64 * 1024, 2, Track::new(path(&["handover"]))).await;

    // Group 5 of the old origin stays open, in flight.
    let mut old = producer.create_group(5).unwrap();
    old.write_frame(Bytes::from_static(b"old"));
    let mut old_stream = memory_common::within("a group stream", raw.accept_uni())
        .await
        .unwrap();
    read_until(&mut old_stream, &[0, 5, 3, b'o', b'l', b'd'])
        .await
        .unwrap();

    // After the handover (as a relay track does it), the new origin's group 5 is delivered and
    // acknowledged (read).
    moq_transfork::relay::RelayTrack::new(producer.clone()).forget_groups();
    let mut new = producer.create_group(5).unwrap();
    new.write_frame(Bytes::from_static(b"new"));
    new.finish();
    let mut new_stream = memory_common::within("a group stream", raw.accept_uni())
        .await
        .unwrap();
    // Subscription 0, group 5, a 3-byte frame.
    assert!(read_to_end(&mut new_stream)
        .await
        .ends_with(&[0, 5, 3, b'n', b'e', b'w']));
    settle().await;

    // The old group 5 is still in flight, untouched by the new one's completion.
    old.write_frame(Bytes::from_static(b"still"));
    read_until(&mut old_stream, b"still").await.unwrap();

    // Two more groups: the window is full (the old group 5 and group 6 are being written), so
    // the old group 5 is the one dropped.
    let _six = producer.create_group(6).unwrap();
    settle().await;
    let _seven = producer.create_group(7).unwrap();
    settle().await;
    let report: GroupDrop = memory_common::within("GROUP_DROP", replies.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.sequence, report.code), (5, 0));
    assert_eq!(
        read_until(&mut old_stream, b"never").await,
        Err(Error::Cancel)
    );
    drop(old);
}

#[tokio::test(start_paused = true)]
async fn a_huge_expiry_neither_panics_nor_drops_anything() {
    // The publisher's track never expires its groups, in a duration too large to add.
    let track = Track::new(path(&["forever"])).with_group_expires(Duration::MAX);
    let Stalled {
        raw,
        mut replies,
        producer,
        _keep,
    } = stalled_subscriber(64 * 1024, 8, track).await;
    for sequence in 0..3u64 {
        let mut group = producer.append_group().unwrap();
        group.write_frame(Bytes::from_static(b"tick"));
        group.finish();
        let mut stream = memory_common::within("a group stream", raw.accept_uni())
            .await
            .unwrap();
        let bytes = read_to_end(&mut stream).await;
        assert!(bytes.ends_with(&[0, sequence as u8, 4, b't', b'i', b'c', b'k']));
        tokio::time::advance(Duration::from_secs(3600)).await;
    }
    // The subscription is alive, and nothing was dropped.
    settle().await;
    assert!(replies.next::<GroupDrop>().now_or_never().is_none());
}

/// Every byte of a stream up to its FIN.
async fn read_to_end(stream: &mut RecvStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(chunk) = memory_common::within("a chunk", stream.read_chunk(usize::MAX))
        .await
        .unwrap()
    {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// Reads a stream to its FIN; the error if it is reset first.
async fn read_to_end_or_error(stream: &mut RecvStream) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.read_chunk(usize::MAX).await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads a stream until the bytes read end with `end`; the error if it is reset first.
async fn read_until(stream: &mut RecvStream, end: &[u8]) -> Result<(), Error> {
    let mut bytes = Vec::new();
    while !bytes.ends_with(end) {
        let chunk = memory_common::within("a chunk", stream.read_chunk(usize::MAX)).await?;
        bytes.extend_from_slice(&chunk.expect("not the end yet"));
    }
    Ok(())
}
