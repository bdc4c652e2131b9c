//! Certificate reload of the real relay (docs/operations.md): replaced certificate files are
//! shown to new connections while established sessions keep flowing; a broken or mismatched
//! file keeps the current certificate; SIGHUP renews the generated development certificate
//! and `/fingerprint` follows it.

mod ops;

use std::path::{Path as FsPath, PathBuf};

use moq_test_support::{timeout, write_certificate, TempDir, LOOPBACK_NAMES};
use moq_transfork::transport::{ClientTls, ServerTls};
use moq_transfork::Path;
use ops::{client, deliver, pinned, publish, subscribe, Process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn path() -> Path {
    Path::from_iter(["reload", "clock"])
}

/// The fingerprint of the certificate in `cert`.
fn fingerprint(cert: &FsPath, key: &FsPath) -> String {
    let tls = ServerTls::load(&[cert.to_owned()], &[key.to_owned()]).unwrap();
    tls.fingerprints().remove(0)
}

/// Replaces `to` with `from` in one rename, as renewal tools do.
fn replace(from: &FsPath, to: &FsPath) {
    let staged = to.with_extension("new");
    std::fs::copy(from, &staged).unwrap();
    std::fs::rename(&staged, to).unwrap();
}

/// Whether a client pinned to `fingerprint` can connect over `scheme` now.
async fn connects(relay: &Process, fingerprint: &str, scheme: &str) -> bool {
    let client = pinned(fingerprint);
    timeout("a connection attempt", client.connect(&relay.url(scheme)))
        .await
        .is_ok()
}

struct Files {
    dir: TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    /// `cert.pem` and `key.pem` holding a certificate `tag`.
    fn new(tag: &str) -> Self {
        let dir = TempDir::new("reload");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let files = Self { dir, cert, key };
        let (cert, key) = files.generate(tag);
        std::fs::copy(cert, &files.cert).unwrap();
        std::fs::copy(key, &files.key).unwrap();
        files
    }

    /// Another certificate, kept in a subdirectory (not watched by the relay).
    fn generate(&self, tag: &str) -> (PathBuf, PathBuf) {
        let spare = self.dir.path().join("spare");
        std::fs::create_dir_all(&spare).unwrap();
        write_certificate(&spare, tag, LOOPBACK_NAMES)
    }

    async fn relay(&self) -> Process {
        let (cert, key) = (self.cert.to_str().unwrap(), self.key.to_str().unwrap());
        let args = [
            "--bind",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ];
        Process::start(&args, &[]).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_see_the_replaced_certificate_while_old_sessions_flow() {
    let files = Files::new("first");
    let first = fingerprint(&files.cert, &files.key);
    let relay = files.relay().await;
    let old = pinned(&first);
    let publisher = relay.session(&old, "moqf").await;
    let producer = publish(&publisher, &path());
    let subscriber = relay.session(&old, "https").await;
    let mut track = subscribe(&subscriber, &path()).await;
    deliver(&producer, &mut track, "before").await;

    let (cert, key) = files.generate("second");
    let second = fingerprint(&cert, &key);
    let skip = relay.lines();
    replace(&key, &files.key);
    replace(&cert, &files.cert);
    relay.wait_log(skip, "certificates reloaded").await;

    for scheme in ["moqf", "https"] {
        assert!(
            connects(&relay, &second, scheme).await,
            "{scheme}: new certificate"
        );
        assert!(
            !connects(&relay, &first, scheme).await,
            "{scheme}: old certificate"
        );
    }
    // The sessions set up with the first certificate are untouched.
    for n in 0..3 {
        deliver(&producer, &mut track, &format!("after {n}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_or_mismatched_files_keep_the_current_certificate() {
    let files = Files::new("good");
    let good = fingerprint(&files.cert, &files.key);
    let relay = files.relay().await;

    // A certificate file that holds no certificate.
    let skip = relay.lines();
    std::fs::write(&files.cert, "-----BEGIN GARBAGE-----\n").unwrap();
    let error = relay.wait_log(skip, "certificate reload failed").await;
    assert!(
        error.contains("ERROR") && error.contains("cert.pem"),
        "{error}"
    );
    assert!(connects(&relay, &good, "moqf").await);

    // A valid certificate whose key is not the one on disk: refused, the old one stays.
    let (other, _) = files.generate("other");
    let skip = relay.lines();
    replace(&other, &files.cert);
    let error = relay.wait_log(skip, "certificate reload failed").await;
    assert!(error.contains("does not match"), "{error}");
    assert!(connects(&relay, &good, "moqf").await);
    assert!(connects(&relay, &good, "https").await);

    // SIGHUP reads them again: still mismatched, still the old certificate.
    let skip = relay.lines();
    relay.signal("HUP");
    let error = relay.wait_log(skip, "certificate reload failed").await;
    assert!(error.contains("SIGHUP"), "{error}");
    assert!(connects(&relay, &good, "moqf").await);
}

/// GET /fingerprint over HTTP at the relay's address.
async fn http_fingerprint(relay: &Process) -> String {
    let mut tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    tcp.write_all(b"GET /fingerprint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    timeout("http response", tcp.read_to_string(&mut response))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.rsplit("\r\n").next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_renews_the_development_certificate_and_fingerprint_follows() {
    let relay = Process::start(&["--bind", "127.0.0.1:0", "--dev"], &[]).await;
    let first = http_fingerprint(&relay).await;
    assert_eq!(first.len(), 64);
    let old = pinned(&first);
    let publisher = relay.session(&old, "https").await;
    let producer = publish(&publisher, &path());
    let subscriber = relay.session(&old, "moqf").await;
    let mut track = subscribe(&subscriber, &path()).await;

    let skip = relay.lines();
    relay.signal("HUP");
    relay.wait_log(skip, "certificates reloaded").await;
    let second = http_fingerprint(&relay).await;
    assert_ne!(first, second);
    assert!(connects(&relay, &second, "https").await);
    assert!(!connects(&relay, &first, "https").await);
    deliver(&producer, &mut track, "after renewal").await;
    // Any client still works against the renewed certificate.
    let any = client(ClientTls::disable_verify());
    drop(relay.session(&any, "moqf").await);
}
