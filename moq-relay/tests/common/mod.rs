//! Shared set-up for the relay's integration tests: the real `moq-relay` binary on loopback,
//! and clients built on the moq-transfork library.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod http;
pub mod raw_client;
pub mod shaper;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use moq_transfork::transport::{ClientTls, Connection, Endpoint, EndpointConfig};
use moq_transfork::{Path, Session, SessionOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use moq_test_support::{
    init_tracing, is_clock_line, reference_binary, spawn_lines, timeout, write_certificate,
    TempDir, SCHEMES, TIMEOUT,
};

/// A path from its parts.
pub fn path(parts: &[&str]) -> Path {
    Path::from_iter(parts.iter().copied())
}

/// The relay binary under test.
pub fn relay_binary() -> &'static str {
    env!("CARGO_BIN_EXE_moq-relay")
}

/// A client-only endpoint on 127.0.0.1 that accepts any certificate.
pub fn client() -> Endpoint {
    client_with(ClientTls::disable_verify())
}

/// A client-only endpoint on 127.0.0.1 with the given verification.
pub fn client_with(tls: ClientTls) -> Endpoint {
    Endpoint::bind(EndpointConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        server: None,
        client: tls,
    })
    .unwrap()
}

/// A running `moq-relay` on 127.0.0.1, killed when dropped.
pub struct Relay {
    pub child: Child,
    /// Where it listens (UDP, and TCP for HTTP).
    pub addr: SocketAddr,
    /// The certificate fingerprint from its banner.
    pub fingerprint: String,
    /// The banner lines it printed on stdout.
    pub banner: Vec<String>,
    /// The metrics listener's address, with --metrics-bind.
    pub metrics: Option<SocketAddr>,
    client: Endpoint,
}

impl Relay {
    /// Starts the relay on 127.0.0.1 port 0 with a generated certificate and a short linger.
    pub async fn start() -> Self {
        Self::start_with(&["--linger-ms", "200"]).await
    }

    /// Starts the relay with `args` (plus `--bind 127.0.0.1:0` unless given) and waits for its
    /// banner, which names the address it listens on.
    pub async fn start_with(args: &[&str]) -> Self {
        let mut command = Command::new(relay_binary());
        if !args.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1:0"]);
        }
        command.args(args);
        // Relay logs go to the test output only when asked for.
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(moq_test_support::stderr())
            .kill_on_drop(true)
            .spawn()
            .expect("start moq-relay");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let mut addr = None;
        let mut fingerprint = None;
        timeout("the relay's banner", async {
            while addr.is_none() || fingerprint.is_none() {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the relay exited before printing its address");
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let text = rest.split_whitespace().next().unwrap();
                    addr = Some(text.parse::<SocketAddr>().unwrap());
                }
                if let Some(rest) = line.split("fingerprint: ").nth(1) {
                    fingerprint = Some(rest.trim().to_string());
                }
                banner.push(line);
            }
        })
        .await;
        // Keep draining stdout so the relay can never block on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let metrics = banner.iter().find_map(|line| {
            let rest = line.split("metrics:").nth(1)?.trim();
            let rest = rest.strip_prefix("http://")?.strip_suffix("/metrics")?;
            Some(rest.parse::<SocketAddr>().unwrap())
        });
        Self {
            child,
            addr: addr.unwrap(),
            fingerprint: fingerprint.unwrap(),
            banner,
            metrics,
            client: client(),
        }
    }

    /// The relay's URL for `scheme`.
    pub fn url(&self, scheme: &str) -> url::Url {
        format!("{scheme}://localhost:{}/", self.addr.port())
            .parse()
            .unwrap()
    }

    /// A raw transport connection to the relay.
    pub async fn connect(&self, scheme: &str) -> Connection {
        timeout("connect", self.client.connect(&self.url(scheme)))
            .await
            .unwrap()
    }

    /// A session with the relay.
    pub async fn session(&self, scheme: &str) -> Session {
        self.session_with(scheme, SessionOptions::default()).await
    }

    /// A session with the relay, with options (for example a router, to serve tracks).
    pub async fn session_with(&self, scheme: &str, options: SessionOptions) -> Session {
        let conn = self.connect(scheme).await;
        timeout("setup", Session::connect_with(conn, options))
            .await
            .unwrap()
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("relay still running")
    }

    /// The relay's resident memory in KiB, from /proc (Linux only).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Sends `signal` (for example "TERM") to the relay.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

