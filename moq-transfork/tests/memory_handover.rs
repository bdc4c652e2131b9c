//! Handover in an [`Origins`] relay over the in-memory transport, with the clock paused: the
//! downstream subscriptions of a path move to a newer origin, and end as before when no other
//! origin offers the path.

mod memory_common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use memory_common::{
    accept_subscribe, expect_group, frame, open_group, path, raw_client, send_info, settle,
    subscribe, viewer, within, Messages, Origin,
};
use moq_transfork::message::{Info, Subscribe};
use moq_transfork::model::{Track, TrackConsumer};
use moq_transfork::relay::Origins;
use moq_transfork::transport::{memory, Connection, SendStream};
use moq_transfork::{Error, SessionOptions};

impl Origin {
    /// Accepts the relay's SUBSCRIBE and answers it with INFO.
    async fn subscribed(&self) -> (SendStream, Messages, Subscribe) {
        let (mut send, request, subscribe) = within("SUBSCRIBE", accept_subscribe(&self.raw)).await;
        send_info(&mut send).await;
        (send, request, subscribe)
    }

    /// Sends group `sequence` of subscription `subscribe` with one frame, and finishes it.
    async fn group(&self, subscribe: &Subscribe, sequence: u64, payload: &'static [u8]) {
        let mut stream = open_group(&self.raw, subscribe.id, sequence).await;
        stream.write_chunk(frame(payload)).await.unwrap();
        stream.finish().unwrap();
    }

    /// The origin's connection dies.
    fn die(&self) {
        self.raw.close(Error::Cancel.code(), "gone");
    }

    /// True when no further SUBSCRIBE is waiting.
    fn no_more_subscribes(&self) -> bool {
        self.raw.accept_bi().now_or_never().is_none()
    }
}

/// The next group of `track`: its sequence and first frame.
async fn next(track: &mut TrackConsumer) -> (u64, Bytes) {
    let mut group = within("a group", track.next_group())
        .await
        .expect("group")
        .expect("not the end");
    let payload = within("a frame", group.read_frame())
        .await
        .expect("frame")
        .expect("a frame");
    (group.sequence(), payload)
}

#[tokio::test(start_paused = true)]
async fn subscribers_move_to_a_newer_origin() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let a = Origin::start(&origins, &live, SessionOptions::default()).await;

    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (_a_send, _a_request, a_sub) = a.subscribed().await;
    a.group(&a_sub, 10, b"a10").await;
    assert_eq!(next(&mut track).await, (10, Bytes::from("a10")));
    a.group(&a_sub, 11, b"a11").await;
    assert_eq!(next(&mut track).await, (11, Bytes::from("a11")));

    // The origin restarts: its new session announces the path while the relay has not yet
    // noticed that the old one is gone. The relay subscribes to the new one at once.
    let b = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (_b_send, _b_request, b_sub) = b.subscribed().await;
    a.die();
    settle().await;
    assert!(origins.contains(&live));

    // The viewer keeps its subscription and gets the new origin's groups, numbered afresh.
    b.group(&b_sub, 0, b"b0").await;
    assert_eq!(next(&mut track).await, (0, Bytes::from("b0")));
    b.group(&b_sub, 1, b"b1").await;
    assert_eq!(next(&mut track).await, (1, Bytes::from("b1")));

    // One upstream SUBSCRIBE to the new origin, and the relay still serves one relay track.
    settle().await;
    assert!(
        b.no_more_subscribes(),
        "a second SUBSCRIBE to the new origin"
    );
    assert_eq!(origins.relayed(), 1);

    // A later viewer shares the same relay track and upstream subscription.
    let (late_viewer, _late_relay_end) = self::viewer(&origins).await;
    let mut late = late_viewer.subscribe(Track::new(live.clone()));
    assert_eq!(next(&mut late).await, (1, Bytes::from("b1")));
    b.group(&b_sub, 2, b"b2").await;
    assert_eq!(next(&mut late).await, (2, Bytes::from("b2")));
    assert_eq!(next(&mut track).await, (2, Bytes::from("b2")));
    settle().await;
    assert!(b.no_more_subscribes(), "a SUBSCRIBE for the late viewer");
}

