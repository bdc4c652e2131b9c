//! The development HTTP endpoint on TCP: `GET /fingerprint` (spec §10.2).

use axum::http::header;
use axum::routing::get;
use axum::Router;

/// Serves `GET /fingerprint` with the certificate's SHA-256 as lowercase hex, readable from any
/// origin, so a browser can connect with `serverCertificateHashes`.
pub(crate) async fn serve(listener: tokio::net::TcpListener, fingerprint: String) {
    let app = Router::new().route(
        "/fingerprint",
        get(move || async move {
            (
                [
                    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                ],
                fingerprint,
            )
        }),
    );
    if let Err(err) = axum::serve(listener, app).await {
        tracing::error!(%err, "http server failed");
    }
}
