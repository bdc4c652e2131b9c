//! The real `moq-relay` binary's HTTP API on the public listener: `/announced` and `/fetch`,
//! with and without tokens, over plain HTTP (development certificate) and HTTPS (a real one),
//! and `--no-http`.

mod common;

use bytes::Bytes;
use common::http::{get, get_tls, Response};
use common::{next_frame, next_group, path, timeout, Relay, TempDir};
use jsonwebtoken::Algorithm;
use moq_token::{Claims, SigningKey};
use moq_transfork::model::Announced;
use moq_transfork::transport::ClientTls;
use moq_transfork::{Path, Session, Track, TrackConsumer, TrackProducer};

/// Publishes `paths` on `session`.
fn publish(session: &Session, paths: &[Path]) -> Vec<TrackProducer> {
    paths
        .iter()
        .map(|p| {
            let (producer, consumer) = Track::new(p.clone()).produce();
            session.publish(consumer).unwrap();
            producer
        })
        .collect()
}

/// Waits until `session` has been told that every one of `paths` is active.
async fn all_announced(session: &Session, paths: &[Path]) {
    let mut announced = session.announced(Path::new());
    let mut missing = paths.to_vec();
    timeout("announcements", async {
        while !missing.is_empty() {
            match announced.next().await {
                Some(Announced::Active(p)) => missing.retain(|m| *m != p),
                Some(Announced::Ended(_)) => {}
                None => panic!("announcements ended"),
            }
        }
    })
    .await;
}

