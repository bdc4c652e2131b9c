//! The public HTTP endpoint on TCP at the `--bind` address: HTTPS with the relay's
//! certificate, or plain HTTP with a generated development certificate. It serves the HTTP
//! API ([`api`]: `/announced`, `/fetch`), `GET /fingerprint` in development mode (spec §10.2)
//! and the browser page at `/` (the files of `web/`, embedded in the binary).

mod api;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use moq_transfork::transport::CertResolver;

pub(crate) use api::Api;
pub(crate) use tls::TlsListener;

/// What the HTTP endpoint serves.
pub(crate) struct Site {
    /// The certificates whose first SHA-256 (lowercase hex) is served at `/fingerprint`, so a
    /// browser can pin the development certificate with `serverCertificateHashes`; it follows
    /// the certificate as it is renewed. `None` for a real certificate.
    pub(crate) fingerprint: Option<Arc<CertResolver>>,
    /// Serve the browser page at `/`.
    pub(crate) page: bool,
    /// The HTTP API.
    pub(crate) api: Api,
}

/// The rustls config of the HTTPS listener: the QUIC endpoint's certificates (its resolver),
/// with HTTP/1.1 as the only ALPN.
pub(crate) fn https_config(mut quic: rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    quic.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(quic)
}

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page's files: URL path, content type, contents. Plain ES modules, no build step.
const PAGE: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../../web/index.html")),
    ("/app.js", JAVASCRIPT, include_str!("../../../web/app.js")),
    ("/plot.js", JAVASCRIPT, include_str!("../../../web/plot.js")),
    ("/wire.js", JAVASCRIPT, include_str!("../../../web/wire.js")),
    ("/style.css", CSS, include_str!("../../../web/style.css")),
];

/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection lives (one request: no keep-alive), its answer included.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// The most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 1024;

/// Serves `site` on `listener` until the task is aborted: over TLS with `tls`, else plain.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    site: Site,
) {
    let app = router(site);
    match tls {
        Some(tls) => match TlsListener::new(listener, tls) {
            Ok(listener) => serve_bounded(listener, app).await,
            Err(err) => tracing::error!(%err, "https server failed"),
        },
        None => serve_bounded(listener, app).await,
    }
}

/// Serves `app` on the connections of `listener`, one request each, bounded in number and in
/// time: this listener faces the internet, and a client that sends nothing must cost nothing
/// for long.
async fn serve_bounded<L: axum::serve::Listener>(mut listener: L, app: Router) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (io, _) = listener.accept().await;
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
            if let Ok(Err(err)) = tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                tracing::debug!(%err, "http connection failed");
            }
            drop(slot);
        });
    }
}

fn router(site: Site) -> Router {
    let mut app = api::routes(site.api);
    if let Some(certs) = site.fingerprint {
        app = app.route(
            "/fingerprint",
            get(move || async move {
                let fingerprint = certs.current().fingerprints().into_iter().next();
                let fingerprint = fingerprint.unwrap_or_default();
                (
                    [
                        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    ],
                    fingerprint,
                )
            }),
        );
    }
    if site.page {
        for &(path, content_type, body) in PAGE {
            app = app.route(path, get(move || async move { file(content_type, body) }));
        }
    }
    app.fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
}

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The files change with the binary; never let a browser run an old app.js.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}
