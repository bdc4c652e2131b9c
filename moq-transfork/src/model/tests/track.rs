use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;

use super::{assert_pending, poll_with, ready, Counter};
use crate::model::{CacheBudget, CacheConfig, GroupConsumer, Path, Track, TrackConsumer};
use crate::Error;

fn track() -> Track {
    Track::new(Path::from_iter(["test", "track"]))
}

#[track_caller]
fn next_sequence(consumer: &mut TrackConsumer) -> u64 {
    ready(consumer.next_group())
        .expect("no error")
        .expect("a group")
        .sequence()
}

fn frames(group: &mut GroupConsumer) -> Vec<Bytes> {
    let mut frames = Vec::new();
    while let Some(frame) = ready(group.read_frame()).expect("no error") {
        frames.push(frame);
    }
    frames
}

#[test]
fn new_track_has_documented_defaults() {
    let info = track();
    assert_eq!(info.priority, 0);
    assert_eq!(info.group_order, crate::GroupOrder::Descending);
    assert_eq!(info.group_expires, Duration::ZERO);
    let info = info
        .with_priority(-3)
        .with_group_order(crate::GroupOrder::Ascending)
        .with_group_expires(Duration::from_secs(2));
    assert_eq!(info.priority, -3);
    let (producer, consumer) = info.clone().produce();
    assert_eq!(producer.info(), &info);
    assert_eq!(consumer.info(), &info);
}

#[test]
fn consumers_at_different_paces_share_every_frame_without_copies() {
    let (producer, mut fast) = track().produce();
    let mut slow = producer.subscribe();
    let mut group = producer.append_group().unwrap();
    let payload = Bytes::from_static(b"shared payload");
    group.write_frame(payload.clone());

    let mut fast_group = ready(fast.next_group()).unwrap().unwrap();
    let first = ready(fast_group.read_frame()).unwrap().unwrap();
    assert_eq!(first.as_ptr(), payload.as_ptr());

    group.write_frame(Bytes::from_static(b"second"));
    drop(group);
    let mut next = producer.append_group().unwrap();
    next.write_frame(Bytes::from_static(b"third"));
    drop(next);

    // The fast consumer read as things happened; the slow one reads everything now.
    assert_eq!(frames(&mut fast_group), vec![Bytes::from_static(b"second")]);
    assert_eq!(next_sequence(&mut fast), 1);

    let mut slow_group = ready(slow.next_group()).unwrap().unwrap();
    let slow_frames = frames(&mut slow_group);
    assert_eq!(slow_frames.len(), 2);
    assert_eq!(slow_frames[0].as_ptr(), payload.as_ptr());
    assert_eq!(next_sequence(&mut slow), 1);
    assert_pending(slow.next_group());
}

#[test]
fn late_consumer_starts_at_latest_group_from_frame_zero() {
    let (producer, _first) = track().produce();
    for sequence in 0..3 {
        let mut group = producer.create_group(sequence).unwrap();
        group.write_frame(Bytes::from(format!("frame {sequence}")));
    }
    let mut late = producer.subscribe();
    let mut group = ready(late.next_group()).unwrap().unwrap();
    assert_eq!(group.sequence(), 2);
    assert_eq!(frames(&mut group), vec![Bytes::from_static(b"frame 2")]);
    assert_pending(late.next_group());

    producer.append_group().unwrap();
    assert_eq!(next_sequence(&mut late), 3);
}

#[test]
fn groups_arrive_in_creation_order_even_out_of_sequence() {
    let (producer, mut consumer) = track().produce();
    let _five = producer.create_group(5).unwrap();
    let _three = producer.create_group(3).unwrap();
    let _six = producer.create_group(6).unwrap();
    assert_eq!(next_sequence(&mut consumer), 5);
    assert_eq!(next_sequence(&mut consumer), 3);
    assert_eq!(next_sequence(&mut consumer), 6);
    assert_eq!(producer.latest(), Some(6));
    assert_eq!(consumer.latest(), Some(6));
    // append_group continues after the highest sequence.
    assert_eq!(producer.append_group().unwrap().sequence(), 7);
}

#[test]
fn clone_keeps_the_position() {
    let (producer, mut consumer) = track().produce();
    producer.append_group().unwrap();
    producer.append_group().unwrap();
    assert_eq!(next_sequence(&mut consumer), 0);
    let mut clone = consumer.clone();
    assert_eq!(next_sequence(&mut clone), 1);
    assert_eq!(next_sequence(&mut consumer), 1);
}

