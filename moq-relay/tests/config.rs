//! Settings of the real relay from the command line, the environment and `--config`
//! (docs/operations.md): precedence flag > environment > file, an unknown key named in the
//! error, the example configuration of deploy/ loading, and JSON logs.

mod ops;

use std::process::Stdio;

use moq_test_support::{free_udp_ports, timeout, write_certificate, TempDir, LOOPBACK_NAMES};
use ops::Process;

/// Starts the relay with `args` and `envs` and returns the port of its banner.
async fn bound_port(args: &[&str], envs: &[(&str, &str)]) -> u16 {
    Process::start(args, envs).await.addr.port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_win_over_the_environment_which_wins_over_the_file() {
    let dir = TempDir::new("config");
    let [from_file, from_env, from_flag] = free_udp_ports();
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!("bind = \"127.0.0.1:{from_file}\"\nlinger_ms = 100\n"),
    )
    .unwrap();
    let config = ["--config", file.to_str().unwrap()];
    let env_bind = format!("127.0.0.1:{from_env}");
    let env = [("MOQ_RELAY_BIND", env_bind.as_str())];
    let flag_bind = format!("127.0.0.1:{from_flag}");
    let mut flagged = config.to_vec();
    flagged.extend(["--bind", &flag_bind]);

    assert_eq!(bound_port(&config, &[]).await, from_file);
    assert_eq!(bound_port(&config, &env).await, from_env);
    assert_eq!(bound_port(&flagged, &env).await, from_flag);
    // The file itself can be named by the environment.
    let env_config = [("MOQ_RELAY_CONFIG", file.to_str().unwrap())];
    assert_eq!(bound_port(&[], &env_config).await, from_file);
}

#[tokio::test]
async fn an_unknown_key_is_an_error_that_names_it() {
    let dir = TempDir::new("config");
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "bind = \"127.0.0.1:0\"\nlinger_milliseconds = 5\n").unwrap();
    let output = timeout(
        "the relay to exit",
        tokio::process::Command::new(env!("CARGO_BIN_EXE_moq-relay"))
            .args(["--config", file.to_str().unwrap()])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("relay.toml"), "{stderr}");
    assert!(
        lines[0].contains("unknown key `linger_milliseconds`"),
        "{stderr}"
    );
}

/// deploy/moq-relay.toml as shipped, with the address and certificate of the test: the
/// relay starts, and logs JSON as the file asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configuration_loads() {
    let dir = TempDir::new("config");
    let (cert, key) = write_certificate(dir.path(), "cert", LOOPBACK_NAMES);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/moq-relay.toml");
    let relay = Process::start(
        &[
            "--config",
            example,
            "--bind",
            "127.0.0.1:0",
            // The example's fixed metrics port may be taken on a test machine.
            "--metrics-bind",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let line = relay.wait_log(0, "\"level\"").await;
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(line.contains("\"fields\""), "{line}");
}
