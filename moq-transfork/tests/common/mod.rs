//! Shared set-up for the integration tests: real QUIC endpoints on loopback.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::SocketAddr;

use moq_transfork::transport::{ClientTls, Connection, Endpoint, EndpointConfig, ServerTls};
use moq_transfork::{Session, SessionOptions};

pub use moq_test_support::{init_tracing, timeout, SCHEMES, TIMEOUT};

/// A server endpoint on 127.0.0.1 with a fresh self-signed certificate.
pub fn server() -> (Endpoint, SocketAddr) {
    let endpoint = Endpoint::bind(EndpointConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        server: Some(ServerTls::self_signed(&["localhost".to_string()]).unwrap()),
        client: ClientTls::disable_verify(),
    })
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    (endpoint, addr)
}

/// A client-only endpoint on 127.0.0.1 that accepts any certificate.
pub fn client() -> Endpoint {
    Endpoint::bind(EndpointConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        server: None,
        client: ClientTls::disable_verify(),
    })
    .unwrap()
}

/// The URL of `addr` for `scheme`.
pub fn url(scheme: &str, addr: SocketAddr) -> url::Url {
    format!("{scheme}://localhost:{}/", addr.port())
        .parse()
        .unwrap()
}

/// A raw transport connection from a fresh client to `addr`.
pub async fn connect_raw(scheme: &str, addr: SocketAddr) -> (Endpoint, Connection) {
    let client = client();
    let conn = timeout("connect", client.connect(&url(scheme, addr)))
        .await
        .unwrap();
    (client, conn)
}

/// A connected pair of sessions over `scheme`: (server side, client side).
pub struct Pair {
    pub server: Session,
    pub client: Session,
    _endpoints: (Endpoint, Endpoint),
}

impl Pair {
    pub async fn new(scheme: &str) -> Self {
        Self::with_options(scheme, SessionOptions::default(), SessionOptions::default()).await
    }

    pub async fn with_options(
        scheme: &str,
        server_options: SessionOptions,
        client_options: SessionOptions,
    ) -> Self {
        let (server, addr) = server();
        let accept = {
            let server = server.clone();
            tokio::spawn(async move {
                let incoming = server.accept().await.expect("endpoint closed");
                let conn = incoming.accept().await.expect("handshake");
                Session::accept_with(conn, server_options)
                    .await
                    .expect("setup")
            })
        };
        let client = client();
        let conn = timeout("connect", client.connect(&url(scheme, addr)))
            .await
            .unwrap();
        let client_session = timeout("setup", Session::connect_with(conn, client_options))
            .await
            .unwrap();
        let server_session = timeout("accept", accept).await.unwrap();
        Self {
            server: server_session,
            client: client_session,
            _endpoints: (server, client),
        }
    }
}
