//! The relay's public sockets: QUIC on UDP and HTTP on TCP, on one address.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use moq_transfork::transport::{Endpoint, EndpointConfig, Tuning};
use tokio::net::TcpListener;

/// How many ports are tried when `--bind` leaves the port to the OS.
const PORT_ATTEMPTS: usize = 16;

/// Binds the QUIC endpoint and, if `http`, a TCP listener on the same address and port.
///
/// With port 0 the OS picks a free UDP port, which a TCP socket may hold (a client's
/// connection, say): then another port is picked, so that "any port" means one free for both.
///
/// # Errors
/// When either socket cannot be bound (on a given port, or on every port tried).
pub(crate) async fn bind(
    config: EndpointConfig,
    tuning: Tuning,
    http: bool,
) -> anyhow::Result<(Endpoint, Option<TcpListener>)> {
    bind_with(config, tuning, http, TcpListener::bind).await
}

/// [`bind`], with `listen` binding the TCP side.
async fn bind_with<F, Fut>(
    config: EndpointConfig,
    tuning: Tuning,
    http: bool,
    mut listen: F,
) -> anyhow::Result<(Endpoint, Option<TcpListener>)>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<TcpListener>>,
{
    let any_port = config.bind.port() == 0;
    let mut attempt = 1;
    loop {
        let endpoint =
            Endpoint::bind_tuned(config.clone(), tuning.clone()).context("cannot listen on udp")?;
        if !http {
            return Ok((endpoint, None));
        }
        let addr = endpoint.local_addr().context("local address")?;
        match listen(addr).await {
            Ok(listener) => return Ok((endpoint, Some(listener))),
            Err(err)
                if any_port
                    && err.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < PORT_ATTEMPTS =>
            {
                tracing::debug!(%addr, "tcp port in use: picking another");
                attempt += 1;
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot listen on tcp {addr} for http"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use moq_transfork::transport::{ClientTls, ServerTls};

    use super::*;

    fn config(bind: std::net::SocketAddr) -> EndpointConfig {
        EndpointConfig {
            bind,
            server: Some(ServerTls::self_signed(&["localhost".to_string()]).unwrap()),
            client: ClientTls::disable_verify(),
        }
    }

    #[tokio::test]
    async fn any_port_is_one_port_for_udp_and_tcp() {
        let any = "127.0.0.1:0".parse().unwrap();
        let (endpoint, listener) = bind(config(any), Tuning::default(), true).await.unwrap();
        let listener = listener.expect("http asked for");
        assert_eq!(
            listener.local_addr().unwrap(),
            endpoint.local_addr().unwrap()
        );
        let (_, none) = bind(config(any), Tuning::default(), false).await.unwrap();
        assert!(none.is_none());
    }

    /// A TCP side that finds the first `taken` ports held, whatever they are.
    fn held_first(
        taken: usize,
    ) -> impl FnMut(SocketAddr) -> BoxFuture<'static, std::io::Result<TcpListener>> {
        let mut calls = 0;
        move |addr| {
            calls += 1;
            if calls <= taken {
                let err = std::io::Error::from(std::io::ErrorKind::AddrInUse);
                return Box::pin(async move { Err(err) });
            }
            Box::pin(TcpListener::bind(addr))
        }
    }

    #[tokio::test]
    async fn any_port_held_by_tcp_is_traded_for_another() {
        let any = "127.0.0.1:0".parse().unwrap();
        let (endpoint, listener) = bind_with(config(any), Tuning::default(), true, held_first(3))
            .await
            .unwrap();
        let listener = listener.expect("http asked for");
        assert_eq!(
            listener.local_addr().unwrap(),
            endpoint.local_addr().unwrap()
        );

        // Not forever: past the attempts, the error is the relay's.
        let err = bind_with(
            config(any),
            Tuning::default(),
            true,
            held_first(PORT_ATTEMPTS),
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("for http"), "{err:#}");
    }

    #[tokio::test]
    async fn a_given_port_held_by_tcp_is_an_error() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind(config(tcp.local_addr().unwrap()), Tuning::default(), true)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("for http"), "{err:#}");
    }
}
