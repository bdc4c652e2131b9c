//! Announce streams against a hand-driven peer over the in-memory transport, with the clock
//! paused: the caps on what a peer may announce and ask for, and the order of what we send.

mod memory_common;

use std::collections::BTreeSet;

use bytes::BytesMut;
use futures::FutureExt;
use memory_common::{
    encode, path, raw_client, raw_server, raw_server_with, settle, within, Messages,
};
use moq_transfork::message::{Announce, AnnouncePlease, BiStream};
use moq_transfork::model::{AnnouncedProducer, Track};
use moq_transfork::transport::memory::Config;
use moq_transfork::transport::{Connection, SendStream};
use moq_transfork::{Encode, Error, Path, Session, SessionOptions};

/// The default of `SessionOptions::max_announced_paths`, pinned: the most paths the peer may
/// hold active on the announce streams of one session.
const MAX_ANNOUNCED_PATHS: usize = 65_536;
/// `MAX_ANNOUNCE_REQUESTS`: the most announce requests a session serves at once.
const MAX_ANNOUNCE_REQUESTS: usize = 32;

/// Opens an announce stream for every path and sends ANNOUNCE_PLEASE.
async fn announce_please(raw: &Connection) -> (SendStream, Messages) {
    let (mut send, recv) = raw.open_bi().await.unwrap();
    let please = AnnouncePlease {
        prefix: Path::new(),
    };
    send.write_chunk(encode(&[&|b| BiStream::Announce.encode(b), &|b| {
        please.encode(b)
    }]))
    .await
    .unwrap();
    (send, Messages::new(recv))
}

fn active(name: &str) -> Announce {
    Announce::Active {
        suffix: path(&[name]),
    }
}

/// Accepts the announce stream a client opened and reads its ANNOUNCE_PLEASE.
async fn accept_announce(raw: &Connection) -> (SendStream, Messages) {
    let (send, recv) = raw.accept_bi().await.unwrap();
    let mut request = Messages::new(recv);
    assert_eq!(
        request.next::<BiStream>().await,
        Ok(Some(BiStream::Announce))
    );
    request.next::<AnnouncePlease>().await.unwrap().unwrap();
    (send, request)
}

