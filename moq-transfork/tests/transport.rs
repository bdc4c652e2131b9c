//! Real QUIC on loopback: both transports, error-code mapping (spec §2.4), TLS (spec §10.1).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use moq_transfork::transport::{
    ClientTls, Connection, Endpoint, EndpointConfig, RecvStream, ServerTls, TlsError,
    TransportKind, ALPN_QUIC,
};
use moq_transfork::{to_wire, Error};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use url::Url;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

async fn t<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.expect("timed out")
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn self_signed() -> ServerTls {
    ServerTls::self_signed(&["localhost".to_string()]).expect("generate certificate")
}

/// A client that trusts exactly the leaf of `tls`, by hash.
fn pinned(tls: &ServerTls) -> ClientTls {
    let hashes = tls
        .fingerprints()
        .iter()
        .map(|hex| hex::decode(hex).expect("hex"))
        .collect();
    ClientTls::with_fingerprints(hashes)
}

fn server_endpoint(bind: SocketAddr, tls: ServerTls) -> Result<Endpoint> {
    Ok(Endpoint::bind(EndpointConfig {
        bind,
        server: Some(tls),
        client: ClientTls::disable_verify(),
    })?)
}

fn client_endpoint(bind: SocketAddr, tls: ClientTls) -> Result<Endpoint> {
    Ok(Endpoint::bind(EndpointConfig {
        bind,
        server: None,
        client: tls,
    })?)
}

/// Accepts one connection on `server`.
async fn accept(server: &Endpoint) -> Result<Connection> {
    let incoming = t(server.accept()).await.context("endpoint closed")?;
    Ok(t(incoming.accept()).await?)
}

/// A connected (client, server) pair over the transport of `scheme`, plus both endpoints.
async fn pair(scheme: &str) -> Result<(Connection, Connection, [Endpoint; 2])> {
    pair_on(scheme, localhost(0)).await
}

async fn pair_on(
    scheme: &str,
    bind: SocketAddr,
) -> Result<(Connection, Connection, [Endpoint; 2])> {
    let tls = self_signed();
    let client = client_endpoint(bind, pinned(&tls))?;
    let server = server_endpoint(bind, tls)?;
    let port = server.local_addr()?.port();
    let host = if bind.is_ipv6() { "[::1]" } else { "localhost" };
    let url = Url::parse(&format!("{scheme}://{host}:{port}/demo"))?;

    let (client_conn, server_conn) = tokio::join!(t(client.connect(&url)), accept(&server));
    Ok((client_conn?, server_conn?, [client, server]))
}

/// Reads `recv` to its end.
async fn read_all(recv: &mut RecvStream) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = t(recv.read_chunk(usize::MAX)).await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

const SCHEMES: [(&str, TransportKind); 2] = [
    ("https", TransportKind::WebTransport),
    ("moqf", TransportKind::Quic),
];

async fn echo(client: &Connection, server: &Connection) -> Result<()> {
    let (mut send, mut recv) = t(client.open_bi()).await?;
    t(send.write_all(b"hello")).await?;
    send.finish()?;

    let (mut back, mut request) = t(server.accept_bi()).await?;
    let got = read_all(&mut request).await?;
    assert_eq!(got, b"hello");
    t(back.write_chunk(bytes::Bytes::from(got))).await?;
    back.finish()?;
    assert_eq!(read_all(&mut recv).await?, b"hello");

    let mut uni = t(server.open_uni()).await?;
    uni.set_priority(7);
    t(uni.write_all(b"group")).await?;
    uni.finish()?;
    let mut incoming = t(client.accept_uni()).await?;
    assert_eq!(read_all(&mut incoming).await?, b"group");
    Ok(())
}

#[tokio::test]
async fn echoes_on_bi_and_uni_streams_over_both_transports() -> Result<()> {
    for (scheme, kind) in SCHEMES {
        let (client, server, _endpoints) = pair(scheme).await?;
        assert_eq!(client.kind(), kind);
        assert_eq!(server.kind(), kind);
        echo(&client, &server).await?;
    }
    assert_eq!(TransportKind::Quic.to_string(), "moqf");
    assert_eq!(TransportKind::WebTransport.to_string(), "webtransport");
    Ok(())
}

