//! `moq-clock-demo`: publishes the time as a MoqTransfork track, or subscribes to one and prints
//! it. Same track layout and payloads as moq-clock 0.5.17, so each talks to the other.
//!
//! Track layout (spec §12): one group per UTC minute, numbered from the minute of the hour at
//! start and counting up; frame 0 is the text `YYYY-MM-DD HH:MM:`, then one frame per second
//! with the two-digit second.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Timelike, Utc};
use clap::Parser;
use moq_transfork::model::{GroupConsumer, Track, TrackProducer};
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Error, Path, Session};

/// Publish the time to a MoqTransfork relay, or subscribe to it and print one line a second.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The relay: `https://host:port/` (WebTransport) or `moqf://host:port` (raw QUIC).
    url: url::Url,

    /// Publish the time instead of subscribing to it.
    #[arg(long)]
    publish: bool,

    /// One part of the clock track's path; repeat for more parts. Default: `clock`.
    #[arg(long = "path", value_name = "PART")]
    path: Vec<String>,

    /// The local UDP address to send from.
    #[arg(long, default_value = "[::]:0")]
    bind: std::net::SocketAddr,

    /// Trust the roots in this PEM file instead of the system's (repeatable).
    #[arg(long = "tls-root", value_name = "PEM")]
    tls_root: Vec<PathBuf>,

    /// Accept any server certificate. For development only.
    #[arg(long)]
    tls_disable_verify: bool,

    /// More logging (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Less logging (-q errors only, -qq nothing). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    quiet: u8,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging(args.verbose, args.quiet);
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("moq-clock-demo: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => "warn",
        (_, 1) => "error",
        (_, q) if q >= 2 => "off",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = if args.tls_disable_verify {
        ClientTls::disable_verify()
    } else if !args.tls_root.is_empty() {
        ClientTls::with_roots(&args.tls_root)?
    } else {
        ClientTls::system_roots()?
    };
    let endpoint = Endpoint::bind(EndpointConfig {
        bind: args.bind,
        server: None,
        client,
    })
    .with_context(|| format!("cannot bind {}", args.bind))?;
    // The query may hold a token (`?jwt=`), which must not reach the terminal or logs.
    let mut shown = args.url.clone();
    shown.set_query(None);
    let conn = endpoint
        .connect(&args.url)
        .await
        .with_context(|| format!("cannot reach {shown}"))?;
    let session = Session::connect(conn)
        .await
        .with_context(|| format!("session setup with {shown} failed"))?;

    let parts = if args.path.is_empty() {
        vec!["clock".to_string()]
    } else {
        args.path
    };
    let track = Track::new(Path::from(parts));

    if args.publish {
        let (producer, consumer) = track.produce();
        session.publish(consumer)?;
        tokio::select! {
            res = publish(producer) => res,
            err = session.closed() => Err(err).context("session closed"),
        }
    } else {
        subscribe(&session, track).await
    }
}

/// Writes one group per minute and one frame per second, forever.
async fn publish(producer: TrackProducer) -> anyhow::Result<()> {
    let mut now = Utc::now();
    // The first group is numbered by the minute of the hour, as moq-clock does.
    let mut group = producer.create_group(u64::from(now.minute()))?;
    group.write_frame(base(&now));
    loop {
        group.write_frame(Bytes::from(format!("{:02}", now.second())));
        let next = next_second(&now);
        tokio::time::sleep(
            next.signed_duration_since(Utc::now())
                .to_std()
                .unwrap_or_default(),
        )
        .await;
        let previous = now;
        now = Utc::now();
        if now.minute() != previous.minute() {
            // Dropping the old group producer finishes it (FIN).
            group = producer.append_group()?;
            group.write_frame(base(&now));
        }
    }
}

/// The start of the second after `now`.
fn next_second(now: &DateTime<Utc>) -> DateTime<Utc> {
    let truncated = now.with_nanosecond(0).unwrap_or(*now);
    truncated + Duration::from_secs(1)
}

/// Frame 0 of a group: `YYYY-MM-DD HH:MM:`.
fn base(now: &DateTime<Utc>) -> Bytes {
    Bytes::from(now.format("%Y-%m-%d %H:%M:").to_string())
}

/// Prints `base + frame` for every frame, switching to a newer group as soon as one arrives.
async fn subscribe(session: &Session, track: Track) -> anyhow::Result<()> {
    let path = track.path.clone();
    let mut track = session.subscribe(track);
    let mut current: Option<(GroupConsumer, Option<String>)> = None;
    loop {
        tokio::select! {
            next = track.next_group() => match next {
                Ok(Some(group)) => current = Some((group, None)),
                Ok(None) => return Ok(()),
                Err(Error::NotFound) => anyhow::bail!("track {path} not found"),
                Err(err) => return Err(err).with_context(|| format!("subscription to {path} ended")),
            },
            frame = read_next(&mut current), if current.is_some() => {
                let Some((_, base)) = current.as_mut() else { continue };
                match frame? {
                    Some(frame) => {
                        let text = String::from_utf8_lossy(&frame).into_owned();
                        match base {
                            None => *base = Some(text),
                            Some(base) => println!("{base}{text}"),
                        }
                    }
                    None => current = None,
                }
            }
        }
    }
}

async fn read_next(
    current: &mut Option<(GroupConsumer, Option<String>)>,
) -> Result<Option<Bytes>, Error> {
    match current {
        Some((group, _)) => group.read_frame().await,
        None => std::future::pending().await,
    }
}