/// Writes one group of `frames` on `producer` and reads it back on `track` (so the relay
/// has it cached once this returns).
async fn group(producer: &TrackProducer, track: &mut TrackConsumer, frames: &[&'static [u8]]) {
    let mut group = producer.append_group().unwrap();
    for frame in frames {
        group.write_frame(Bytes::from_static(frame));
    }
    group.finish();
    let mut received = next_group("group", track).await;
    for frame in frames {
        assert_eq!(next_frame("frame", &mut received).await, frame[..]);
    }
}

fn json(response: &Response) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    let text = response.text();
    let inner = text
        .trim()
        .strip_prefix('[')
        .unwrap()
        .strip_suffix(']')
        .unwrap();
    inner
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

#[tokio::test]
async fn announced_lists_the_active_paths_under_a_prefix() {
    let relay = Relay::start().await;
    let paths = [
        path(&["demo", "a"]),
        path(&["demo", "b"]),
        path(&["other", "c"]),
    ];
    let publisher = relay.session("moqf").await;
    let _producers = publish(&publisher, &paths);
    all_announced(&relay.session("https").await, &paths).await;

    let list = |prefix: &'static str| {
        let addr = relay.addr;
        async move { json(&get(addr, prefix, &[]).await) }
    };
    assert_eq!(list("/announced/").await, ["demo/a", "demo/b", "other/c"]);
    assert_eq!(list("/announced").await, ["demo/a", "demo/b", "other/c"]);
    assert_eq!(list("/announced/demo").await, ["demo/a", "demo/b"]);
    assert_eq!(list("/announced/demo/b").await, ["demo/b"]);
    assert_eq!(list("/announced/dem").await, Vec::<String>::new());
    assert_eq!(list("/announced/nothing").await, Vec::<String>::new());

    // A withdrawn path leaves the list.
    drop(publisher);
    timeout("withdrawn", async {
        while !list("/announced/").await.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn fetch_serves_the_latest_group_an_older_one_or_404() {
    let relay = Relay::start().await;
    let name = path(&["demo", "clock"]);
    let publisher = relay.session("moqf").await;
    let producers = publish(&publisher, std::slice::from_ref(&name));
    let subscriber = relay.session("moqf").await;
    all_announced(&subscriber, std::slice::from_ref(&name)).await;
    let mut track = subscriber.subscribe(Track::new(name.clone()));
    group(&producers[0], &mut track, &[b"ab", b"cd"]).await;
    group(&producers[0], &mut track, &[b"ef"]).await;

    let latest = get(relay.addr, "/fetch/demo/clock", &[]).await;
    assert_eq!(latest.status, 200);
    assert_eq!(
        latest.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(latest.body, "ef");
    let older = get(relay.addr, "/fetch/demo/clock?group=0", &[]).await;
    assert_eq!((older.status, older.body.as_ref()), (200, &b"abcd"[..]));
    assert_eq!(
        get(relay.addr, "/fetch/demo/clock?group=1", &[]).await.body,
        "ef"
    );
    // Not cached: a group never sent, a path nobody serves, a path that is not subscribed.
    assert_eq!(
        get(relay.addr, "/fetch/demo/clock?group=7", &[])
            .await
            .status,
        404
    );
    assert_eq!(
        get(relay.addr, "/fetch/demo/nothing", &[]).await.status,
        404
    );
    assert_eq!(get(relay.addr, "/fetch/demo", &[]).await.status, 404);
    assert_eq!(
        get(relay.addr, "/fetch/demo/clock?group=x", &[])
            .await
            .status,
        400
    );
}

fn token(key: &SigningKey, put: &[&str], get: &[&str]) -> String {
    key.sign(&Claims {
        put: put.iter().map(|s| s.to_string()).collect(),
        get: get.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn the_api_obeys_the_session_tokens() {
    let dir = TempDir::new("http-auth");
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let file = dir.path().join("k1.jwk");
    std::fs::write(&file, key.to_json()).unwrap();
    let relay = Relay::start_with(&["--auth-key", file.to_str().unwrap()]).await;
    let connect = |token: String| {
        let mut url = relay.url("moqf");
        url.query_pairs_mut().append_pair("jwt", &token);
        async move {
            let conn = timeout("connect", common::client().connect(&url))
                .await
                .unwrap();
            timeout("setup", Session::connect(conn)).await.unwrap()
        }
    };
    let (open, secret) = (path(&["demo", "clock"]), path(&["secret", "x"]));
    let publisher = connect(token(&key, &[""], &[])).await;
    let producers = publish(&publisher, &[open.clone(), secret.clone()]);
    let subscriber = connect(token(&key, &[], &[""])).await;
    all_announced(&subscriber, &[open.clone(), secret.clone()]).await;
    let mut open_track = subscriber.subscribe(Track::new(open.clone()));
    let mut secret_track = subscriber.subscribe(Track::new(secret.clone()));
    group(&producers[0], &mut open_track, &[b"open"]).await;
    group(&producers[1], &mut secret_track, &[b"secret"]).await;

    let demo = token(&key, &[], &["demo"]);
    let query = format!("/announced/?jwt={demo}");
    let bearer = format!("Bearer {demo}");
    let header = [("authorization", bearer.as_str())];
    // No token, or one that does not verify: 401.
    assert_eq!(get(relay.addr, "/announced/", &[]).await.status, 401);
    assert_eq!(
        get(relay.addr, "/announced/?jwt=bad", &[]).await.status,
        401
    );
    assert_eq!(get(relay.addr, "/fetch/demo/clock", &[]).await.status, 401);
    let other = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let forged = format!("Bearer {}", token(&other, &[], &[""]));
    let forged = [("authorization", forged.as_str())];
    assert_eq!(
        get(relay.addr, "/fetch/demo/clock", &forged).await.status,
        401
    );
    // A token sees what it may subscribe to, as `?jwt=` or as a bearer token.
    assert_eq!(json(&get(relay.addr, &query, &[]).await), ["demo/clock"]);
    assert_eq!(
        json(&get(relay.addr, "/announced/", &header).await),
        ["demo/clock"]
    );
    let fetched = get(relay.addr, &format!("/fetch/demo/clock?jwt={demo}"), &[]).await;
    assert_eq!((fetched.status, fetched.body.as_ref()), (200, &b"open"[..]));
    assert_eq!(
        get(relay.addr, "/fetch/demo/clock", &header).await.body,
        "open"
    );
    // Outside its scope, a cached path is as absent as an unknown one.
    assert_eq!(
        get(relay.addr, "/fetch/secret/x", &header).await.status,
        404
    );
    let all = format!("Bearer {}", token(&key, &[], &[""]));
    let all = [("authorization", all.as_str())];
    assert_eq!(
        get(relay.addr, "/fetch/secret/x", &all).await.body,
        "secret"
    );
    assert_eq!(
        json(&get(relay.addr, "/announced/", &all).await),
        ["demo/clock", "secret/x"]
    );
}

#[tokio::test]
async fn https_with_a_real_certificate() {
    let dir = TempDir::new("http-tls");
    let (cert, key) = common::write_certificate(dir.path(), "relay", &["localhost"]);
    let relay = Relay::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    assert!(relay
        .banner
        .iter()
        .any(|line| line.contains("HTTP API:     https://")));
    let name = path(&["demo", "clock"]);
    let publisher = relay.session("moqf").await;
    let producers = publish(&publisher, std::slice::from_ref(&name));
    let subscriber = relay.session("https").await;
    all_announced(&subscriber, std::slice::from_ref(&name)).await;
    let mut track = subscriber.subscribe(Track::new(name.clone()));
    group(&producers[0], &mut track, &[b"tls"]).await;

    let tls = || {
        ClientTls::with_roots(std::slice::from_ref(&cert))
            .unwrap()
            .client_config(b"http/1.1")
            .unwrap()
    };
    let listed = get_tls(relay.addr, "localhost", tls(), "/announced/", &[]).await;
    assert_eq!(json(&listed), ["demo/clock"]);
    let fetched = get_tls(relay.addr, "localhost", tls(), "/fetch/demo/clock", &[]).await;
    assert_eq!((fetched.status, fetched.body.as_ref()), (200, &b"tls"[..]));
    // A real certificate has no /fingerprint (that is for development certificates).
    let fingerprint = get_tls(relay.addr, "localhost", tls(), "/fingerprint", &[]).await;
    assert_eq!(fingerprint.status, 404);
    // A client that does not trust the certificate fails its handshake.
    let untrusting = ClientTls::system_roots()
        .unwrap()
        .client_config(b"http/1.1")
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(untrusting));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    assert!(timeout("untrusted handshake", connector.connect(name, tcp))
        .await
        .is_err());
}

#[tokio::test]
async fn a_client_that_sends_no_headers_is_dropped_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let relay = Relay::start().await;
    let mut stalled = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    stalled
        .write_all(b"GET /announced/ HTTP/1.1\r\n")
        .await
        .unwrap();
    // Others are served meanwhile.
    assert_eq!(get(relay.addr, "/announced/", &[]).await.status, 200);
    // The stalled one is closed once its headers are overdue (5 s), within the test timeout.
    let mut rest = Vec::new();
    let read = timeout(
        "the stalled connection to close",
        stalled.read_to_end(&mut rest),
    )
    .await;
    assert!(read.is_err() || !String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[tokio::test]
async fn no_http_turns_the_public_listener_off() {
    let relay = Relay::start_with(&["--no-http"]).await;
    assert!(!relay.banner.iter().any(|line| line.contains("HTTP API")));
    let refused = timeout("tcp connect", tokio::net::TcpStream::connect(relay.addr)).await;
    assert!(refused.is_err(), "nothing listens on tcp");
    // QUIC is served as ever.
    let _session = relay.session("moqf").await;
}
