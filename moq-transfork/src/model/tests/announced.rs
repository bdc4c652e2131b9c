use super::{assert_pending, poll_with, ready, Counter};
use crate::model::{Announced, AnnouncedProducer, Path};

fn path(parts: &[&str]) -> Path {
    Path::from_iter(parts.iter().copied())
}

fn active(parts: &[&str]) -> Option<Announced> {
    Some(Announced::Active(path(parts)))
}

fn ended(parts: &[&str]) -> Option<Announced> {
    Some(Announced::Ended(path(parts)))
}

#[test]
fn announce_and_unannounce_report_changes() {
    let producer = AnnouncedProducer::new();
    assert!(producer.announce(path(&["a"])));
    assert!(!producer.announce(path(&["a"])));
    assert!(producer.is_active(&path(&["a"])));
    assert!(producer.unannounce(&path(&["a"])));
    assert!(!producer.unannounce(&path(&["a"])));
    assert!(producer.active().is_empty());
}

#[test]
fn prefix_filters_on_whole_parts_and_yields_full_paths() {
    let producer = AnnouncedProducer::default();
    let mut consumer = producer.subscribe_prefix(path(&["live"]));
    assert_eq!(consumer.prefix(), &path(&["live"]));
    producer.announce(path(&["live", "a"]));
    producer.announce(path(&["lively"]));
    producer.announce(path(&["live"]));
    producer.announce(path(&["other", "live"]));
    assert_eq!(ready(consumer.next()), active(&["live"]));
    assert_eq!(ready(consumer.next()), active(&["live", "a"]));
    assert_pending(consumer.next());
}

#[test]
fn late_consumer_sees_every_active_path_sorted() {
    let producer = AnnouncedProducer::new();
    for name in ["c", "a", "b"] {
        producer.announce(path(&[name]));
    }
    producer.unannounce(&path(&["b"]));
    let mut consumer = producer.subscribe();
    assert_eq!(ready(consumer.next()), active(&["a"]));
    assert_eq!(ready(consumer.next()), active(&["c"]));
    assert_pending(consumer.next());
    assert_eq!(producer.active(), vec![path(&["a"]), path(&["c"])]);
}

#[test]
fn announce_then_unannounce_before_reading_yields_nothing() {
    let producer = AnnouncedProducer::new();
    let mut consumer = producer.subscribe();
    producer.announce(path(&["a"]));
    producer.unannounce(&path(&["a"]));
    assert_eq!(consumer.pending(), 0);
    assert_pending(consumer.next());
}

#[test]
fn reannounce_of_a_seen_path_yields_ended_then_active() {
    let producer = AnnouncedProducer::new();
    let mut consumer = producer.subscribe();
    producer.announce(path(&["a"]));
    assert_eq!(ready(consumer.next()), active(&["a"]));
    producer.unannounce(&path(&["a"]));
    producer.announce(path(&["a"]));
    assert_eq!(ready(consumer.next()), ended(&["a"]));
    assert_eq!(ready(consumer.next()), active(&["a"]));
    assert_pending(consumer.next());
}

#[test]
fn removals_come_before_additions() {
    let producer = AnnouncedProducer::new();
    let mut consumer = producer.subscribe();
    producer.announce(path(&["z"]));
    assert_eq!(ready(consumer.next()), active(&["z"]));
    producer.announce(path(&["a"]));
    producer.unannounce(&path(&["z"]));
    assert_eq!(ready(consumer.next()), ended(&["z"]));
    assert_eq!(ready(consumer.next()), active(&["a"]));
}

#[test]
fn producer_drop_ends_every_seen_path_then_none() {
    let producer = AnnouncedProducer::new();
    let clone = producer.clone();
    let mut consumer = producer.subscribe();
    let mut other = producer.subscribe_prefix(path(&["nothing"]));
    producer.announce(path(&["a"]));
    producer.announce(path(&["b"]));
    assert_eq!(ready(consumer.next()), active(&["a"]));
    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| other.poll_next(cx)).is_pending());
    drop(producer);
    assert_eq!(counter.count(), 0);
    drop(clone);
    assert_eq!(
        counter.count(),
        1,
        "a consumer with nothing to end still wakes"
    );
    // "b" was never reported active, so it is never reported ended.
    assert_eq!(ready(consumer.next()), ended(&["a"]));
    assert_eq!(ready(consumer.next()), None);
    assert_eq!(ready(other.next()), None);
}

#[test]
fn pending_changes_are_bounded_by_distinct_paths() {
    let producer = AnnouncedProducer::new();
    let mut reader = producer.subscribe();
    producer.announce(path(&["seen"]));
    assert_eq!(ready(reader.next()), active(&["seen"]));
    let idle = producer.subscribe();
    for _ in 0..1000 {
        for name in ["a", "b", "c", "seen"] {
            producer.unannounce(&path(&[name]));
            producer.announce(path(&[name]));
        }
    }
    // A consumer that has not started its first pass records nothing: it will read the
    // active set itself.
    assert_eq!(idle.pending(), 0);
    // "seen" needs Ended then Active; the others only Active.
    assert_eq!(reader.pending(), 5);
    let mut idle = idle;
    for name in ["a", "b", "c", "seen"] {
        assert_eq!(ready(idle.next()), active(&[name]));
    }
    assert_pending(idle.next());
}

