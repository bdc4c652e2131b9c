//! One connection type for raw QUIC (`moqf-02`) and WebTransport (`h3`), spec §2.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "test-util")]
use super::memory::MemoryConnection;
use super::stream::{RecvStream, SendStream};
use crate::Error;

/// Which transport a [`Connection`] runs on (spec §2.1, §2.2).
///
/// Non-exhaustive: the `Memory` variant exists only with the `test-util` feature, which any
/// crate in a build can turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// Raw QUIC with ALPN `moqf-02`: MoQ bytes start at offset 0 of every stream.
    Quic,
    /// WebTransport over HTTP/3 with ALPN `h3`.
    WebTransport,
    /// The in-memory transport of [`memory::pair`](super::memory::pair), for tests (cargo
    /// feature `test-util`).
    #[cfg(feature = "test-util")]
    Memory,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Quic => "moqf",
            Self::WebTransport => "webtransport",
            #[cfg(feature = "test-util")]
            Self::Memory => "memory",
        })
    }
}

/// An established connection to a peer, over raw QUIC, WebTransport or, in tests, the
/// in-memory transport (`transport::memory`, cargo feature `test-util`).
///
/// Clones share the connection. It closes when [`Connection::close`] is called or the last
/// clone is dropped (then with a raw code 0 and no reason, spec §2.4), so keep one alive for
/// as long as its streams are in use.
#[derive(Clone, Debug)]
pub struct Connection {
    inner: Inner,
    /// The token a client dialled with over raw QUIC, for its CLIENT_SETUP (never logged).
    token: Option<Arc<str>>,
}

#[derive(Clone, Debug)]
enum Inner {
    Quic(quinn::Connection),
    // Shared: a session is some 800 bytes of per-clone state, and a session's halves and
    // tasks each hold a clone of its connection.
    WebTransport(Arc<web_transport_quinn::Session>),
    #[cfg(feature = "test-util")]
    Memory(MemoryConnection),
}

impl Connection {
    /// Wraps a raw QUIC connection that negotiated `moqf-02`.
    pub(crate) fn quic(conn: quinn::Connection) -> Self {
        Self {
            inner: Inner::Quic(conn),
            token: None,
        }
    }

    /// Wraps an established WebTransport session.
    pub(crate) fn webtransport(session: web_transport_quinn::Session) -> Self {
        Self {
            inner: Inner::WebTransport(Arc::new(session)),
            token: None,
        }
    }

    /// Wraps one end of an in-memory pair.
    #[cfg(feature = "test-util")]
    pub(crate) fn memory(conn: MemoryConnection) -> Self {
        Self {
            inner: Inner::Memory(conn),
            token: None,
        }
    }

    /// Carries `token` to the session's CLIENT_SETUP (raw QUIC has no URL to hold it).
    pub(crate) fn with_token(self, token: Option<Arc<str>>) -> Self {
        Self { token, ..self }
    }

    /// The token this client connection presents in its CLIENT_SETUP, if it was dialled with
    /// one over raw QUIC.
    pub(crate) fn client_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The `jwt` query parameter of the WebTransport request URL, the token a WebTransport
    /// client presents; `None` on other transports.
    pub(crate) fn url_token(&self) -> Option<String> {
        self.url()?
            .query_pairs()
            .find(|(key, _)| key == "jwt")
            .map(|(_, value)| value.into_owned())
    }

    /// The underlying QUIC connection, for the methods both QUIC transports share; `None` in
    /// memory.
    fn quinn(&self) -> Option<&quinn::Connection> {
        match &self.inner {
            Inner::Quic(conn) => Some(conn),
            // The session derefs to its QUIC connection.
            Inner::WebTransport(session) => Some(session),
            #[cfg(feature = "test-util")]
            Inner::Memory(_) => None,
        }
    }

    /// Which transport this connection runs on.
    pub fn kind(&self) -> TransportKind {
        match self.inner {
            Inner::Quic(_) => TransportKind::Quic,
            Inner::WebTransport(_) => TransportKind::WebTransport,
            #[cfg(feature = "test-util")]
            Inner::Memory(_) => TransportKind::Memory,
        }
    }

