//! How many streams the peer may open at once: a small window that doubles as it fills.
//!
//! QUIC lets the peer open as many concurrent streams as the receiver allows, and quinn keeps
//! a table entry for every stream it allows, used or not: at 256 per direction that is some
//! 34 KiB per connection before a single stream is opened. A session instead starts at
//! [`INITIAL_BI_STREAMS`] and [`INITIAL_UNI_STREAMS`] and doubles a direction's window, up to
//! [`MAX_CONCURRENT_STREAMS`], whenever half of it is in use, so an idle session stays small
//! and a busy one gets the headroom it needs within a round trip. A stream counts as in use
//! until the sender can have its place back (see [`Credits::uni`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::transport::{
    Connection, INITIAL_BI_STREAMS, INITIAL_UNI_STREAMS, MAX_CONCURRENT_STREAMS,
};

/// The window of one direction of peer-opened streams.
#[derive(Debug)]
pub(super) struct StreamCredit {
    limit: u32,
    open: Arc<AtomicU32>,
}

/// One open peer stream; dropping it gives its place back.
#[derive(Debug)]
pub(super) struct OpenStream(Arc<AtomicU32>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl StreamCredit {
    pub(super) fn new(initial: u32) -> Self {
        Self {
            limit: initial,
            open: Arc::default(),
        }
    }

    /// Counts a stream the peer just opened, and widens the window through `widen` when
    /// half of it is in use.
    pub(super) fn opened(&mut self, widen: impl FnOnce(u32)) -> OpenStream {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open.saturating_mul(2) >= self.limit && self.limit < MAX_CONCURRENT_STREAMS {
            self.limit = self.limit.saturating_mul(2).min(MAX_CONCURRENT_STREAMS);
            widen(self.limit);
        }
        OpenStream(self.open.clone())
    }
}

/// The windows of both directions of one connection.
#[derive(Debug)]
pub(super) struct Credits {
    bi: StreamCredit,
    uni: StreamCredit,
}

impl Credits {
    pub(super) fn new() -> Self {
        Self {
            bi: StreamCredit::new(INITIAL_BI_STREAMS),
            uni: StreamCredit::new(INITIAL_UNI_STREAMS),
        }
    }

    /// Counts a bidirectional stream the peer opened on `conn`.
    pub(super) fn bi(&mut self, conn: &Connection) -> OpenStream {
        self.bi
            .opened(|limit| conn.set_max_concurrent_bi_streams(limit))
    }

    /// Counts a unidirectional stream the peer opened on `conn`. Keep the returned guard a
    /// round trip past the stream's end: the sender gets the place back only then, so short
    /// group streams at a high rate widen the window as long ones do.
    pub(super) fn uni(&mut self, conn: &Connection) -> OpenStream {
        self.uni
            .opened(|limit| conn.set_max_concurrent_uni_streams(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_at_half_use_up_to_the_maximum() {
        let mut credit = StreamCredit::new(INITIAL_BI_STREAMS);
        let mut widened = Vec::new();
        let mut open = Vec::new();
        for _ in 0..MAX_CONCURRENT_STREAMS {
            open.push(credit.opened(|limit| widened.push(limit)));
        }
        let mut expected = Vec::new();
        let mut limit = INITIAL_BI_STREAMS;
        while limit < MAX_CONCURRENT_STREAMS {
            limit = (limit * 2).min(MAX_CONCURRENT_STREAMS);
            expected.push(limit);
        }
        assert_eq!(widened, expected);
    }

    #[test]
    fn closed_streams_give_their_place_back() {
        let mut credit = StreamCredit::new(INITIAL_UNI_STREAMS);
        let mut widened = 0;
        // Opening and closing one stream at a time never widens the window.
        for _ in 0..10 * INITIAL_UNI_STREAMS {
            drop(credit.opened(|_| widened += 1));
        }
        assert_eq!(widened, 0);
        assert_eq!(credit.open.load(Ordering::Relaxed), 0);
    }
}
