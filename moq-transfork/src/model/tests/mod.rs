//! Behaviour tests of the model, one file per concept.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};

use futures::task::{waker, ArcWake};
use futures::FutureExt;

mod announced;
mod frame;
mod group;
mod track;

/// The output of a future that must be ready now.
#[track_caller]
fn ready<F: Future>(future: F) -> F::Output {
    future.now_or_never().expect("future should be ready")
}

/// Asserts that a future is not ready now.
#[track_caller]
fn assert_pending<F: Future>(future: F) {
    assert!(future.now_or_never().is_none(), "future should be pending");
}

/// A waker that counts its wakeups, to prove that no wakeup is lost.
#[derive(Default)]
struct Counter(AtomicUsize);

impl ArcWake for Counter {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counter {
    fn new() -> (Arc<Self>, Waker) {
        let counter = Arc::new(Self::default());
        let waker = waker(counter.clone());
        (counter, waker)
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `poll` once with `waker`.
fn poll_with<T>(waker: &Waker, poll: impl FnOnce(&mut Context<'_>) -> T) -> T {
    poll(&mut Context::from_waker(waker))
}

#[test]
fn handles_and_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let (producer, mut consumer) = crate::model::Track::new(crate::Path::new()).produce();
    let mut group = producer.append_group().unwrap();
    let frame = group.create_frame(1);
    let mut group_consumer = group.subscribe();
    send_sync(&producer);
    send_sync(&consumer);
    send_sync(&group);
    send_sync(&group_consumer);
    send_sync(&frame);
    send(&producer.unused());
    send(&consumer.closed());
    send(&group_consumer.closed());
    send(&group_consumer.read_frame());
    send(&consumer.next_group());
    let announced = crate::model::AnnouncedProducer::new();
    let mut announced_consumer = announced.subscribe();
    send_sync(&announced);
    send(&announced_consumer.next());
}
