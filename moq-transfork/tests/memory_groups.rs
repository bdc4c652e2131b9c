//! Group streams from a hand-driven publisher to a subscribing session, over the in-memory
//! transport with the clock paused: the limits a peer's groups run into, groups that left the
//! cache, and how a stream that ends mid-frame reaches the consumer.

mod memory_common;

use bytes::{Bytes, BytesMut};
use memory_common::{frame, path, settle, within, Upstream};
use moq_transfork::model::{CacheConfig, GroupConsumer, Track};
use moq_transfork::{Error, SessionOptions};

/// The group size cap of these tests: small, so a test sends little.
const MAX_GROUP_SIZE: u64 = 64 * 1024;
/// What the session charges per frame on top of its payload (`FRAME_OVERHEAD`).
const FRAME_OVERHEAD: u64 = 64;

fn capped() -> SessionOptions {
    SessionOptions {
        max_group_size: MAX_GROUP_SIZE,
        ..Default::default()
    }
}

/// Reads the group to its end: its frames, or the error it was closed with.
async fn read_all(group: &mut GroupConsumer) -> Result<Vec<Bytes>, Error> {
    let mut frames = Vec::new();
    while let Some(frame) = within("a frame", group.read_frame()).await? {
        frames.push(frame);
    }
    Ok(frames)
}

#[tokio::test(start_paused = true)]
async fn a_group_over_max_group_size_is_stopped_and_the_subscription_lives() {
    let (upstream, mut track) = Upstream::start(capped(), Track::new(path(&["big"]))).await;

    // Exactly at the cap: one frame whose payload plus overhead is MAX_GROUP_SIZE.
    let payload = Bytes::from(vec![1u8; (MAX_GROUP_SIZE - FRAME_OVERHEAD) as usize]);
    let mut stream = upstream.group(0).await;
    stream.write_chunk(frame(&payload)).await.unwrap();
    stream.finish().unwrap();
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(read_all(&mut group).await, Ok(vec![payload]));

    // Seven frames of 10,000 bytes: the seventh takes the group past the cap. The stream is
    // left open, as a peer that keeps sending would.
    let mut stream = upstream.group(1).await;
    for _ in 0..7 {
        stream.write_chunk(frame(&[2u8; 10_000])).await.unwrap();
    }
    assert_eq!(
        within("STOP_SENDING", stream.stopped()).await,
        Ok(Some(Error::BoundsExceeded.code()))
    );
    assert_eq!(Error::BoundsExceeded.code(), 11);
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(group.sequence(), 1);
    assert_eq!(read_all(&mut group).await, Err(Error::BoundsExceeded));

    // Only that group is refused: the next one is delivered.
    let mut stream = upstream.group(2).await;
    stream.write_chunk(frame(b"after")).await.unwrap();
    stream.finish().unwrap();
    let mut group = within("group 2", track.next_group())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.sequence(), 2);
    assert_eq!(read_all(&mut group).await, Ok(vec![Bytes::from("after")]));
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_empty_frames_hits_the_group_size_cap() {
    const FITS: usize = (MAX_GROUP_SIZE / FRAME_OVERHEAD) as usize;
    let (upstream, mut track) = Upstream::start(capped(), Track::new(path(&["empty"]))).await;

    // Each empty FRAME is one byte on the wire (size 0) but costs FRAME_OVERHEAD: 1,024 fit.
    let mut stream = upstream.group(0).await;
    stream.write_all(&vec![0u8; FITS]).await.unwrap();
    stream.finish().unwrap();
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(read_all(&mut group).await.map(|f| f.len()), Ok(FITS));

    // One more is too many.
    let mut stream = upstream.group(1).await;
    stream.write_all(&vec![0u8; FITS + 1]).await.unwrap();
    assert_eq!(
        within("STOP_SENDING", stream.stopped()).await,
        Ok(Some(Error::BoundsExceeded.code()))
    );
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(read_all(&mut group).await, Err(Error::BoundsExceeded));
}

