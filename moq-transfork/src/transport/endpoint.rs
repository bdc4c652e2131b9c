//! One UDP socket that serves both transports and also dials out (spec §2.3, §11).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use url::Url;
use web_transport_quinn::http;

use super::certs::CertResolver;
use super::connection::Connection;
use super::quic::{
    transport_config, udp_socket, validation_tokens, Tuning, IDLE_TIMEOUT, KEEP_ALIVE,
};
use super::tls::{self, ClientTls, ServerTls, TlsError};
use crate::{Cause, Error, TransportError};

/// The ALPN of raw QUIC (spec §1, §2.1).
pub const ALPN_QUIC: &[u8] = b"moqf-02";

/// The ALPN of WebTransport over HTTP/3 (spec §1, §2.2).
pub const ALPN_WEBTRANSPORT: &[u8] = b"h3";

/// The default port of both URL schemes (spec §1).
const DEFAULT_PORT: u16 = 443;

/// How long an accepted connection may take from its first packet to the end of the QUIC
/// handshake and, on WebTransport, its CONNECT. Keep-alives (or a handshake kept busy with
/// PINGs) would otherwise let a stalling peer hold an accept task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a refused WebTransport client has to read its 401 before the connection closes.
const REJECT_LINGER: Duration = Duration::from_secs(1);

/// What an [`Endpoint`] binds to and which certificates it shows and trusts.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The UDP address to bind. An IPv6 wildcard such as `[::]:443` also accepts IPv4 where the
    /// OS allows dual-stack sockets.
    pub bind: SocketAddr,
    /// The server certificates; `None` makes a client-only endpoint that refuses connections.
    pub server: Option<ServerTls>,
    /// How outgoing connections verify servers.
    pub client: ClientTls,
}

/// Why an [`Endpoint`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Another socket already holds the address.
    #[error("{0}: address already in use")]
    AddrInUse(SocketAddr),
    /// The socket could not be created or bound.
    #[error("bind {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TLS configuration is unusable.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
}

impl From<BindError> for Error {
    fn from(err: BindError) -> Self {
        Self::connect(err)
    }
}

/// A QUIC endpoint on one UDP socket that accepts both `h3` and `moqf-02` and dials out on the
/// same socket, as moq-native does: a relay's cluster links share its listener (spec §11).
///
/// # Examples
///
/// A server with a generated certificate and a client pinned to it, over WebTransport:
///
/// ```
/// use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig, ServerTls};
/// use moq_transfork::{Cause, Error, TransportError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ServerTls::self_signed(&["localhost".to_string()])?;
/// let pin = tls.fingerprints().iter().map(hex::decode).collect::<Result<_, _>>()?;
///
/// let server = Endpoint::bind(EndpointConfig {
///     bind: "127.0.0.1:0".parse()?,
///     server: Some(tls),
///     client: ClientTls::disable_verify(),
/// })?;
/// let client = Endpoint::bind(EndpointConfig {
///     bind: "127.0.0.1:0".parse()?,
///     server: None,
///     client: ClientTls::with_fingerprints(pin),
/// })?;
///
/// let url = format!("https://localhost:{}/", server.local_addr()?.port()).parse()?;
/// // The server must finish its side while the client waits for the WebTransport reply.
/// let accept = async {
///     match server.accept().await {
///         Some(incoming) => incoming.accept().await,
///         None => Err(Error::Transport(TransportError::Connect(Cause::msg("endpoint closed")))),
///     }
/// };
/// let (ours, theirs) = tokio::join!(client.connect(&url), accept);
///
/// // Keep each connection alive while its streams are in use.
/// let (ours, theirs) = (ours?, theirs?);
/// let mut stream = ours.open_uni().await?;
/// stream.write_all(b"hello").await?;
/// stream.finish()?;
/// let mut incoming = theirs.accept_uni().await?;
/// assert_eq!(incoming.read_chunk(64).await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Endpoint {
    quic: quinn::Endpoint,
    tuning: Tuning,
    /// Client configs are fixed per ALPN, so build them once.
    client_quic: quinn::ClientConfig,
    client_webtransport: quinn::ClientConfig,
    /// What the server side shows; `None` on a client-only endpoint.
    certificates: Option<Arc<CertResolver>>,
}

