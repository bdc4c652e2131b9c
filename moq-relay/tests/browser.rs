//! The page moq-relay serves at `/`, as a person uses it: headless Chromium (Debian's
//! `chromium`, driven by `playwright-core` from npm through `tests/browser/drive.mjs`) opens the
//! page served by the real relay binary, sees the path published by the real `moq-clock-demo`
//! binary appear, clicks it, and sees clock lines arrive a second apart; against a relay reached
//! as `localhost` (on `[::1]`, which Chromium tries first) and as `127.0.0.1`. The same run
//! restarts the subscription, checks that `?jwt=` reaches the WebTransport URL, and that a
//! missing track, a refused certificate and an unreachable relay are shown as errors.
//!
//! What it needs is installed on first use when possible: `chromium` with apt-get (as root) and
//! `playwright-core` with npm into `$MOQ_WEB_MODULES` (default `~/.cache/moq-web`), outside the
//! repository. `MOQ_CHROMIUM` names another Chromium or Chrome executable. The screenshots go to
//! the test's scratch directory (`target/tmp`), and their paths are printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{is_clock_line, timeout, write_certificate, Relay, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The playwright-core release the driver script is written against.
const PLAYWRIGHT: &str = "playwright-core@1.65.1";

/// Bound on one browser run: page load, announce, two subscriptions of a few seconds each.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// `moq-clock-demo`, built next to the relay by `cargo test --workspace` (its own tests need it).
fn clock_binary() -> PathBuf {
    let path = Path::new(common::relay_binary()).with_file_name("moq-clock-demo");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p moq-clock-demo` (`cargo test --workspace` builds it)",
        path.display()
    );
    path
}

/// Runs `program` with `args`, true if it succeeded.
fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The first of `names` found on `PATH`.
fn which(names: &[&str]) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|path| path.is_file())
}

/// The Chromium to drive: `$MOQ_CHROMIUM`, or `chromium` on PATH, installed with apt-get if it
/// is missing and apt-get can run.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("MOQ_CHROMIUM") {
        return path.into();
    }
    const NAMES: &[&str] = &["chromium", "chromium-browser"];
    if let Some(path) = which(NAMES) {
        return path;
    }
    eprintln!(
        "browser test: chromium is missing; installing it with apt-get (a minute or two, once)"
    );
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    let installed = Command::new("apt-get")
        .args(["update", "-qq"])
        .envs(env)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .args(["install", "-y", "-qq", "chromium"])
            .envs(env)
            .status()
            .is_ok_and(|s| s.success());
    which(NAMES).filter(|_| installed).unwrap_or_else(|| {
        panic!(
            "the browser test needs Chromium and could not install it: run \
             `sudo apt-get install chromium` (Debian/Ubuntu), or set MOQ_CHROMIUM to a \
             Chromium or Chrome executable"
        )
    })
}

/// The directory whose `node_modules` holds playwright-core, installed with npm if missing.
fn playwright() -> PathBuf {
    let dir = std::env::var_os("MOQ_WEB_MODULES")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/moq-web")))
        .expect("set HOME or MOQ_WEB_MODULES");
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return dir;
    }
    assert!(
        run("node", &["--version"]),
        "the browser test needs Node.js 18 or newer (`node` on PATH): install it, e.g. \
         `sudo apt-get install nodejs npm`"
    );
    eprintln!(
        "browser test: installing {PLAYWRIGHT} into {} with npm (once)",
        dir.display()
    );
    std::fs::create_dir_all(&dir).expect("create the playwright-core directory");
    let prefix = dir.to_str().expect("a UTF-8 path");
    assert!(
        run(
            "npm",
            &[
                "install",
                "--prefix",
                prefix,
                "--no-audit",
                "--no-fund",
                PLAYWRIGHT
            ]
        ),
        "the browser test could not install playwright-core: run \
         `npm install --prefix {prefix} {PLAYWRIGHT}`, or set MOQ_WEB_MODULES to a directory \
         whose node_modules holds it"
    );
    dir
}

/// Starts a relay bound to `bind` and a clock publishing to it, then drives Chromium through
/// the page URL the relay's banner prints. Returns the clock lines the page showed.
async fn browse(bind: &str, expected_host: &str, tools: &(PathBuf, PathBuf)) -> Vec<String> {
    let relay = Relay::start_with(&["--bind", bind, "--linger-ms", "200"]).await;
    let page = relay
        .banner
        .iter()
        .find_map(|line| line.split("browser page: ").nth(1))
        .unwrap_or_else(|| panic!("the banner names no page: {:?}", relay.banner))
        .to_string();
    assert_eq!(
        page,
        format!("http://{expected_host}:{}/", relay.addr.port()),
        "the page URL a browser can reach"
    );
    let _clock = tokio::process::Command::new(clock_binary())
        .args(["--publish", "--tls-disable-verify"])
        .arg(format!("https://{}/", relay.addr))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(moq_test_support::stderr())
        .kill_on_drop(true)
        .spawn()
        .expect("start moq-clock-demo");

    let screenshot =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("web-page-{expected_host}.png"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/drive.mjs");
    let (chromium, modules) = tools;
    let run = tokio::process::Command::new("node")
        .arg(script)
        .arg(&page)
        .arg("clock")
        .arg(&screenshot)
        .env("MOQ_CHROMIUM", chromium)
        .env("MOQ_WEB_MODULES", modules)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser run against {page} took over {BROWSER_TIMEOUT:?}"))
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run against {page} failed:\n{}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("browser test: {page} screenshot {}", screenshot.display());
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("clock: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_shows_clock_lines_through_the_page() {
    let tools = tokio::task::spawn_blocking(|| (chromium(), playwright()))
        .await
        .unwrap();
    for (bind, host) in [("[::1]:0", "localhost"), ("127.0.0.1:0", "127.0.0.1")] {
        let lines = browse(bind, host, &tools).await;
        assert!(lines.len() >= 3, "{host}: {lines:?}");
        for line in &lines {
            assert!(is_clock_line(line), "{host}: not a clock line: {line:?}");
        }
        assert!(
            lines.windows(2).all(|pair| pair[0] < pair[1]),
            "{host}: the clock went backwards: {lines:?}"
        );
    }
}

/// One HTTP/1.1 GET on `addr`: the response head (lower case) and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut tcp = timeout("http connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout("http response", tcp.read_to_string(&mut response))
        .await
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn the_page_is_served_with_its_content_types() {
    let relay = Relay::start().await;
    for (path, content_type, needle) in [
        (
            "/",
            "text/html; charset=utf-8",
            "<script type=\"module\" src=\"app.js\">",
        ),
        ("/app.js", "text/javascript; charset=utf-8", "WebTransport"),
        (
            "/wire.js",
            "text/javascript; charset=utf-8",
            "export function encodeSubscribe",
        ),
        (
            "/plot.js",
            "text/javascript; charset=utf-8",
            "export class Plot",
        ),
        ("/style.css", "text/css; charset=utf-8", "#paths"),
    ] {
        let (head, body) = get(relay.addr, path).await;
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains(&format!("content-type: {content_type}")),
            "{path}: {head}"
        );
        assert!(body.contains(needle), "{path}: {needle:?} not in the body");
    }
    let (head, _) = get(relay.addr, "/nope").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
}

#[tokio::test]
async fn with_a_real_certificate_the_page_needs_web_and_serves_no_fingerprint() {
    let dir = TempDir::new("web");
    let (cert_path, key) = write_certificate(dir.path(), "local", &["localhost"]);
    let (cert, key) = (cert_path.to_str().unwrap(), key.to_str().unwrap());
    // With a real certificate the public listener speaks HTTPS with it.
    let get = |addr, path: &'static str| {
        let tls = moq_transfork::transport::ClientTls::with_roots(std::slice::from_ref(&cert_path))
            .unwrap()
            .client_config(b"http/1.1")
            .unwrap();
        async move {
            common::http::get_tls(addr, "localhost", tls, path, &[])
                .await
                .status
        }
    };

    let quiet = Relay::start_with(&["--tls-cert", cert, "--tls-key", key]).await;
    assert!(
        !quiet
            .banner
            .iter()
            .any(|line| line.contains("browser page")),
        "{:?}",
        quiet.banner
    );
    assert_eq!(
        get(quiet.addr, "/").await,
        404,
        "no page without --dev or --web"
    );

    let web = Relay::start_with(&["--tls-cert", cert, "--tls-key", key, "--web"]).await;
    assert_eq!(get(web.addr, "/").await, 200);
    let fingerprint = get(web.addr, "/fingerprint").await;
    assert_eq!(fingerprint, 404, "a real certificate is not pinned");
}
