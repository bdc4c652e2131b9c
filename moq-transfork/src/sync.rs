//! The one poison-tolerant lock of the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering the data if another thread panicked while holding it.
///
/// Every state behind these locks keeps its invariants between statements that can panic, so
/// a poisoned lock is safe to reuse, and one panicking task must not take the others down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
