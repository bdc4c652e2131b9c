use bytes::Bytes;

use super::{assert_pending, poll_with, ready, Counter};
use crate::model::{GroupProducer, Path, Track, TrackProducer};
use crate::Error;

fn group() -> (TrackProducer, GroupProducer) {
    let (track, _) = Track::new(Path::from_iter(["f"])).produce();
    let group = track.create_group(0).unwrap();
    (track, group)
}

#[test]
fn chunked_frame_reads_chunk_by_chunk() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let mut frame = group.create_frame(5);
    assert_eq!(frame.size(), 5);
    let mut consumer = ready(reader.next_frame()).unwrap().unwrap();
    let mut whole = consumer.clone();
    assert_eq!(consumer.size(), 5);
    assert_pending(consumer.read());

    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| consumer.poll_read(cx)).is_pending());
    let chunk = Bytes::from_static(b"hel");
    frame.write(chunk.clone()).unwrap();
    assert_eq!(counter.count(), 1);
    assert_eq!(frame.remaining(), 2);
    assert_eq!(
        ready(consumer.read()).unwrap().unwrap().as_ptr(),
        chunk.as_ptr()
    );
    assert_pending(whole.read_all());
    frame.write(Bytes::new()).unwrap();
    frame.write(Bytes::from_static(b"lo")).unwrap();
    assert_eq!(frame.remaining(), 0);
    assert_eq!(ready(consumer.read()), Ok(Some(Bytes::from_static(b"lo"))));
    assert_eq!(ready(consumer.read()), Ok(None));
    assert_eq!(ready(whole.read_all()), Ok(Bytes::from_static(b"hello")));
    assert_eq!(ready(whole.read_all()), Ok(Bytes::new()));
}

#[test]
fn write_beyond_size_is_wrong_size() {
    let (_track, mut group) = group();
    let mut frame = group.create_frame(3);
    assert_eq!(
        frame.write(Bytes::from_static(b"abcd")),
        Err(Error::WrongSize)
    );
    frame.write(Bytes::from_static(b"ab")).unwrap();
    assert_eq!(
        frame.write(Bytes::from_static(b"cd")),
        Err(Error::WrongSize)
    );
    frame.write(Bytes::from_static(b"c")).unwrap();
    drop(frame);
    assert!(
        !group.is_closed(),
        "a complete frame closes nothing when dropped"
    );
}

#[test]
fn dropping_an_unfinished_frame_is_wrong_size_for_frame_and_group() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let mut frame = group.create_frame(3);
    frame.write(Bytes::from_static(b"ab")).unwrap();
    let mut consumer = ready(reader.next_frame()).unwrap().unwrap();
    assert_eq!(ready(consumer.read()), Ok(Some(Bytes::from_static(b"ab"))));
    drop(frame);
    assert_eq!(ready(consumer.read()), Err(Error::WrongSize));
    assert_eq!(ready(reader.next_frame()).err(), Some(Error::WrongSize));
    assert!(group.is_closed());
}

#[test]
fn closing_a_frame_closes_its_group() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let frame = group.create_frame(3);
    let mut consumer = ready(reader.next_frame()).unwrap().unwrap();
    frame.close(Error::App(1));
    assert_eq!(ready(consumer.read_all()), Err(Error::App(1)));
    assert_eq!(ready(reader.closed()), Err(Error::App(1)));
}

#[test]
fn empty_frame_is_complete_at_once() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    drop(group.create_frame(0));
    group.write_frame(Bytes::new());
    assert!(!group.is_closed());
    assert_eq!(ready(reader.read_frame()), Ok(Some(Bytes::new())));
    assert_eq!(ready(reader.read_frame()), Ok(Some(Bytes::new())));
}

#[test]
fn read_chunks_takes_every_ready_chunk_at_once() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let mut frame = group.create_frame(6);
    let mut consumer = ready(reader.next_frame()).unwrap().unwrap();
    let mut batch = Vec::new();
    assert_pending(consumer.read_chunks(&mut batch));

    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| consumer.poll_read_chunks(cx, &mut batch)).is_pending());
    let first = Bytes::from_static(b"ab");
    frame.write(first.clone()).unwrap();
    frame.write(Bytes::from_static(b"cd")).unwrap();
    assert_eq!(counter.count(), 1);
    assert_eq!(ready(consumer.read_chunks(&mut batch)), Ok(2));
    assert_eq!(
        batch,
        [Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]
    );
    assert_eq!(batch[0].as_ptr(), first.as_ptr());
    assert_pending(consumer.read_chunks(&mut batch));
    frame.write(Bytes::from_static(b"ef")).unwrap();
    // Appended after what the caller kept.
    assert_eq!(ready(consumer.read_chunks(&mut batch)), Ok(1));
    assert_eq!(batch.len(), 3);
    assert_eq!(ready(consumer.read_chunks(&mut batch)), Ok(0));
}