impl Endpoint {
    /// Binds the UDP socket and starts the endpoint. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`BindError::AddrInUse`] when the address is taken, [`BindError::Io`] for other socket
    /// errors and [`BindError::Tls`] for an unusable TLS configuration.
    pub fn bind(config: EndpointConfig) -> Result<Self, BindError> {
        Self::bind_tuned(config, Tuning::default())
    }

    /// As [`bind`](Self::bind), with transport settings changed from spec §2.3's defaults.
    ///
    /// # Errors
    /// As [`bind`](Self::bind); also [`BindError::Io`] when the OS refuses a buffer size.
    pub fn bind_tuned(config: EndpointConfig, tuning: Tuning) -> Result<Self, BindError> {
        let transport = Arc::new(transport_config(IDLE_TIMEOUT, KEEP_ALIVE, &tuning));

        let client_config = |alpn: &[u8]| -> Result<quinn::ClientConfig, BindError> {
            let tls = config.client.client_config(alpn)?;
            let quic = QuicClientConfig::try_from(tls).map_err(tls_unusable)?;
            let mut client = quinn::ClientConfig::new(Arc::new(quic));
            client.transport_config(transport.clone());
            Ok(client)
        };
        let client_quic = client_config(ALPN_QUIC)?;
        let client_webtransport = client_config(ALPN_WEBTRANSPORT)?;

        let certificates = config.server.map(|tls| Arc::new(CertResolver::new(tls)));
        let server = match &certificates {
            Some(certificates) => {
                let tls = tls::server_config(certificates.clone())?;
                let quic = QuicServerConfig::try_from(tls).map_err(tls_unusable)?;
                let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
                server.transport_config(transport.clone());
                server.validation_token_config(validation_tokens());
                Some(server)
            }
            None => None,
        };

        let addr = config.bind;
        let io = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::AddrInUse => BindError::AddrInUse(addr),
            _ => BindError::Io { addr, source },
        };
        let socket = udp_socket(addr, &tuning).map_err(io)?;
        let runtime = Arc::new(quinn::TokioRuntime);
        let socket = quinn::Runtime::wrap_udp_socket(&*runtime, socket).map_err(io)?;
        // How many datagrams one send (GSO) and one receive (GRO) may carry on this socket;
        // 1 means the kernel offers no offload. Each connection's `udp_tx` stats show how
        // many it actually sent per call.
        tracing::debug!(
            gso = socket.max_transmit_segments(),
            gro = socket.max_receive_segments(),
            "UDP segmentation offload"
        );
        let quic = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            server,
            socket,
            runtime,
        )
        .map_err(io)?;

        Ok(Self {
            quic,
            tuning,
            client_quic,
            client_webtransport,
            certificates,
        })
    }

    /// The certificates the server side shows, replaceable while it runs (certificate
    /// reload); `None` on a client-only endpoint.
    pub fn certificates(&self) -> Option<&Arc<CertResolver>> {
        self.certificates.as_ref()
    }

    /// A handle on the same socket whose *outgoing* connections use `idle` as their QUIC idle
    /// timeout and send a keep-alive every `keep_alive` (instead of 10 s and 4 s, spec §2.3).
    ///
    /// QUIC uses the smaller of both peers' idle timeouts, so both ends of such a connection
    /// notice a silent peer after `idle`: a relay uses this for its cluster links, to detect a
    /// dead member within seconds. Incoming connections and other handles are unaffected.
    pub fn with_dial_timeouts(&self, idle: Duration, keep_alive: Duration) -> Self {
        let transport = Arc::new(transport_config(idle, keep_alive, &self.tuning));
        let mut dialer = self.clone();
        dialer.client_quic.transport_config(transport.clone());
        dialer.client_webtransport.transport_config(transport);
        dialer
    }

    /// The bound address, with the actual port when port 0 was asked for.
    ///
    /// # Errors
    /// When the OS cannot report the socket address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.quic.local_addr()
    }

    /// Connects to `url`: `https://` runs WebTransport (CONNECT with the URL's path),
    /// `moqf://` raw QUIC; the port defaults to 443 and SNI is the URL's host (spec §1, §11).
    ///
    /// A token given as `?jwt=TOKEN` is presented on both: WebTransport keeps it in the
    /// CONNECT `:path`; raw QUIC has no request line, so the session sends it in its
    /// CLIENT_SETUP (extension [`TOKEN_EXTENSION`](crate::message::TOKEN_EXTENSION)). The URL
    /// is logged without its query, so the token never is.
    ///
    /// DNS picks the first address of the socket's family, else the first address: an
    /// IPv4 socket cannot reach `::1`.
    ///
    /// # Errors
    /// [`Error::Transport`] for another scheme, a URL without host, a failed lookup, or a
    /// failed QUIC, TLS or WebTransport handshake; [`Error::Unauthorized`] when the server
    /// answers the WebTransport CONNECT with 401 or 403.
    pub async fn connect(&self, url: &Url) -> Result<Connection, Error> {
        let config = match url.scheme() {
            "https" => &self.client_webtransport,
            "moqf" => &self.client_quic,
            scheme => {
                return Err(connect_msg(format!(
                    "unsupported URL scheme {scheme:?}: use https or moqf"
                )))
            }
        };

        // `host_str` keeps the brackets of an IPv6 literal; neither DNS nor SNI wants them.
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(connect_msg(format!("no host in {}", without_query(url)))),
        };
        let port = url.port().unwrap_or(DEFAULT_PORT);
        let addr = self.resolve(&host, port).await?;

        let connecting = self
            .quic
            .connect_with(config.clone(), addr, &host)
            .map_err(Error::connect)?;
        let conn = connecting.await.map_err(Error::connect)?;
        tracing::debug!(url = %without_query(url), %addr, "connected");

        if url.scheme() == "moqf" {
            let token = url
                .query_pairs()
                .find(|(key, _)| key == "jwt")
                .map(|(_, token)| Arc::from(token.as_ref()));
            return Ok(Connection::quic(conn).with_token(token));
        }
        let session = web_transport_quinn::Session::connect(conn, url.clone())
            .await
            .map_err(|err| match refused_status(&err) {
                Some(http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN) => {
                    Error::Unauthorized
                }
                _ => Error::connect(err),
            })?;
        Ok(Connection::webtransport(session))
    }

    /// Looks `host` up, preferring an address of the socket's family.
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, Error> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|err| connect_msg(format!("lookup {host}: {err}")))?
            .collect();
        let ipv6 = self
            .local_addr()
            .map(|addr| addr.is_ipv6())
            .unwrap_or(false);
        addrs
            .iter()
            .find(|addr| addr.is_ipv6() == ipv6)
            .or(addrs.first())
            .copied()
            .ok_or_else(|| connect_msg(format!("lookup {host}: no addresses")))
    }

    /// Waits for the next incoming connection attempt; `None` once the endpoint is closed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn accept(&self) -> Option<Incoming> {
        let incoming = self.quic.accept().await?;
        Some(Incoming { incoming })
    }

    /// Closes every connection (code 0, no reason) and stops accepting.
    pub fn close(&self) {
        self.quic.close(quinn::VarInt::from_u32(0), b"");
    }

    /// Waits until every connection is fully closed, so their last packets go out.
    pub async fn wait_idle(&self) {
        self.quic.wait_idle().await;
    }
}