#[test]
fn changes_during_the_first_pass_are_reported_once() {
    let producer = AnnouncedProducer::new();
    for name in ["a", "c", "e"] {
        producer.announce(path(&[name]));
    }
    let mut consumer = producer.subscribe();
    assert_eq!(ready(consumer.next()), active(&["a"]));
    // Behind the pass: recorded. Ahead of it: read from the set when the pass gets there.
    producer.unannounce(&path(&["a"]));
    producer.announce(path(&["b"]));
    producer.unannounce(&path(&["e"]));
    producer.announce(path(&["d"]));
    producer.unannounce(&path(&["c"]));
    producer.announce(path(&["c"]));
    assert_eq!(consumer.pending(), 1, "only the end of a");
    assert_eq!(ready(consumer.next()), active(&["b"]));
    assert_eq!(ready(consumer.next()), active(&["c"]));
    assert_eq!(ready(consumer.next()), active(&["d"]));
    assert_eq!(ready(consumer.next()), ended(&["a"]));
    assert_pending(consumer.next());
}

#[test]
fn a_prefixed_first_pass_reads_only_its_range() {
    let producer = AnnouncedProducer::new();
    for parts in [
        &["a"][..],
        &["b"],
        &["b", "x"],
        &["b", "y", "z"],
        &["bb"],
        &["c"],
    ] {
        producer.announce(path(parts));
    }
    let mut consumer = producer.subscribe_prefix(path(&["b"]));
    assert_eq!(ready(consumer.next()), active(&["b"]));
    assert_eq!(ready(consumer.next()), active(&["b", "x"]));
    assert_eq!(ready(consumer.next()), active(&["b", "y", "z"]));
    assert_pending(consumer.next());
    producer.announce(path(&["b", "a"]));
    assert_eq!(ready(consumer.next()), active(&["b", "a"]));
}

#[test]
fn producer_drop_during_the_first_pass_ends_only_what_was_reported() {
    let producer = AnnouncedProducer::new();
    for name in ["a", "b", "c"] {
        producer.announce(path(&[name]));
    }
    let mut consumer = producer.subscribe();
    assert_eq!(ready(consumer.next()), active(&["a"]));
    drop(producer);
    assert_eq!(ready(consumer.next()), ended(&["a"]));
    assert_eq!(ready(consumer.next()), None);
}

#[test]
fn consumers_share_the_paths_of_the_set() {
    let producer = AnnouncedProducer::new();
    let original = path(&["shared"]);
    producer.announce(original.clone());
    let mut consumers: Vec<_> = (0..3).map(|_| producer.subscribe()).collect();
    for consumer in &mut consumers {
        let Some(Announced::Active(path)) = ready(consumer.next()) else {
            panic!("expected the active path");
        };
        // The same allocation: the parts are at the same address.
        let first = |p: &Path| p.parts().next().map(str::as_ptr);
        assert_eq!(first(&path), first(&original));
    }
}

#[test]
fn refusal_reaches_the_producer_and_changes_keep_coming() {
    use crate::Error;
    use futures::FutureExt;
    let producer = AnnouncedProducer::new();
    producer.announce(path(&["a"]));
    let mut consumer = producer.subscribe();
    let mut unused = Box::pin(producer.unused());
    assert!(unused.as_mut().now_or_never().is_none());
    assert_eq!(producer.refusal(), None);
    assert_eq!(ready(consumer.next()), active(&["a"]));
    consumer.refuse(Error::BoundsExceeded);
    consumer.refuse(Error::Cancel);
    assert!(unused.as_mut().now_or_never().is_some());
    drop(unused);
    assert_eq!(producer.refusal(), Some(Error::BoundsExceeded));
    drop(producer);
    assert_eq!(ready(consumer.next()), ended(&["a"]));
    assert_eq!(ready(consumer.next()), None);
}

#[test]
fn pending_consumer_is_woken_by_a_matching_change_only() {
    let producer = AnnouncedProducer::new();
    let mut consumer = producer.subscribe_prefix(path(&["a"]));
    let (counter, waker) = Counter::new();
    assert!(poll_with(&waker, |cx| consumer.poll_next(cx)).is_pending());
    producer.announce(path(&["b"]));
    assert_eq!(counter.count(), 0);
    producer.announce(path(&["a", "x"]));
    assert_eq!(counter.count(), 1);
}

#[test]
fn unused_resolves_when_the_last_consumer_goes() {
    use futures::FutureExt;
    let producer = AnnouncedProducer::new();
    assert!(
        producer.unused().now_or_never().is_some(),
        "no consumer yet"
    );
    let first = producer.subscribe();
    let second = producer.subscribe_prefix(path(&["a"]));
    let mut unused = Box::pin(producer.unused());
    assert!(unused.as_mut().now_or_never().is_none());
    drop(first);
    assert!(
        unused.as_mut().now_or_never().is_none(),
        "one consumer left"
    );
    assert_eq!(producer.consumer_count(), 1);
    drop(second);
    assert!(unused.as_mut().now_or_never().is_some());
}
