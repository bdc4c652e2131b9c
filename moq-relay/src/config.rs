//! Where the settings come from: the command line, then the environment (`MOQ_RELAY_*`, one
//! variable per flag), then the TOML file of `--config`. A setting is taken from the first of
//! these that has it.
//!
//! Each key of the file is a flag's name with `_` for `-` (`tls_cert = ["a.pem"]`,
//! `drain_timeout = "30s"`, `dev = true`, `verbose = 1`). A key the relay does not know is an
//! error that names it, so a typo never goes unnoticed.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::args::Args;

/// The settings of this process: command line, environment and `--config` file. Exits with
/// clap's message on a bad command line (and for `--help` and `--version`).
///
/// # Errors
/// When the file cannot be read or parsed, holds an unknown key, or a value of the wrong type
/// or out of range.
pub(crate) fn load() -> anyhow::Result<Args> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let matches = Args::command()
        .try_get_matches_from(&argv)
        .unwrap_or_else(|err| err.exit());
    let Some(path) = matches.get_one::<std::path::PathBuf>("config") else {
        return Ok(Args::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --config {}", path.display()))?;
    with_file(argv, &matches, path, &text)
}

/// The settings of `argv` (parsed as `matches`), completed with those of the TOML `text`
/// read from `path` for every setting neither the command line nor the environment gave.
fn with_file(
    mut argv: Vec<OsString>,
    matches: &ArgMatches,
    path: &Path,
    text: &str,
) -> anyhow::Result<Args> {
    let in_file = |err: anyhow::Error| err.context(format!("--config {}", path.display()));
    let table: toml::Table =
        toml::from_str(text).map_err(|err| in_file(anyhow!("{}", err.to_string().trim_end())))?;
    let command = Args::command();
    for (key, value) in &table {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_id() == key.as_str() && settable(arg))
            .ok_or_else(|| in_file(unknown_key(key)))?;
        let given = matches.value_source(key);
        if matches!(given, None | Some(ValueSource::DefaultValue)) {
            argv.extend(flags(arg, value).map_err(|err| in_file(anyhow!("{key}: {err}")))?);
        }
    }
    let matches = command.try_get_matches_from(argv).map_err(|err| {
        let message = err.to_string();
        let first = message.lines().next().unwrap_or_default();
        in_file(anyhow!("{}", first.trim_start_matches("error: ")))
    })?;
    Ok(Args::from_arg_matches(&matches)?)
}

/// Whether `arg` may be set in the file: any flag but `--config`, `--help` and `--version`.
fn settable(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && arg.get_id() != "config"
        && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
}

fn unknown_key(key: &str) -> anyhow::Error {
    let snake = key.replace('-', "_");
    let known = Args::command()
        .get_arguments()
        .any(|arg| arg.get_id() == snake.as_str() && settable(arg));
    if known && snake != key {
        anyhow!("unknown key `{key}` (keys use `_`: `{snake}`)")
    } else {
        anyhow!("unknown key `{key}`")
    }
}

/// The command-line flags that say what `value` says for `arg`.
fn flags(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flag = || OsString::from(format!("--{long}"));
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, toml::Value::Boolean(set)) => {
            Ok(if *set { vec![flag()] } else { Vec::new() })
        }
        (ArgAction::SetTrue, _) => Err("expected true or false".into()),
        (ArgAction::Count, toml::Value::Integer(count)) if (0..=8).contains(count) => {
            Ok((0..*count).map(|_| flag()).collect())
        }
        (ArgAction::Count, _) => Err("expected a number from 0 to 8".into()),
        (ArgAction::Append, toml::Value::Array(values)) => values
            .iter()
            .map(|value| Ok(format!("--{long}={}", scalar(value)?).into()))
            .collect(),
        (_, toml::Value::Array(_)) => Err("expected one value, not a list".into()),
        (_, value) => Ok(vec![format!("--{long}={}", scalar(value)?).into()]),
    }
}

