//! Routing through an [`Origins`] relay and the requests around it, over the in-memory
//! transport with the clock paused: origins that refuse at first are retried, an origin that
//! announces again is used again, the relay keeps no session it no longer routes to, a FETCH
//! of a cold path costs nothing upstream, a fetch ends with its consumer, and a peer that
//! never answers with INFO cannot hold a request.

mod memory_common;

use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use memory_common::{
    accept_subscribe, frame, open_group, path, raw_server, send_info, settle, viewer, within,
    Messages, Origin,
};
use moq_transfork::message::{Announce, BiStream, Fetch, InfoRequest, Subscribe};
use moq_transfork::model::{Track, TrackConsumer};
use moq_transfork::relay::Origins;
use moq_transfork::transport::SendStream;
use moq_transfork::{Error, SessionOptions};
use tokio::time::Instant;

/// How long a peer has to answer with INFO (the crate's documented default).
const INFO_TIMEOUT: Duration = Duration::from_secs(10);

impl Origin {
    /// Accepts the relay's next SUBSCRIBE and answers it with INFO.
    async fn subscribed(&self) -> (SendStream, Messages, Subscribe) {
        let (mut send, request, subscribe) = within("SUBSCRIBE", accept_subscribe(&self.raw)).await;
        send_info(&mut send).await;
        (send, request, subscribe)
    }

    /// Accepts the relay's next SUBSCRIBE and refuses it with NotFound, as a publisher that
    /// announced its path before registering the track does.
    async fn refuse(&self) {
        let (mut send, mut request, _) = within("SUBSCRIBE", accept_subscribe(&self.raw)).await;
        send.reset(Error::NotFound.code());
        request.recv.stop(Error::NotFound.code());
    }

    /// Sends group `sequence` of subscription `subscribe` with one frame, and finishes it.
    async fn group(&self, subscribe: &Subscribe, sequence: u64, payload: &'static [u8]) {
        let mut stream = open_group(&self.raw, subscribe.id, sequence).await;
        stream.write_chunk(frame(payload)).await.unwrap();
        stream.finish().unwrap();
    }

    /// True when no further request is waiting.
    fn no_more_requests(&self) -> bool {
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

/// The case: a publisher moves (or reconnects) and its new session refuses the
/// relay's first SUBSCRIBE with NotFound, because it announced the path before registering
/// the track. The relay tries it again 100 ms later, and the viewer gets its groups then,
/// rather than sitting on the old origin.
#[tokio::test(start_paused = true)]
async fn an_origin_that_refuses_the_first_subscribe_is_retried() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let old = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (_old_send, _old_request, old_sub) = old.subscribed().await;
    old.group(&old_sub, 7, b"old7").await;
    assert_eq!(next(&mut track).await, (7, Bytes::from("old7")));

    let new = Origin::start(&origins, &live, SessionOptions::default()).await;
    new.refuse().await;
    let refused = Instant::now();
    // Meanwhile the relay falls back on the old origin...
    let (_old_send, _old_request, _) = old.subscribed().await;
    // ...and asks the new one again after a short delay.
    let (_new_send, _new_request, new_sub) = new.subscribed().await;
    let waited = refused.elapsed();
    assert!(
        (Duration::from_millis(100)..Duration::from_millis(200)).contains(&waited),
        "retried after {waited:?}"
    );
    new.group(&new_sub, 0, b"new0").await;
    assert_eq!(next(&mut track).await, (0, Bytes::from("new0")));

    // The old origin dies: the viewer stays with the new one.
    old.raw.close(Error::Cancel.code(), "gone");
    settle().await;
    new.group(&new_sub, 1, b"new1").await;
    assert_eq!(next(&mut track).await, (1, Bytes::from("new1")));
    settle().await;
    assert!(
        new.no_more_requests(),
        "a SUBSCRIBE too many to the new origin"
    );
}

/// An origin that refuses every SUBSCRIBE while it still announces the path is tried a
/// bounded number of times, with a growing delay; then the viewer's track ends with its
/// error instead of waiting for ever.
#[tokio::test(start_paused = true)]
async fn an_origin_that_keeps_refusing_is_given_up_after_bounded_retries() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let a = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));

    let start = Instant::now();
    for _ in 0..8 {
        a.refuse().await;
    }
    let end = within("the end", track.next_group()).await;
    assert_eq!(end.err(), Some(Error::NotFound));
    // Waits of 100, 200, 400 and 800 ms, then 1 s three times: 4.5 s of retries in all.
    let took = start.elapsed();
    assert!(
        (Duration::from_millis(4500)..Duration::from_millis(4600)).contains(&took),
        "gave up after {took:?}"
    );
    settle().await;
    assert!(a.no_more_requests(), "a ninth SUBSCRIBE");
    assert_eq!(origins.relayed(), 0);
    // The path is still offered: a new viewer is routed to it again.
    assert!(origins.contains(&live));
}

