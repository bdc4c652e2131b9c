//! Sessions: the SETUP handshake (spec §4), then the publisher and subscriber halves that move
//! the [model](crate::model) over QUIC streams (spec §5).
//!
//! A [`Session`] is symmetric after the handshake: either side may publish tracks, answer
//! announce and subscribe requests, and subscribe to the peer's tracks.

mod credit;
mod drop_reports;
mod fetched;
#[cfg(feature = "fuzzing")]
mod fuzzing;
mod group_stream;
mod options;
mod priority;
mod publisher;
mod recv;
mod schedule;
mod stats;
mod stream;
mod subscriber;
mod subscription;

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use bytes::Bytes;

use crate::message::{
    BiStream, ClientSetup, Extensions, Info, ServerSetup, Version, Versions, TOKEN_EXTENSION,
};
use crate::model::{AnnouncedConsumer, Track, TrackConsumer};
use crate::transport::{Connection, TransportKind};
use crate::{Error, Path, TransportError};

pub use fetched::FetchedGroup;
#[cfg(feature = "fuzzing")]
pub use fuzzing::FuzzReader;
pub use options::{
    AnnounceFilter, Router, SessionOptions, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_GROUP_SIZE,
    DEFAULT_MAX_INFLIGHT_BYTES, DEFAULT_MAX_INFLIGHT_LAG, DEFAULT_MAX_RECV_BYTES,
};
pub use stats::{SessionStats, StatsSnapshot};

use publisher::Publisher;
use stream::{Reader, Writer};
use subscriber::Subscriber;

/// How long the SETUP exchange may take before the connection is dropped.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failed SETUP waits for the peer's close code once its stream is lost.
const CLOSE_REASON_WAIT: Duration = Duration::from_millis(200);

/// What a SETUP yields: the session stream's halves, the options, and the peer's token.
type Setup = (Writer, Reader, SessionOptions, Option<String>);

/// An established MoqTransfork session over one QUIC connection (raw QUIC or WebTransport).
///
/// Cheap to clone: clones share the session. When the last clone is dropped the session is
/// closed with [`Error::Cancel`]. Work happens in background tasks on the current tokio runtime.
///
/// # Examples
///
/// A client publishes a track and the server it connected to subscribes to it, over loopback:
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig, ServerTls};
/// use moq_transfork::{Path, Session, Track};
///
/// // A server with a generated development certificate.
/// let server = Endpoint::bind(EndpointConfig {
///     bind: "127.0.0.1:0".parse()?,
///     server: Some(ServerTls::self_signed(&["localhost".to_string()])?),
///     client: ClientTls::disable_verify(),
/// })?;
/// let url = format!("moqf://localhost:{}", server.local_addr()?.port()).parse()?;
/// let accepting = server.clone();
/// let accept = tokio::spawn(async move {
///     let incoming = accepting.accept().await.expect("endpoint open");
///     Session::accept(incoming.accept().await?).await
/// });
///
/// // The client publishes a track...
/// let client = Endpoint::bind(EndpointConfig {
///     bind: "127.0.0.1:0".parse()?,
///     server: None,
///     client: ClientTls::disable_verify(),
/// })?;
/// let publisher = Session::connect(client.connect(&url).await?).await?;
/// let (producer, consumer) = Track::new(Path::from_iter(["demo", "clock"])).produce();
/// publisher.publish(consumer)?;
/// let mut group = producer.append_group()?;
/// group.write_frame(Bytes::from_static(b"hello"));
///
/// // ...and the server subscribes to it: after SETUP, both sides may publish and subscribe.
/// let subscriber = accept.await??;
/// let mut track = subscriber.subscribe(Track::new(Path::from_iter(["demo", "clock"])));
/// let mut group = track.next_group().await?.expect("a group");
/// assert_eq!(group.read_frame().await?.expect("a frame"), "hello");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<SessionInner>,
}