#[test]
fn rejects_duplicate_and_out_of_bounds_sequences() {
    let (producer, _consumer) = track().produce_with(CacheConfig {
        max_groups: 1,
        ..CacheConfig::default()
    });
    producer.create_group(4).unwrap();
    producer.create_group(5).unwrap(); // evicts 4
    assert_eq!(producer.create_group(5).err(), Some(Error::Duplicate));
    assert_eq!(producer.create_group(4).err(), Some(Error::Duplicate));
    assert_eq!(
        producer.create_group(crate::model::MAX_SEQUENCE + 1).err(),
        Some(Error::BoundsExceeded)
    );
    producer.create_group(crate::model::MAX_SEQUENCE).unwrap();
    assert_eq!(producer.append_group().err(), Some(Error::BoundsExceeded));
}

#[test]
fn cache_evicts_lowest_sequences_beyond_max_groups() {
    let (producer, consumer) = track().produce_with(CacheConfig {
        max_groups: 3,
        ..CacheConfig::default()
    });
    for sequence in 1..6 {
        producer.create_group(sequence).unwrap();
    }
    assert_eq!(producer.cached_groups(), 3);
    assert!(consumer.get_group(2).is_none());
    for sequence in 3..6 {
        assert_eq!(consumer.get_group(sequence).unwrap().sequence(), sequence);
    }
    // A late group older than every cached one is evicted at once.
    producer.create_group(0).unwrap();
    assert!(consumer.get_group(0).is_none());
    assert_eq!(producer.cached_groups(), 3);
}

#[test]
fn cache_evicts_by_bytes_but_keeps_the_latest() {
    let (producer, consumer) = track().produce_with(CacheConfig {
        max_groups: 100,
        max_bytes: 10,
        budget: None,
    });
    for _ in 0..3 {
        producer
            .append_group()
            .unwrap()
            .write_frame(Bytes::from_static(b"1234"));
    }
    // Checked at creation: 4 + 4 fit, the third group is still empty when created.
    assert_eq!(producer.cached_groups(), 3);
    assert_eq!(producer.cached_bytes(), 12);
    producer
        .append_group()
        .unwrap()
        .write_frame(Bytes::from(vec![0; 64]));
    // Creating group 3 evicted group 0 (12 > 10).
    assert_eq!(producer.cached_groups(), 3);
    assert_eq!(producer.cached_bytes(), 72);
    assert!(consumer.get_group(0).is_none());
    producer.append_group().unwrap();
    // Every full group goes; the new, empty latest stays.
    assert_eq!(producer.cached_groups(), 1);
    assert_eq!(producer.cached_bytes(), 0);
    assert!(consumer.get_group(4).is_some());

    // Alone, the latest group may exceed the limit.
    let mut big = producer.create_group(10).unwrap();
    big.write_frame(Bytes::from(vec![0; 100]));
    producer.create_group(7).unwrap();
    assert_eq!(producer.cached_bytes(), 100);
    assert_eq!(producer.cached_groups(), 1);
    assert!(consumer.get_group(10).is_some());
}

#[test]
fn chunked_frames_are_counted_as_written() {
    let (producer, _consumer) = track().produce();
    let mut group = producer.append_group().unwrap();
    let mut frame = group.create_frame(6);
    assert_eq!(producer.cached_bytes(), 0);
    frame.write(Bytes::from_static(b"abc")).unwrap();
    assert_eq!(producer.cached_bytes(), 3);
    frame.write(Bytes::from_static(b"def")).unwrap();
    assert_eq!(producer.cached_bytes(), 6);
}

#[test]
fn shared_budget_evicts_down_to_the_latest() {
    let budget = Arc::new(CacheBudget::new(10));
    let config = CacheConfig {
        budget: Some(budget.clone()),
        ..CacheConfig::default()
    };
    let four = Bytes::from_static(b"1234");
    let (a, _ca) = track().produce_with(config.clone());
    let (b, _cb) = track().produce_with(config);
    a.append_group().unwrap().write_frame(four.clone());
    a.append_group().unwrap().write_frame(four.clone());
    b.append_group().unwrap().write_frame(four.clone());
    assert_eq!(budget.used(), 12);
    assert!(budget.is_exceeded());

    // Over budget: the creating track keeps only its new latest group.
    let mut b1 = b.append_group().unwrap();
    assert_eq!(b.cached_groups(), 1);
    assert_eq!(budget.used(), 8);
    b1.write_frame(four.clone());
    assert_eq!(
        a.cached_groups(),
        2,
        "other tracks evict on their own next group"
    );
    a.append_group()
        .unwrap()
        .write_frame(Bytes::from_static(b"12"));
    assert_eq!(a.cached_groups(), 1);
    assert_eq!(budget.used(), 6);

    drop((a, _ca));
    assert_eq!(budget.used(), 4, "a dropped track gives its bytes back");
    drop((b, _cb));
    assert_eq!(
        budget.used(),
        0,
        "an open group no longer counts once its track is gone"
    );
    b1.write_frame(four);
    assert_eq!(budget.used(), 0);
}

