//! The relay binary as an operator runs it, for the drain, reload and configuration tests:
//! started with flags and environment, its stdout and stderr kept line by line to wait on, its
//! exit awaited with a bound.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bytes::Bytes;
use moq_test_support::{timeout, TIMEOUT};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Path, Session, Track, TrackConsumer, TrackProducer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// One `moq-relay` process, killed on drop; its output is printed if the test fails.
pub struct Process {
    pub child: Child,
    /// Where it listens, from its banner.
    pub addr: SocketAddr,
    /// Every line of stdout and stderr so far.
    log: watch::Sender<Vec<String>>,
}

impl Process {
    /// Starts the relay with `args` and `envs` (no `--bind`: give one) and waits for its
    /// banner.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moq-relay"))
            .args(args)
            .envs(envs.iter().copied())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start moq-relay");
        let log = watch::Sender::new(Vec::new());
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(stderr),
        ] {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.send_modify(|log| log.push(line));
                }
            });
        }
        let mut process = Self {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let banner = process.wait_log(0, "listening on").await;
        let addr = banner.split("listening on ").nth(1).unwrap();
        process.addr = addr.split_whitespace().next().unwrap().parse().unwrap();
        process
    }

    /// How many lines the relay has printed so far.
    pub fn lines(&self) -> usize {
        self.log.borrow().len()
    }

    /// Waits for a line, after the first `skip` lines, that contains `needle`; returns it.
    pub async fn wait_log(&self, skip: usize, needle: &str) -> String {
        let mut log = self.log.subscribe();
        let what = format!("{needle:?} in the relay's output");
        let found = timeout(&what, async {
            loop {
                if let Some(line) = log
                    .borrow_and_update()
                    .iter()
                    .skip(skip)
                    .find(|l| l.contains(needle))
                {
                    return line.clone();
                }
                if log.changed().await.is_err() {
                    panic!("the relay's output ended before {needle:?}");
                }
            }
        })
        .await;
        found
    }

    /// The relay's URL for `scheme`.
    pub fn url(&self, scheme: &str) -> url::Url {
        format!("{scheme}://localhost:{}/", self.addr.port())
            .parse()
            .unwrap()
    }

    /// A session over `scheme` from `client`.
    pub async fn session(&self, client: &Endpoint, scheme: &str) -> Session {
        let conn = timeout("connect", client.connect(&self.url(scheme)))
            .await
            .expect("connect");
        timeout("setup", Session::connect(conn))
            .await
            .expect("setup")
    }

    /// Sends `signal` (for example "TERM") to the relay.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("relay still running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits at most `limit` for the relay to exit.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the relay did not exit within {limit:?}"))
            .expect("wait for the relay")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("==== relay output ====");
            for line in self.log.borrow().iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// A client endpoint on 127.0.0.1 with `tls`.
pub fn client(tls: ClientTls) -> Endpoint {
    Endpoint::bind(EndpointConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        server: None,
        client: tls,
    })
    .unwrap()
}

/// A client that accepts only a certificate whose SHA-256 is `fingerprint` (lowercase hex).
pub fn pinned(fingerprint: &str) -> Endpoint {
    let hash = (0..fingerprint.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&fingerprint[i..i + 2], 16).unwrap())
        .collect();
    client(ClientTls::with_fingerprints(vec![hash]))
}

/// Publishes `path` on `session`; the caller keeps the producer.
pub fn publish(session: &Session, path: &Path) -> TrackProducer {
    let (producer, consumer) = Track::new(path.clone()).produce();
    session.publish(consumer).expect("publish");
    producer
}

/// Subscribes to `path` on `session` once the relay announces it.
pub async fn subscribe(session: &Session, path: &Path) -> TrackConsumer {
    let mut announced = session.announced(Path::new());
    timeout("announcement", async {
        while let Some(event) = announced.next().await {
            if event == moq_transfork::Announced::Active(path.clone()) {
                return;
            }
        }
        panic!("announcements ended");
    })
    .await;
    session.subscribe(Track::new(path.clone()))
}

/// Writes one group of one frame `text` and checks that `track` receives it.
pub async fn deliver(producer: &TrackProducer, track: &mut TrackConsumer, text: &str) {
    let mut group = producer.append_group().expect("group");
    group.write_frame(Bytes::copy_from_slice(text.as_bytes()));
    let mut received = timeout("a group", track.next_group())
        .await
        .expect("group")
        .expect("track ended");
    let frame = timeout("a frame", received.read_frame())
        .await
        .expect("frame")
        .expect("group ended");
    assert_eq!(frame, text.as_bytes());
}

/// Every wait of these tests is bounded by this.
pub const WAIT: Duration = TIMEOUT;