#[derive(Debug)]
struct SessionInner {
    conn: Connection,
    publisher: Publisher,
    subscriber: Subscriber,
    /// The token the peer presented (accepting side).
    token: Option<String>,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        let err = Error::Cancel;
        self.conn.close(err.code(), &err.to_string());
    }
}

impl Session {
    /// Runs the client side of SETUP (spec §4) on a fresh connection, with default options.
    ///
    /// # Errors
    /// [`Error::Version`] if the server does not speak 0xff0bad02; transport and decode errors.
    pub async fn connect(conn: Connection) -> Result<Self, Error> {
        Self::connect_with(conn, SessionOptions::default()).await
    }

    /// Runs the client side of SETUP with the given options.
    ///
    /// # Errors
    /// As [`Session::connect`].
    pub async fn connect_with(conn: Connection, options: SessionOptions) -> Result<Self, Error> {
        let opener = conn.clone();
        let setup = async move {
            let (send, recv) = opener.open_bi().await?;
            let (mut writer, mut reader) = (Writer::control(send), Reader::new(recv));
            let mut extensions = Extensions::default();
            if let Some(token) = opener.client_token() {
                extensions.insert(TOKEN_EXTENSION, Bytes::copy_from_slice(token.as_bytes()));
            }
            let client = ClientSetup {
                versions: Versions(vec![Version::FORK_02]),
                extensions,
            };
            writer.encode2(&BiStream::Session, &client).await?;
            let server: ServerSetup = reader.decode().await?;
            if server.version != Version::FORK_02 {
                return Err(Error::Version);
            }
            Ok((writer, reader, options, None))
        };
        Self::start(conn, setup).await
    }

    /// Runs the server side of SETUP (spec §4) on a freshly accepted connection, with default
    /// options.
    ///
    /// # Errors
    /// [`Error::UnexpectedStream`] if the first stream is not a session stream,
    /// [`Error::Version`] if the client does not offer 0xff0bad02. The connection is closed
    /// with that code.
    pub async fn accept(conn: Connection) -> Result<Self, Error> {
        Self::accept_with(conn, SessionOptions::default()).await
    }

    /// Runs the server side of SETUP with the given options.
    ///
    /// The options are in force before the peer's first request can arrive, so a relay that
    /// passes its announcements and router here never misses a request.
    ///
    /// # Errors
    /// As [`Session::accept`].
    pub async fn accept_with(conn: Connection, options: SessionOptions) -> Result<Self, Error> {
        Self::accept_authorized(conn, |_| Ok(options)).await
    }

    /// Runs the server side of SETUP and lets `authorize` decide, from the token the client
    /// presented (see [`Session::token`]), whether to serve it and with which options.
    ///
    /// `authorize` runs once CLIENT_SETUP has arrived and before SERVER_SETUP is sent, so the
    /// options it returns are in force for the client's first request. When it returns an
    /// error, no SERVER_SETUP is sent and the connection is closed with that error's code
    /// (a relay uses [`Error::Unauthorized`]).
    ///
    /// # Errors
    /// As [`Session::accept`], and the error `authorize` returns.
    pub async fn accept_authorized<F>(conn: Connection, authorize: F) -> Result<Self, Error>
    where
        F: FnOnce(Option<&str>) -> Result<SessionOptions, Error>,
    {
        let acceptor = conn.clone();
        let setup = async move {
            let (send, recv) = acceptor.accept_bi().await?;
            let (mut writer, mut reader) = (Writer::control(send), Reader::new(recv));
            let result = async {
                match reader.decode::<BiStream>().await? {
                    BiStream::Session => {}
                    _ => return Err(Error::UnexpectedStream),
                }
                let client: ClientSetup = reader.decode().await?;
                if !client.versions.0.contains(&Version::FORK_02) {
                    return Err(Error::Version);
                }
                // WebTransport carries the token in its request URL, raw QUIC in CLIENT_SETUP.
                // A payload that is not UTF-8 cannot verify; it stays a (refused) token.
                let token = acceptor.url_token().or_else(|| {
                    client
                        .extensions
                        .get(TOKEN_EXTENSION)
                        .map(|token| String::from_utf8_lossy(token).into_owned())
                });
                let options = authorize(token.as_deref())?;
                let server = ServerSetup {
                    version: Version::FORK_02,
                    extensions: Extensions::default(),
                };
                writer.encode(&server).await?;
                Ok((options, token))
            }
            .await;
            match result {
                Ok((options, token)) => Ok((writer, reader, options, token)),
                Err(err) => {
                    // A refused client learns why from the connection's close code alone.
                    if err != Error::Unauthorized {
                        writer.reset(&err);
                        reader.stop(&err);
                    }
                    Err(err)
                }
            }
        };
        Self::start(conn, setup).await
    }