#[test]
fn slow_consumer_skips_evicted_groups() {
    let (producer, mut consumer) = track().produce_with(CacheConfig {
        max_groups: 2,
        ..CacheConfig::default()
    });
    for _ in 0..6 {
        producer.append_group().unwrap();
    }
    assert_eq!(next_sequence(&mut consumer), 4);
    assert_eq!(next_sequence(&mut consumer), 5);
    assert_pending(consumer.next_group());
}

#[test]
fn expired_groups_are_evicted_at_the_callers_time() {
    let info = track().with_group_expires(Duration::from_secs(2));
    let (producer, mut consumer) = info.produce();
    // Far from the real clock: the model reads none.
    let start = Instant::now() + Duration::from_secs(3600);
    let at = |ms: u64| start + Duration::from_millis(ms);
    producer.create_group_at(0, at(0)).unwrap();
    producer.create_group_at(1, at(1000)).unwrap();
    assert_eq!(consumer.get_group(1).unwrap().created(), at(1000));
    // Group 0 is exactly 2 s old: not expired yet.
    producer.expire(at(2000));
    assert!(consumer.get_group(0).is_some());

    producer.expire(at(2001));
    assert!(consumer.get_group(0).is_none());
    assert_eq!(producer.cached_groups(), 1);
    assert_eq!(next_sequence(&mut consumer), 1);

    // A creation evicts the groups expired at its time.
    producer.create_group_at(2, at(3001)).unwrap();
    assert!(consumer.get_group(1).is_none());
    assert_eq!(producer.cached_groups(), 1);

    // Nothing expires until a caller says what time it is, then the latest goes too.
    assert_eq!(next_sequence(&mut consumer), 2);
    producer.expire(at(6000));
    assert!(consumer.get_group(2).is_none());
    assert_pending(consumer.next_group());
    assert_eq!(producer.cached_groups(), 0);
    assert_eq!(producer.latest(), Some(2));
}

#[test]
fn close_reaches_track_group_and_frame_consumers() {
    let (producer, mut consumer) = track().produce_with(CacheConfig {
        max_groups: 1,
        ..CacheConfig::default()
    });
    let mut evicted = producer.append_group().unwrap();
    let mut frame = evicted.create_frame(10);
    frame.write(Bytes::from_static(b"abc")).unwrap();
    let mut evicted_consumer = ready(consumer.next_group()).unwrap().unwrap();
    let mut frame_consumer = ready(evicted_consumer.next_frame()).unwrap().unwrap();
    let _latest = producer.append_group().unwrap();
    let mut latest_consumer = ready(consumer.next_group()).unwrap().unwrap();
    let finished = producer.append_group().unwrap();
    drop(finished);
    let mut other = consumer.clone();

    producer.close(Error::App(3));
    assert!(producer.is_closed());
    assert_eq!(ready(consumer.next_group()).err(), Some(Error::App(3)));
    assert_eq!(ready(other.next_group()).err(), Some(Error::App(3)));
    assert_eq!(ready(consumer.closed()), Err(Error::App(3)));
    assert_eq!(
        ready(evicted_consumer.next_frame()).err(),
        Some(Error::App(3))
    );
    assert_eq!(
        ready(latest_consumer.next_frame()).err(),
        Some(Error::App(3))
    );
    assert_eq!(ready(frame_consumer.read_all()), Err(Error::App(3)));
    assert!(evicted.is_closed());
    assert_eq!(frame.write(Bytes::from_static(b"d")), Err(Error::App(3)));
    assert_eq!(producer.append_group().err(), Some(Error::App(3)));
    assert_eq!(producer.cached_groups(), 0);
}

