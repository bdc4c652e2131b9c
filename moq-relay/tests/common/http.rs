//! A minimal HTTP/1.1 client for the relay's TCP listeners (metrics, health, the HTTP API),
//! plain or over TLS.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::timeout;

/// What the server answered.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("a UTF-8 body")
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET path` (with its query) from `addr` over plain HTTP, with extra `headers`.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let tcp = timeout("tcp connect", TcpStream::connect(addr))
        .await
        .unwrap();
    request(tcp, &addr.to_string(), path, headers).await
}

/// `GET path` from `addr` over TLS, presenting `server_name` and verifying with `tls`.
pub async fn get_tls(
    addr: SocketAddr,
    server_name: &str,
    tls: rustls::ClientConfig,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let tcp = timeout("tcp connect", TcpStream::connect(addr))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let stream = timeout("tls handshake", connector.connect(name, tcp))
        .await
        .expect("tls handshake");
    request(stream, server_name, path, headers).await
}

async fn request<S>(io: S, host: &str, path: &str, headers: &[(&str, &str)]) -> Response
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = timeout(
        "http handshake",
        hyper::client::conn::http1::handshake(TokioIo::new(io)),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut request = hyper::Request::get(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).unwrap();
    let response = timeout("http response", sender.send_request(request))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = timeout("http body", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    Response {
        status,
        headers,
        body,
    }
}

/// The value of the sample `series` (name and labels exactly as exposed) in a `/metrics`
/// text; `None` when absent.
pub fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("an integer sample"))
}