#[tokio::test]
async fn works_over_ipv6_loopback() -> Result<()> {
    let bind: SocketAddr = "[::1]:0".parse()?;
    if std::net::UdpSocket::bind(bind).is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return Ok(());
    }
    for (scheme, _) in SCHEMES {
        let (client, server, _endpoints) = pair_on(scheme, bind).await?;
        assert!(server.remote_address().is_ipv6());
        echo(&client, &server).await?;
    }
    Ok(())
}

#[tokio::test]
async fn reset_code_arrives_on_both_transports() -> Result<()> {
    for (scheme, _) in SCHEMES {
        let (client, server, _endpoints) = pair(scheme).await?;
        let mut send = t(client.open_uni()).await?;
        t(send.write_all(b"x")).await?;
        let mut recv = t(server.accept_uni()).await?;
        // Read the data first so that the reset cannot overtake the stream header.
        assert_eq!(t(recv.read_chunk(1)).await?.as_deref(), Some(&b"x"[..]));

        send.reset(Error::NotFound.code());
        let err = read_all(&mut recv).await.expect_err("stream was reset");
        assert_eq!(err, Error::NotFound, "{scheme}");
    }
    Ok(())
}

#[tokio::test]
async fn stop_code_arrives_on_both_transports() -> Result<()> {
    for (scheme, _) in SCHEMES {
        let (client, server, _endpoints) = pair(scheme).await?;
        let (mut send, _recv) = t(client.open_bi()).await?;
        t(send.write_all(b"x")).await?;
        let (_back, mut recv) = t(server.accept_bi()).await?;
        assert_eq!(t(recv.read_chunk(1)).await?.as_deref(), Some(&b"x"[..]));

        recv.stop(13);
        assert_eq!(t(send.stopped()).await?, Some(13), "{scheme}");
        let err = t(send.write_all(b"more"))
            .await
            .expect_err("stream was stopped");
        assert_eq!(err, Error::NotFound, "{scheme}");
    }
    Ok(())
}

#[tokio::test]
async fn finished_stream_reports_no_stop() -> Result<()> {
    for (scheme, _) in SCHEMES {
        let (client, server, _endpoints) = pair(scheme).await?;
        let mut send = t(client.open_uni()).await?;
        t(send.write_all(b"x")).await?;
        send.finish()?;
        let mut recv = t(server.accept_uni()).await?;
        assert_eq!(read_all(&mut recv).await?, b"x");
        assert_eq!(t(send.stopped()).await?, None, "{scheme}");
    }
    Ok(())
}

#[tokio::test]
async fn close_code_reaches_peer_on_both_transports() -> Result<()> {
    for (scheme, _) in SCHEMES {
        let (client, server, _endpoints) = pair(scheme).await?;
        client.close(Error::Duplicate.code(), "duplicate");
        assert_eq!(t(server.closed()).await, Error::Duplicate, "{scheme}");
    }
    Ok(())
}

/// A bare quinn client speaking `alpn` to `server`, trusting any certificate.
async fn bare_client(server: SocketAddr, alpn: &[u8], name: &str) -> Result<quinn::Connection> {
    let endpoint = quinn::Endpoint::client(localhost(0))?;
    let tls = ClientTls::disable_verify().client_config(alpn)?;
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    let conn = t(endpoint.connect_with(config, server, name)?).await?;
    Ok(conn)
}

/// Our server endpoint and a bare quinn connection to it over `moqf-02`, so the test sees the
/// codes exactly as they are on the wire.
async fn raw_pair() -> Result<(quinn::Connection, Connection, Endpoint)> {
    let server = server_endpoint(localhost(0), self_signed())?;
    let addr = server.local_addr()?;
    let (bare, ours) = tokio::join!(bare_client(addr, ALPN_QUIC, "localhost"), accept(&server));
    Ok((bare?, ours?, server))
}