    /// Runs `setup` within [`SETUP_TIMEOUT`], then starts the session on its session stream,
    /// or closes the connection with the setup's error.
    async fn start(
        conn: Connection,
        setup: impl std::future::Future<Output = Result<Setup, Error>>,
    ) -> Result<Self, Error> {
        let Ok(result) = tokio::time::timeout(SETUP_TIMEOUT, setup).await else {
            let err = Error::timeout("setup");
            conn.close(err.code(), &err.to_string());
            return Err(err);
        };
        match result {
            Ok((writer, reader, options, token)) => {
                Ok(Self::run_session(conn, writer, reader, options, token))
            }
            Err(err) => {
                // A server that refuses a client closes the connection during SETUP: report
                // the server's code (say Unauthorized) rather than the lost or dropped stream.
                let err = match err {
                    Error::Transport(_) | Error::Cancel => {
                        tokio::time::timeout(CLOSE_REASON_WAIT, conn.closed())
                            .await
                            .unwrap_or(err)
                    }
                    err => err,
                };
                conn.close(err.code(), &err.to_string());
                Err(err)
            }
        }
    }

    fn run_session(
        conn: Connection,
        writer: Writer,
        reader: Reader,
        options: SessionOptions,
        token: Option<String>,
    ) -> Self {
        let span = tracing::info_span!(
            "session",
            remote = %conn.remote_address(),
            transport = %conn.kind(),
        );
        let publisher = Publisher::new(conn.clone(), &options);
        let subscriber = Subscriber::new(conn.clone(), &options);
        tokio::spawn(
            run(
                conn.clone(),
                writer,
                reader,
                publisher.clone(),
                subscriber.clone(),
            )
            .instrument(span),
        );
        Self {
            inner: Arc::new(SessionInner {
                conn,
                publisher,
                subscriber,
                token,
            }),
        }
    }

    /// The token the client presented, on the accepting side: the `jwt` query parameter of
    /// its WebTransport URL, or its CLIENT_SETUP token extension on raw QUIC. `None` when it
    /// presented none, and on the connecting side. Never log it.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// Which transport carries the session.
    pub fn transport(&self) -> TransportKind {
        self.inner.conn.kind()
    }

    /// The peer's address.
    pub fn remote_address(&self) -> std::net::SocketAddr {
        self.inner.conn.remote_address()
    }

    /// Offers a track to the peer: it is announced to every announce request that matches its
    /// path, and served to subscribers by exact path, until the track ends.
    ///
    /// The session keeps only a [`TrackHandle`](crate::model::TrackHandle), which does not
    /// count as a consumer: [`TrackProducer::unused`](crate::model::TrackProducer::unused)
    /// resolves whenever no subscriber is being served, so a publisher can pause its encoder.
    ///
    /// # Errors
    /// [`Error::Duplicate`] if a live track with the same path is already published here.
    pub fn publish(&self, track: TrackConsumer) -> Result<(), Error> {
        self.inner.publisher.publish(track)
    }

    /// Subscribes to a track of the peer.
    ///
    /// Returns at once; the SUBSCRIBE goes out in the background. Subscribing again to a path
    /// while an earlier subscription is alive returns another consumer of the same track
    /// without a new SUBSCRIBE (one upstream subscription per path). When every consumer is
    /// dropped, the subscription ends (the subscribe stream is finished).
    ///
    /// The consumer yields `Err` if the peer refuses (for example [`Error::NotFound`]), does
    /// not answer with INFO within 10 s ([`Error::Transport`]; the subscribe stream is then
    /// reset and stopped with code 4) or the subscription fails, and `Ok(None)` once the peer
    /// ends the track cleanly.
    pub fn subscribe(&self, track: Track) -> TrackConsumer {
        self.inner.subscriber.subscribe(track)
    }

