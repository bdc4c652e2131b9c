//! Clustering with real `moq-relay` processes on loopback (docs/clustering.md): a root and
//! nodes on distinct ports of 127.0.0.1, one shared test certificate verified by every relay
//! (`--tls-root`), and clients built on the library.
//!
//! Every wait is bounded and waits for an event (a log line, an announcement, a frame); every
//! relay is killed when its handle drops.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moq_test_support::{free_udp_ports, write_certificate, TempDir, LOOPBACK_NAMES};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{
    Announced, AnnouncedConsumer, Path, Session, Track, TrackConsumer, TrackProducer,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Bounds every wait for something that should happen at once.
const WAIT: Duration = Duration::from_secs(10);

/// Bounds how long a dead member may stay visible: the cluster links' idle timeout
/// (`moq_cluster::LINK_IDLE_TIMEOUT`, 4 s) plus slack for a loaded machine.
const FAILURE_DETECTION: Duration = Duration::from_secs(8);

async fn within<F: std::future::Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

async fn wait<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    within(WAIT, what, fut).await
}

/// Four free UDP ports: cluster members must know each other's address up front.
fn free_ports() -> [u16; 4] {
    free_udp_ports()
}

fn name(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// A scratch directory with one certificate for localhost and 127.0.0.1, removed on drop.
struct Certs {
    _dir: TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Certs {
    fn new() -> Self {
        let dir = TempDir::new("cluster");
        let (cert, key) = write_certificate(dir.path(), "cert", LOOPBACK_NAMES);
        Self {
            _dir: dir,
            cert,
            key,
        }
    }

    /// A client endpoint that verifies relays against the test certificate.
    fn client(&self) -> Endpoint {
        Endpoint::bind(EndpointConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            server: None,
            client: ClientTls::with_roots(std::slice::from_ref(&self.cert)).expect("roots"),
        })
        .expect("client endpoint")
    }
}

/// One `moq-relay` process; killed on drop. Its output (banner and logs) is kept for waits
/// and printed if the test fails.
struct Relay {
    label: &'static str,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
    log: watch::Sender<Vec<String>>,
}

impl Relay {
    /// Starts a relay on `port`; `root` is the root's port (none: this is the root), and
    /// `node` makes it advertise itself.
    async fn start(
        label: &'static str,
        certs: &Certs,
        port: u16,
        root: Option<u16>,
        node: bool,
    ) -> Self {
        let mut args = vec![
            "--bind".to_string(),
            name(port),
            "--tls-cert".into(),
            certs.cert.display().to_string(),
            "--tls-key".into(),
            certs.key.display().to_string(),
            "--tls-root".into(),
            certs.cert.display().to_string(),
        ];
        if let Some(root) = root {
            args.extend(["--cluster-root".into(), name(root)]);
        }
        if node {
            args.extend(["--cluster-node".into(), name(port)]);
        }
        let mut relay = Self {
            label,
            port,
            args,
            child: None,
            log: watch::Sender::new(Vec::new()),
        };
        relay.spawn().await;
        relay
    }

    async fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moq-relay"))
            .args(&self.args)
            .env("RUST_LOG", "info,moq_cluster=debug")
            .env("NO_COLOR", "1")
            // A signalled relay drains longer than any test waits for a withdrawal.
            .env("MOQ_RELAY_DRAIN_TIMEOUT", "30s")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start moq-relay");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(stderr),
        ] {
            let log = self.log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log.send_modify(|log| log.push(line));
                }
            });
        }
        self.child = Some(child);
        let banner = format!("moq-relay listening on {}", name(self.port));
        self.wait_log(&banner).await;
    }

    /// Kills the process at once (SIGKILL: no goodbye to anyone).
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill");
        }
        self.log
            .send_modify(|log| log.push("---- killed ----".into()));
    }

    /// Sends `signal` (for example "TERM") to the process.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Starts the process again, with the same flags and port.
    async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Number of log lines (since the start of the test) that contain `needle`.
    fn count_log(&self, needle: &str) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    /// Waits for a log line (since the start of the test) that contains `needle`.
    async fn wait_log(&self, needle: &str) {
        let mut log = self.log.subscribe();
        let what = format!("{:?} in the log of {}", needle, self.label);
        wait(
            &what,
            log.wait_for(|log| log.iter().any(|l| l.contains(needle))),
        )
        .await
        .expect("log reader alive");
    }

    /// A client session to this relay over WebTransport.
    async fn connect(&self, client: &Endpoint) -> Session {
        let url = format!("https://localhost:{}/", self.port)
            .parse()
            .expect("url");
        let conn = wait("connect", client.connect(&url))
            .await
            .expect("connect");
        wait("setup", Session::connect(conn)).await.expect("setup")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("==== log of {} ({}) ====", self.label, name(self.port));
            for line in self.log.borrow().iter() {
                eprintln!("{line}");
            }
        }
    }
}

