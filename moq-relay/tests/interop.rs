//! The released moq-clock 0.5.17 publishing and subscribing through our relay, over both
//! transports. (Our clock against moq-relay 0.6.15 is tested in moq-clock-demo's tests.)

mod common;

use common::{is_clock_line, path, reference_binary, spawn_lines, timeout, Relay, SCHEMES};

#[tokio::test]
async fn reference_clock_through_our_relay_to_reference_clock() {
    common::init_tracing();
    for scheme in SCHEMES {
        let relay = Relay::start().await;
        // moq-clock resolves `localhost` to ::1 first; the relay listens on 127.0.0.1.
        let url = format!("{scheme}://127.0.0.1:{}/", relay.addr.port());
        let clock = reference_binary("moq-clock");
        let _publisher = spawn_lines(&clock, &["--publish", "--tls-disable-verify", &url]);
        let watcher = relay.session(scheme).await;
        common::wait_announced(&watcher, &path(&["clock"])).await;

        let mut subscriber = spawn_lines(&clock, &["--tls-disable-verify", &url]);
        for _ in 0..2 {
            let line = timeout("moq-clock output", subscriber.lines.next_line())
                .await
                .unwrap()
                .expect("moq-clock exited");
            assert!(is_clock_line(&line), "{scheme}: {line:?}");
        }
    }
}
