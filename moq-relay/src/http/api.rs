//! The HTTP API of the public listener: what is announced (`GET /announced/*prefix`) and the
//! frames of a cached group (`GET /fetch/*path`), under the same tokens as sessions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use moq_transfork::relay::Origins;
use moq_transfork::Path;

use crate::auth::{Auth, Scope};

/// The relay state the API reads.
#[derive(Clone)]
pub(crate) struct Api {
    /// Paths announced by this relay's clients.
    pub(crate) locals: Origins,
    /// Paths learned from the cluster.
    pub(crate) remotes: Origins,
    /// Token verification; `None` when the relay is open.
    pub(crate) auth: Option<Arc<Auth>>,
}

/// The API's routes.
pub(crate) fn routes(api: Api) -> Router {
    Router::new()
        .route("/announced", get(announced_root))
        .route("/announced/", get(announced_root))
        .route("/announced/{*prefix}", get(announced))
        .route("/fetch/{*path}", get(fetch))
        .with_state(api)
}

type Params = Query<HashMap<String, String>>;

/// A path from the parts of a URL path (`a/b/c`); empty parts are ignored.
fn path(text: &str) -> Path {
    Path::from_iter(text.split('/').filter(|part| !part.is_empty()))
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

impl Api {
    /// The scope of the request's token (`?jwt=` or `Authorization: Bearer`); `Ok(None)`
    /// when the relay is open, 401 for a token that does not verify or a missing one.
    fn scope(
        &self,
        params: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<Option<Scope>, Unauthorized> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let token = params.get("jwt").map(String::as_str).or(bearer);
        auth.scope(token).map(Some).map_err(|_| Unauthorized)
    }
}

/// A request without a valid token where one is needed: answered with 401.
struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        refuse(StatusCode::UNAUTHORIZED, "unauthorized\n")
    }
}

async fn announced_root(api: State<Api>, params: Params, headers: HeaderMap) -> Response {
    list(&api, &Path::new(), &params, &headers)
}

async fn announced(
    api: State<Api>,
    axum::extract::Path(prefix): axum::extract::Path<String>,
    params: Params,
    headers: HeaderMap,
) -> Response {
    list(&api, &path(&prefix), &params, &headers)
}

/// The active paths under `prefix`, local and remote, sorted and once each, as a JSON array
/// of strings (parts joined with `/`); only those the token may subscribe to.
fn list(
    api: &Api,
    prefix: &Path,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let scope = match api.scope(params, headers) {
        Ok(scope) => scope,
        Err(refused) => return refused.into_response(),
    };
    let mut paths: Vec<Path> = [&api.locals, &api.remotes]
        .into_iter()
        .flat_map(|origins| origins.announced().active())
        .filter(|path| path.has_prefix(prefix))
        .filter(|path| scope.as_ref().is_none_or(|scope| scope.may_subscribe(path)))
        .collect();
    paths.sort();
    paths.dedup();
    let names: Vec<String> = paths.iter().map(Path::to_string).collect();
    Json(names).into_response()
}

/// The frames of the latest cached group of `path` (or of `?group=N`) received so far,
/// concatenated. 404 when the relay holds no such group, or the token may not see it.
async fn fetch(
    api: State<Api>,
    axum::extract::Path(text): axum::extract::Path<String>,
    params: Params,
    headers: HeaderMap,
) -> Response {
    let scope = match api.scope(&params, &headers) {
        Ok(scope) => scope,
        Err(refused) => return refused.into_response(),
    };
    let not_found = || refuse(StatusCode::NOT_FOUND, "not found\n");
    let path = path(&text);
    if scope.is_some_and(|scope| !scope.may_subscribe(&path)) {
        return not_found();
    }
    let sequence = match params.get("group").map(|group| group.parse::<u64>()) {
        Some(Ok(sequence)) => Some(sequence),
        Some(Err(_)) => return refuse(StatusCode::BAD_REQUEST, "group must be a number\n"),
        None => None,
    };
    // What the relay already holds: an HTTP request never subscribes upstream.
    let track = match api.locals.cached(&path) {
        Ok(track) => track,
        Err(_) => match api.remotes.cached(&path) {
            Ok(track) => track,
            Err(_) => return not_found(),
        },
    };
    let Some(mut group) = sequence
        .or_else(|| track.latest())
        .and_then(|s| track.get_group(s))
    else {
        return not_found();
    };
    // The frames complete now; a live group may grow later, and a request does not wait.
    let mut body = BytesMut::new();
    while let Some(Ok(Some(frame))) = group.read_frame().now_or_never() {
        body.put(frame);
    }
    let body: Bytes = body.freeze();
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}
