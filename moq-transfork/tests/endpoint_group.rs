//! An endpoint group (`Endpoint::bind_group`) over real loopback QUIC: one port, one socket
//! per endpoint, new connections spread over them, and a connection that stays on its
//! endpoint when the client's address changes.
#![cfg(target_os = "linux")]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use moq_transfork::transport::{
    ClientTls, Connection, Endpoint, EndpointConfig, ServerTls, Tuning, ALPN_QUIC,
};
use quinn::crypto::rustls::QuicClientConfig;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

async fn t<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.expect("timed out")
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A group of `count` endpoints on one port, all on the test's runtime, each answering a
/// question on a bidirectional stream with its index in the group.
fn group(count: usize) -> Result<Vec<Endpoint>> {
    let tls = ServerTls::self_signed(&["localhost".to_string()])?;
    let runtimes = vec![tokio::runtime::Handle::current(); count];
    let endpoints = Endpoint::bind_group(
        EndpointConfig {
            bind: localhost(0),
            server: Some(tls),
            client: ClientTls::disable_verify(),
        },
        Tuning::default(),
        &runtimes,
    )?;
    for (index, endpoint) in endpoints.iter().enumerate() {
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.accept().await {
                        let _ = answer(conn, index).await;
                    }
                });
            }
        });
    }
    Ok(endpoints)
}

/// Answers every question on `conn` with `index`.
async fn answer(conn: Connection, index: usize) -> Result<()> {
    loop {
        let (mut send, mut recv) = conn.accept_bi().await?;
        while recv.read_chunk(usize::MAX).await?.is_some() {}
        send.write_all(&[u8::try_from(index)?]).await?;
        send.finish()?;
    }
}

/// Asks the endpoint serving `conn` for its index.
async fn ask(conn: &quinn::Connection) -> Result<u8> {
    let (mut send, mut recv) = t(conn.open_bi()).await?;
    send.write_all(b"?").await?;
    send.finish()?;
    let answer = t(recv.read_to_end(1)).await?;
    answer.first().copied().context("no answer")
}

/// A bare quinn client on its own socket, so the test can move it to another address.
fn client() -> Result<(quinn::Endpoint, quinn::ClientConfig)> {
    let endpoint = quinn::Endpoint::client(localhost(0))?;
    let tls = ClientTls::disable_verify().client_config(ALPN_QUIC)?;
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    Ok((endpoint, config))
}

#[tokio::test]
async fn the_group_shares_one_port_and_spreads_connections() -> Result<()> {
    let endpoints = group(4)?;
    assert_eq!(endpoints.len(), 4);
    let addr = endpoints[0].local_addr()?;
    for endpoint in &endpoints {
        assert_eq!(endpoint.local_addr()?, addr);
    }
    let (client, config) = client()?;
    let mut served = [0; 4];
    // 16 connections from one address land on one endpoint with a chance of 4 in 4^16.
    for _ in 0..16 {
        let conn = t(client.connect_with(config.clone(), addr, "localhost")?).await?;
        served[usize::from(ask(&conn).await?)] += 1;
        conn.close(0u32.into(), b"");
    }
    assert!(
        served.iter().filter(|&&count| count > 0).count() >= 2,
        "every connection on one endpoint: {served:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_connection_stays_on_its_endpoint_when_the_client_moves() -> Result<()> {
    let endpoints = group(4)?;
    let addr = endpoints[0].local_addr()?;
    let (client, config) = client()?;
    let conn = t(client.connect_with(config, addr, "localhost")?).await?;
    let serving = ask(&conn).await?;
    // Hashed by address, a move would land on another of the 4 sockets 3 times in 4, whose
    // endpoint does not know the connection.
    for _ in 0..12 {
        let before = client.local_addr()?;
        client.rebind(std::net::UdpSocket::bind(localhost(0))?)?;
        assert_ne!(client.local_addr()?, before);
        assert_eq!(ask(&conn).await?, serving);
    }
    Ok(())
}