    /// The URL of the WebTransport CONNECT request that opened this connection (its
    /// `:authority` and `:path`, spec §2.2), or `None` on raw QUIC and in memory, which have
    /// no URL.
    ///
    /// A server can use the path to tell kinds of peers apart, as a relay does for its
    /// cluster links.
    pub fn url(&self) -> Option<&url::Url> {
        match &self.inner {
            Inner::Quic(_) => None,
            #[cfg(feature = "test-util")]
            Inner::Memory(_) => None,
            Inner::WebTransport(session) => session.request().map(|request| &request.url),
        }
    }

    /// The peer's UDP address (it can change if the peer migrates); the unspecified address
    /// `0.0.0.0:0` in memory.
    pub fn remote_address(&self) -> SocketAddr {
        match &self.inner {
            Inner::Quic(conn) => conn.remote_address(),
            Inner::WebTransport(session) => session.remote_address(),
            #[cfg(feature = "test-util")]
            Inner::Memory(conn) => conn.remote_address(),
        }
    }

    /// The current smoothed round-trip time estimate; zero in memory.
    pub fn rtt(&self) -> Duration {
        self.quinn().map_or(Duration::ZERO, quinn::Connection::rtt)
    }

    /// QUIC-level statistics of the connection; all zero in memory.
    pub fn stats(&self) -> quinn::ConnectionStats {
        self.quinn()
            .map(quinn::Connection::stats)
            .unwrap_or_default()
    }

    /// Lets the peer open up to `count` bidirectional streams at once (QUIC MAX_STREAMS);
    /// does nothing in memory, which has no stream limit.
    pub fn set_max_concurrent_bi_streams(&self, count: u32) {
        if let Some(conn) = self.quinn() {
            conn.set_max_concurrent_bi_streams(count.into());
        }
    }

    /// Lets the peer open up to `count` unidirectional streams at once (QUIC MAX_STREAMS);
    /// does nothing in memory, which has no stream limit.
    pub fn set_max_concurrent_uni_streams(&self, count: u32) {
        if let Some(conn) = self.quinn() {
            conn.set_max_concurrent_uni_streams(count.into());
        }
    }

    /// Opens a bidirectional stream. Waits while the peer's stream limit is reached.
    ///
    /// # Errors
    /// [`Error::Transport`] when the connection is gone.
    pub async fn open_bi(&self) -> Result<(SendStream, RecvStream), Error> {
        match &self.inner {
            Inner::Quic(conn) => {
                let (send, recv) = conn.open_bi().await.map_err(Error::connection)?;
                Ok((SendStream::quic(send), RecvStream::quic(recv)))
            }
            Inner::WebTransport(session) => {
                let (send, recv) = session.open_bi().await.map_err(Error::connection)?;
                Ok((
                    SendStream::webtransport(send),
                    RecvStream::webtransport(recv),
                ))
            }
            #[cfg(feature = "test-util")]
            Inner::Memory(conn) => {
                let (send, recv) = conn.open_bi().await?;
                Ok((SendStream::memory(send), RecvStream::memory(recv)))
            }
        }
    }

    /// Opens a unidirectional stream. Waits while the peer's stream limit is reached.
    ///
    /// # Errors
    /// [`Error::Transport`] when the connection is gone.
    pub async fn open_uni(&self) -> Result<SendStream, Error> {
        match &self.inner {
            Inner::Quic(conn) => Ok(SendStream::quic(
                conn.open_uni().await.map_err(Error::connection)?,
            )),
            Inner::WebTransport(session) => Ok(SendStream::webtransport(
                session.open_uni().await.map_err(Error::connection)?,
            )),
            #[cfg(feature = "test-util")]
            Inner::Memory(conn) => Ok(SendStream::memory(conn.open_uni().await?)),
        }
    }

