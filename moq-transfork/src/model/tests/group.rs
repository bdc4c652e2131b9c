use std::task::Poll;

use bytes::Bytes;

use super::{assert_pending, poll_with, ready, Counter};
use crate::model::{GroupProducer, Path, Track, TrackProducer};
use crate::Error;

fn group() -> (TrackProducer, GroupProducer) {
    let (track, _) = Track::new(Path::from_iter(["g"])).produce();
    let group = track.create_group(1).unwrap();
    (track, group)
}

#[test]
fn dropped_group_producer_finishes_cleanly_after_the_last_frame() {
    let (_track, mut producer) = group();
    let mut consumer = producer.subscribe();
    producer.write_frame(Bytes::from_static(b"x"));
    assert_eq!(producer.frame_count(), 1);
    assert_pending(consumer.closed());
    drop(producer);
    assert_eq!(ready(consumer.closed()), Ok(()));
    assert_eq!(
        ready(consumer.read_frame()),
        Ok(Some(Bytes::from_static(b"x")))
    );
    assert_eq!(consumer.frame_index(), 1);
    assert_eq!(ready(consumer.read_frame()), Ok(None));
}

#[test]
fn finish_is_a_clean_end() {
    let (_track, producer) = group();
    let mut consumer = producer.subscribe();
    producer.finish();
    assert!(ready(consumer.next_frame()).unwrap().is_none());
}

#[test]
fn close_with_error_reaches_every_consumer() {
    let (_track, mut producer) = group();
    let mut first = producer.subscribe();
    producer.write_frame(Bytes::from_static(b"x"));
    let mut second = first.clone();
    let mut frame = producer.create_frame(4);
    let mut frame_consumer = {
        let mut reader = producer.subscribe();
        ready(reader.next_frame()).unwrap();
        ready(reader.next_frame()).unwrap().unwrap()
    };
    frame.write(Bytes::from_static(b"ab")).unwrap();
    producer.close(Error::NotFound);
    assert_eq!(ready(first.next_frame()).err(), Some(Error::NotFound));
    assert_eq!(ready(second.read_frame()), Err(Error::NotFound));
    assert_eq!(ready(first.closed()), Err(Error::NotFound));
    assert_eq!(ready(frame_consumer.read_all()), Err(Error::NotFound));
    assert_eq!(frame.write(Bytes::from_static(b"cd")), Err(Error::NotFound));
}

#[test]
fn consumers_start_at_frame_zero_and_clones_keep_position() {
    let (_track, mut producer) = group();
    for n in 0..3u8 {
        producer.write_frame(Bytes::from(vec![n]));
    }
    let mut consumer = producer.subscribe();
    assert_eq!(ready(consumer.read_frame()).unwrap().unwrap()[..], [0]);
    let mut clone = consumer.clone();
    assert_eq!(clone.frame_index(), 1);
    assert_eq!(ready(clone.read_frame()).unwrap().unwrap()[..], [1]);
    assert_eq!(ready(consumer.read_frame()).unwrap().unwrap()[..], [1]);
    assert_eq!(producer.subscribe().frame_index(), 0);
    assert_eq!(consumer.sequence(), 1);
}

#[test]
fn read_frame_is_cancel_safe() {
    let (_track, mut producer) = group();
    let mut consumer = producer.subscribe();
    let mut frame = producer.create_frame(2);
    frame.write(Bytes::from_static(b"a")).unwrap();
    assert_pending(consumer.read_frame());
    assert_eq!(consumer.frame_index(), 0);
    frame.write(Bytes::from_static(b"b")).unwrap();
    // The frame the cancelled read_frame took is returned again.
    let mut whole = ready(consumer.next_frame()).unwrap().unwrap();
    assert_eq!(ready(whole.read_all()), Ok(Bytes::from_static(b"ab")));
}

#[test]
fn read_frame_of_one_chunk_does_not_copy() {
    let (_track, mut producer) = group();
    let payload = Bytes::from(vec![7; 1000]);
    producer.write_frame(payload.clone());
    let mut frame = producer.create_frame(1000);
    frame.write(payload.clone()).unwrap();
    let mut consumer = producer.subscribe();
    assert_eq!(
        ready(consumer.read_frame()).unwrap().unwrap().as_ptr(),
        payload.as_ptr()
    );
    assert_eq!(
        ready(consumer.read_frame()).unwrap().unwrap().as_ptr(),
        payload.as_ptr()
    );
}

#[test]
fn pending_consumer_is_woken_by_a_frame_and_by_the_end() {
    let (_track, mut producer) = group();
    let mut consumer = producer.subscribe();
    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| consumer.poll_next_frame(cx)).is_pending());
    producer.write_frame(Bytes::from_static(b"x"));
    assert_eq!(counter.count(), 1);
    assert!(matches!(
        poll_with(&waker, |cx| consumer.poll_next_frame(cx)),
        Poll::Ready(Ok(Some(_)))
    ));
    assert!(poll_with(&waker, |cx| consumer.poll_next_frame(cx)).is_pending());
    drop(producer);
    assert_eq!(counter.count(), 2);
    assert!(matches!(
        poll_with(&waker, |cx| consumer.poll_next_frame(cx)),
        Poll::Ready(Ok(None))
    ));
}
