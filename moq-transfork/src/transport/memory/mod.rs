//! An in-memory transport: two connected [`Connection`]s in one process, with no sockets, no
//! TLS and no clock, for deterministic tests of sessions and of code built on them.
//!
//! [`pair`] returns two ends of one connection. Everything a [`Session`](crate::Session) relies
//! on behaves as it does over QUIC (quinn):
//!
//! - **Streams.** `open_bi`/`open_uni` on one end are delivered, in the order they were opened,
//!   to `accept_bi`/`accept_uni` on the other. A stream is delivered as soon as it is opened
//!   (quinn delivers it with its first data; the session never opens a stream without writing).
//! - **Data.** Written [`Bytes`](bytes::Bytes) arrive in order and are passed through without
//!   copying; `read_chunk(max)` splits a chunk (again without copying) to at most `max` bytes.
//!   A FIN reads as `Ok(None)` after the data.
//! - **Resets and stops.** `reset(code)` discards the unread data, and the reader gets
//!   `Err(Error::from_code(code))`. `stop(code)` makes the sender's next write fail with
//!   `Err(Error::from_code(code))` and its `stopped()` return `Ok(Some(code))`. `stopped()`
//!   returns `Ok(None)` once the stream was finished and the peer read all of it: reading
//!   stands in for QUIC's acknowledgement. Codes travel as they are; the wire mapping of spec
//!   §2.4 has nothing to do here.
//! - **Drops.** As with quinn, a receive stream dropped before its end stops the stream with
//!   code 0, unless its FIN had already arrived (QUIC would have received, and acknowledged,
//!   everything: the stream just counts as read); a send stream dropped without `finish` or
//!   `reset` is finished.
//! - **Flow control.** Each stream direction buffers at most [`Config::stream_window`] unread
//!   bytes; writes wait for the reader beyond that (a chunk is split to fill the window). Each
//!   end lets its peer have at most [`Config::max_streams`] bidirectional and as many
//!   unidirectional streams open at once; `open_*` waits for credit beyond that. A stream's
//!   credit comes back once the accepting end is done with it: it read the FIN or a reset, or
//!   stopped or dropped its receive half, and (bidirectional streams) finished, reset or
//!   dropped its send half. A stream not yet accepted holds its credit, as in QUIC.
//! - **Closing.** `close(code, reason)` on either end makes every pending and future operation
//!   on both ends fail with [`Error::Transport`]. The other end's `closed()` resolves with
//!   [`Error::from_code(code)`](Error::from_code) (code 0 is [`Error::Cancel`]); the closing
//!   end's with [`Error::Transport`], as for a local QUIC close. When every clone of an end
//!   and every stream of it is dropped, the end closes with code 0, as quinn does.
//!
//! Differences from QUIC: `set_priority` has no effect (nothing competes for a link);
//! `remote_address` is the unspecified address `0.0.0.0:0`; `rtt` is zero; `stats` are all
//! zero; `url` is `None`; [`Connection::kind`] is [`TransportKind::Memory`](super::TransportKind).
//! Nothing is ever lost or reordered, and no task is spawned: bytes move when the reader polls.
//!
//! # Examples
//!
//! A session over an in-memory pair, the way a test would set one up:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), moq_transfork::Error> {
//! use bytes::Bytes;
//! use moq_transfork::transport::memory;
//! use moq_transfork::{Path, Session, Track};
//!
//! let (client, server) = memory::pair();
//! let (client, server) = tokio::try_join!(Session::connect(client), Session::accept(server))?;
//!
//! let (producer, consumer) = Track::new(Path::from_iter(["demo"])).produce();
//! server.publish(consumer)?;
//! let mut group = producer.append_group()?;
//! group.write_frame(Bytes::from_static(b"hello"));
//!
//! let mut track = client.subscribe(Track::new(Path::from_iter(["demo"])));
//! let mut group = track.next_group().await?.expect("a group");
//! assert_eq!(group.read_frame().await?.expect("a frame"), "hello");
//! # Ok(())
//! # }
//! ```
//!
//! Streams directly:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), moq_transfork::Error> {
//! use moq_transfork::transport::memory;
//!
//! let (a, b) = memory::pair();
//! let mut send = a.open_uni().await?;
//! send.write_all(b"hello").await?;
//! send.finish()?;
//! let mut recv = b.accept_uni().await?;
//! assert_eq!(recv.read_chunk(3).await?.as_deref(), Some(&b"hel"[..]));
//! assert_eq!(recv.read_chunk(64).await?.as_deref(), Some(&b"lo"[..]));
//! assert_eq!(recv.read_chunk(64).await?, None);
//! # Ok(())
//! # }
//! ```

mod pipe;
mod stream;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::{mpsc, watch, Semaphore};

use super::Connection;
use crate::{Cause, Error, TransportError};
use pipe::Pipe;
use stream::Credit;

pub(crate) use stream::{MemoryRecvStream, MemorySendStream};

