//! The HTTP endpoint on TCP at the `--bind` address: `GET /fingerprint` in development mode
//! (spec §10.2) and the browser page at `/` (the files of `web/`, embedded in the binary).

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use moq_transfork::transport::CertResolver;

/// What the HTTP endpoint serves besides the page.
pub(crate) struct Site {
    /// The certificates whose first SHA-256 (lowercase hex) is served at `/fingerprint`, so a
    /// browser can pin the development certificate with `serverCertificateHashes`; it follows
    /// the certificate as it is renewed. `None` for a real certificate.
    pub(crate) fingerprint: Option<std::sync::Arc<CertResolver>>,
}

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page's files: URL path, content type, contents. Plain ES modules, no build step.
const PAGE: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../web/index.html")),
    ("/app.js", JAVASCRIPT, include_str!("../../web/app.js")),
    ("/plot.js", JAVASCRIPT, include_str!("../../web/plot.js")),
    ("/wire.js", JAVASCRIPT, include_str!("../../web/wire.js")),
    ("/style.css", CSS, include_str!("../../web/style.css")),
];

/// Serves `site` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, site: Site) {
    if let Err(err) = axum::serve(listener, router(site)).await {
        tracing::error!(%err, "http server failed");
    }
}

fn router(site: Site) -> Router {
    let mut app = Router::new();
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
    for &(path, content_type, body) in PAGE {
        app = app.route(path, get(move || async move { file(content_type, body) }));
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