fn path(name: &str) -> Path {
    Path::from_iter(["demo", name])
}

/// Waits until `announced` reports `path` active.
async fn announced(announced: &mut AnnouncedConsumer, path: &Path) {
    wait(&format!("announcement of {path}"), async {
        loop {
            match announced.next().await {
                Some(Announced::Active(active)) if &active == path => return,
                Some(_) => {}
                None => panic!("announcements ended"),
            }
        }
    })
    .await;
}

/// Waits up to `limit` until `announced` reports `path` ended.
async fn unannounced(announced: &mut AnnouncedConsumer, path: &Path, limit: Duration) {
    within(limit, &format!("the end of {path}"), async {
        loop {
            match announced.next().await {
                Some(Announced::Ended(ended)) if &ended == path => return,
                Some(_) => {}
                None => panic!("announcements ended"),
            }
        }
    })
    .await;
}

/// A session that watches every announcement of a relay.
async fn watcher(relay: &Relay, client: &Endpoint) -> (Session, AnnouncedConsumer) {
    let session = relay.connect(client).await;
    let announcements = session.announced(Path::new());
    (session, announcements)
}

/// Publishes `path` on `session`; the caller keeps the producer.
fn publish(session: &Session, path: &Path) -> TrackProducer {
    let (producer, consumer) = Track::new(path.clone()).produce();
    session.publish(consumer).expect("publish");
    producer
}

fn frame(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Reads the next group and its frames until the group ends.
async fn read_group(track: &mut TrackConsumer) -> Vec<String> {
    let mut group = wait("a group", track.next_group())
        .await
        .expect("group")
        .expect("track ended");
    let mut frames = Vec::new();
    while let Some(frame) = wait("a frame", group.read_frame()).await.expect("frame") {
        frames.push(String::from_utf8(frame.to_vec()).expect("utf-8"));
    }
    frames
}

/// Reads the first frame of the next group.
async fn first_frame(track: &mut TrackConsumer) -> String {
    let mut group = wait("a group", track.next_group())
        .await
        .expect("group")
        .expect("track ended");
    let frame = wait("a frame", group.read_frame())
        .await
        .expect("frame")
        .expect("group ended");
    String::from_utf8(frame.to_vec()).expect("utf-8")
}

/// A root (also a member) and three nodes: a publisher on A reaches subscribers on B, C and
/// the root, frame for frame; a broadcast on the root reaches C; 20 subscribers on B cost one
/// subscription from B to A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_delivers_every_frame_and_deduplicates_across_relays() {
    let certs = Certs::new();
    let client = certs.client();
    let [r, a, b, c] = free_ports();
    let root = Relay::start("root", &certs, r, None, true).await;
    let node_a = Relay::start("A", &certs, a, Some(r), true).await;
    let node_b = Relay::start("B", &certs, b, Some(r), true).await;
    let node_c = Relay::start("C", &certs, c, Some(r), true).await;

    let publisher = node_a.connect(&client).await;
    let on_a = publish(&publisher, &path("a"));
    let on_root_session = root.connect(&client).await;
    let on_root = publish(&on_root_session, &path("root"));

    let mut subscribers = Vec::new();
    for relay in [&node_b, &node_c, &root] {
        let (session, mut announcements) = watcher(relay, &client).await;
        announced(&mut announcements, &path("a")).await;
        let track = session.subscribe(Track::new(path("a")));
        subscribers.push((relay.label, session, track));
    }

    // Every subscriber joins while group 0 is the latest, so it gets it from frame 0.
    let mut group = on_a.append_group().expect("group");
    group.write_frame(frame("0"));
    let mut groups = Vec::new();
    for (label, _, track) in &mut subscribers {
        let mut received = wait("group 0", track.next_group())
            .await
            .expect("group")
            .expect("track");
        let first = wait("frame 0", received.read_frame()).await.expect("frame");
        assert_eq!(first.as_deref(), Some(&b"0"[..]), "on {label}");
        groups.push(received);
    }
    for n in 1..10 {
        group.write_frame(frame(&n.to_string()));
    }
    group.finish();
    let mut next = on_a.append_group().expect("group");
    for n in 10..15 {
        next.write_frame(frame(&n.to_string()));
    }
    next.finish();
    for ((label, _, track), mut received) in subscribers.iter_mut().zip(groups) {
        let mut rest = Vec::new();
        while let Some(frame) = wait("a frame", received.read_frame()).await.expect("frame") {
            rest.push(String::from_utf8(frame.to_vec()).expect("utf-8"));
        }
        let expected: Vec<String> = (1..10).map(|n| n.to_string()).collect();
        assert_eq!(rest, expected, "group 0 on {label}");
        let expected: Vec<String> = (10..15).map(|n| n.to_string()).collect();
        assert_eq!(read_group(track).await, expected, "group 1 on {label}");
    }

    // The root advertises itself too: what is published on it reaches the nodes.
    let (session, mut announcements) = watcher(&node_c, &client).await;
    announced(&mut announcements, &path("root")).await;
    let mut track = session.subscribe(Track::new(path("root")));
    let mut group = on_root.append_group().expect("group");
    group.write_frame(frame("from the root"));
    assert_eq!(first_frame(&mut track).await, "from the root");

    // 20 subscribers on B, each on its own session, all at once.
    let fanout = path("fanout");
    let on_fanout = publish(&publisher, &fanout);
    let mut group = on_fanout.append_group().expect("group");
    group.write_frame(frame("fan"));
    let (_watch, mut announcements) = watcher(&node_b, &client).await;
    announced(&mut announcements, &fanout).await;
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(node_b.connect(&client).await);
    }
    let mut readers = tokio::task::JoinSet::new();
    for session in &sessions {
        let mut track = session.subscribe(Track::new(fanout.clone()));
        readers.spawn(async move { first_frame(&mut track).await });
    }
    while let Some(frame) = readers.join_next().await {
        assert_eq!(frame.expect("reader"), "fan");
    }
    // A logs each SUBSCRIBE that arrives on a peer link; B's comes from B's own socket.
    let from_b = format!("cluster: peer {} subscribed to demo/fanout", name(b));
    assert_eq!(node_a.count_log(&from_b), 1, "B subscribed to A once");
    assert_eq!(node_a.count_log("subscribed to demo/fanout"), 1);

    drop((root, node_a, node_b, node_c));
}