#[test]
fn read_chunks_reports_an_abort() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let frame = group.create_frame(4);
    let mut consumer = ready(reader.next_frame()).unwrap().unwrap();
    frame.close(Error::NotFound);
    assert_eq!(
        ready(consumer.read_chunks(&mut Vec::new())),
        Err(Error::NotFound)
    );
}

#[test]
fn write_chunks_appends_a_batch_with_one_wake() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let mut frame = group.create_frame(5);
    let mut consumer = ready(reader.next_frame()).unwrap().unwrap();
    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| consumer.poll_read(cx)).is_pending());
    let first = Bytes::from_static(b"he");
    let mut batch = vec![first.clone(), Bytes::new(), Bytes::from_static(b"l")];
    frame.write_chunks(&mut batch).unwrap();
    assert!(batch.is_empty());
    assert_eq!(counter.count(), 1);
    assert_eq!(frame.remaining(), 2);
    // The empty chunk is not kept; the others are the same allocations.
    assert_eq!(
        ready(consumer.read()).unwrap().unwrap().as_ptr(),
        first.as_ptr()
    );
    assert_eq!(ready(consumer.read()), Ok(Some(Bytes::from_static(b"l"))));
    // Past the size: nothing is written.
    let mut too_much = vec![Bytes::from_static(b"lo!")];
    assert_eq!(frame.write_chunks(&mut too_much), Err(Error::WrongSize));
    assert_eq!(frame.remaining(), 2);
    frame
        .write_chunks(&mut vec![Bytes::from_static(b"lo")])
        .unwrap();
    assert_eq!(ready(consumer.read()), Ok(Some(Bytes::from_static(b"lo"))));
    assert_eq!(ready(consumer.read()), Ok(None));
}

#[test]
fn a_frame_created_with_its_first_chunks_wakes_its_reader_once() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| reader.poll_next_frame(cx)).is_pending());
    let first = Bytes::from_static(b"he");
    let mut batch = vec![first.clone(), Bytes::new(), Bytes::from_static(b"l")];
    let mut frame = group.create_frame_with(5, &mut batch).unwrap();
    assert!(batch.is_empty());
    assert_eq!(counter.count(), 1);
    assert_eq!(frame.remaining(), 2);
    // The reader finds the frame with its chunks: no second wake-up to wait for.
    let mut consumer = ready(reader.next_frame()).unwrap().unwrap();
    let mut chunks = Vec::new();
    assert_eq!(ready(consumer.read_chunks(&mut chunks)), Ok(2));
    assert_eq!(chunks[0].as_ptr(), first.as_ptr());
    frame.write(Bytes::from_static(b"lo")).unwrap();
    assert_eq!(ready(consumer.read()), Ok(Some(Bytes::from_static(b"lo"))));
    assert_eq!(ready(consumer.read()), Ok(None));
}

#[test]
fn a_frame_created_whole_needs_no_more_writes() {
    let (_track, mut group) = group();
    let mut reader = group.subscribe();
    let frame = group
        .create_frame_with(3, &mut vec![Bytes::from_static(b"abc")])
        .unwrap();
    assert_eq!(frame.remaining(), 0);
    drop(frame);
    assert!(!group.is_closed(), "a complete frame closes nothing");
    drop(group.create_frame_with(0, &mut Vec::new()).unwrap());
    assert_eq!(
        ready(reader.read_frame()),
        Ok(Some(Bytes::from_static(b"abc")))
    );
    assert_eq!(ready(reader.read_frame()), Ok(Some(Bytes::new())));
}

#[test]
fn a_frame_created_with_too_much_or_in_a_closed_group_is_refused() {
    let (track, mut group) = group();
    let mut reader = group.subscribe();
    let mut batch = vec![Bytes::from_static(b"abcd")];
    assert_eq!(
        group.create_frame_with(3, &mut batch).err(),
        Some(Error::WrongSize)
    );
    assert!(batch.is_empty(), "the batch is left empty for reuse");
    assert_eq!(group.frame_count(), 0, "nothing appended");

    track.close(Error::App(7));
    assert_eq!(
        group
            .create_frame_with(1, &mut vec![Bytes::from_static(b"x")])
            .err(),
        Some(Error::App(7))
    );
    assert_eq!(group.frame_count(), 0, "nothing appended");
    assert_eq!(ready(reader.read_frame()), Err(Error::App(7)));
}