#[tokio::test]
async fn raw_quic_sends_mapped_stream_codes_and_raw_close_code() -> Result<()> {
    let (bare, ours, _server) = raw_pair().await?;

    // RESET_STREAM: 13 goes out as 0x52e4a40fa8e8 (spec §2.4), not web-transport-quinn's raw 13.
    let mut send = t(ours.open_uni()).await?;
    t(send.write_all(b"x")).await?;
    let mut recv = t(bare.accept_uni()).await?;
    let mut byte = [0u8; 1];
    t(recv.read_exact(&mut byte)).await?;
    send.reset(13);
    match t(recv.read_to_end(1024)).await {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            assert_eq!(code.into_inner(), to_wire(13));
            assert_eq!(code.into_inner(), 0x52e4_a40f_a8e8);
        }
        other => bail!("expected a reset, got {other:?}"),
    }

    // STOP_SENDING: mapped the same way.
    let (mut bare_send, _bare_recv) = t(bare.open_bi()).await?;
    t(bare_send.write_all(b"x")).await?;
    let (_send, mut recv) = t(ours.accept_bi()).await?;
    t(recv.read_chunk(1)).await?;
    recv.stop(13);
    let stopped = t(bare_send.stopped()).await?;
    assert_eq!(stopped.map(quinn::VarInt::into_inner), Some(to_wire(13)));

    // CONNECTION_CLOSE on raw QUIC carries the unmapped code (spec §2.4).
    ours.close(13, "not found");
    match t(bare.closed()).await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), 13);
            assert_eq!(&close.reason[..], b"not found");
        }
        other => bail!("expected an application close, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn raw_quic_decodes_mapped_and_unmapped_codes() -> Result<()> {
    let (bare, ours, _server) = raw_pair().await?;

    // A mapped reset (0.8.0 peers) and a raw one (web-transport-quinn 0.13.5 in raw mode).
    for wire in [to_wire(13), 13] {
        let mut send = t(bare.open_uni()).await?;
        t(send.write_all(b"x")).await?;
        let mut recv = t(ours.accept_uni()).await?;
        t(recv.read_chunk(1)).await?;
        send.reset(quinn::VarInt::from_u64(wire)?)?;
        assert_eq!(read_all(&mut recv).await, Err(Error::NotFound), "{wire:#x}");
    }

    // A mapped stop, then the raw 0 that quinn sends when a receive stream is dropped.
    for (stop, expected) in [(Some(to_wire(12)), 12), (None, 0)] {
        let mut send = t(ours.open_uni()).await?;
        t(send.write_all(b"x")).await?;
        let mut recv = t(bare.accept_uni()).await?;
        let mut byte = [0u8; 1];
        t(recv.read_exact(&mut byte)).await?;
        match stop {
            Some(wire) => recv.stop(quinn::VarInt::from_u64(wire)?)?,
            None => drop(recv),
        }
        assert_eq!(t(send.stopped()).await?, Some(expected));
    }
    Ok(())
}

#[tokio::test]
async fn dropped_receive_stream_reads_as_stop_zero_on_webtransport() -> Result<()> {
    let (client, server, _endpoints) = pair("https").await?;
    let mut send = t(client.open_uni()).await?;
    t(send.write_all(b"x")).await?;
    let mut recv = t(server.accept_uni()).await?;
    t(recv.read_chunk(1)).await?;
    drop(recv);
    assert_eq!(t(send.stopped()).await?, Some(0));
    Ok(())
}

#[tokio::test]
async fn other_alpn_is_rejected() -> Result<()> {
    let server = server_endpoint(localhost(0), self_signed())?;
    let addr = server.local_addr()?;
    let (bare, ours) = tokio::join!(bare_client(addr, b"moq-00", "localhost"), accept(&server));
    assert!(bare.is_err(), "client handshake succeeded");
    assert!(ours.is_err(), "server accepted");
    Ok(())
}

#[tokio::test]
async fn unknown_scheme_is_an_error() -> Result<()> {
    let client = client_endpoint(localhost(0), ClientTls::disable_verify())?;
    let err = t(client.connect(&Url::parse("http://localhost:1/")?))
        .await
        .expect_err("http is not a transport");
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn address_in_use_is_reported() -> Result<()> {
    let first = server_endpoint(localhost(0), self_signed())?;
    let taken = first.local_addr()?;
    let err = server_endpoint(taken, self_signed()).expect_err("bound twice");
    assert!(err.to_string().contains("address already in use"), "{err}");
    Ok(())
}

/// A generated certificate for `name`, written as PEM files into `dir`.
fn write_cert(dir: &tempfile::TempDir, name: &str) -> Result<(PathBuf, PathBuf, Vec<u8>)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])?.self_signed(&key)?;
    let cert_path = dir.path().join(format!("{name}.crt"));
    let key_path = dir.path().join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok((cert_path, key_path, cert.der().to_vec()))
}