/// Writes ANNOUNCE `active` for `prefix0` … `prefix{n-1}` in one chunk.
async fn announce_many(send: &mut SendStream, prefix: &str, n: usize) {
    let mut batch = BytesMut::new();
    for i in 0..n {
        active(&format!("{prefix}{i}")).encode(&mut batch);
    }
    send.write_chunk(batch.freeze()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_announced_path_cap_holds_for_all_streams_of_a_session() {
    assert_eq!(
        SessionOptions::default().max_announced_paths,
        MAX_ANNOUNCED_PATHS
    );
    let options = SessionOptions {
        max_announced_paths: 100,
        ..Default::default()
    };
    let (raw, client, _stream) = raw_server_with(options).await;
    let mut first_follower = client.announced(Path::new());
    let (mut first, _first_request) = accept_announce(&raw).await;
    let _second_follower = client.announced(Path::new());
    let (mut second, mut second_request) = accept_announce(&raw).await;

    // 60 + 40: exactly the cap, over two streams.
    announce_many(&mut first, "a", 60).await;
    announce_many(&mut second, "b", 40).await;
    settle().await;
    assert!(first.stopped().now_or_never().is_none());
    assert!(second.stopped().now_or_never().is_none());

    // One more on the second stream resets and stops it with BoundsExceeded (11)...
    announce_many(&mut second, "over", 1).await;
    assert_eq!(
        within("STOP_SENDING", second.stopped()).await,
        Ok(Some(Error::BoundsExceeded.code()))
    );
    assert_eq!(Error::BoundsExceeded.code(), 11);
    assert_eq!(
        second_request.next::<Announce>().await,
        Err(Error::BoundsExceeded)
    );

    // ...which gives its 40 back: the first stream may now announce 40 more, and its
    // follower hears of all 100.
    announce_many(&mut first, "c", 40).await;
    let mut heard = 0;
    while heard < 100 {
        let event = within("an announcement", first_follower.next()).await;
        assert!(matches!(event, Some(moq_transfork::Announced::Active(_))));
        heard += 1;
    }
    assert!(first.stopped().now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn more_than_max_announced_paths_on_one_stream_exceeds_bounds() {
    let (raw, client, _stream) = raw_server().await;
    let _announced = client.announced(Path::new());
    let (mut send, recv) = raw.accept_bi().await.unwrap();
    let mut request = Messages::new(recv);
    assert_eq!(
        request.next::<BiStream>().await,
        Ok(Some(BiStream::Announce))
    );
    request.next::<AnnouncePlease>().await.unwrap().unwrap();

    // Exactly the cap is accepted...
    let mut batch = BytesMut::new();
    for i in 0..MAX_ANNOUNCED_PATHS {
        active(&format!("p{i}")).encode(&mut batch);
    }
    send.write_chunk(batch.freeze()).await.unwrap();
    settle().await;
    assert!(
        send.stopped().now_or_never().is_none(),
        "stopped at the cap"
    );

    // ...one more path exceeds bounds: the stream is reset and stopped with 11.
    send.write_chunk(encode(&[&|b| active("one-too-many").encode(b)]))
        .await
        .unwrap();
    assert_eq!(
        within("STOP_SENDING", send.stopped()).await,
        Ok(Some(Error::BoundsExceeded.code()))
    );
    assert_eq!(request.next::<Announce>().await, Err(Error::BoundsExceeded));
}

#[tokio::test(start_paused = true)]
async fn announce_requests_beyond_the_cap_are_refused_and_the_others_served() {
    let (raw, server, _stream) = raw_client(Config::default(), SessionOptions::default()).await;
    let mut requests = Vec::new();
    for _ in 0..MAX_ANNOUNCE_REQUESTS {
        requests.push(announce_please(&raw).await);
        settle().await;
    }

    // The 33rd is reset, and stopped, with ProtocolViolation.
    let (mut send, mut refused) = announce_please(&raw).await;
    assert_eq!(
        within("the reset", refused.next::<Announce>()).await,
        Err(Error::ProtocolViolation)
    );
    assert_eq!(
        send.stopped().await,
        Ok(Some(Error::ProtocolViolation.code()))
    );

    // The first 32 are served: each hears of a track published now.
    let (_producer, consumer) = Track::new(path(&["news"])).produce();
    server.publish(consumer).unwrap();
    for (_, replies) in &mut requests {
        assert_eq!(
            within("ANNOUNCE", replies.next::<Announce>()).await,
            Ok(Some(active("news")))
        );
    }

    // A request that ends gives its place back.
    let (mut send, mut replies) = requests.remove(0);
    send.finish().unwrap();
    assert_eq!(
        within("the FIN", replies.next::<Announce>()).await,
        Ok(None)
    );
    let (_send, mut replies) = announce_please(&raw).await;
    assert_eq!(
        within("ANNOUNCE", replies.next::<Announce>()).await,
        Ok(Some(active("news")))
    );
}

/// Reads ANNOUNCEs until `last` is announced, checking each against the paths announced so
/// far: `active` only for a path that is not active, `ended` only for one that is.
async fn follow_until(replies: &mut Messages, active: &mut BTreeSet<Path>, last: &Path) {
    loop {
        let announce = within("ANNOUNCE", replies.next::<Announce>())
            .await
            .unwrap()
            .expect("an ANNOUNCE");
        match announce {
            Announce::Active { suffix } => {
                assert!(active.insert(suffix.clone()), "active {suffix} twice");
                if &suffix == last {
                    return;
                }
            }
            Announce::Ended { suffix } => {
                assert!(active.remove(&suffix), "ended {suffix} before active");
            }
            Announce::Live => panic!("live sent"),
        }
    }
}

/// The wire stays consistent (spec §5.2) when paths change within one batch.
///
/// This cannot catch the batching bug fixed in `net_changes` (a path announced and ended within
/// one batch went out as `ended` then `active`): on this single-threaded runtime the batch is
/// gathered in one poll, and a path can only go from inactive to active and back within it if
/// another thread unannounces between the first event and the rest. The unit tests of
/// `net_changes` in `session/publisher.rs` cover that case.
#[tokio::test(start_paused = true)]
async fn announcements_that_change_within_a_batch_stay_consistent_on_the_wire() {
    // Two sources besides the session's own tracks, offering overlapping paths.
    let (a, b) = (AnnouncedProducer::new(), AnnouncedProducer::new());
    let options = SessionOptions {
        announce: vec![a.clone(), b.clone()],
        ..Default::default()
    };
    let (raw, server, _stream) = raw_client(Config::default(), options).await;
    let (_send, mut replies) = announce_please(&raw).await;
    settle().await;
    let mut seen = BTreeSet::new();

    // A track published and ended at once, other paths that appear, vanish and move between
    // sources, all within one batch.
    let (producer, consumer) = Track::new(path(&["flash"])).produce();
    server.publish(consumer).unwrap();
    drop(producer);
    a.announce(path(&["x"]));
    b.announce(path(&["x"]));
    a.unannounce(&path(&["x"]));
    b.announce(path(&["y"]));
    b.unannounce(&path(&["y"]));
    a.announce(path(&["y"]));
    a.announce(path(&["z-mark-1"]));
    follow_until(&mut replies, &mut seen, &path(&["z-mark-1"])).await;
    // Within a batch additions come in path order, so the marker (last in order) ends it.
    for name in ["x", "y", "z-mark-1"] {
        assert!(seen.contains(&path(&[name])), "{name} not active");
    }
    settle().await;

    // The last source of a path ends it; a path another source takes over stays active (the
    // wire may end and announce it again, as sources are polled in turn).
    b.unannounce(&path(&["x"]));
    b.announce(path(&["y"]));
    a.unannounce(&path(&["y"]));
    let (producer, consumer) = Track::new(path(&["z-mark-2"])).produce();
    server.publish(consumer).unwrap();
    follow_until(&mut replies, &mut seen, &path(&["z-mark-2"])).await;
    assert_eq!(
        seen,
        BTreeSet::from([path(&["z-mark-1"]), path(&["z-mark-2"]), path(&["y"])])
    );
    drop(producer);
}

#[tokio::test(start_paused = true)]
async fn a_full_origins_registry_refuses_the_session_that_overflows_it() {
    let origins = moq_transfork::relay::Origins::with_max_announcements(3);
    let _kept =
        memory_common::Origin::start(&origins, &path(&["a"]), SessionOptions::default()).await;
    assert_eq!(origins.announcements(), 1);

    let (raw, session, _stream) = raw_server().await;
    tokio::spawn({
        let (origins, session) = (origins.clone(), session.clone());
        async move { origins.serve(&session, Path::new()).await }
    });
    let (mut send, mut request) = accept_announce(&raw).await;
    announce_many(&mut send, "b", 2).await;
    settle().await;
    assert_eq!(origins.announcements(), 3);
    assert!(send.stopped().now_or_never().is_none());

    // The fourth announcement overflows the registry: the session's announce stream is reset
    // and stopped with BoundsExceeded, and its paths are withdrawn; the other origin's stay.
    announce_many(&mut send, "x", 1).await;
    assert_eq!(
        within("STOP_SENDING", send.stopped()).await,
        Ok(Some(Error::BoundsExceeded.code()))
    );
    assert_eq!(
        within("the reset", request.next::<Announce>()).await,
        Err(Error::BoundsExceeded)
    );
    settle().await;
    assert_eq!(origins.announcements(), 1);
    assert!(origins.contains(&path(&["a"])));
    assert!(!origins.contains(&path(&["b0"])));

    // The room it gave back is usable.
    let _next =
        memory_common::Origin::start(&origins, &path(&["c"]), SessionOptions::default()).await;
    assert!(origins.contains(&path(&["c"])));
    assert_eq!(origins.announcements(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_late_watcher_hears_every_path_once_and_in_order() {
    let origins = moq_transfork::relay::Origins::new();
    let (raw, session, _stream) = raw_server().await;
    tokio::spawn({
        let (origins, session) = (origins.clone(), session.clone());
        async move { origins.serve(&session, Path::new()).await }
    });
    let (mut send, _request) = accept_announce(&raw).await;
    announce_many(&mut send, "p", 3000).await;
    settle().await;
    assert_eq!(origins.announcements(), 3000);

    // A watcher of the relay asks afterwards: it gets all 3000, ascending, then the changes.
    let (viewer, _relay_end) = {
        let (a, b) = moq_transfork::transport::memory::pair();
        let options = SessionOptions {
            announce: vec![origins.announced()],
            ..Default::default()
        };
        tokio::try_join!(Session::connect(a), Session::accept_with(b, options)).unwrap()
    };
    let mut watcher = viewer.announced(Path::new());
    let mut expected: Vec<Path> = (0..3000).map(|i| path(&[&format!("p{i}")])).collect();
    expected.sort();
    for want in expected {
        assert_eq!(
            within("an announcement", watcher.next()).await,
            Some(moq_transfork::Announced::Active(want))
        );
    }
    announce_many(&mut send, "q", 1).await;
    assert_eq!(
        within("the change", watcher.next()).await,
        Some(moq_transfork::Announced::Active(path(&["q0"])))
    );
}

#[tokio::test(start_paused = true)]
async fn a_path_announced_twice_or_ended_unknown_resets_the_stream_and_frees_its_paths() {
    let options = SessionOptions {
        max_announced_paths: 2,
        ..Default::default()
    };
    let (raw, client, _stream) = raw_server_with(options).await;

    // `active` twice: Duplicate (12).
    let _twice = client.announced(Path::new());
    let (mut send, _request) = accept_announce(&raw).await;
    announce_many(&mut send, "a", 1).await;
    announce_many(&mut send, "a", 1).await;
    assert_eq!(
        within("STOP_SENDING", send.stopped()).await,
        Ok(Some(Error::Duplicate.code()))
    );

    // `ended` for a path never announced: NotFound (13).
    let _unknown = client.announced(Path::new());
    let (mut send, _request) = accept_announce(&raw).await;
    send.write_chunk(encode(&[&|b| {
        Announce::Ended {
            suffix: path(&["never"]),
        }
        .encode(b)
    }]))
    .await
    .unwrap();
    assert_eq!(
        within("STOP_SENDING", send.stopped()).await,
        Ok(Some(Error::NotFound.code()))
    );

    // Neither stream's paths still count: a third stream holds the full cap.
    let mut follower = client.announced(Path::new());
    let (mut send, _request) = accept_announce(&raw).await;
    announce_many(&mut send, "b", 2).await;
    for _ in 0..2 {
        let event = within("an announcement", follower.next()).await;
        assert!(matches!(event, Some(moq_transfork::Announced::Active(_))));
    }
    settle().await;
    assert!(send.stopped().now_or_never().is_none());
}
