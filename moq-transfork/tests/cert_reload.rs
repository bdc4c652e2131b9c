//! Replacing an endpoint's certificates while it runs (`Endpoint::certificates`): new
//! handshakes show the new certificate, established connections keep working.

mod common;

use bytes::Bytes;
use common::{server, timeout, url, SCHEMES};
use moq_transfork::transport::{ClientTls, Connection, Endpoint, EndpointConfig, ServerTls};

/// A client endpoint that accepts only the certificate whose fingerprint is `hex`.
fn pinned(hex: &str) -> Endpoint {
    Endpoint::bind(EndpointConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        server: None,
        client: ClientTls::with_fingerprints(vec![hex::decode(hex).unwrap()]),
    })
    .unwrap()
}

/// Connects `client` to `server` over `scheme`, accepting on the server side.
async fn connect(
    client: &Endpoint,
    server: &Endpoint,
    scheme: &str,
) -> Result<(Connection, Connection), moq_transfork::Error> {
    let url = url(scheme, server.local_addr().unwrap());
    let accept = async {
        let incoming = server.accept().await.expect("endpoint open");
        incoming.accept().await
    };
    let (ours, theirs) = timeout("handshake", async {
        tokio::join!(client.connect(&url), accept)
    })
    .await;
    Ok((ours?, theirs?))
}

/// Sends `text` on a new stream from `from` and reads it on `to`.
async fn roundtrip(from: &Connection, to: &Connection, text: &'static str) {
    let mut send = timeout("open", from.open_uni()).await.unwrap();
    send.write_all(text.as_bytes()).await.unwrap();
    send.finish().unwrap();
    let mut recv = timeout("accept", to.accept_uni()).await.unwrap();
    let chunk = timeout("read", recv.read_chunk(64)).await.unwrap();
    assert_eq!(chunk, Some(Bytes::from_static(text.as_bytes())));
}

#[tokio::test]
async fn replaced_certificates_apply_to_new_handshakes_only() {
    for scheme in SCHEMES {
        let (server, _) = server();
        let certs = server.certificates().expect("a server endpoint").clone();
        let first = certs.current().fingerprints().remove(0);
        let old = pinned(&first);
        let (client_conn, server_conn) = connect(&old, &server, scheme).await.unwrap();

        let renewed = ServerTls::self_signed(&["localhost".to_string()]).unwrap();
        let second = renewed.fingerprints().remove(0);
        let previous = certs.replace(renewed);
        assert_eq!(previous.fingerprints()[0], first);

        // A new handshake shows the new certificate, and only it.
        connect(&pinned(&second), &server, scheme).await.unwrap();
        let refused = connect(&old, &server, scheme).await;
        assert!(
            refused.is_err(),
            "{scheme}: the old certificate is still shown"
        );
        // The connection made before the swap is untouched, both ways.
        roundtrip(&client_conn, &server_conn, "after the swap").await;
        roundtrip(&server_conn, &client_conn, "and back").await;
    }
    // A client-only endpoint has no certificates.
    assert!(common::client().certificates().is_none());
}