#[test]
fn load_errors_name_the_problem() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert_a, key_a, _) = write_cert(&dir, "a.test")?;
    let (_, key_b, _) = write_cert(&dir, "b.test")?;

    let load = |cert: &PathBuf, key: &PathBuf| {
        ServerTls::load(std::slice::from_ref(cert), std::slice::from_ref(key))
    };

    let missing = dir.path().join("missing.pem");
    let err = load(&missing, &key_a).expect_err("missing file");
    assert!(matches!(err, TlsError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );

    let err = load(&cert_a, &key_b).expect_err("wrong key");
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("does not match"), "{err}");

    let err = load(&key_a, &key_a).expect_err("no certificate");
    assert!(
        err.to_string().contains("no certificate in PEM file"),
        "{err}"
    );

    let err = load(&cert_a, &cert_a).expect_err("no key");
    assert!(matches!(err, TlsError::NoPrivateKey(_)), "{err:?}");

    let err = ServerTls::load(std::slice::from_ref(&cert_a), &[]).expect_err("unpaired");
    assert!(
        matches!(err, TlsError::CountMismatch { certs: 1, keys: 0 }),
        "{err:?}"
    );

    assert_eq!(load(&cert_a, &key_a)?.fingerprints().len(), 1);
    Ok(())
}

