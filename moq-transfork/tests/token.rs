//! Tokens over real QUIC on loopback: a `?jwt=` URL reaches the accepting side on both
//! transports, a refused client learns Unauthorized, and an announce filter hides paths.

mod common;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::{client, server, timeout, SCHEMES};
use moq_transfork::message::{ClientSetup, Extensions, Version, Versions, TOKEN_EXTENSION};
use moq_transfork::model::{Announced, Track};
use moq_transfork::{Encode, Error, Path, Session, SessionOptions};

fn path(parts: &[&str]) -> Path {
    Path::from_iter(parts.iter().copied())
}

/// Connects to a fresh server with `query` appended to the URL and returns the token the
/// server's session saw.
async fn token_seen(scheme: &str, query: &str) -> Option<String> {
    let (server, addr) = server();
    let accept = tokio::spawn(async move {
        let incoming = server.accept().await.expect("endpoint open");
        let conn = incoming.accept().await.expect("handshake");
        let session = Session::accept(conn).await.expect("setup");
        // The session is returned too: dropping it would close the connection.
        (session.token().map(str::to_owned), session)
    });
    let client = client();
    let url = format!("{scheme}://localhost:{}/{query}", addr.port())
        .parse()
        .unwrap();
    let conn = timeout("connect", client.connect(&url)).await.unwrap();
    let _session = timeout("setup", Session::connect(conn)).await.unwrap();
    timeout("accept", accept).await.unwrap().0
}

#[tokio::test]
async fn the_accepting_side_sees_the_token_on_both_transports() {
    common::init_tracing();
    for scheme in SCHEMES {
        assert_eq!(
            token_seen(scheme, "?jwt=aaa.bbb-c_c").await.as_deref(),
            Some("aaa.bbb-c_c"),
            "{scheme}"
        );
        assert_eq!(
            token_seen(scheme, "?x=1&jwt=t%2Bk&y=2").await.as_deref(),
            Some("t+k"),
            "{scheme}: percent-decoded, among other parameters"
        );
        assert_eq!(token_seen(scheme, "").await, None, "{scheme}");
        assert_eq!(token_seen(scheme, "?x=1").await, None, "{scheme}");
    }
}

#[tokio::test]
async fn a_refused_client_learns_unauthorized_on_both_transports() {
    for scheme in SCHEMES {
        let (server, addr) = server();
        let accept = tokio::spawn(async move {
            let incoming = server.accept().await.expect("endpoint open");
            let conn = incoming.accept().await.expect("handshake");
            let result = Session::accept_authorized(conn, |token| match token {
                Some("good") => Ok(SessionOptions::default()),
                _ => Err(Error::Unauthorized),
            })
            .await;
            // Keep the endpoint until the close has gone out.
            (result.map(|_| ()), server)
        });
        let client = client();
        let url = format!("{scheme}://localhost:{}/?jwt=bad", addr.port())
            .parse()
            .unwrap();
        let conn = timeout("connect", client.connect(&url)).await.unwrap();
        let refused = match timeout("setup", Session::connect(conn)).await {
            Err(err) => err,
            Ok(session) => timeout("close", session.closed()).await,
        };
        assert_eq!(refused, Error::Unauthorized, "{scheme}");
        let (result, _server) = timeout("accept", accept).await.unwrap();
        assert_eq!(result, Err(Error::Unauthorized), "{scheme}");
    }
}

#[tokio::test]
async fn the_announce_filter_hides_paths_from_the_peer() {
    for scheme in SCHEMES {
        let options = SessionOptions {
            announce_filter: Some(Arc::new(|path: &Path| path.parts().next() == Some("a"))),
            ..Default::default()
        };
        let pair = common::Pair::with_options(scheme, options, SessionOptions::default()).await;
        let mut tracks = Vec::new();
        for p in [&["a", "x"][..], &["b", "y"], &["a", "z"]] {
            let (producer, consumer) = Track::new(path(p)).produce();
            pair.server.publish(consumer).unwrap();
            tracks.push(producer);
        }
        let mut announced = pair.client.announced(Path::new());
        let mut seen = Vec::new();
        // One source announces in publish order: `a/z` comes after anything about `b/y`.
        while !seen.contains(&path(&["a", "z"])) {
            match timeout("announce", announced.next()).await {
                Some(Announced::Active(p)) => seen.push(p),
                other => panic!("{scheme}: unexpected {other:?}"),
            }
        }
        assert_eq!(seen, vec![path(&["a", "x"]), path(&["a", "z"])], "{scheme}");
    }
}

#[test]
fn client_setup_with_a_token_golden_bytes() {
    let mut extensions = Extensions::new();
    extensions.insert(TOKEN_EXTENSION, Bytes::from_static(b"abc"));
    let setup = ClientSetup {
        versions: Versions(vec![Version::FORK_02]),
        extensions,
    };
    let mut buf = BytesMut::new();
    setup.encode(&mut buf);
    assert_eq!(
        hex::encode(&buf),
        // versions [0xff0bad02]; one extension: id 0x6a77 (4-byte varint), 3 bytes "abc"
        "01c0000000ff0bad02018000_6a7703616263".replace('_', "")
    );
}