/// The HTTP status of a WebTransport CONNECT the server refused, if that is why `err` failed.
fn refused_status(err: &web_transport_quinn::ClientError) -> Option<http::StatusCode> {
    use web_transport_quinn::{ClientError, ConnectError};
    match err {
        ClientError::HttpError(ConnectError::ErrorStatus(status)) => Some(*status),
        ClientError::HttpError(ConnectError::ProtoError(
            web_transport_proto::ConnectError::WrongStatus(status),
        )) => *status,
        _ => None,
    }
}

/// A [`TransportError::Connect`] that only a message describes.
fn connect_msg(text: String) -> Error {
    Error::Transport(TransportError::Connect(Cause::msg(text)))
}

/// `url` without its query, which may hold a token, for logs and errors.
fn without_query(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_query(None);
    url
}

/// A TLS config that quinn cannot use for QUIC (no TLS 1.3 AES-128-GCM suite).
fn tls_unusable(err: quinn::crypto::rustls::NoInitialCipherSuite) -> BindError {
    BindError::Tls(TlsError::Rustls(rustls::Error::General(err.to_string())))
}

/// A connection attempt that has not been accepted yet.
#[derive(Debug)]
pub struct Incoming {
    incoming: quinn::Incoming,
}

impl Incoming {
    /// The address the attempt came from.
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Whether the client has proved it receives packets at [`Incoming::remote_address`]
    /// (it answered a Retry, or presented a token from an earlier connection).
    pub fn remote_address_validated(&self) -> bool {
        self.incoming.remote_address_validated()
    }

