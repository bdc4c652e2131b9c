//! The real `moq-relay` binary with `--auth-key`: tokens refused and scopes enforced on both
//! transports (docs/auth.md).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{next_frame, next_group, path, timeout, Relay, TempDir, SCHEMES};
use jsonwebtoken::Algorithm;
use moq_token::{Claims, SigningKey};
use moq_transfork::model::Announced;
use moq_transfork::{Error, Path, Session, Track, TrackProducer};

/// `{"alg":"none","kid":"k1"}` over `{"root":"","get":[""]}`, unsigned.
const ALG_NONE: &str = "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.eyJyb290IjoiIiwiZ2V0IjpbIiJdfQ.";

/// A relay that verifies tokens with a fresh key `k1`, plus that key to sign with.
async fn secured(public: &[&str]) -> (Relay, SigningKey, TempDir) {
    let dir = TempDir::new("auth");
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let file = dir.path().join("k1.jwk");
    std::fs::write(&file, key.to_json()).unwrap();
    let mut args = vec!["--linger-ms", "200", "--auth-key", file.to_str().unwrap()];
    for prefix in public {
        args.extend(["--auth-public", prefix]);
    }
    (Relay::start_with(&args).await, key, dir)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(key: &SigningKey, root: &str, put: &[&str], get: &[&str]) -> String {
    key.sign(&Claims {
        root: root.into(),
        put: put.iter().map(|s| s.to_string()).collect(),
        get: get.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
}

/// Connects to `relay` over `scheme`, presenting `token` as `?jwt=`.
async fn connect(relay: &Relay, scheme: &str, token: Option<&str>) -> Result<Session, Error> {
    let mut url = relay.url(scheme);
    if let Some(token) = token {
        url.query_pairs_mut().append_pair("jwt", token);
    }
    let conn = timeout("connect", common::client().connect(&url)).await?;
    timeout("setup", Session::connect(conn)).await
}

/// How the relay answers a client presenting `token`: the setup's error, or the code the
/// session is closed with right after.
async fn refusal(relay: &Relay, scheme: &str, token: Option<&str>) -> Error {
    match connect(relay, scheme, token).await {
        Err(err) => err,
        Ok(session) => timeout("close", session.closed()).await,
    }
}

/// A client publishing `paths` with the token.
async fn publisher(
    relay: &Relay,
    scheme: &str,
    token: &str,
    paths: &[Path],
) -> (Session, Vec<TrackProducer>) {
    let session = connect(relay, scheme, Some(token)).await.unwrap();
    let producers = paths
        .iter()
        .map(|p| {
            let (producer, consumer) = Track::new(p.clone()).produce();
            session.publish(consumer).unwrap();
            producer
        })
        .collect();
    (session, producers)
}

/// Reads announcements until `until` is active; returns every path seen active.
async fn active_until(session: &Session, until: &Path) -> Vec<Path> {
    let mut announced = session.announced(Path::new());
    let mut seen = Vec::new();
    timeout("announcements", async {
        while !seen.contains(until) {
            match announced.next().await {
                Some(Announced::Active(p)) => seen.push(p),
                Some(Announced::Ended(_)) => {}
                None => panic!("announcements ended"),
            }
        }
    })
    .await;
    seen
}

#[tokio::test]
async fn bad_tokens_are_refused_with_unauthorized() {
    common::init_tracing();
    let (relay, key, _dir) = secured(&[]).await;
    let other_key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let unknown_kid = SigningKey::generate(Algorithm::ES256, "k9").unwrap();
    let all = |key: &SigningKey| token(key, "", &[""], &[""]);
    let expired = key
        .sign(&Claims {
            get: vec!["".into()],
            exp: Some(now() - 10),
            ..Default::default()
        })
        .unwrap();
    for scheme in SCHEMES {
        let cases = [
            ("no token", None),
            ("bad signature", Some(all(&other_key))),
            ("unknown kid", Some(all(&unknown_kid))),
            ("expired", Some(expired.clone())),
            ("alg none", Some(ALG_NONE.to_string())),
            ("malformed", Some("not-a-token".to_string())),
        ];
        for (case, token) in cases {
            if scheme == "https" {
                // Refused before a session exists: the CONNECT is answered with 401.
                let refused = connect(&relay, scheme, token.as_deref()).await;
                assert_eq!(refused.err(), Some(Error::Unauthorized), "{scheme}: {case}");
            }
            assert_eq!(
                refusal(&relay, scheme, token.as_deref()).await,
                Error::Unauthorized,
                "{scheme}: {case}"
            );
        }
        // A good token still gets in, and the relay is alive.
        let session = connect(&relay, scheme, Some(&all(&key))).await.unwrap();
        session.info(path(&["nothing"])).await.unwrap_err();
    }
}

#[tokio::test]
async fn subscribe_and_announcements_are_scoped_to_get() {
    let (relay, key, _dir) = secured(&[]).await;
    for scheme in SCHEMES {
        let (visible, hidden, later) = (
            path(&["live", "alice", "cam"]),
            path(&["live", "aaa", "cam"]),
            path(&["live", "alice", "zzz"]),
        );
        let all_put = token(&key, "live", &[""], &[]);
        let (pub_session, producers) =
            publisher(&relay, scheme, &all_put, &[visible.clone(), hidden.clone()]).await;
        let full = connect(&relay, scheme, Some(&token(&key, "", &[], &[""])))
            .await
            .unwrap();
        active_until(&full, &hidden).await;
        active_until(&full, &visible).await;

        let viewer = connect(&relay, scheme, Some(&token(&key, "live", &[], &["alice"])))
            .await
            .unwrap();
        let mut seen = active_until(&viewer, &visible).await;
        // A path announced later comes after anything about the hidden one.
        let (later_producer, later_consumer) = Track::new(later.clone()).produce();
        pub_session.publish(later_consumer).unwrap();
        seen.extend(active_until(&viewer, &later).await);
        assert!(!seen.contains(&hidden), "{scheme}: {seen:?}");

        // Inside `get`: frames flow. Outside: exactly NotFound, for SUBSCRIBE, INFO, FETCH.
        let mut track = viewer.subscribe(Track::new(visible.clone()));
        let mut group = producers[0].append_group().unwrap();
        group.write_frame(Bytes::from_static(b"hi"));
        let mut received = next_group("visible group", &mut track).await;
        assert_eq!(next_frame("visible frame", &mut received).await, "hi");
        producers[1]
            .append_group()
            .unwrap()
            .write_frame(Bytes::from_static(b"no"));
        let mut refused = viewer.subscribe(Track::new(hidden.clone()));
        let err = timeout("hidden", refused.next_group()).await.unwrap_err();
        assert_eq!(err, Error::NotFound, "{scheme}");
        assert_eq!(
            viewer.info(hidden.clone()).await.unwrap_err(),
            Error::NotFound
        );
        let mut fetched = viewer.fetch(hidden.clone(), 0, 0, 0).unwrap();
        let err = timeout("fetch", fetched.read_frame()).await.unwrap_err();
        assert_eq!(err, Error::NotFound, "{scheme}");
        drop(later_producer);
    }
}

#[tokio::test]
async fn a_publish_outside_put_is_not_routed() {
    let (relay, key, _dir) = secured(&[]).await;
    for scheme in SCHEMES {
        let (allowed, refused, later) = (
            path(&["live", "alice", "a"]),
            path(&["live", "mallory", "x"]),
            path(&["live", "alice", "zzz"]),
        );
        let alice = token(&key, "live", &["alice"], &[]);
        let (pub_session, _producers) =
            publisher(&relay, scheme, &alice, &[allowed.clone(), refused.clone()]).await;
        let watcher = connect(&relay, scheme, Some(&token(&key, "", &[], &[""])))
            .await
            .unwrap();
        let mut seen = active_until(&watcher, &allowed).await;
        let (_later_producer, later_consumer) = Track::new(later.clone()).produce();
        pub_session.publish(later_consumer).unwrap();
        seen.extend(active_until(&watcher, &later).await);
        assert!(!seen.contains(&refused), "{scheme}: {seen:?}");
        let mut track = watcher.subscribe(Track::new(refused.clone()));
        let err = timeout("refused", track.next_group()).await.unwrap_err();
        assert_eq!(err, Error::NotFound, "{scheme}");
    }
}

#[tokio::test]
async fn public_prefixes_serve_clients_without_a_token() {
    let (relay, _key, _dir) = secured(&["open"]).await;
    for scheme in SCHEMES {
        let inside = path(&["open", "clock"]);
        let pub_session = connect(&relay, scheme, None).await.unwrap();
        let (producer, consumer) = Track::new(inside.clone()).produce();
        pub_session.publish(consumer).unwrap();
        let viewer = connect(&relay, scheme, None).await.unwrap();
        active_until(&viewer, &inside).await;
        let mut track = viewer.subscribe(Track::new(inside.clone()));
        producer
            .append_group()
            .unwrap()
            .write_frame(Bytes::from_static(b"tick"));
        let mut group = next_group("public group", &mut track).await;
        assert_eq!(next_frame("public frame", &mut group).await, "tick");
        let err = viewer.info(path(&["closed", "x"])).await.unwrap_err();
        assert_eq!(err, Error::NotFound, "{scheme}");
        drop(producer);
    }
}

#[tokio::test]
async fn a_session_is_closed_within_a_second_of_its_tokens_expiry() {
    let (relay, key, _dir) = secured(&[]).await;
    let live = path(&["live", "clock"]);
    let (pub_session, producers) = publisher(
        &relay,
        "moqf",
        &token(&key, "live", &[""], &[]),
        std::slice::from_ref(&live),
    )
    .await;
    let frames = tokio::spawn(async move {
        // Bounded: a group of frames every 50 ms for at most 20 s.
        for _ in 0..400 {
            let mut group = producers[0].append_group().unwrap();
            group.write_frame(Bytes::from_static(b"tick"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    for scheme in SCHEMES {
        let exp = now() + 2;
        let short = key
            .sign(&Claims {
                root: "live".into(),
                get: vec!["".into()],
                exp: Some(exp),
                ..Default::default()
            })
            .unwrap();
        let viewer = connect(&relay, scheme, Some(&short)).await.unwrap();
        let mut track = viewer.subscribe(Track::new(live.clone()));
        let mut group = next_group("a group before expiry", &mut track).await;
        next_frame("a frame before expiry", &mut group).await;
        let reason = timeout("close at expiry", viewer.closed()).await;
        let late = SystemTime::now()
            .duration_since(UNIX_EPOCH + Duration::from_secs(exp))
            .expect("not closed before exp");
        assert_eq!(reason, Error::Unauthorized, "{scheme}");
        assert!(
            late < Duration::from_secs(1),
            "{scheme}: closed {late:?} after exp"
        );
    }
    frames.abort();
    drop(pub_session);
}

#[tokio::test]
async fn a_takeover_needs_a_token_that_covers_the_path() {
    let (relay, key, _dir) = secured(&[]).await;
    for scheme in SCHEMES {
        let live = path(&["live", "alice", "cam"]);
        let (alice_session, alice) = publisher(
            &relay,
            scheme,
            &token(&key, "live", &["alice"], &[]),
            std::slice::from_ref(&live),
        )
        .await;
        let viewer = connect(&relay, scheme, Some(&token(&key, "", &[], &[""])))
            .await
            .unwrap();
        active_until(&viewer, &live).await;

        // Mallory announces the same path, and a path of her own after it: once the relay
        // shows her own path, it has handled her announce of alice's.
        let own = path(&["live", "mallory", "x"]);
        let (mallory_session, mallory) = publisher(
            &relay,
            scheme,
            &token(&key, "live", &["mallory"], &[]),
            &[live.clone(), own.clone()],
        )
        .await;
        active_until(&viewer, &own).await;

        // The viewer still gets alice's frames, never mallory's.
        let mut track = viewer.subscribe(Track::new(live.clone()));
        mallory[0]
            .append_group()
            .unwrap()
            .write_frame(Bytes::from_static(b"mallory"));
        alice[0]
            .append_group()
            .unwrap()
            .write_frame(Bytes::from_static(b"alice"));
        let mut group = next_group("a group", &mut track).await;
        assert_eq!(next_frame("a frame", &mut group).await, "alice", "{scheme}");
        drop((alice_session, mallory_session));
    }
}

#[tokio::test]
async fn the_released_clock_uses_a_public_prefix_without_a_token() {
    let (relay, key, _dir) = secured(&["anon"]).await;
    let clock = common::reference_binary("moq-clock");
    for scheme in SCHEMES {
        // moq-clock resolves `localhost` to ::1 first; the relay listens on 127.0.0.1.
        let url = format!("{scheme}://127.0.0.1:{}/", relay.addr.port());
        let public = ["--tls-disable-verify", "--path", "anon", "--path", "clock"];
        let _publisher = common::spawn_lines(&clock, &[&public[..], &["--publish", &url]].concat());
        // A tokenless clock outside the public prefix: its announce is dropped.
        let _outside = common::spawn_lines(&clock, &["--tls-disable-verify", "--publish", &url]);
        let watcher = connect(&relay, scheme, Some(&token(&key, "", &[], &[""])))
            .await
            .unwrap();
        active_until(&watcher, &path(&["anon", "clock"])).await;

        let mut subscriber = common::spawn_lines(&clock, &[&public[..], &[&url]].concat());
        for _ in 0..2 {
            let line = subscriber.next_line().await;
            assert!(common::is_clock_line(&line), "{scheme}: {line:?}");
        }
        // A tokenless SUBSCRIBE outside it gets NotFound, on which moq-clock exits quietly.
        let mut refused = common::spawn_lines(&clock, &["--tls-disable-verify", &url]);
        let line = timeout("the refused clock's exit", refused.lines.next_line()).await;
        assert_eq!(line.unwrap(), None, "{scheme}");
    }
}

/// A cluster member on `port` that verifies with `key` and dials with `token`; `root` is the
/// root's port (none: this is the root).
async fn member(
    port: u16,
    root: Option<u16>,
    key: &std::path::Path,
    token: &std::path::Path,
) -> Relay {
    let name = |port: u16| format!("127.0.0.1:{port}");
    let (bind, node) = (name(port), name(port));
    let mut args = vec![
        "--bind",
        &bind,
        "--cluster-node",
        &node,
        "--tls-disable-verify",
        "--linger-ms",
        "200",
        "--auth-key",
        key.to_str().unwrap(),
        "--cluster-token",
        token.to_str().unwrap(),
    ];
    let root = root.map(name);
    if let Some(root) = &root {
        args.extend(["--cluster-root", root]);
    }
    Relay::start_with(&args).await
}

#[tokio::test]
async fn a_cluster_forms_with_cluster_tokens_and_refuses_links_without() {
    let dir = TempDir::new("auth-cluster");
    let key = SigningKey::generate(Algorithm::ES256, "k1").unwrap();
    let key_file = dir.path().join("k1.jwk");
    std::fs::write(&key_file, key.to_json()).unwrap();
    let cluster = Claims {
        cluster: true,
        ..Default::default()
    };
    let token_file = dir.path().join("cluster.jwt");
    std::fs::write(&token_file, key.sign(&cluster).unwrap()).unwrap();

    let [r, a, b] = moq_test_support::free_udp_ports();
    let root = member(r, None, &key_file, &token_file).await;
    let node_a = member(a, Some(r), &key_file, &token_file).await;
    let node_b = member(b, Some(r), &key_file, &token_file).await;

    // A publisher on A reaches a viewer on B.
    let live = path(&["live", "clock"]);
    let (_publisher, producers) = publisher(
        &node_a,
        "moqf",
        &token(&key, "live", &[""], &[]),
        std::slice::from_ref(&live),
    )
    .await;
    let viewer = connect(&node_b, "https", Some(&token(&key, "live", &[], &[""])))
        .await
        .unwrap();
    active_until(&viewer, &live).await;
    let mut track = viewer.subscribe(Track::new(live.clone()));
    producers[0]
        .append_group()
        .unwrap()
        .write_frame(Bytes::from_static(b"across"));
    let mut group = next_group("a group across the cluster", &mut track).await;
    assert_eq!(next_frame("a frame", &mut group).await, "across");

    // Discovery and peer links without the cluster role are refused before a session exists.
    let client_token = token(&key, "", &[""], &[""]);
    for link in ["/cluster/discovery", "/cluster/peer"] {
        for token in [None, Some(client_token.as_str())] {
            let mut url: url::Url = format!("https://127.0.0.1:{r}{link}").parse().unwrap();
            if let Some(token) = token {
                url.query_pairs_mut().append_pair("jwt", token);
            }
            let refused = timeout("connect", common::client().connect(&url)).await;
            assert_eq!(refused.err(), Some(Error::Unauthorized), "{link} {token:?}");
        }
    }
    drop((root, node_a, node_b));
}