/// A value as it would be written on the command line.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("expected a string, a number or a boolean".into()),
    }
}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds (`1.5`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit `{other}`: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("`{text}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of `args` (a command line without the program name) and the file `text`.
    fn load(args: &[&str], text: &str) -> anyhow::Result<Args> {
        let argv: Vec<OsString> = std::iter::once("moq-relay")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let matches = Args::command().try_get_matches_from(&argv)?;
        with_file(argv, &matches, Path::new("relay.toml"), text)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn file_values_of_every_kind() {
        let args = load(
            &[],
            r#"
            bind = "127.0.0.1:9000"
            linger_ms = 5
            dev = true
            web = false
            verbose = 2
            drain_timeout = "1.5s"
            log_format = "json"
            tls_cert = ["a.pem", "b.pem"]
            tls_key = ["a.key", "b.key"]
            "#,
        )
        .unwrap();
        assert_eq!(args.bind, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(args.linger_ms, 5);
        assert!(args.dev && !args.web);
        assert_eq!(args.verbose, 2);
        assert_eq!(args.drain_timeout, Duration::from_millis(1500));
        assert_eq!(args.log_format, crate::args::LogFormat::Json);
        assert_eq!(args.tls_cert.len(), 2);
        assert_eq!(args.tls_key[1], Path::new("b.key"));
    }

    /// Cubic and MTU discovery by default (docs/performance.md); the flags, their values and
    /// the file give back 0.6.15's BBR and 1200-byte packets.
    #[test]
    fn transport_defaults_and_the_settings_of_0_6_15() {
        use moq_transfork::transport::Congestion;
        let defaults = load(&[], "").unwrap();
        assert_eq!(defaults.congestion, Congestion::Cubic);
        assert!(defaults.mtu_discovery);
        let on = |args: &[&str], text: &str| load(args, text).unwrap().mtu_discovery;
        assert!(on(&["--mtu-discovery"], ""));
        assert!(!on(&["--mtu-discovery=false"], ""));
        assert!(!on(&[], "mtu_discovery = false"));
        assert!(on(&["--mtu-discovery=true"], "mtu_discovery = false"));
        let old = load(&["--congestion=bbr", "--mtu-discovery=false"], "").unwrap();
        assert_eq!(
            (old.congestion, old.mtu_discovery),
            (Congestion::Bbr, false)
        );
    }

    #[test]
    fn flags_win_over_the_file_key_by_key() {
        let args = load(
            &["--linger-ms", "7", "--tls-cert", "c.pem"],
            "linger_ms = 5\ntls_cert = [\"a.pem\", \"b.pem\"]\nmax_sessions = 3",
        )
        .unwrap();
        assert_eq!(args.linger_ms, 7);
        assert_eq!(args.tls_cert, [Path::new("c.pem")]);
        assert_eq!(args.max_sessions, 3);
    }

    #[test]
    fn unknown_and_misspelled_keys_are_named() {
        let err = load(&[], "bind = \"127.0.0.1:1\"\nlinger = 5").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("relay.toml") && text.contains("unknown key `linger`"),
            "{text}"
        );
        let err = format!("{:#}", load(&[], "tls-cert = [\"a\"]").unwrap_err());
        assert!(err.contains("keys use `_`: `tls_cert`"), "{err}");
        let err = format!("{:#}", load(&[], "config = \"other.toml\"").unwrap_err());
        assert!(err.contains("unknown key `config`"), "{err}");
    }

    #[test]
    fn wrong_types_and_values_are_errors() {
        for (text, needle) in [
            ("dev = \"yes\"", "dev: expected true or false"),
            ("bind = [\"a\"]", "bind: expected one value"),
            ("verbose = 100", "verbose: expected a number"),
            ("linger_ms = \"soon\"", "soon"),
            ("max_sessions = 0", "max-sessions"),
            ("bind =", "relay.toml"),
        ] {
            let err = format!("{:#}", load(&[], text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    /// deploy/moq-relay.toml names every key; those it leaves commented out parse too.
    #[test]
    fn the_example_file_names_every_key() {
        let example = include_str!("../../deploy/moq-relay.toml");
        let uncommented: String = example
            .lines()
            .map(|line| {
                line.strip_prefix("# ")
                    .filter(|rest| rest.contains(" = "))
                    .unwrap_or(line)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let table: toml::Table = toml::from_str(&uncommented).unwrap();
        for arg in Args::command().get_arguments().filter(|arg| settable(arg)) {
            assert!(
                table.contains_key(arg.get_id().as_str()),
                "deploy/moq-relay.toml lacks {}",
                arg.get_id()
            );
        }
        load(&[], example).unwrap();
        load(&[], &uncommented).unwrap();
    }
}
