//! The plain-QUIC floor: what sending the same media over bare quinn streams costs, with
//! moq-relay 0.6.15's transport settings (BBR, no MTU discovery, so 1200-byte packets).
//!
//! A server process (`moq-load floor-server`, started by `floor`) accepts N connections, then
//! writes every frame to each of them: one uni stream per group and connection, each frame a
//! 4-byte length and the payload (shared `Bytes`, never copied). That is what a relay's send
//! path must do at the least, so the server's CPU per delivered GB is the floor a relay is
//! measured against. The clients run in the calling process, like the load mode's subscribers.
//!
//! The server talks to its caller on stdin and stdout: it prints `listening PORT`, then
//! `ready` once N clients are connected; it publishes when it reads a line on stdin (so the
//! caller samples its CPU just before), then prints `done SENT` once every frame is written.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;

use crate::load::{Outcome, Stats};
use crate::process::ProcessSample;
use moq_transfork::transport::{ClientTls, ServerTls, ALPN_QUIC};

/// Caps that keep every run bounded, whatever the flags say.
const MAX_SUBSCRIBERS: usize = 2000;
const MAX_DURATION: Duration = Duration::from_secs(600);
/// The largest frame a client accepts.
const MAX_FRAME: usize = 16 << 20;
/// How long connecting, and each step of the protocol with the server, may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames queued for a connection that is behind; older ones are skipped (counted as lost).
const QUEUE: usize = 1024;

/// The flags of `floor` (and of the server process it starts).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct FloorArgs {
    /// Clients, each on its own connection (at most 2000).
    #[arg(long, default_value_t = 10)]
    pub(crate) subscribers: usize,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    pub(crate) rate: u32,
    /// Bytes per frame (at least 8, for the timestamp).
    #[arg(long, default_value_t = 8192)]
    pub(crate) frame_size: usize,
    /// Frames per group (one stream per group and client).
    #[arg(long, default_value_t = 60)]
    pub(crate) group_frames: u32,
    /// Seconds of publishing (at most 600).
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
}

impl FloorArgs {
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.frame_size >= 8 && self.frame_size <= MAX_FRAME,
            "--frame-size must be 8 to {MAX_FRAME}"
        );
        anyhow::ensure!(
            self.rate > 0 && self.group_frames > 0,
            "--rate and --group-frames must be positive"
        );
        Ok(())
    }
}

/// The flags of the server process: the same as the caller's.
pub(crate) type ServerArgs = FloorArgs;

/// moq-relay 0.6.15's transport settings (moq-native 0.5): idle timeout 10 s, keep-alive 4 s,
/// BBR, MTU discovery off; the rest is quinn's defaults.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(10)).expect("in range"),
    ));
    config.keep_alive_interval(Some(Duration::from_secs(4)));
    config.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    config.mtu_discovery_config(None);
    Arc::new(config)
}

/// This executable, which runs the server as `floor-server`.
pub(crate) fn server_command() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("the path of moq-load")
}

/// Microseconds since the Unix epoch: client and server are on one machine, one clock.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Starts the server process `exe`, connects the clients, has it publish, and returns what
/// the clients received and what the server cost.
pub(crate) async fn run(args: &FloorArgs, exe: &std::path::Path) -> anyhow::Result<Outcome> {
    args.check()?;
    let subscribers = args.subscribers.min(MAX_SUBSCRIBERS);
    let mut child = tokio::process::Command::new(exe)
        .arg("floor-server")
        .args(["--subscribers", &subscribers.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .args(["--frame-size", &args.frame_size.to_string()])
        .args(["--group-frames", &args.group_frames.to_string()])
        .args(["--duration", &args.duration.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("start the floor server")?;
    let pid = child.id().context("floor server pid")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let port: u16 = next_line(&mut lines)
        .await?
        .strip_prefix("listening ")
        .context("floor server: no port")?
        .parse()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let tls = ClientTls::disable_verify().client_config(ALPN_QUIC)?;
    let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    client.transport_config(transport());
    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        client_socket()?,
        Arc::new(quinn::TokioRuntime),
    )?;
    endpoint.set_default_client_config(client);

    let stats = Arc::new(Stats::default());
    let mut connections = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let conn = tokio::time::timeout(STEP_TIMEOUT, endpoint.connect(addr, "localhost")?)
            .await
            .context("connect timed out")??;
        tokio::spawn(receive(conn.clone(), stats.clone()));
        connections.push(conn);
    }
    anyhow::ensure!(
        next_line(&mut lines).await? == "ready",
        "floor server: not ready"
    );
    let before = ProcessSample::read(pid);
    let start = Instant::now();
    stdin.write_all(b"go\n").await?;
    let sent: u64 = next_line(&mut lines)
        .await?
        .strip_prefix("done ")
        .context("floor server: no count")?
        .parse()?;
    let after = ProcessSample::read(pid);
    let elapsed = start.elapsed();

    // Let the last frames arrive (bounded), then hang up, which lets the server exit.
    let expected = sent * subscribers as u64;
    let grace = Instant::now() + Duration::from_secs(2);
    while stats.received().0 < expected && Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for conn in &connections {
        conn.close(0u32.into(), b"done");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    let (received, bytes) = stats.received();
    Ok(Outcome {
        subscribers,
        sent,
        received,
        bytes,
        elapsed,
        latencies_us: stats.sorted_latencies(),
        before,
        after,
        ..Outcome::default()
    })
}

/// The server's next line on stdout.
async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> anyhow::Result<String> {
    tokio::time::timeout(STEP_TIMEOUT + MAX_DURATION, lines.next_line())
        .await
        .context("floor server timed out")??
        .context("floor server exited")
}

/// Reads every group stream of `conn`, each in its own task, until the connection closes.
async fn receive(conn: quinn::Connection, stats: Arc<Stats>) {
    while let Ok(stream) = conn.accept_uni().await {
        tokio::spawn(read_group(stream, stats.clone()));
    }
}

async fn read_group(mut stream: quinn::RecvStream, stats: Arc<Stats>) {
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return;
        }
        buf.resize(len, 0);
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let stamp = buf
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes);
        stats.record_latency(len, stamp.map(|s| now_us().saturating_sub(s)));
    }
}

