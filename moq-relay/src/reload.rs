//! Certificate reload: on SIGHUP, and when a file in the directory of a `--tls-cert` or
//! `--tls-key` changes, the relay loads its certificates again; new handshakes show them,
//! established sessions keep theirs. A change elsewhere in those directories (a log file
//! written next to the certificate, say) is told apart by the files' metadata and reads
//! nothing. A file that cannot be loaded (broken, half-written, a key that does not match) is
//! logged as an error and the current certificates stay.
//!
//! The generated development certificate is renewed daily, well within its 10 days of
//! validity, and on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use moq_transfork::transport::{CertResolver, ServerTls};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long after a file change the files are read, so that a certificate and its key
/// written one after the other are read together.
const DEBOUNCE: Duration = Duration::from_millis(500);

/// How often the generated certificate is renewed (it is valid for 10 days).
const RENEW_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the certificates come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// PEM files: `certs[i]` with `keys[i]`.
    Files {
        /// The `--tls-cert` files.
        certs: Vec<PathBuf>,
        /// The `--tls-key` files.
        keys: Vec<PathBuf>,
    },
    /// A self-signed certificate for these names, generated anew on each reload.
    Generated(Vec<String>),
}

impl Source {
    /// What the certificate and key files are now, as far as their metadata tells; `None` for
    /// a generated certificate.
    fn stamp(&self) -> Option<Vec<FileStamp>> {
        match self {
            Self::Files { certs, keys } => Some(
                certs
                    .iter()
                    .chain(keys)
                    .map(|path| FileStamp::of(path))
                    .collect(),
            ),
            Self::Generated(_) => None,
        }
    }

    /// Loads or generates the certificates.
    pub(crate) fn load(&self) -> Result<ServerTls, moq_transfork::transport::TlsError> {
        match self {
            Self::Files { certs, keys } => ServerTls::load(certs, keys),
            Self::Generated(hosts) => ServerTls::self_signed(hosts),
        }
    }
}

/// Reloads the certificates of a [`CertResolver`] when asked to (see the module docs).
#[derive(Debug)]
pub(crate) struct Reloader {
    certs: Arc<CertResolver>,
    source: Source,
    hangup: Hangup,
    /// The files as they were when last loaded.
    loaded: Option<Vec<FileStamp>>,
    /// A message whenever a watched directory changed; the watcher lives as long as this.
    changes: Option<(notify::RecommendedWatcher, mpsc::Receiver<()>)>,
}

impl Reloader {
    /// Installs the SIGHUP handler and, for files, watches their directories. Call it early:
    /// without the handler a SIGHUP would end the process.
    ///
    /// # Errors
    /// When the SIGHUP handler cannot be installed.
    pub(crate) fn new(certs: Arc<CertResolver>, source: Source) -> anyhow::Result<Self> {
        let changes = match &source {
            // Without a watcher (inotify exhausted, say) SIGHUP still works: run on.
            Source::Files { certs, keys } => match watch(certs.iter().chain(keys)) {
                Ok(changes) => Some(changes),
                Err(err) => {
                    tracing::warn!("{err:#}: certificates reload on SIGHUP only");
                    None
                }
            },
            Source::Generated(_) => None,
        };
        Ok(Self {
            certs,
            loaded: source.stamp(),
            source,
            hangup: install_hangup().context("installing the SIGHUP handler")?,
            changes,
        })
    }

    /// Reloads on every trigger, for as long as the relay runs.
    pub(crate) async fn run(mut self) {
        let generated = matches!(self.source, Source::Generated(_));
        let mut renew_at = Instant::now() + RENEW_EVERY;
        loop {
            let (why, if_changed) = tokio::select! {
                () = hangup(&mut self.hangup) => ("SIGHUP", false),
                () = changed(&mut self.changes) => ("file change", true),
                () = tokio::time::sleep_until(renew_at), if generated => ("renewal", false),
            };
            renew_at = Instant::now() + RENEW_EVERY;
            let stamp = self.source.stamp();
            if if_changed && stamp == self.loaded {
                // Another file of the directory changed.
                continue;
            }
            // Taken before reading: a write meanwhile shows as a change next time.
            self.loaded = stamp;
            self.reload(why);
        }
    }

    fn reload(&self, why: &str) {
        match self.source.load() {
            Ok(tls) => {
                let fingerprints = tls.fingerprints();
                if self.certs.current().fingerprints() == fingerprints {
                    tracing::debug!(%why, "certificates unchanged");
                    return;
                }
                self.certs.replace(tls);
                tracing::info!(%why, ?fingerprints, "certificates reloaded");
            }
            Err(err) => tracing::error!(
                %why,
                %err,
                "certificate reload failed: keeping the current certificates"
            ),
        }
    }
}

/// The SIGHUP handler (none where there are no signals).
#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn install_hangup() -> std::io::Result<Hangup> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

#[cfg(not(unix))]
fn install_hangup() -> std::io::Result<Hangup> {
    Ok(())
}

/// Resolves on SIGHUP.
async fn hangup(handler: &mut Hangup) {
    #[cfg(unix)]
    if handler.recv().await.is_some() {
        return;
    }
    let _ = handler;
    std::future::pending().await
}

