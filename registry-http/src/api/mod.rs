//! The distribution API (`/v2/…`) and the paths served beside it (`/admin/v1/…`, `/healthz`,
//! `/readyz`, `/metrics`), as an axum [`Router`] over a [`Registry`].
//!
//! - [`route`]: the API's paths parsed into a [`route::Route`].
//! - `dispatch`: one request from its route to its handler, past the read-only and delete
//!   switches, access control and the audit trail.
//! - `handlers`: one module per endpoint family.
//! - [`admin`]: JSON under `/admin/v1/` for tag history, restore and usage, guarded like the API.
//! - [`log`]: the layer that logs every request with a request id and counts it in metrics.
//!
//! Imports go one way: `dispatch` → `handlers` → `route`; everything here may use `auth`,
//! `error`, `headers`, `events`, `audit`, `metrics` and `server`, none of which imports `api`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::HeaderValue;
use registry_core::Registry;

use crate::auth::access::{AccessControl, Guard};
use crate::auth::throttle::LoginThrottle;
use crate::{audit, events, metrics};

pub mod admin;
mod dispatch;
mod handlers;
pub mod log;
pub mod route;

/// How the HTTP layer treats requests.
#[derive(Clone)]
pub struct HttpOptions {
    /// A request body that sends nothing for this long fails (the upload can be resumed).
    pub body_idle_timeout: Duration,
    /// Who may do what; `None` lets everyone do everything.
    pub access: Option<Arc<dyn AccessControl>>,
    /// Refuse every write (uploads, manifest puts, deletes) with 405 `UNSUPPORTED`; reads go on.
    pub read_only: bool,
    /// Allow deletes of manifests, tags and blobs (to those the access control lets); `false`
    /// answers them 405 `UNSUPPORTED`, as distribution does unless `storage.delete.enabled`.
    pub deletes: bool,
    /// Headers added to every response (distribution's `http.headers`).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// Answer blob GETs with 307 to a URL signed for this long, letting clients fetch straight
    /// from the storage, when the backend signs URLs (S3). `None` (the default) streams blobs.
    pub blob_redirect: Option<Duration>,
    /// Record request metrics here and serve them at `/metrics`; `None` (the default): neither.
    pub metrics: Option<Arc<metrics::Metrics>>,
    /// Hand an [`events::Event`] to this sink after every successful pull. Pushes and deletes
    /// are changes: attach [`events::FeedEvents`] over the same sink to the registry
    /// (`Registry::with_subscriber`) for theirs, whoever makes them (the API, the UI, the admin
    /// API, garbage collection, …).
    pub events: Option<Arc<dyn events::EventSink>>,
    /// Throttle failed logins per client address and user (see [`crate::auth::throttle`]);
    /// `None`: never.
    pub throttle: Option<Arc<LoginThrottle>>,
    /// Hand an [`audit::AuditRecord`] to this sink for every login, write and refusal.
    pub audit: Option<Arc<dyn audit::AuditSink>>,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("body_idle_timeout", &self.body_idle_timeout)
            .field("access", &self.access.is_some())
            .field("read_only", &self.read_only)
            .field("deletes", &self.deletes)
            .field("blob_redirect", &self.blob_redirect)
            .field("metrics", &self.metrics.is_some())
            .field("events", &self.events.is_some())
            .field("throttle", &self.throttle)
            .field("audit", &self.audit.is_some())
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            body_idle_timeout: Duration::from_secs(60),
            access: None,
            read_only: false,
            deletes: true,
            headers: Vec::new(),
            blob_redirect: None,
            metrics: None,
            events: None,
            throttle: None,
            audit: None,
        }
    }
}

impl HttpOptions {
    /// What guards a request: the access control and the login throttle.
    pub(crate) fn guard(&self) -> Guard<'_> {
        Guard {
            access: self.access.as_ref(),
            throttle: self.throttle.as_ref(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) registry: Registry,
    pub(crate) options: Arc<HttpOptions>,
}

/// The distribution API routes (`/v2/…`) with their state applied, `/healthz` (alive) and
/// `/readyz` (storage reachable), and a layer that logs every request in a tracing span with a
/// request id (echoed as `X-Request-Id`) and adds `Docker-Distribution-API-Version`.
pub fn router(registry: Registry) -> Router {
    router_with(registry, HttpOptions::default())
}

/// [`router`] with options; with [`HttpOptions::metrics`], also `/metrics`. Both also serve the
/// [`admin`] paths.
pub fn router_with(registry: Registry, options: HttpOptions) -> Router {
    let metrics = options.metrics.clone();
    let state_headers = options.headers.clone();
    let state = AppState {
        registry,
        options: Arc::new(options),
    };
    let mut router = Router::new()
        .route("/v2", any(dispatch::dispatch))
        .route("/v2/", any(dispatch::dispatch))
        .route("/v2/{*rest}", any(dispatch::dispatch))
        .route("/admin/v1/{*rest}", any(admin::dispatch))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(ready))
        .with_state(state);
    if let Some(m) = &metrics {
        let m = m.clone();
        router = router.route(
            "/metrics",
            axum::routing::get(move || async move {
                (
                    [(http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                    m.encode(),
                )
            }),
        );
    }
    log::request_log(router, metrics, state_headers)
}

/// `GET /readyz`: 200 when a storage read succeeds, 503 otherwise.
async fn ready(State(state): State<AppState>) -> Response {
    match state.registry.check_storage().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            format!("storage: {e}"),
        )
            .into_response(),
    }
}

/// The query's parameters (the last of a repeated one wins).
pub(crate) fn query_of(uri: &http::Uri) -> std::collections::HashMap<String, String> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}