/// The next group of `track`, failing the test if the track ends, fails, or takes longer than
/// [`TIMEOUT`].
pub async fn next_group(
    what: &str,
    track: &mut moq_transfork::TrackConsumer,
) -> moq_transfork::GroupConsumer {
    timeout(what, track.next_group()).await.unwrap().unwrap()
}

/// The next frame of `group`, failing the test if the group ends, fails, or takes longer than
/// [`TIMEOUT`].
pub async fn next_frame(what: &str, group: &mut moq_transfork::GroupConsumer) -> Bytes {
    timeout(what, group.read_frame()).await.unwrap().unwrap()
}

/// CLIENT_SETUP offering 0xff0bad02 on a new session stream (spec §14.1).
pub const CLIENT_SETUP: &[u8] = &[
    0x00, 0x01, 0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00,
];
/// SERVER_SETUP choosing 0xff0bad02 (spec §14.2).
pub const SERVER_SETUP: &[u8] = &[0xc0, 0x00, 0x00, 0x00, 0xff, 0x0b, 0xad, 0x02, 0x00];

/// Opens the session stream with literal bytes and checks the literal SERVER_SETUP. The
/// returned streams keep the session alive.
pub async fn raw_handshake(
    conn: &Connection,
) -> (
    moq_transfork::transport::SendStream,
    moq_transfork::transport::RecvStream,
) {
    let (mut send, mut recv) = timeout("open", conn.open_bi()).await.unwrap();
    send.write_chunk(Bytes::from_static(CLIENT_SETUP))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < SERVER_SETUP.len() {
        let chunk = timeout("setup", recv.read_chunk(64))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, SERVER_SETUP);
    (send, recv)
}

/// A client that offers one track through a router, counting the subscriptions it serves:
/// with a relay in between, that count is the number of upstream subscriptions.
pub struct Publisher {
    pub session: Session,
    pub producer: moq_transfork::TrackProducer,
    routed: std::sync::Arc<AtomicU64>,
    /// Kept so the announcement stays active.
    _announced: moq_transfork::AnnouncedProducer,
}

impl Publisher {
    /// Connects to `relay` over `scheme` and announces `path`.
    pub async fn start(relay: &Relay, scheme: &str, path: &Path) -> Self {
        let (producer, _) = moq_transfork::Track::new(path.clone()).produce();
        let announced = moq_transfork::AnnouncedProducer::new();
        announced.announce(path.clone());
        let routed = std::sync::Arc::new(AtomicU64::new(0));
        let router = {
            let (producer, routed, path) = (producer.clone(), routed.clone(), path.clone());
            move |track: &moq_transfork::Track| {
                if track.path != path {
                    return Err(moq_transfork::Error::NotFound);
                }
                routed.fetch_add(1, Ordering::SeqCst);
                Ok(producer.subscribe())
            }
        };
        let options = SessionOptions {
            announce: vec![announced.clone()],
            router: Some(std::sync::Arc::new(router)),
            ..Default::default()
        };
        let session = relay.session_with(scheme, options).await;
        Self {
            session,
            producer,
            routed,
            _announced: announced,
        }
    }

    /// How many subscriptions this publisher has been asked to serve.
    pub fn routed(&self) -> u64 {
        self.routed.load(Ordering::SeqCst)
    }
}

/// Waits until `session` is told that `path` is active.
pub async fn wait_announced(session: &Session, path: &Path) {
    let mut announced = session.announced(Path::new());
    expect_announcement(
        &mut announced,
        moq_transfork::Announced::Active(path.clone()),
    )
    .await;
}

/// Skips announcements until `event` arrives.
pub async fn expect_announcement(
    announced: &mut moq_transfork::AnnouncedConsumer,
    event: moq_transfork::Announced,
) {
    timeout("announcement", async {
        while let Some(next) = announced.next().await {
            if next == event {
                return;
            }
        }
        panic!("announcements ended before {event:?}");
    })
    .await;
}

/// Decodes one `T` from the front of `buf` and consumes its bytes, or `None` while it is
/// incomplete. Bytes the relay should never send fail the test.
pub fn try_decode<T: moq_transfork::Decode>(buf: &mut BytesMut) -> Option<T> {
    let mut cursor = &buf[..];
    match T::decode(&mut cursor) {
        Ok(msg) => {
            let used = buf.len() - cursor.len();
            buf.advance(used);
            Some(msg)
        }
        Err(moq_transfork::DecodeError::Short(_)) => None,
        Err(err) => panic!("bad bytes from the relay: {err}"),
    }
}