/// An origin that ended the track for a relay track is not used again for it, unless it
/// announces the path again (ANNOUNCE `ended`, then `active`, on the same session): then it
/// is the newest offer again, and the relay track switches back to it.
#[tokio::test(start_paused = true)]
async fn an_origin_that_announces_again_is_used_again() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let older = Origin::start(&origins, &live, SessionOptions::default()).await;
    let mut newer = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (mut send, _request, sub) = newer.subscribed().await;
    newer.group(&sub, 3, b"newer3").await;
    assert_eq!(next(&mut track).await, (3, Bytes::from("newer3")));

    // The newer origin ends the track: the relay moves to the older one and stays there.
    send.finish().unwrap();
    let (_older_send, _older_request, older_sub) = older.subscribed().await;
    older.group(&older_sub, 1, b"older1").await;
    assert_eq!(next(&mut track).await, (1, Bytes::from("older1")));
    settle().await;
    assert!(newer.no_more_requests());

    // The newer origin announces the path again, at once: it serves the relay track again.
    let suffix = live.clone();
    newer.announce(Announce::Ended { suffix }).await;
    newer
        .announce(Announce::Active {
            suffix: live.clone(),
        })
        .await;
    let (_send, _request, again) = newer.subscribed().await;
    newer.group(&again, 0, b"again0").await;
    assert_eq!(next(&mut track).await, (0, Bytes::from("again0")));
}

/// Once an origin no longer offers the path, the relay lets go of its session even while the
/// relay track it once fed lives on: the connection closes (code 0) when the last handle
/// goes.
#[tokio::test(start_paused = true)]
async fn the_relay_keeps_no_session_of_an_origin_that_left() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let first = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (viewer, _relay_end) = viewer(&origins).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (_send, _request, sub) = first.subscribed().await;
    first.group(&sub, 0, b"first").await;
    assert_eq!(next(&mut track).await, (0, Bytes::from("first")));

    let second = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (_second_send, _second_request, second_sub) = second.subscribed().await;
    let (first_raw, _first_stream) = first.leave();
    let reason = within(
        "the first origin's session to be dropped",
        first_raw.closed(),
    )
    .await;
    assert_eq!(reason, Error::Cancel);

    // The relay track is still served, by the second origin.
    second.group(&second_sub, 1, b"second").await;
    assert_eq!(next(&mut track).await, (1, Bytes::from("second")));
    assert_eq!(origins.relayed(), 1);
}

/// A FETCH for a path that is announced but has no relay track (no local subscriber) is
/// answered NotFound without any upstream request; once the path has a relay track, FETCH is
/// answered from its cache, again without an upstream request.
#[tokio::test(start_paused = true)]
async fn a_fetch_of_a_cold_path_is_not_found_and_subscribes_nowhere() {
    let live = path(&["live"]);
    let origins = Origins::new();
    let a = Origin::start(&origins, &live, SessionOptions::default()).await;
    let (viewer, _relay_end) = viewer(&origins).await;

    let mut cold = viewer.fetch(live.clone(), 0, 0, 0).unwrap();
    assert_eq!(
        within("the answer", cold.read_frame()).await,
        Err(Error::NotFound)
    );
    settle().await;
    assert!(a.no_more_requests(), "the cold FETCH reached the origin");
    assert_eq!(origins.relayed(), 0);

    let mut track = viewer.subscribe(Track::new(live.clone()));
    let (_send, _request, sub) = a.subscribed().await;
    a.group(&sub, 4, b"four").await;
    assert_eq!(next(&mut track).await, (4, Bytes::from("four")));
    let mut warm = viewer.fetch(live.clone(), 0, 4, 0).unwrap();
    assert_eq!(
        within("the cached frame", warm.read_frame()).await,
        Ok(Some(Bytes::from("four")))
    );
    let mut missing = viewer.fetch(live.clone(), 0, 9, 0).unwrap();
    assert_eq!(
        within("the answer", missing.read_frame()).await,
        Err(Error::NotFound)
    );
    settle().await;
    assert!(a.no_more_requests(), "a FETCH reached the origin");
}

