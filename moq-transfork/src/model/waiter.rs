//! Wakeup bookkeeping shared by the model's producer/consumer pairs.
//!
//! Every shared state keeps its waiting tasks in a [`WaitList`] inside the same mutex as the data
//! they wait for. A consumer checks the data and registers its waker under one lock, and a
//! producer changes the data and takes the wakers under one lock, so no wakeup can be lost. The
//! wakers are woken after the lock is released.
//!
//! Each waiter owns one slot, which it releases when it stops waiting (ready or dropped), so a
//! list never holds more entries than there are live waiters, however often consumers come and go.

use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use crate::sync::lock;

/// The tasks waiting for one kind of change, one slot per waiter.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl WaitList {
    /// Stores `waker` in the waiter's slot, allocating the slot on first use.
    pub(crate) fn register(&mut self, slot: &mut Option<usize>, waker: &Waker) {
        if let Some(entry) = slot.and_then(|index| self.slots.get_mut(index)) {
            match entry {
                Some(old) if old.will_wake(waker) => {}
                _ => *entry = Some(waker.clone()),
            }
            return;
        }
        let waker = Some(waker.clone());
        let index = match self.free.pop() {
            Some(index) if index < self.slots.len() => {
                self.slots[index] = waker;
                index
            }
            _ => {
                self.slots.push(waker);
                self.slots.len() - 1
            }
        };
        *slot = Some(index);
    }

    /// Frees the waiter's slot, if it has one.
    pub(crate) fn release(&mut self, slot: &mut Option<usize>) {
        let Some(index) = slot.take() else { return };
        if let Some(entry) = self.slots.get_mut(index) {
            *entry = None;
            self.free.push(index);
        }
        if self.free.len() == self.slots.len() {
            self.slots.clear();
            self.free.clear();
        }
    }

    /// Takes every registered waker; call [`Wake::wake`] once the lock is released.
    #[must_use = "the wakers must be woken"]
    pub(crate) fn take(&mut self) -> Wake {
        Wake(self.slots.iter_mut().filter_map(Option::take).collect())
    }

    /// The number of live slots (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// Wakers taken out of a [`WaitList`], to be woken outside the lock.
#[derive(Debug)]
pub(crate) struct Wake(Vec<Waker>);

impl Wake {
    /// Adds the wakers of another list.
    pub(crate) fn and(mut self, other: Self) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Wakes every task.
    pub(crate) fn wake(self) {
        for waker in self.0 {
            waker.wake();
        }
    }
}

/// One wait of an `async fn(&self)` on a [`WaitList`] inside `Mutex<S>`; releases its slot
/// when dropped, so a cancelled wait leaves nothing behind.
pub(crate) struct Waiter<'a, S> {
    mutex: &'a Mutex<S>,
    list: fn(&mut S) -> &mut WaitList,
    slot: Option<usize>,
}

impl<'a, S> Waiter<'a, S> {
    /// A waiter on the list that `list` selects in the state behind `mutex`.
    pub(crate) fn new(mutex: &'a Mutex<S>, list: fn(&mut S) -> &mut WaitList) -> Self {
        Self {
            mutex,
            list,
            slot: None,
        }
    }

    /// Ready with `check`'s answer once it has one; otherwise registers the task and is pending.
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        check: impl FnOnce(&mut S) -> Option<T>,
    ) -> Poll<T> {
        let mut state = lock(self.mutex);
        match check(&mut state) {
            Some(value) => {
                (self.list)(&mut state).release(&mut self.slot);
                Poll::Ready(value)
            }
            None => {
                (self.list)(&mut state).register(&mut self.slot, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<S> Drop for Waiter<'_, S> {
    fn drop(&mut self) {
        if self.slot.is_some() {
            let mut state = lock(self.mutex);
            (self.list)(&mut state).release(&mut self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn slots_are_reused_and_released() {
        let mut list = WaitList::default();
        let (mut a, mut b) = (None, None);
        list.register(&mut a, Waker::noop());
        list.register(&mut a, Waker::noop());
        list.register(&mut b, Waker::noop());
        assert_eq!(list.len(), 2);
        list.take().wake();
        assert_eq!(
            list.len(),
            2,
            "slots stay with their waiters after a wakeup"
        );
        list.release(&mut a);
        list.release(&mut b);
        assert_eq!(list.len(), 0);
        assert!(a.is_none() && b.is_none());
    }
}