#[tokio::test]
async fn sni_picks_the_matching_certificate_else_the_last() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert_a, key_a, der_a) = write_cert(&dir, "a.test")?;
    let (cert_b, key_b, der_b) = write_cert(&dir, "b.test")?;
    let tls = ServerTls::load(&[cert_a, cert_b], &[key_a, key_b])?;
    let server = server_endpoint(localhost(0), tls)?;
    let addr = server.local_addr()?;

    // An IP address as the name sends no SNI at all.
    for (name, expected) in [
        ("a.test", &der_a),
        ("b.test", &der_b),
        ("other.test", &der_b),
        ("127.0.0.1", &der_b),
    ] {
        let (bare, ours) = tokio::join!(bare_client(addr, ALPN_QUIC, name), accept(&server));
        let (bare, _ours) = (bare?, ours?);
        let chain = bare
            .peer_identity()
            .context("no peer identity")?
            .downcast::<Vec<CertificateDer<'static>>>()
            .map_err(|_| anyhow::anyhow!("peer identity is not a certificate chain"))?;
        assert_eq!(
            chain.first().map(|c| c.to_vec()).as_ref(),
            Some(expected),
            "{name}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn clients_verify_against_given_roots() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key, _) = write_cert(&dir, "localhost")?;
    let (other, _, _) = write_cert(&dir, "other.test")?;
    let server = server_endpoint(
        localhost(0),
        ServerTls::load(std::slice::from_ref(&cert), &[key])?,
    )?;
    let url = Url::parse(&format!("moqf://localhost:{}", server.local_addr()?.port()))?;

    let trusting = client_endpoint(localhost(0), ClientTls::with_roots(&[cert])?)?;
    let (conn, accepted) = tokio::join!(t(trusting.connect(&url)), accept(&server));
    conn?;
    accepted?;

    let wary = client_endpoint(localhost(0), ClientTls::with_roots(&[other])?)?;
    let (conn, accepted) = tokio::join!(t(wary.connect(&url)), accept(&server));
    assert!(conn.is_err(), "untrusted certificate accepted");
    assert!(accepted.is_err());

    // A pin on some other certificate fails too.
    let pinned_elsewhere = client_endpoint(
        localhost(0),
        ClientTls::with_fingerprints(vec![vec![0; 32]]),
    )?;
    let (conn, _) = tokio::join!(t(pinned_elsewhere.connect(&url)), accept(&server));
    assert!(conn.is_err(), "wrong pin accepted");
    Ok(())
}

#[test]
fn fingerprint_is_sha256_of_the_leaf_der() {
    let tls = self_signed();
    assert!(tls.is_generated());
    let leaf = tls.leaves().next().expect("one certificate");
    let expected = hex::encode(Sha256::digest(leaf.as_ref()));
    assert_eq!(tls.fingerprints(), vec![expected.clone()]);
    assert_eq!(expected.len(), 64);
    assert_eq!(expected, expected.to_lowercase());
}

#[test]
fn generated_certificate_is_valid_for_less_than_14_days() -> Result<()> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
    let tls = ServerTls::self_signed(&names)?;
    let leaf = tls.leaves().next().context("no certificate")?.clone();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(leaf.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()?;
    let verify = |name: &str, offset_secs: i64| {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?;
        let at = now
            .as_secs()
            .checked_add_signed(offset_secs)
            .context("time")?;
        let at = UnixTime::since_unix_epoch(Duration::from_secs(at));
        let name = ServerName::try_from(name.to_string())?;
        use rustls::client::danger::ServerCertVerifier as _;
        anyhow::Ok(
            verifier
                .verify_server_cert(&leaf, &[], &name, &[], at)
                .is_ok(),
        )
    };

    const DAY: i64 = 24 * 60 * 60;
    assert!(verify("localhost", 0)?);
    assert!(verify("127.0.0.1", 0)?, "IP SAN");
    assert!(verify("::1", 0)?, "IPv6 SAN");
    assert!(!verify("example.com", 0)?);
    assert!(
        verify("localhost", -30)?,
        "backdated a minute for clock skew"
    );
    assert!(!verify("localhost", -5 * 60)?);
    assert!(verify("localhost", 9 * DAY)?);
    assert!(!verify("localhost", 14 * DAY)?, "valid for 14 days or more");
    Ok(())
}

#[tokio::test]
async fn ipv6_wildcard_also_accepts_ipv4() -> Result<()> {
    let wildcard: SocketAddr = "[::]:0".parse()?;
    if std::net::UdpSocket::bind(wildcard).is_err() {
        eprintln!("no IPv6 here; skipped");
        return Ok(());
    }
    let tls = self_signed();
    let client = client_endpoint(localhost(0), pinned(&tls))?;
    let server = server_endpoint(wildcard, tls)?;
    let url = Url::parse(&format!("moqf://127.0.0.1:{}", server.local_addr()?.port()))?;
    let (conn, accepted) = tokio::join!(t(client.connect(&url)), accept(&server));
    echo(&conn?, &accepted?).await
}

#[tokio::test]
async fn server_sees_the_webtransport_url_and_raw_quic_has_none() -> Result<()> {
    let tls = self_signed();
    let client = client_endpoint(localhost(0), pinned(&tls))?;
    let server = server_endpoint(localhost(0), tls)?;
    let port = server.local_addr()?.port();

    let url: Url = format!("https://localhost:{port}/cluster/peer").parse()?;
    let (ours, theirs) = tokio::join!(t(client.connect(&url)), accept(&server));
    let (_ours, theirs) = (ours?, theirs?);
    assert_eq!(theirs.url().map(Url::path), Some("/cluster/peer"));

    let url: Url = format!("moqf://localhost:{port}/cluster/peer").parse()?;
    let (ours, theirs) = tokio::join!(t(client.connect(&url)), accept(&server));
    let (ours, theirs) = (ours?, theirs?);
    assert_eq!(theirs.url(), None);
    assert_eq!(ours.url(), None);
    Ok(())
}

#[tokio::test]
async fn dial_timeouts_detect_a_silent_peer_sooner() -> Result<()> {
    // The server runs on a runtime of its own, shut down below without closing anything: from
    // then on it is silent, like a killed process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let tls = self_signed();
    let pin = pinned(&tls);
    let (server, port) = runtime
        .spawn(async move {
            let server = server_endpoint(localhost(0), tls)?;
            let port = server.local_addr()?.port();
            Ok::<_, anyhow::Error>((server, port))
        })
        .await??;
    let accepting = runtime.spawn(async move { accept(&server).await.map(|conn| (server, conn)) });

    let client = client_endpoint(localhost(0), pin)?
        .with_dial_timeouts(Duration::from_secs(1), Duration::from_millis(200));
    let url: Url = format!("moqf://localhost:{port}").parse()?;
    let conn = t(client.connect(&url)).await?;
    let _server_side = accepting.await??;

    runtime.shutdown_background();
    let started = std::time::Instant::now();
    t(conn.closed()).await;
    // The default idle timeout (10 s, spec §2.3) would take far longer.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