/// A member killed without a goodbye: within a few seconds its broadcast ends for subscribers
/// on B and is withdrawn everywhere; restarted, it is reachable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_member_is_withdrawn_everywhere_and_rejoins() {
    let certs = Certs::new();
    let client = certs.client();
    let [r, a, b, c] = free_ports();
    let root = Relay::start("root", &certs, r, None, true).await;
    let mut node_a = Relay::start("A", &certs, a, Some(r), true).await;
    let node_b = Relay::start("B", &certs, b, Some(r), true).await;
    let node_c = Relay::start("C", &certs, c, Some(r), true).await;

    let live = path("live");
    let publisher = node_a.connect(&client).await;
    let producer = publish(&publisher, &live);
    let mut group = producer.append_group().expect("group");
    group.write_frame(frame("before"));

    let mut watchers = Vec::new();
    for relay in [&root, &node_b, &node_c] {
        let (session, mut announcements) = watcher(relay, &client).await;
        announced(&mut announcements, &live).await;
        watchers.push((relay.label, session, announcements));
    }
    let subscriber = node_b.connect(&client).await;
    let mut track = subscriber.subscribe(Track::new(live.clone()));
    assert_eq!(first_frame(&mut track).await, "before");

    node_a.kill().await;
    let killed = Instant::now();
    let _ = within(FAILURE_DETECTION, "the track to end on B", track.closed()).await;
    eprintln!("track ended on B {:?} after A died", killed.elapsed());
    for (label, _, announcements) in &mut watchers {
        unannounced(
            announcements,
            &live,
            FAILURE_DETECTION.saturating_sub(killed.elapsed()),
        )
        .await;
        eprintln!("withdrawn on {label} {:?} after A died", killed.elapsed());
    }
    drop((track, group, producer, publisher));

    // A comes back on the same address; its publisher reconnects.
    node_a.restart().await;
    let publisher = node_a.connect(&client).await;
    let producer = publish(&publisher, &live);
    let mut group = producer.append_group().expect("group");
    group.write_frame(frame("after"));
    for (_, _, announcements) in &mut watchers {
        announced(announcements, &live).await;
    }
    let mut track = subscriber.subscribe(Track::new(live.clone()));
    assert_eq!(first_frame(&mut track).await, "after");

    drop((root, node_a, node_b, node_c));
}

