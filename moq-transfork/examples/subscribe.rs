//! A minimal subscriber: connects to a relay, subscribes to `demo/counter` and prints every
//! frame of every group.
//!
//! ```sh
//! cargo run -p moq-transfork --example subscribe -- [--tls-disable-verify] https://localhost:4443/
//! ```

use anyhow::Context;
use moq_transfork::transport::{ClientTls, Endpoint, EndpointConfig};
use moq_transfork::{Path, Session, Track};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init();
    let (url, disable_verify) = parse_args()?;

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

    // The subscription starts with the latest group, from its first frame.
    let mut track = session.subscribe(Track::new(Path::from_iter(["demo", "counter"])));
    while let Some(mut group) = track.next_group().await? {
        // Groups arrive concurrently; this simple reader takes them one at a time.
        while let Some(frame) = group.read_frame().await? {
            println!(
                "group {}: {}",
                group.sequence(),
                String::from_utf8_lossy(&frame)
            );
        }
    }
    println!("track ended");
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
    let url = url.context("usage: subscribe [--tls-disable-verify] <https://… | moqf://…>")?;
    Ok((url, disable_verify))
}
