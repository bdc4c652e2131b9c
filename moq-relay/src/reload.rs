//! Certificate reload: on SIGHUP, and when a file in the directory of a `--tls-cert` or
//! `--tls-key` changes, the relay loads its certificates again; new handshakes show them,
//! established sessions keep theirs. A file that cannot be loaded (broken, half-written, a
//! key that does not match) is logged as an error and the current certificates stay.
//!
//! The generated development certificate is renewed daily, well within its 10 days of
//! validity, and on SIGHUP.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
            let why = tokio::select! {
                () = hangup(&mut self.hangup) => "SIGHUP",
                () = changed(&mut self.changes) => "file change",
                () = tokio::time::sleep_until(renew_at), if generated => "renewal",
            };
            renew_at = Instant::now() + RENEW_EVERY;
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
    use super::*;

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