/// Limits of an in-memory connection, the same for both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Unread bytes one direction of a stream buffers before writes wait (QUIC's stream
    /// receive window). Default 1 MiB; 0 is taken as 1.
    pub stream_window: usize,
    /// Streams of each kind (bidirectional, unidirectional) that one end may have open to the
    /// other at once before `open_*` waits. Default 256, as our QUIC endpoints allow.
    pub max_streams: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stream_window: 1 << 20,
            max_streams: 256,
        }
    }
}

/// Two connected ends of one in-memory connection, with the default [`Config`].
///
/// Either end may run [`Session::connect`](crate::Session::connect) and the other
/// [`Session::accept`](crate::Session::accept). See the [module docs](self) for what is
/// modelled.
pub fn pair() -> (Connection, Connection) {
    pair_with(Config::default())
}

/// Two connected ends of one in-memory connection, with the given limits.
///
/// # Examples
///
/// A small window makes a writer wait for its reader:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), moq_transfork::Error> {
/// use futures::FutureExt;
/// use moq_transfork::transport::memory::{self, Config};
///
/// let (a, b) = memory::pair_with(Config { stream_window: 4, ..Config::default() });
/// let mut send = a.open_uni().await?;
/// send.write_all(b"1234").await?;
/// assert!(send.write_all(b"5").now_or_never().is_none(), "the window is full");
/// let mut recv = b.accept_uni().await?;
/// assert_eq!(recv.read_chunk(64).await?.as_deref(), Some(&b"1234"[..]));
/// send.write_all(b"5").await?;
/// # Ok(())
/// # }
/// ```
pub fn pair_with(config: Config) -> (Connection, Connection) {
    let (close, _) = watch::channel(None);
    let shared = Arc::new(Shared {
        config,
        close,
        inboxes: [Inbox::new(config), Inbox::new(config)],
    });
    let end = |side| {
        Connection::memory(MemoryConnection {
            end: Arc::new(End {
                link: Link {
                    shared: shared.clone(),
                    side,
                },
            }),
        })
    };
    (end(Side::First), end(Side::Second))
}

/// The error of an operation on a closed connection.
fn closed(text: String) -> Error {
    Error::Transport(TransportError::Connection(Cause::msg(text)))
}

/// Which end of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    First,
    Second,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Self::First => 0,
            Self::Second => 1,
        }
    }

    fn peer(self) -> Self {
        match self {
            Self::First => Self::Second,
            Self::Second => Self::First,
        }
    }
}

/// How the connection ended.
#[derive(Debug)]
struct Close {
    by: Side,
    code: u32,
    reason: String,
}

/// Streams opened towards one end, waiting for it to accept them.
struct Queue<T> {
    tx: mpsc::UnboundedSender<T>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<T>>,
    /// Bounds how many of these streams may be open at once, which also bounds the queue.
    credit: Arc<Semaphore>,
}

impl<T> Queue<T> {
    fn new(max_streams: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            credit: Arc::new(Semaphore::new(max_streams.min(Semaphore::MAX_PERMITS))),
        }
    }
}

/// A bidirectional stream as its acceptor sees it: (what it sends on, what it reads from).
type IncomingBi = (Arc<Pipe>, Arc<Pipe>, Credit);
/// A unidirectional stream as its acceptor sees it.
type IncomingUni = (Arc<Pipe>, Credit);

/// What one end accepts.
struct Inbox {
    bi: Queue<IncomingBi>,
    uni: Queue<IncomingUni>,
}

impl Inbox {
    fn new(config: Config) -> Self {
        Self {
            bi: Queue::new(config.max_streams),
            uni: Queue::new(config.max_streams),
        }
    }
}

/// The state of a connection, shared by both ends.
struct Shared {
    config: Config,
    /// `None` while open; set once, by the first close.
    close: watch::Sender<Option<Arc<Close>>>,
    /// Indexed by [`Side::index`].
    inboxes: [Inbox; 2],
}

/// One end's view of the connection.
#[derive(Clone)]
pub(super) struct Link {
    shared: Arc<Shared>,
    side: Side,
}

impl Link {
    /// Closes the connection unless it is closed already.
    fn close(&self, code: u32, reason: &str) {
        let side = self.side;
        self.shared.close.send_if_modified(|close| {
            if close.is_some() {
                return false;
            }
            *close = Some(Arc::new(Close {
                by: side,
                code,
                reason: reason.to_string(),
            }));
            true
        });
    }

    /// The error operations fail with once the connection is closed.
    fn error(&self, close: &Close) -> Error {
        if close.by == self.side {
            closed("connection closed locally".into())
        } else {
            closed(format!(
                "connection closed by peer with code {}: {}",
                close.code, close.reason
            ))
        }
    }