    /// Answers with a QUIC Retry, holding no state: a client that receives it at its address
    /// tries again with a token, and that attempt is validated. Cheap protection against
    /// handshake floods from spoofed addresses. An attempt that already answered a Retry
    /// cannot get another (never the case while [`Incoming::remote_address_validated`] is
    /// false) and is refused instead.
    pub fn retry(self) {
        if let Err(err) = self.incoming.retry() {
            err.into_incoming().refuse();
        }
    }

    /// Refuses the attempt with a QUIC CONNECTION_CLOSE carrying the transport error
    /// CONNECTION_REFUSED (0x2), before any handshake state is created.
    pub fn refuse(self) {
        self.incoming.refuse();
    }

    /// Completes the handshake and branches on the negotiated ALPN (spec §2.2a, §11):
    /// `h3` answers the WebTransport CONNECT with 200 whatever its URL; `moqf-02` is raw QUIC.
    /// The QUIC and WebTransport handshakes together must finish within 10 s.
    ///
    /// # Errors
    /// [`Error::Transport`] when the QUIC, TLS or WebTransport handshake fails or times out, or
    /// the peer negotiated another ALPN (that connection is closed).
    pub async fn accept(self) -> Result<Connection, Error> {
        self.accept_checked(|_| true).await
    }

    /// As [`accept`](Self::accept), but a WebTransport CONNECT whose URL `check` refuses is
    /// answered with HTTP 401, so no session exists (a relay checks the `jwt` parameter here).
    /// Raw QUIC has no URL: `check` is not asked.
    ///
    /// # Errors
    /// As [`accept`](Self::accept); [`Error::Unauthorized`] for a refused CONNECT (the
    /// connection is closed with that code once the client has read the answer, or after a
    /// second).
    pub async fn accept_checked(
        self,
        check: impl FnOnce(&Url) -> bool,
    ) -> Result<Connection, Error> {
        let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        let connecting = self.incoming.accept().map_err(Error::connect)?;
        // Dropping an unfinished handshake closes the connection (code 0).
        let conn = tokio::time::timeout_at(deadline, connecting)
            .await
            .map_err(|_| Error::timeout("QUIC handshake"))?
            .map_err(Error::connect)?;

        let alpn = conn
            .handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|data| data.protocol);

        match alpn.as_deref() {
            Some(ALPN_QUIC) => Ok(Connection::quic(conn)),
            Some(ALPN_WEBTRANSPORT) => {
                let handshake = async {
                    let request = web_transport_quinn::Request::accept(conn.clone()).await?;
                    if !check(&request.url) {
                        request.reject(http::StatusCode::UNAUTHORIZED).await?;
                        return Ok(None);
                    }
                    request.ok().await.map(Some)
                };
                match tokio::time::timeout_at(deadline, handshake).await {
                    Ok(Ok(Some(session))) => Ok(Connection::webtransport(session)),
                    Ok(Ok(None)) => {
                        // Closing at once could discard the 401 before it is sent.
                        let _ = tokio::time::timeout(REJECT_LINGER, conn.closed()).await;
                        let err = Error::Unauthorized;
                        conn.close(
                            crate::to_wire(err.code()).try_into().unwrap_or_default(),
                            b"unauthorized",
                        );
                        Err(err)
                    }
                    Ok(Err(err)) => Err(Error::connect(err)),
                    Err(_) => {
                        let code = Error::Cancel.code();
                        conn.close(code.into(), b"webtransport handshake timeout");
                        Err(Error::timeout("WebTransport handshake"))
                    }
                }
            }
            // rustls already refuses ALPNs outside the server list; this guards a handshake
            // that somehow negotiated none.
            other => {
                let code = Error::ProtocolViolation.code();
                conn.close(code.into(), b"unsupported ALPN");
                Err(connect_msg(format!(
                    "unsupported ALPN {:?}",
                    other.map(String::from_utf8_lossy)
                )))
            }
        }
    }
}