    /// Accepts the next bidirectional stream the peer opened.
    ///
    /// # Errors
    /// [`Error::Transport`] when the connection is gone.
    pub async fn accept_bi(&self) -> Result<(SendStream, RecvStream), Error> {
        match &self.inner {
            Inner::Quic(conn) => {
                let (send, recv) = conn.accept_bi().await.map_err(Error::connection)?;
                Ok((SendStream::quic(send), RecvStream::quic(recv)))
            }
            Inner::WebTransport(session) => {
                let (send, recv) = session.accept_bi().await.map_err(Error::connection)?;
                Ok((
                    SendStream::webtransport(send),
                    RecvStream::webtransport(recv),
                ))
            }
            #[cfg(feature = "test-util")]
            Inner::Memory(conn) => {
                let (send, recv) = conn.accept_bi().await?;
                Ok((SendStream::memory(send), RecvStream::memory(recv)))
            }
        }
    }

    /// Accepts the next unidirectional stream the peer opened.
    ///
    /// # Errors
    /// [`Error::Transport`] when the connection is gone.
    pub async fn accept_uni(&self) -> Result<RecvStream, Error> {
        match &self.inner {
            Inner::Quic(conn) => Ok(RecvStream::quic(
                conn.accept_uni().await.map_err(Error::connection)?,
            )),
            Inner::WebTransport(session) => Ok(RecvStream::webtransport(
                session.accept_uni().await.map_err(Error::connection)?,
            )),
            #[cfg(feature = "test-util")]
            Inner::Memory(conn) => Ok(RecvStream::memory(conn.accept_uni().await?)),
        }
    }

    /// Closes the connection with a MoqTransfork `code` and a reason text.
    ///
    /// On raw QUIC the CONNECTION_CLOSE carries the code as is; on WebTransport it is mapped
    /// with [`crate::to_wire`] (and web-transport-quinn first sends a
    /// CLOSE_WEBTRANSPORT_SESSION capsule), as spec §2.4 and §2.2a describe. In memory the
    /// code reaches the peer as it is.
    ///
    /// Does nothing once the connection has ended: quinn would otherwise replace the peer's
    /// reason, which [`Connection::closed`] reports, with a local close.
    pub fn close(&self, code: u32, reason: &str) {
        if self
            .quinn()
            .is_some_and(|conn| conn.close_reason().is_some())
        {
            return;
        }
        match &self.inner {
            Inner::Quic(conn) => conn.close(code.into(), reason.as_bytes()),
            Inner::WebTransport(session) => session.close(code, reason.as_bytes()),
            #[cfg(feature = "test-util")]
            Inner::Memory(conn) => conn.close(code, reason),
        }
    }

    /// Waits until the connection ends and says why.
    ///
    /// When the peer closed with a MoqTransfork code, that code's error
    /// ([`Error::from_code`]); a raw 0 (a dropped peer) is [`Error::Cancel`]. Anything else,
    /// including a local close or a timeout, is [`Error::Transport`] with the reason.
    pub async fn closed(&self) -> Error {
        match &self.inner {
            Inner::Quic(conn) => quic_close_error(conn.closed().await),
            Inner::WebTransport(session) => match session.closed().await {
                web_transport_quinn::SessionError::WebTransportError(
                    web_transport_quinn::WebTransportError::Closed(code, _),
                ) => Error::from_code(code),
                web_transport_quinn::SessionError::ConnectionError(err) => {
                    match application_code(&err) {
                        // The implicit close of a dropped peer is a raw 0 on both transports.
                        Some(0) => Error::Cancel,
                        // A CONNECTION_CLOSE that overtook the session's close capsule carries
                        // the mapped code (spec §2.4).
                        Some(code) => match crate::from_wire(code) {
                            Some(code) => Error::from_code(code),
                            None => Error::connection(err),
                        },
                        None => Error::connection(err),
                    }
                }
                err => Error::connection(err),
            },
            #[cfg(feature = "test-util")]
            Inner::Memory(conn) => conn.closed().await,
        }
    }
}

/// The code of a CONNECTION_CLOSE sent by the peer's application, if that is how it ended.
fn application_code(err: &quinn::ConnectionError) -> Option<u64> {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        _ => None,
    }
}

/// On raw QUIC the peer closes with the unmapped MoqTransfork code (spec §2.4).
fn quic_close_error(err: quinn::ConnectionError) -> Error {
    match application_code(&err).map(u32::try_from) {
        Some(Ok(code)) => Error::from_code(code),
        _ => Error::connection(err),
    }
}