#[test]
fn pending_consumer_is_woken_by_new_group_and_close() {
    let (producer, mut consumer) = track().produce();
    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| consumer.poll_next_group(cx)).is_pending());
    producer.append_group().unwrap();
    assert_eq!(counter.count(), 1);
    assert!(matches!(
        poll_with(&waker, |cx| consumer.poll_next_group(cx)),
        Poll::Ready(Ok(Some(_)))
    ));
    assert!(poll_with(&waker, |cx| consumer.poll_next_group(cx)).is_pending());
    producer.close(Error::Cancel);
    assert_eq!(counter.count(), 2);
}

#[test]
fn dropped_producer_ends_cleanly_after_remaining_groups() {
    let (producer, mut consumer) = track().produce();
    let clone = producer.clone();
    let open = producer.append_group().unwrap();
    producer.append_group().unwrap();
    drop(producer);
    assert_pending(consumer.closed());
    drop(clone);
    assert_eq!(ready(consumer.closed()), Ok(()));
    assert_eq!(next_sequence(&mut consumer), 0);
    assert_eq!(next_sequence(&mut consumer), 1);
    assert!(ready(consumer.next_group()).unwrap().is_none());
    // The open group is unaffected and finishes on its own.
    assert!(!open.is_closed());
}

#[test]
fn unused_resolves_when_the_last_consumer_drops() {
    let (producer, consumer) = track().produce();
    let clone = consumer.clone();
    assert_eq!(producer.consumer_count(), 2);
    let (counter, waker) = Counter::new();
    let mut unused = Box::pin(producer.unused());
    assert!(poll_with(&waker, |cx| unused.as_mut().poll(cx)).is_pending());
    drop(consumer);
    assert_eq!(counter.count(), 0);
    assert!(poll_with(&waker, |cx| unused.as_mut().poll(cx)).is_pending());
    drop(clone);
    assert_eq!(counter.count(), 1);
    assert!(poll_with(&waker, |cx| unused.as_mut().poll(cx)).is_ready());
    drop(unused);
    assert_eq!(producer.consumer_count(), 0);
    ready(producer.unused());

    let again = producer.subscribe();
    assert_pending(producer.unused());
    drop(again);
    ready(producer.unused());
}

#[test]
fn get_group_reads_from_frame_zero() {
    let (producer, consumer) = track().produce();
    let mut group = producer.create_group(9).unwrap();
    group.write_frame(Bytes::from_static(b"a"));
    group.write_frame(Bytes::from_static(b"b"));
    drop(group);
    let mut cached = consumer.get_group(9).unwrap();
    assert_eq!(cached.frame_index(), 0);
    assert_eq!(cached.frame_count(), 2);
    assert_eq!(frames(&mut cached).len(), 2);
    assert!(consumer.get_group(8).is_none());
}

#[test]
fn cancelled_waits_release_their_slots() {
    let (producer, mut consumer) = track().produce();
    for _ in 0..100 {
        assert_pending(consumer.closed());
        assert_pending(consumer.next_group());
        let mut other = consumer.clone();
        assert_pending(other.next_group());
        assert_pending(producer.unused());
    }
    // Only `consumer`'s pending next_group keeps a slot.
    assert_eq!(producer.waiter_slots(), 1);
    drop(consumer);
    assert_eq!(producer.waiter_slots(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_lose_no_wakeups() {
    const GROUPS: u64 = 300;
    const FRAMES: usize = 5;
    let (producer, consumer) = track().produce_with(CacheConfig {
        max_groups: GROUPS as usize,
        ..CacheConfig::default()
    });
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut consumer = consumer.clone();
            tokio::spawn(async move {
                let mut expected = 0;
                while let Some(mut group) = consumer.next_group().await.expect("no error") {
                    assert_eq!(group.sequence(), expected);
                    let mut frames = 0;
                    while let Some(frame) = group.read_frame().await.expect("no error") {
                        assert_eq!(frame.len(), 3);
                        frames += 1;
                    }
                    assert_eq!(frames, FRAMES);
                    expected += 1;
                }
                expected
            })
        })
        .collect();
    drop(consumer);
    let writer = tokio::task::spawn_blocking(move || {
        for _ in 0..GROUPS {
            let mut group = producer.append_group().expect("open track");
            for _ in 0..FRAMES {
                let mut frame = group.create_frame(3);
                frame.write(Bytes::from_static(b"ab")).expect("fits");
                std::thread::yield_now();
                frame.write(Bytes::from_static(b"c")).expect("fits");
            }
        }
    });
    let all = async {
        writer.await.expect("writer");
        for reader in readers {
            assert_eq!(reader.await.expect("reader"), GROUPS);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .expect("no reader stalled");
}