#[tokio::test(start_paused = true)]
async fn a_group_that_left_the_cache_is_stopped_at_once() {
    let options = SessionOptions {
        cache: CacheConfig {
            max_groups: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let (upstream, mut track) = Upstream::start(options, Track::new(path(&["cache"]))).await;

    // Group 5 is the latest: cached, and delivered.
    let mut five = upstream.group(5).await;
    five.write_chunk(frame(b"five")).await.unwrap();
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(group.sequence(), 5);
    assert_eq!(group.read_frame().await, Ok(Some(Bytes::from("five"))));

    // Group 3 is older: with room for one group, it is evicted as soon as it is created, and
    // stopped with Cancel before it sends a frame.
    let mut three = upstream.group(3).await;
    assert_eq!(
        within("STOP_SENDING", three.stopped()).await,
        Ok(Some(Error::Cancel.code()))
    );
    assert_eq!(Error::Cancel.code(), 0);

    // Group 5 goes on.
    five.write_chunk(frame(b"more")).await.unwrap();
    five.finish().unwrap();
    assert_eq!(
        within("group 5", read_all(&mut group)).await,
        Ok(vec![Bytes::from("more")])
    );
    assert!(five.stopped().await.unwrap().is_none(), "read to its FIN");
}

#[tokio::test(start_paused = true)]
async fn a_group_evicted_mid_frame_is_stopped_at_once() {
    let options = SessionOptions {
        cache: CacheConfig {
            max_groups: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let (upstream, mut track) = Upstream::start(options, Track::new(path(&["evicted"]))).await;

    // Group 0 declares a 1000-byte frame and sends 100 bytes of it.
    let mut zero = upstream.group(0).await;
    let mut partial = BytesMut::from(&[0x43, 0xe8][..]);
    partial.extend_from_slice(&[1u8; 100]);
    zero.write_chunk(partial.freeze()).await.unwrap();
    let mut group = track.next_group().await.unwrap().unwrap();
    let mut frame_zero = group.next_frame().await.unwrap().expect("the frame");
    assert_eq!(frame_zero.size(), 1000);
    assert_eq!(
        frame_zero.read().await.map(|c| c.map(|c| c.len())),
        Ok(Some(100))
    );

    // Group 1 evicts it: its stream is stopped mid-frame, without waiting for more bytes, and
    // its consumers learn why.
    let mut one = upstream.group(1).await;
    one.write_chunk(frame(b"one")).await.unwrap();
    assert_eq!(
        within("STOP_SENDING", zero.stopped()).await,
        Ok(Some(Error::Cancel.code()))
    );
    assert_eq!(
        within("the frame", frame_zero.read()).await,
        Err(Error::Cancel)
    );

    // Group 1 is delivered.
    one.finish().unwrap();
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(group.sequence(), 1);
    assert_eq!(read_all(&mut group).await, Ok(vec![Bytes::from("one")]));
}

#[tokio::test(start_paused = true)]
async fn a_frame_over_max_frame_size_is_refused_at_its_header() {
    let options = SessionOptions {
        max_frame_size: 1000,
        ..Default::default()
    };
    let (upstream, mut track) = Upstream::start(options, Track::new(path(&["huge"]))).await;
    // A FRAME header declaring 50 MB (a 4-byte varint), and no payload yet.
    let mut stream = upstream.group(0).await;
    let size: u32 = 50_000_000 | 0x8000_0000;
    stream.write_all(&size.to_be_bytes()).await.unwrap();
    assert_eq!(
        within("STOP_SENDING", stream.stopped()).await,
        Ok(Some(Error::BoundsExceeded.code()))
    );
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(read_all(&mut group).await, Err(Error::BoundsExceeded));
    // Exactly at the limit is fine.
    let mut stream = upstream.group(1).await;
    stream.write_chunk(frame(&[5u8; 1000])).await.unwrap();
    stream.finish().unwrap();
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(read_all(&mut group).await.map(|f| f[0].len()), Ok(1000));
}

#[tokio::test(start_paused = true)]
async fn the_receive_budget_stops_the_group_that_would_exceed_it() {
    const BUDGET: u64 = 10_000;
    let options = SessionOptions {
        max_recv_bytes: BUDGET,
        ..Default::default()
    };
    let (upstream, mut track) = Upstream::start(options, Track::new(path(&["budget"]))).await;
    // Two groups each declare an 8000-byte frame (0x5f40) and send 6000 bytes of it.
    let mut first = BytesMut::from(&[0x5f, 0x40][..]);
    first.extend_from_slice(&[1u8; 6000]);
    let mut zero = upstream.group(0).await;
    zero.write_chunk(first.freeze()).await.unwrap();
    settle().await;
    let mut second = BytesMut::from(&[0x5f, 0x40][..]);
    second.extend_from_slice(&[2u8; 6000]);
    let mut one = upstream.group(1).await;
    one.write_chunk(second.freeze()).await.unwrap();

    // The second would take the connection to 12,000 unfinished bytes: it is stopped.
    assert_eq!(
        within("STOP_SENDING", one.stopped()).await,
        Ok(Some(Error::BoundsExceeded.code()))
    );
    // The first completes, and gives its bytes back to the budget when it does.
    zero.write_chunk(Bytes::from(vec![1u8; 2000]))
        .await
        .unwrap();
    zero.finish().unwrap();
    let mut groups = Vec::new();
    for _ in 0..2 {
        groups.push(track.next_group().await.unwrap().unwrap());
    }
    groups.sort_by_key(GroupConsumer::sequence);
    assert_eq!(read_all(&mut groups[0]).await.map(|f| f[0].len()), Ok(8000));
    assert_eq!(read_all(&mut groups[1]).await, Err(Error::BoundsExceeded));
    let mut two = upstream.group(2).await;
    two.write_chunk(frame(&[3u8; 9000])).await.unwrap();
    two.finish().unwrap();
    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(read_all(&mut group).await.map(|f| f[0].len()), Ok(9000));
}

#[tokio::test(start_paused = true)]
async fn a_reset_mid_frame_reaches_the_consumer_with_its_code() {
    let (upstream, mut track) =
        Upstream::start(SessionOptions::default(), Track::new(path(&["reset"]))).await;
    let mut stream = upstream.group(0).await;
    // FRAME of 100 bytes, of which 10 are sent.
    let mut partial = BytesMut::from(&[0x40, 0x64][..]);
    partial.extend_from_slice(&[9u8; 10]);
    stream.write_chunk(partial.freeze()).await.unwrap();

    let mut group = track.next_group().await.unwrap().unwrap();
    let mut whole = group.clone();
    let mut frame = group.next_frame().await.unwrap().expect("the frame");
    assert_eq!(frame.size(), 100);
    assert_eq!(frame.read().await, Ok(Some(Bytes::from(vec![9u8; 10]))));

    stream.reset(Error::Cancel.code());
    assert_eq!(within("the frame", frame.read()).await, Err(Error::Cancel));
    assert_eq!(
        within("the group", whole.read_frame()).await,
        Err(Error::Cancel)
    );
    assert_eq!(group.next_frame().await.err(), Some(Error::Cancel));
}

#[tokio::test(start_paused = true)]
async fn a_fin_mid_frame_is_wrong_size() {
    let (upstream, mut track) =
        Upstream::start(SessionOptions::default(), Track::new(path(&["short"]))).await;
    let mut stream = upstream.group(0).await;
    let mut partial = BytesMut::from(&[0x40, 0x64][..]);
    partial.extend_from_slice(&[9u8; 10]);
    stream.write_chunk(partial.freeze()).await.unwrap();
    stream.finish().unwrap();

    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(
        within("the group", group.read_frame()).await,
        Err(Error::WrongSize)
    );
}

#[tokio::test(start_paused = true)]
async fn a_frame_header_split_across_writes_is_decoded() {
    let (upstream, mut track) =
        Upstream::start(SessionOptions::default(), Track::new(path(&["split"]))).await;
    let mut stream = upstream.group(0).await;
    let payload: Vec<u8> = (0..100).collect();

    // The two-byte varint 100 (0x40 0x64), split: the first byte alone...
    stream.write_all(&[0x40]).await.unwrap();
    settle().await;
    // ...then the second with the payload and, in the same write, another FRAME.
    let mut rest = BytesMut::from(&[0x64][..]);
    rest.extend_from_slice(&payload);
    rest.extend_from_slice(&frame(b"abc"));
    stream.write_chunk(rest.freeze()).await.unwrap();
    stream.finish().unwrap();

    let mut group = track.next_group().await.unwrap().unwrap();
    assert_eq!(
        read_all(&mut group).await,
        Ok(vec![Bytes::from(payload), Bytes::from("abc")])
    );
}
