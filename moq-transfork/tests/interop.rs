//! Interop with the released peers: moq-relay 0.6.15 and moq-clock 0.5.17, run as processes.
//!
//! They are built once by `scripts/install-reference-peers.sh` into `$MOQ_REF_DIR/bin`
//! (default `~/.cache/moq-ref/bin`); these tests fail with a pointer to that script when the
//! binaries are missing.

mod common;

use bytes::Bytes;
use common::{timeout, SCHEMES};
use moq_test_support::{reference_binary, spawn_lines, ChildLines, ReferenceRelay};
use moq_transfork::model::{Announced, Track};
use moq_transfork::{Path, Session};

/// moq-relay 0.6.15 with a client endpoint for library sessions.
struct Relay {
    process: ReferenceRelay,
    client: moq_transfork::transport::Endpoint,
}

impl Relay {
    async fn start() -> Self {
        Self {
            process: ReferenceRelay::start().await,
            client: common::client(),
        }
    }

    fn url(&self, scheme: &str) -> String {
        self.process.url(scheme)
    }

    async fn session(&self, scheme: &str) -> Result<Session, moq_transfork::Error> {
        let conn = self
            .client
            .connect(&self.url(scheme).parse().unwrap())
            .await?;
        Session::connect(conn).await
    }
}

/// moq-clock 0.5.17 with `args`, its stdout as lines, killed when dropped.
fn moq_clock(args: &[&str]) -> ChildLines {
    spawn_lines(&reference_binary("moq-clock"), args)
}

#[tokio::test]
async fn our_publisher_through_reference_relay_to_reference_clock() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let session = relay.session(scheme).await.unwrap();
        let (producer, consumer) = Track::new(Path::from_iter(["interop"])).produce();
        session.publish(consumer).unwrap();
        let mut group = producer.append_group().unwrap();
        // moq-clock prints frame 0 as a base followed by each later frame (spec §12).
        group.write_frame(Bytes::from_static(b"2026-11-26 09:30:"));
        group.write_frame(Bytes::from_static(b"42"));

        let url = relay.url(scheme);
        let mut clock = moq_clock(&["--tls-disable-verify", "--path", "interop", &url]);
        let line = timeout("moq-clock output", clock.lines.next_line())
            .await
            .unwrap();
        assert_eq!(line.as_deref(), Some("2026-11-26 09:30:42"), "{scheme}");

        // Frames written later reach the released subscriber live.
        group.write_frame(Bytes::from_static(b"43"));
        let line = timeout("moq-clock output", clock.lines.next_line())
            .await
            .unwrap();
        assert_eq!(line.as_deref(), Some("2026-11-26 09:30:43"), "{scheme}");
    }
}

#[tokio::test]
async fn reference_clock_through_reference_relay_to_our_subscriber() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        let url = relay.url(scheme);
        let _clock = moq_clock(&["--publish", "--tls-disable-verify", &url]);

        let session = relay.session(scheme).await.unwrap();
        // The relay announces the clock to every client.
        let mut announced = session.announced(Path::new());
        let clock = Path::from_iter(["clock"]);
        timeout("clock announced", async {
            while let Some(event) = announced.next().await {
                if event == Announced::Active(clock.clone()) {
                    return;
                }
            }
            panic!("announcements ended before the clock appeared");
        })
        .await;

        // moq-relay 0.6.15 can lose its upstream SUBSCRIBE to moq-clock when it arrives within
        // a millisecond of the clock's announcement (seen in about one run in ten: the relay
        // answers INFO downstream and the clock never answers upstream). A released subscriber
        // printing its first line proves the clock is being served before ours subscribes.
        let mut witness = moq_clock(&["--tls-disable-verify", &url]);
        let first = timeout("moq-clock subscriber output", witness.lines.next_line()).await;
        assert!(matches!(first, Ok(Some(_))), "{scheme}: {first:?}");

        let mut track = session.subscribe(Track::new(clock));
        let mut group = timeout("clock group", track.next_group())
            .await
            .unwrap()
            .unwrap();
        let base = timeout("base frame", group.read_frame())
            .await
            .unwrap()
            .unwrap();
        let base = String::from_utf8(base.to_vec()).unwrap();
        assert_eq!(base.len(), 17, "{scheme}: {base:?}");
        assert!(
            base.ends_with(':') && base.as_bytes()[4] == b'-',
            "{scheme}: {base:?}"
        );
        let second = timeout("second frame", group.read_frame())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.len(), 2, "{scheme}");
        assert!(
            second.iter().all(u8::is_ascii_digit),
            "{scheme}: {second:?}"
        );
    }
}