/// A viewer that reads the relay's group streams as bytes (it does not refuse a sequence it
/// saw before, as a session of this crate does) gets the new origin's groups even when they
/// reuse the old origin's sequence numbers.
#[tokio::test(start_paused = true)]
async fn reused_sequences_reach_a_raw_viewer_after_a_handover() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let a = Origin::start(&origins, &live, SessionOptions::default()).await;

    let options = SessionOptions {
        router: Some(Arc::new(origins.clone())),
        ..Default::default()
    };
    let (raw, _relay_end, _stream) = raw_client(memory::Config::default(), options).await;
    let (mut send, recv) = raw.open_bi().await.unwrap();
    send.write_chunk(subscribe(0, live.clone())).await.unwrap();
    let (_a_send, _a_request, a_sub) = a.subscribed().await;
    let mut reply = Messages::new(recv);
    within("INFO", reply.next::<Info>()).await.unwrap().unwrap();

    async fn expect(raw: &Connection, sequence: u64, payload: &'static [u8]) {
        let mut group = Messages::new(within("a group stream", raw.accept_uni()).await.unwrap());
        expect_group(&mut group, 0, sequence).await;
        let mut got = Vec::new();
        while let Some(chunk) = group.recv.read_chunk(usize::MAX).await.unwrap() {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(Bytes::from(got), frame(payload));
    }

    a.group(&a_sub, 0, b"a0").await;
    expect(&raw, 0, b"a0").await;
    a.group(&a_sub, 1, b"a1").await;
    expect(&raw, 1, b"a1").await;

    let b = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (_b_send, _b_request, b_sub) = b.subscribed().await;
    a.die();
    settle().await;
    b.group(&b_sub, 0, b"b0").await;
    expect(&raw, 0, b"b0").await;
    b.group(&b_sub, 1, b"b1").await;
    expect(&raw, 1, b"b1").await;
    settle().await;
    assert!(b.no_more_subscribes());
    // The downstream subscription is still open.
    assert!(reply.next::<u64>().now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn subscribers_move_to_an_older_origin_when_the_newest_dies() {
    let live = path(&["live"]);
    let origins = Origins::new();
    // The older origin first; the newer one serves.
    let old = Origin::start(&origins, &live, SessionOptions::default()).await;
    let new = Origin::start(&origins, &live, SessionOptions::default()).await;

    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (_send, _request, new_sub) = new.subscribed().await;
    assert!(old.no_more_subscribes());
    new.group(&new_sub, 5, b"new5").await;
    assert_eq!(next(&mut track).await, (5, Bytes::from("new5")));

    // The serving origin dies: its upstream subscription fails, and the other one still
    // offers the path.
    new.die();
    let (_old_send, _old_request, old_sub) = old.subscribed().await;
    old.group(&old_sub, 3, b"old3").await;
    assert_eq!(next(&mut track).await, (3, Bytes::from("old3")));
    settle().await;
    assert!(old.no_more_subscribes());
}

#[tokio::test(start_paused = true)]
async fn subscribers_end_with_the_error_when_no_other_origin_offers_the_path() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let a = Origin::start(&origins, &live, SessionOptions::default()).await;

    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (_send, _request, sub) = a.subscribed().await;
    a.group(&sub, 0, b"zero").await;
    assert_eq!(next(&mut track).await, (0, Bytes::from("zero")));

    a.die();
    let end = within("the end", track.next_group()).await;
    assert!(end.is_err(), "{end:?}");
    settle().await;
    assert!(!origins.contains(&live));
    assert_eq!(origins.relayed(), 0);
}

#[tokio::test(start_paused = true)]
async fn subscribers_end_cleanly_when_the_only_origin_ends_the_track() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let a = Origin::start(&origins, &live, SessionOptions::default()).await;

    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (mut send, _request, sub) = a.subscribed().await;
    a.group(&sub, 0, b"zero").await;
    assert_eq!(next(&mut track).await, (0, Bytes::from("zero")));

    // The origin ends the subscription (FIN): the viewer's track ends cleanly.
    send.finish().unwrap();
    let end = within("the end", track.next_group()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    settle().await;
    assert_eq!(origins.relayed(), 0);
    // The origin is still there: a new subscription is routed to it again.
    assert!(origins.contains(&live));
}

#[tokio::test(start_paused = true)]
async fn the_last_subscriber_leaving_removes_the_relay_track_and_unsubscribes_after_linger() {
    let live = path(&["live"]);
    let linger = Duration::from_secs(2);
    let origins = Origins::new();
    let options = SessionOptions {
        linger,
        ..Default::default()
    };
    let a = Origin::start(&origins, &live, options).await;

    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (_send, mut request, sub) = a.subscribed().await;
    a.group(&sub, 0, b"zero").await;
    assert_eq!(next(&mut track).await, (0, Bytes::from("zero")));
    assert_eq!(origins.relayed(), 1);

    // The viewer leaves: the relay track goes at once, the upstream subscription after the
    // relay session's linger.
    drop(track);
    settle().await;
    settle().await;
    assert_eq!(origins.relayed(), 0);
    let early = tokio::time::timeout(linger - Duration::from_millis(100), request.next::<u64>());
    assert!(early.await.is_err(), "unsubscribed before the linger");
    let fin = within("the unsubscribe", request.next::<u64>()).await;
    assert_eq!(fin, Ok(None));
    assert!(a.no_more_subscribes());
}