/// A member that drains (SIGTERM) leaves the cluster at once: its broadcast is withdrawn on
/// the root and on B within a second or two, far sooner than a dead link would be noticed,
/// while its own clients go on being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_member_leaves_the_cluster_at_once() {
    let certs = Certs::new();
    let client = certs.client();
    let [r, a, b, _] = free_ports();
    let root = Relay::start("root", &certs, r, None, true).await;
    let node_a = Relay::start("A", &certs, a, Some(r), true).await;
    let node_b = Relay::start("B", &certs, b, Some(r), true).await;

    let live = path("live");
    let publisher = node_a.connect(&client).await;
    let producer = publish(&publisher, &live);
    let local = node_a.connect(&client).await;
    let mut local_track = local.subscribe(Track::new(live.clone()));
    let mut watchers = Vec::new();
    for relay in [&root, &node_b] {
        let (session, mut announcements) = watcher(relay, &client).await;
        announced(&mut announcements, &live).await;
        watchers.push((relay.label, session, announcements));
    }
    let mut group = producer.append_group().expect("group");
    group.write_frame(frame("before"));
    assert_eq!(first_frame(&mut local_track).await, "before");

    node_a.signal("TERM");
    node_a.wait_log("withdrawing").await;
    let drained = Instant::now();
    for (label, _, announcements) in &mut watchers {
        // A dead link would take LINK_IDLE_TIMEOUT (4 s); A is alive and draining for 30 s.
        unannounced(announcements, &live, Duration::from_secs(3)).await;
        eprintln!(
            "withdrawn on {label} {:?} after the drain began",
            drained.elapsed()
        );
    }
    // A's own clients are still served.
    let mut group = producer.append_group().expect("group");
    group.write_frame(frame("draining"));
    assert_eq!(first_frame(&mut local_track).await, "draining");
    drop((root, node_a, node_b));
}

/// The root drains: the members withdraw its broadcast at once, and go on reaching each
/// other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_root_leaves_the_cluster_at_once() {
    let certs = Certs::new();
    let client = certs.client();
    let [r, a, b, _] = free_ports();
    let root = Relay::start("root", &certs, r, None, true).await;
    let node_a = Relay::start("A", &certs, a, Some(r), true).await;
    let node_b = Relay::start("B", &certs, b, Some(r), true).await;

    let on_root_session = root.connect(&client).await;
    let _on_root = publish(&on_root_session, &path("root"));
    let on_a_session = node_a.connect(&client).await;
    let on_a = publish(&on_a_session, &path("a"));
    let (session, mut announcements) = watcher(&node_b, &client).await;
    let mut from_a = session.announced(Path::new());
    announced(&mut announcements, &path("root")).await;
    announced(&mut from_a, &path("a")).await;

    root.signal("TERM");
    root.wait_log("withdrawing").await;
    unannounced(&mut announcements, &path("root"), Duration::from_secs(3)).await;
    // A's broadcast still reaches B.
    let mut track = session.subscribe(Track::new(path("a")));
    let mut group = on_a.append_group().expect("group");
    group.write_frame(frame("still here"));
    assert_eq!(first_frame(&mut track).await, "still here");
    drop((root, node_a, node_b));
}

/// The root dies while media flows from A to B: the flow goes on. The root comes back: a new
/// node D joins and reaches a broadcast on A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_survives_the_root_and_discovery_resumes() {
    let certs = Certs::new();
    let client = certs.client();
    let [r, a, b, d] = free_ports();
    // A root without --cluster-node: it reaches the members but offers nothing itself.
    let mut root = Relay::start("root", &certs, r, None, false).await;
    let node_a = Relay::start("A", &certs, a, Some(r), true).await;
    let node_b = Relay::start("B", &certs, b, Some(r), true).await;

    let flow = path("flow");
    let publisher = node_a.connect(&client).await;
    let producer = publish(&publisher, &flow);
    // A new group every 50 ms, numbered, for as long as the test runs.
    let source = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for n in 0u64.. {
            tick.tick().await;
            let mut group = producer.append_group().expect("group");
            group.write_frame(frame(&n.to_string()));
            group.finish();
        }
    });

    let (subscriber, mut announcements) = watcher(&node_b, &client).await;
    announced(&mut announcements, &flow).await;
    let mut track = subscriber.subscribe(Track::new(flow.clone()));
    let before: u64 = first_frame(&mut track).await.parse().expect("number");

    root.kill().await;
    node_a.wait_log("cluster: root link lost").await;
    node_b.wait_log("cluster: root link lost").await;
    // Both members know the root is gone; frames still flow, and newer ones keep coming.
    let mut last = before;
    for _ in 0..5 {
        let n: u64 = first_frame(&mut track).await.parse().expect("number");
        assert!(n > last, "{n} after {last}");
        last = n;
    }

    root.restart().await;
    let node_d = Relay::start("D", &certs, d, Some(r), true).await;
    let (on_d, mut announcements) = watcher(&node_d, &client).await;
    announced(&mut announcements, &flow).await;
    let mut on_d_track = on_d.subscribe(Track::new(flow.clone()));
    let n: u64 = first_frame(&mut on_d_track).await.parse().expect("number");
    assert!(n > before);
    // And B never stopped receiving.
    let n: u64 = first_frame(&mut track).await.parse().expect("number");
    assert!(n > last);

    source.abort();
    drop((root, node_a, node_b, node_d));
}