    /// Asks the peer for the tracks it announces under `prefix` (whole path parts).
    ///
    /// Each call opens its own announce stream. The consumer yields full paths.
    pub fn announced(&self, prefix: Path) -> AnnouncedConsumer {
        self.inner.subscriber.announced(prefix)
    }

    /// Asks the peer for a track's description and latest group (an INFO request, spec §5.5).
    ///
    /// Do not send this to a 0.8.0 peer that routes it to a relay: 0.8.0 relays open an
    /// upstream subscription for it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the peer has no such track; [`Error::Transport`] when it does
    /// not answer within 10 s (the request stream is then reset and stopped with code 4);
    /// other transport and decode errors.
    pub async fn info(&self, path: Path) -> Result<Info, Error> {
        self.inner.subscriber.info(path).await
    }

    /// Fetches one group of a track from the peer's cache, starting at frame `offset`
    /// (spec §5.4). Dropping the returned group ends the request (see [`FetchedGroup`]).
    ///
    /// Only peers built on this crate answer FETCH; 0.8.0 peers panic on it (spec §15.5).
    ///
    /// # Errors
    /// [`Error::BoundsExceeded`] for a sequence beyond the varint range. The returned group
    /// yields [`Error::NotFound`] when the peer does not hold the group.
    pub fn fetch(
        &self,
        path: Path,
        priority: i8,
        group: u64,
        offset: u64,
    ) -> Result<FetchedGroup, Error> {
        self.inner.subscriber.fetch(path, priority, group, offset)
    }

    /// Closes the session with `err`'s code and its text as the reason.
    pub fn close(&self, err: Error) {
        self.inner.conn.close(err.code(), &err.to_string());
    }

    /// Resolves when the session ends, with the reason.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn closed(&self) -> Error {
        self.inner.conn.closed().await
    }
}

/// Drives a session: watches the session stream and accepts the peer's streams until the
/// connection ends. Each accepted stream runs in a task of its own.
async fn run(
    conn: Connection,
    mut session_writer: Writer,
    mut session_reader: Reader,
    publisher: Publisher,
    subscriber: Subscriber,
) {
    let mut credits = credit::Credits::new();
    let err = loop {
        tokio::select! {
            // Spec §4.4: nothing more is sent on the session stream; FIN ends the session.
            // A reset of the session stream ends the session with code 4 (spec §4.4), whatever
            // code the peer reset it with.
            res = session_reader.closed() => break match res {
                Ok(()) => Error::Cancel,
                Err(err) => Error::Transport(TransportError::SessionReset(Box::new(err))),
            },
            res = conn.accept_bi() => match res {
                Ok((send, recv)) => {
                    let publisher = publisher.clone();
                    let open = credits.bi(&conn);
                    tokio::spawn(
                        async move {
                            publisher.serve(Writer::control(send), Reader::new(recv)).await;
                            drop(open);
                        }
                        .in_current_span(),
                    );
                }
                Err(err) => break err,
            },
            res = conn.accept_uni() => match res {
                Ok(recv) => {
                    let subscriber = subscriber.clone();
                    let open = credits.uni(&conn);
                    let rtt = conn.rtt();
                    tokio::spawn(
                        async move {
                            subscriber.recv_stream(Reader::new(recv)).await;
                            // The sender has this stream's place back a round trip later.
                            tokio::time::sleep(rtt).await;
                            drop(open);
                        }
                        .in_current_span(),
                    );
                }
                Err(err) => break err,
            },
        }
    };
    tracing::debug!(%err, "session ended");
    conn.close(err.code(), &err.to_string());
    session_writer.reset(&err);
    subscriber.close(err);
}