/// Resolves once a watched directory changed and [`DEBOUNCE`] has passed, having taken the
/// changes of that time; never without a watcher.
async fn changed(changes: &mut Option<(notify::RecommendedWatcher, mpsc::Receiver<()>)>) {
    let Some((_, rx)) = changes else {
        return std::future::pending().await;
    };
    if rx.recv().await.is_none() {
        return std::future::pending().await;
    }
    tokio::time::sleep(DEBOUNCE).await;
    while rx.try_recv().is_ok() {}
}

/// What a file's metadata says about its content, symlinks followed: a new file renamed over
/// it or a swapped symlink has another inode, a write changes its modification (and, on Unix,
/// change) time or size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Option<FileMeta>);

/// The metadata a [`FileStamp`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileMeta {
    len: u64,
    modified: Option<SystemTime>,
    /// The device and inode: which file the path leads to.
    #[cfg(unix)]
    file: (u64, u64),
    /// The change time (seconds, nanoseconds), which even `cp -p` or `touch -d` moves.
    #[cfg(unix)]
    changed: (i64, i64),
}

impl FileStamp {
    /// The stamp of `path` now; an unreadable file has one of its own.
    fn of(path: &Path) -> Self {
        Self(std::fs::metadata(path).ok().map(|meta| FileMeta {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            file: (
                std::os::unix::fs::MetadataExt::dev(&meta),
                std::os::unix::fs::MetadataExt::ino(&meta),
            ),
            #[cfg(unix)]
            changed: (
                std::os::unix::fs::MetadataExt::ctime(&meta),
                std::os::unix::fs::MetadataExt::ctime_nsec(&meta),
            ),
        }))
    }
}

/// Watches the directories holding `files`: renewal tools replace files by renaming or by
/// swapping symlinks, which a watch on the file itself would not survive.
fn watch<'a>(
    files: impl Iterator<Item = &'a PathBuf>,
) -> anyhow::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    // One slot: a change waiting to be handled stands for any number of them.
    let (tx, rx) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match event {
            Ok(event) => !matches!(event.kind, EventKind::Access(_)),
            // An overflowed queue also means "something changed".
            Err(_) => true,
        };
        if relevant {
            let _ = tx.try_send(());
        }
    })
    .context("starting the certificate file watcher")?;
    let mut dirs: Vec<PathBuf> = files
        .map(|file| match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {} for certificate changes", dir.display()))?;
    }
    Ok((watcher, rx))
}

#[cfg(test)]
mod tests {
    use moq_test_support::TempDir;

    use super::*;

    #[test]
    fn only_a_change_of_the_certificate_files_shows_in_their_stamp() {
        let dir = TempDir::new("stamp");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, "cert").unwrap();
        std::fs::write(&key, "key").unwrap();
        let source = Source::Files {
            certs: vec![cert.clone()],
            keys: vec![key.clone()],
        };
        let first = source.stamp();

        // What else the directory holds changes nothing.
        std::fs::write(dir.path().join("relay.log"), "a line").unwrap();
        assert_eq!(source.stamp(), first);

        // A new file renamed over the certificate, as renewal tools do, even of the same size.
        let fresh = dir.path().join("cert.pem.new");
        std::fs::write(&fresh, "CERT").unwrap();
        std::fs::rename(&fresh, &cert).unwrap();
        let renamed = source.stamp();
        assert_ne!(renamed, first);

        // The key written in place, longer.
        std::fs::write(&key, "a longer key").unwrap();
        let written = source.stamp();
        assert_ne!(written, renamed);

        // A file gone has a stamp of its own.
        std::fs::remove_file(&key).unwrap();
        assert_ne!(source.stamp(), written);
        assert_eq!(Source::Generated(vec!["localhost".into()]).stamp(), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_swapped_symlink_shows_in_the_stamp() {
        // Kubernetes updates a mounted secret by pointing `..data` at a new directory.
        let dir = TempDir::new("stamp-link");
        for version in ["v1", "v2"] {
            std::fs::create_dir(dir.path().join(version)).unwrap();
            std::fs::write(dir.path().join(version).join("cert.pem"), "same").unwrap();
        }
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink("v1", &data).unwrap();
        let cert = dir.path().join("cert.pem");
        std::os::unix::fs::symlink("..data/cert.pem", &cert).unwrap();
        let source = Source::Files {
            certs: vec![cert],
            keys: vec![],
        };
        let first = source.stamp();

        let next = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink("v2", &next).unwrap();
        std::fs::rename(&next, &data).unwrap();
        assert_ne!(source.stamp(), first);
    }

    #[tokio::test(start_paused = true)]
    async fn the_generated_certificate_is_renewed_daily() {
        let source = Source::Generated(vec!["localhost".into()]);
        let certs = Arc::new(CertResolver::new(source.load().unwrap()));
        let first = certs.current().fingerprints();
        tokio::spawn(Reloader::new(certs.clone(), source).unwrap().run());
        tokio::time::sleep(RENEW_EVERY - Duration::from_secs(1)).await;
        assert_eq!(certs.current().fingerprints(), first, "renewed too early");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let second = certs.current().fingerprints();
        assert_ne!(second, first, "not renewed after a day");
        tokio::time::sleep(RENEW_EVERY).await;
        assert_ne!(certs.current().fingerprints(), second, "renewed only once");
    }
}
