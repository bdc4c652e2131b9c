//! A minimal publisher: connects to a relay and publishes the track `demo/counter`, one group
//! per second with a frame every 100 ms.
//!
//! ```sh
//! cargo run -p moq-transfork --example publish -- [--tls-disable-verify] https://localhost:4443/
//! ```

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Path, Session, Track};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init();
    let (url, disable_verify) = parse_args()?;

    // One endpoint per process; `[::]:0` lets the OS pick the port.
    let client = if disable_verify {
        ClientTls::disable_verify()
    } else {
        ClientTls::system_roots()?
    };
    let endpoint = Endpoint::bind(EndpointConfig {
        bind: "[::]:0".parse()?,
        server: None,
        client,
    })?;
    let conn = endpoint.connect(&url).await.context("connect")?;
    let session = Session::connect(conn).await.context("setup")?;

    // Publishing announces the path to the relay and serves its subscribers.
    let (producer, consumer) = Track::new(Path::from_iter(["demo", "counter"])).produce();
    session.publish(consumer)?;
    println!("publishing demo/counter to {url}");

    for second in 0u64.. {
        let mut group = producer.append_group()?;
        for tenth in 0..10 {
            let text = format!("{second}.{tenth}");
            group.write_frame(Bytes::from(text));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {},
                err = session.closed() => return Err(err).context("session closed"),
            }
        }
        // Dropping the group producer finishes the group.
    }
    Ok(())
}

fn parse_args() -> anyhow::Result<(url::Url, bool)> {
    let mut url = None;
    let mut disable_verify = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--tls-disable-verify" => disable_verify = true,
            _ => url = Some(arg.parse().context("invalid URL")?),
        }
    }
    let url = url.context("usage: publish [--tls-disable-verify] <https://… | moqf://…>")?;
    Ok((url, disable_verify))
}