/// Dropping a fetched group ends the request: the peer's reply stream is stopped with
/// Cancel, even while the peer sends nothing.
#[tokio::test(start_paused = true)]
async fn dropping_a_fetched_group_stops_the_request() {
    let (raw, client, _stream) = raw_server().await;
    let fetched = client.fetch(path(&["big"]), 0, 3, 0).unwrap();
    let (mut send, recv) = within("FETCH", raw.accept_bi()).await.unwrap();
    let mut request = Messages::new(recv);
    assert_eq!(request.next::<BiStream>().await, Ok(Some(BiStream::Fetch)));
    let fetch: Fetch = request.next().await.unwrap().unwrap();
    assert_eq!((fetch.group, fetch.offset), (3, 0));
    // A frame that declares 1 000 bytes and has sent 3 of them.
    send.write_chunk(Bytes::from_static(&[0x43, 0xe8, 1, 2, 3]))
        .await
        .unwrap();
    settle().await;
    assert!(send.stopped().now_or_never().is_none());

    drop(fetched);
    let stopped = within("STOP_SENDING", send.stopped()).await;
    assert_eq!(stopped, Ok(Some(Error::Cancel.code())));
}

/// An INFO request that the peer never answers fails after the timeout, with the transport
/// code, and its stream is reset and stopped with that code.
#[tokio::test(start_paused = true)]
async fn an_unanswered_info_request_times_out() {
    let (raw, client, _stream) = raw_server().await;
    let start = Instant::now();
    // A clone asks, so the session outlives the request.
    let asking = client.clone();
    let info = tokio::spawn(async move { asking.info(path(&["silent"])).await });
    let (mut send, recv) = within("INFO request", raw.accept_bi()).await.unwrap();
    let mut request = Messages::new(recv);
    assert_eq!(request.next::<BiStream>().await, Ok(Some(BiStream::Info)));
    let asked: InfoRequest = request.next().await.unwrap().unwrap();
    assert_eq!(asked.path, path(&["silent"]));

    let answer = tokio::time::timeout(INFO_TIMEOUT * 2, info)
        .await
        .expect("the INFO request to end")
        .unwrap();
    assert!(matches!(answer, Err(Error::Transport(_))), "{answer:?}");
    assert!(start.elapsed() >= INFO_TIMEOUT);
    let code = Error::Transport(moq_transfork::TransportError::Remote).code();
    assert_eq!(within("STOP_SENDING", send.stopped()).await, Ok(Some(code)));
    assert_eq!(
        within("RESET", request.next::<u64>())
            .await
            .err()
            .map(|e| e.code()),
        Some(code)
    );
}

/// A SUBSCRIBE that the peer never answers with INFO fails after the timeout: the consumer
/// gets the transport error, and the subscribe stream is reset and stopped with its code.
#[tokio::test(start_paused = true)]
async fn a_subscribe_without_info_times_out() {
    let (raw, client, _stream) = raw_server().await;
    let start = Instant::now();
    let mut track = client.subscribe(Track::new(path(&["silent"])));
    let (mut send, mut request, _) = within("SUBSCRIBE", accept_subscribe(&raw)).await;

    let end = tokio::time::timeout(INFO_TIMEOUT * 2, track.next_group())
        .await
        .expect("the subscription to end");
    assert!(matches!(end, Err(Error::Transport(_))), "{end:?}");
    assert!(start.elapsed() >= INFO_TIMEOUT);
    let code = Error::Transport(moq_transfork::TransportError::Remote).code();
    assert_eq!(within("STOP_SENDING", send.stopped()).await, Ok(Some(code)));
    assert_eq!(
        within("RESET", request.next::<u64>())
            .await
            .err()
            .map(|e| e.code()),
        Some(code)
    );
}

/// A SUBSCRIBE answered with INFO just before the timeout stays up (the timeout bounds the
/// wait for INFO only, not the subscription).
#[tokio::test(start_paused = true)]
async fn a_subscribe_answered_in_time_stays_up() {
    let (raw, client, _stream) = raw_server().await;
    let mut track = client.subscribe(Track::new(path(&["slow"])));
    let (mut send, _request, subscribe) = within("SUBSCRIBE", accept_subscribe(&raw)).await;
    tokio::time::sleep(INFO_TIMEOUT - Duration::from_millis(10)).await;
    send_info(&mut send).await;
    tokio::time::sleep(INFO_TIMEOUT * 2).await;
    let mut group = open_group(&raw, subscribe.id, 0).await;
    group.write_chunk(frame(b"late")).await.unwrap();
    group.finish().unwrap();
    assert_eq!(next(&mut track).await, (0, Bytes::from("late")));
}