    /// Waits until the connection is closed.
    async fn close_reason(&self) -> Arc<Close> {
        let mut rx = self.shared.close.subscribe();
        loop {
            if let Some(close) = rx.borrow_and_update().as_ref() {
                return close.clone();
            }
            if rx.changed().await.is_err() {
                // The sender lives in `shared`, which `self` keeps alive: never reached.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until the connection is closed and returns the error operations fail with.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(super) async fn closed(&self) -> Error {
        let close = self.close_reason().await;
        self.error(&close)
    }

    /// `Ok` while the connection is open.
    pub(super) fn check_open(&self) -> Result<(), Error> {
        match self.shared.close.borrow().as_ref() {
            Some(close) => Err(self.error(close)),
            None => Ok(()),
        }
    }

    fn inbox(&self, side: Side) -> &Inbox {
        &self.shared.inboxes[side.index()]
    }

    /// Takes one unit of `queue`'s stream credit, waiting while there is none.
    async fn acquire<T>(&self, queue: &Queue<T>) -> Result<Credit, Error> {
        self.check_open()?;
        tokio::select! {
            biased;
            err = self.closed() => Err(err),
            permit = queue.credit.clone().acquire_owned() => permit
                .map(Arc::new)
                .map_err(|_| closed("connection closed".into())),
        }
    }

    /// Takes the next stream of `queue`.
    async fn next<T>(&self, queue: &Queue<T>) -> Result<T, Error> {
        self.check_open()?;
        tokio::select! {
            biased;
            err = self.closed() => Err(err),
            item = async { queue.rx.lock().await.recv().await } => {
                item.ok_or_else(|| closed("connection closed".into()))
            }
        }
    }
}

/// One end of the pair, shared by its connection clones and its streams; dropping the last
/// closes the connection with code 0, as quinn's implicit close does (spec §2.4).
pub(super) struct End {
    link: Link,
}

impl Drop for End {
    fn drop(&mut self) {
        self.link.close(0, "");
    }
}

/// One end of an in-memory connection, as [`Connection`] wraps it.
#[derive(Clone)]
pub(crate) struct MemoryConnection {
    end: Arc<End>,
}

impl fmt::Debug for MemoryConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConnection")
            .field("side", &self.end.link.side)
            .field("closed", &self.end.link.check_open().is_err())
            .finish_non_exhaustive()
    }
}

impl MemoryConnection {
    fn link(&self) -> &Link {
        &self.end.link
    }

    fn window(&self) -> usize {
        self.link().shared.config.stream_window
    }

    /// The placeholder peer address: `0.0.0.0:0`.
    pub(crate) fn remote_address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    }

    pub(crate) async fn open_bi(&self) -> Result<(MemorySendStream, MemoryRecvStream), Error> {
        let link = self.link();
        let queue = &link.inbox(link.side.peer()).bi;
        let credit = link.acquire(queue).await?;
        let out = Arc::new(Pipe::new(self.window()));
        let back = Arc::new(Pipe::new(self.window()));
        queue
            .tx
            .send((back.clone(), out.clone(), credit))
            .map_err(|_| closed("connection closed".into()))?;
        Ok((
            MemorySendStream::new(out, link.clone(), None, self.end.clone()),
            MemoryRecvStream::new(back, link.clone(), None, self.end.clone()),
        ))
    }

    pub(crate) async fn open_uni(&self) -> Result<MemorySendStream, Error> {
        let link = self.link();
        let queue = &link.inbox(link.side.peer()).uni;
        let credit = link.acquire(queue).await?;
        let out = Arc::new(Pipe::new(self.window()));
        queue
            .tx
            .send((out.clone(), credit))
            .map_err(|_| closed("connection closed".into()))?;
        Ok(MemorySendStream::new(
            out,
            link.clone(),
            None,
            self.end.clone(),
        ))
    }

    pub(crate) async fn accept_bi(&self) -> Result<(MemorySendStream, MemoryRecvStream), Error> {
        let link = self.link();
        let (send, recv, credit) = link.next(&link.inbox(link.side).bi).await?;
        Ok((
            MemorySendStream::new(send, link.clone(), Some(credit.clone()), self.end.clone()),
            MemoryRecvStream::new(recv, link.clone(), Some(credit), self.end.clone()),
        ))
    }

    pub(crate) async fn accept_uni(&self) -> Result<MemoryRecvStream, Error> {
        let link = self.link();
        let (recv, credit) = link.next(&link.inbox(link.side).uni).await?;
        Ok(MemoryRecvStream::new(
            recv,
            link.clone(),
            Some(credit),
            self.end.clone(),
        ))
    }

    pub(crate) fn close(&self, code: u32, reason: &str) {
        self.link().close(code, reason);
    }

    /// The peer's close code as an error (0 is [`Error::Cancel`]); a local close is
    /// [`Error::Transport`].
    pub(crate) async fn closed(&self) -> Error {
        let link = self.link();
        let close = link.close_reason().await;
        if close.by == link.side {
            link.error(&close)
        } else {
            Error::from_code(close.code)
        }
    }
}