impl Outcome {
    /// Prints the report of `floor`.
    pub(crate) fn print_floor(&self, args: &FloorArgs) {
        println!(
            "plain quinn: {} frames of {} B at {}/s to {} clients for {:.1} s",
            self.sent,
            args.frame_size,
            args.rate,
            self.subscribers,
            self.elapsed.as_secs_f64()
        );
        self.print_delivery("server");
    }
}

/// One frame for every connection: its group, its encoded length and its payload.
#[derive(Clone)]
struct Frame {
    group: u64,
    header: Bytes,
    payload: Bytes,
}

/// The server process: accepts `subscribers` connections, publishes on a line from stdin, and
/// exits once the clients hang up.
pub(crate) async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    args.check()?;
    let subscribers = args.subscribers.min(MAX_SUBSCRIBERS);
    let tls = ServerTls::self_signed(&["localhost".to_string()])?.server_config()?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(transport());
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse()?)?;
    println!("listening {}", endpoint.local_addr()?.port());

    let (frames, _) = broadcast::channel::<Frame>(QUEUE);
    let mut writers = Vec::with_capacity(subscribers);
    let mut connections = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let incoming = tokio::time::timeout(STEP_TIMEOUT, endpoint.accept())
            .await
            .context("no client")?
            .context("endpoint closed")?;
        let conn = tokio::time::timeout(STEP_TIMEOUT, incoming).await??;
        writers.push(tokio::spawn(send(conn.clone(), frames.subscribe())));
        connections.push(conn);
    }
    println!("ready");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    tokio::time::timeout(STEP_TIMEOUT, stdin.next_line()).await??;

    let duration = Duration::from_secs(args.duration).min(MAX_DURATION);
    let mut interval = tokio::time::interval(Duration::from_secs(1) / args.rate);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let filler = vec![0u8; args.frame_size - 8];
    let mut header = BytesMut::with_capacity(4);
    header.put_u32(args.frame_size as u32);
    let header = header.freeze();
    let deadline = Instant::now() + duration;
    let mut sent = 0u64;
    while Instant::now() < deadline {
        interval.tick().await;
        let mut payload = BytesMut::with_capacity(args.frame_size);
        payload.put_u64(now_us());
        payload.put_slice(&filler);
        let _ = frames.send(Frame {
            group: sent / u64::from(args.group_frames),
            header: header.clone(),
            payload: payload.freeze(),
        });
        sent += 1;
    }
    drop(frames);
    // Every frame is in quinn's hands once the writers are done.
    let _ = tokio::time::timeout(STEP_TIMEOUT, futures::future::join_all(writers)).await;
    println!("done {sent}");
    // The clients hang up once they have read everything.
    let _ = tokio::time::timeout(
        STEP_TIMEOUT,
        futures::future::join_all(connections.iter().map(|conn| conn.closed())),
    )
    .await;
    Ok(())
}

/// Writes every frame to `conn`, a new uni stream per group.
async fn send(conn: quinn::Connection, mut frames: broadcast::Receiver<Frame>) {
    let mut current: Option<(u64, quinn::SendStream)> = None;
    loop {
        let frame = match frames.recv().await {
            Ok(frame) => frame,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if current.as_ref().map(|(group, _)| *group) != Some(frame.group) {
            if let Some((_, mut stream)) = current.take() {
                let _ = stream.finish();
            }
            match conn.open_uni().await {
                Ok(stream) => current = Some((frame.group, stream)),
                Err(_) => return,
            }
        }
        let Some((_, stream)) = current.as_mut() else {
            return;
        };
        if stream
            .write_all_chunks(&mut [frame.header, frame.payload])
            .await
            .is_err()
        {
            return;
        }
    }
    if let Some((_, mut stream)) = current {
        let _ = stream.finish();
    }
}

/// The clients' UDP socket on loopback, with the buffers of the load mode's
/// ([`CLIENT_UDP_BUFFER`](crate::load::CLIENT_UDP_BUFFER)), so the floor and the relays are
/// measured by clients that drop alike.
fn client_socket() -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(crate::load::CLIENT_UDP_BUFFER)?;
    socket.set_send_buffer_size(crate::load::CLIENT_UDP_BUFFER)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    Ok(socket.into())
}
