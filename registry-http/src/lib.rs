//! The OCI distribution API (Docker Registry HTTP API V2) as an axum [`Router`] over a
//! [`registry_core::Registry`]: mount it in any axum or tower server, at the root or under a prefix.
//!
//! - [`route`]: the API's paths parsed into a [`Route`].
//! - [`throttle`]: failed logins counted per address and user, then refused for a while.
//! - [`audit`]: one record per login, write and refusal, for an [`audit::AuditSink`].
//! - `ui` (feature `ui`): the web UI, a router to merge beside the API.
//! - [`admin`]: JSON under `/admin/v1/` for tag history, restore and usage, guarded like the API.
//! - [`auth`]: [`AccessControl`], the identity and policy an embedder plugs in (defined in
//!   `registry_core::access`, free of axum), and reading credentials from headers.
//! - [`policy`]: access rules by repository pattern, user and group.
//! - [`token`]: Docker token authentication, and `token::issuer`, the built-in token server.
//! - [`htpasswd`]: [`Htpasswd`], users of an htpasswd file, reloaded when it changes.
//! - [`ldap`]: [`ldap::LdapUsers`], users of an LDAP directory and their groups.
//! - [`oidc`]: [`oidc::Oidc`], logins with OpenID Connect tokens beside other users.
//! - [`error`]: [`ApiError`] and the one table from OCI error code to status.
//! - [`headers`]: `Range`, `Content-Range` and friends.
//! - [`metrics`]: Prometheus metrics at `/metrics`, and [`metrics::MeteredStorage`].
//! - [`events`]: what was pushed, pulled and deleted, for notifications.
//! - [`remote`]: [`remote::Upstream`], a client of another registry (pull and push), a
//!   `registry_core::transfer` origin and destination.
//! - [`replication`]: pushes copied to other registries from a durable queue in storage.
//! - [`sync`]: tags of other registries fetched on a schedule.
//! - [`mirror`]: a pull-through cache of upstream registries, a `registry_core::Source` attached
//!   with `Registry::with_source` (the handlers know nothing of it).
//! - `handlers`: one module per endpoint family.
//! - [`server`]: [`serve`], a server loop with connection and header-timeout limits.
//! - `testing` (feature `testing`): `testing::TestRegistry`, an in-process registry for tests.
//!
//! ```
//! use std::sync::Arc;
//! use registry_core::{Registry, RegistryConfig};
//! use registry_storage::MemoryStorage;
//!
//! let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
//! let app: axum::Router = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hi" }))
//!     .nest("/registry", registry_http::router(registry));
//! # drop(app);
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::TryStreamExt;
use http::{HeaderMap, HeaderValue, Method};
use registry_core::{ByteStream, Registry};
use tracing::Instrument;

pub mod admin;
pub mod audit;
pub mod auth;
pub mod error;
pub mod events;
mod handlers;
pub mod headers;
pub mod htpasswd;
pub mod ldap;
pub mod metrics;
pub mod mirror;
pub mod oidc;
pub mod policy;
pub mod remote;
pub mod replication;
pub mod route;
pub mod server;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;
pub mod token;
#[cfg(feature = "ui")]
pub mod ui;

pub use auth::{AccessControl, Action, AuthError, Credentials, Grant, Identity, Resource};
pub use error::{ApiError, Error, ErrorCode};
pub use htpasswd::Htpasswd;
pub use route::Route;
pub use server::{
    ClientCertificate, ClientCertificates, ClientName, ServeOptions, TrustedProxies, serve,
    tls_acceptor, tls_acceptor_with,
};

/// `Docker-Distribution-API-Version`, sent on every response.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
/// `Docker-Content-Digest`
pub const CONTENT_DIGEST_HEADER: &str = "docker-content-digest";
/// `Docker-Upload-UUID`
pub const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";
/// `OCI-Subject`
pub const OCI_SUBJECT_HEADER: &str = "oci-subject";
/// `X-Request-Id`: taken from the request when it carries a sane one, else made up; echoed back.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The tracing target of the one line logged per request (filter it out to log no requests).
pub const REQUEST_LOG_TARGET: &str = "registry_http::requests";
/// `OCI-Filters-Applied`
pub const OCI_FILTERS_APPLIED_HEADER: &str = "oci-filters-applied";

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
    /// Throttle failed logins per client address and user (see [`throttle`]); `None`: never.
    pub throttle: Option<Arc<throttle::LoginThrottle>>,
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

/// The address of the client a request came from: set by [`serve`] on every request, or read
/// from axum's `ConnectInfo` when the router is served otherwise.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

fn client_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    extensions.get::<ClientAddr>().map(|c| c.0).or_else(|| {
        extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0)
    })
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    options: Arc<HttpOptions>,
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
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
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
    request_log(router, metrics, state_headers)
}

/// What the request log layer holds: where metrics go, and the headers every response gets.
#[derive(Clone)]
struct Logged {
    metrics: Option<Arc<metrics::Metrics>>,
    headers: Arc<Vec<(http::HeaderName, HeaderValue)>>,
}

/// `router` with the layer [`router_with`] puts around the API: one log line per request (with
/// a request id, echoed as `X-Request-Id`), metrics when given, `Docker-Distribution-API-Version`,
/// and `headers` on every response. For routes served beside the API (`/token`, the web UI).
pub fn request_log(
    router: Router,
    metrics: Option<Arc<metrics::Metrics>>,
    headers: Vec<(http::HeaderName, HeaderValue)>,
) -> Router {
    let logged = Logged {
        metrics,
        headers: Arc::new(headers),
    };
    router.layer(axum::middleware::from_fn_with_state(logged, log_request))
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

/// What a handler gets: the registry and the parts of the request it may read.
pub(crate) struct Ctx {
    pub registry: Registry,
    /// The path before `/v2/` when the router is nested, so that `Location` values work.
    pub prefix: String,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: Body,
    pub options: Arc<HttpOptions>,
    /// The caller, when access control identified one.
    pub identity: Option<Identity>,
}

impl Ctx {
    /// A URL path under this registry, e.g. `self.url("/v2/a/blobs/…")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The request body as a stream of bytes for storage; it fails when the client sends nothing
    /// for [`HttpOptions::body_idle_timeout`].
    pub fn take_body(&mut self) -> ByteStream {
        use futures::{StreamExt, TryStreamExt};
        let idle = self.options.body_idle_timeout;
        let body = std::mem::take(&mut self.body)
            .into_data_stream()
            .map_err(std::io::Error::other);
        futures::stream::unfold(Some(body), move |state| async move {
            let mut body = state?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(item)) => Some((item, Some(body))),
                Ok(None) => None,
                Err(_) => {
                    let e =
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "request body stalled");
                    Some((Err(e), None))
                }
            }
        })
        .boxed()
    }

    /// A query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// Whether the caller may do `actions` on `resource` (always, without access control).
    pub fn may(&self, resource: Resource<'_>, actions: &[Action]) -> bool {
        self.options
            .access
            .as_ref()
            .is_none_or(|a| a.allows(self.identity.as_ref(), resource, actions))
    }
}

async fn dispatch(
    State(AppState { registry, options }): State<AppState>,
    OriginalUri(original): OriginalUri,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let prefix = original
        .path()
        .strip_suffix(path)
        .unwrap_or_default()
        .to_owned();
    let rest = path
        .strip_prefix("/v2/")
        .or_else(|| (path == "/v2").then_some(""));
    let route = match rest.and_then(Route::parse) {
        Some(Ok(route)) => route,
        Some(Err(e)) => return e.into_response(),
        None => {
            return ApiError::new(ErrorCode::Unsupported, format!("no such endpoint: {path}"))
                .with_status(http::StatusCode::NOT_FOUND)
                .into_response();
        }
    };
    let span = tracing::Span::current();
    span.record("route", route.kind());
    let kind = RouteKind(route.kind());
    if let Some(repo) = route.repository() {
        span.record("repository", repo.as_str());
    }
    let writes = !matches!(parts.method, Method::GET | Method::HEAD);
    if options.read_only && writes && route != Route::Base {
        return ApiError::new(ErrorCode::Unsupported, "the registry is read-only").into_response();
    }
    if !options.deletes && parts.method == Method::DELETE && !matches!(route, Route::Upload(..)) {
        return ApiError::new(
            ErrorCode::Unsupported,
            "deletes are disabled on this registry (storage.delete.enabled)",
        )
        .into_response();
    }
    let client = client_addr(&parts.extensions);
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    // Only read when there is an audit trail: nothing is built for it on requests otherwise.
    let heard = options
        .audit
        .as_ref()
        .map(|sink| (sink, parts.method.to_string(), parts.uri.path().to_owned()));
    let audit = |kind, identity: Option<String>, status: http::StatusCode, digest, detail| {
        if let Some((sink, method, path)) = &heard {
            sink.record(audit::AuditRecord {
                time: events::now(),
                kind,
                identity,
                client: client.map(|c| c.ip().to_string()),
                method: method.clone(),
                path: path.clone(),
                repository: route.repository().map(|r| r.to_string()),
                reference: route.reference(),
                digest,
                status: status.as_u16(),
                request_id: request_id.clone(),
                detail,
            });
        }
    };
    let identity = match auth::check_access(
        &options,
        &parts.method,
        &parts.headers,
        &parts.extensions,
        &route,
    )
    .await
    {
        Ok(identity) => identity,
        Err(refused) => {
            // Every client's first `/v2/` ping comes without credentials, to learn how to log
            // in: a challenge, not a refusal worth a record.
            let ping = route == Route::Base
                && refused.kind == audit::AuditKind::Refused
                && refused.user.is_none();
            if !ping {
                let status = refused.response.status();
                audit(
                    refused.kind,
                    refused.user,
                    status,
                    None,
                    Some(refused.detail),
                );
            }
            return refused.response;
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let _in_flight = match (&options.metrics, &route) {
        (Some(m), Route::Uploads(_) | Route::Upload(..)) if writes => Some(m.upload_started()),
        _ => None,
    };
    let request = options.events.as_ref().map(|_| events::RequestInfo {
        id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        host: header_str(&parts.headers, http::header::HOST),
        method: parts.method.to_string(),
        useragent: header_str(&parts.headers, http::header::USER_AGENT),
    });
    let actor = events::Actor {
        name: identity
            .as_ref()
            .map(|i| i.name.clone())
            .filter(|n| !n.is_empty()),
    };
    let method = parts.method.clone();
    let name = identity
        .as_ref()
        .map(|i| i.name.clone())
        .filter(|n| !n.is_empty());
    let login = route == Route::Base && identity.is_some();
    // What admission rules and tag history see of this request.
    let caller = registry_core::Caller {
        identity: actor.name.clone(),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        origin: registry_core::feed::Origin::Api,
        request: request.clone(),
    };
    let cx = Ctx {
        registry: registry.as_caller(caller),
        prefix,
        method: parts.method,
        headers: parts.headers,
        query,
        body,
        options: options.clone(),
        identity,
    };
    let (mut res, failure) = match handlers::handle(cx, route.clone()).await {
        Ok(res) => (res, None),
        Err(e) => {
            let detail = e.detail().to_owned();
            (e.into_response(), Some(detail))
        }
    };
    let status = res.status();
    let target = res.extensions().get::<events::Happened>().map(|h| &h.0);
    if writes && (status.is_success() || status.is_redirection()) && target.is_some() {
        let digest = target.map(|t| t.digest.clone());
        audit(audit::AuditKind::Write, name.clone(), status, digest, None);
    } else if matches!(status.as_u16(), 401 | 403) {
        audit(
            audit::AuditKind::Refused,
            name.clone(),
            status,
            None,
            failure,
        );
    } else if login && status.is_success() {
        audit(audit::AuditKind::Login, name.clone(), status, None, None);
    }
    // Pulls change nothing, so the router raises their events; pushes and deletes reach the
    // sink through the change feed (`events::FeedEvents`), whoever makes them.
    if let (Some(sink), Some(request)) = (&options.events, request)
        && method == Method::GET
        && (res.status().is_success() || res.status().is_redirection())
        && let Some(events::Happened(target)) = res.extensions_mut().remove()
    {
        sink.send(events::Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: events::now(),
            action: Action::Pull,
            target,
            request,
            actor,
        });
    }
    res.extensions_mut().insert(kind);
    res
}

fn header_str(headers: &HeaderMap, name: http::header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The request id, for handlers (set by the logging layer).
#[derive(Debug, Clone)]
struct RequestId(String);

/// The route kind a response answered, for metrics.
#[derive(Debug, Clone, Copy)]
struct RouteKind(&'static str);

/// Logs one line per request, in a span carrying the client's address, method, path, route and
/// repository, with status, bytes sent and latency; adds the API version header.
async fn log_request(
    State(Logged { metrics, headers }): State<Logged>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    if let Some(m) = &metrics {
        let m = m.clone();
        let (parts, body) = req.into_parts();
        let counted = body.into_data_stream().inspect_ok(move |chunk| {
            m.received(chunk.len() as u64);
        });
        req = Request::from_parts(parts, Body::from_stream(counted));
    }
    let client = client_addr(req.extensions()).map(|a| a.ip().to_string());
    let span = tracing::info_span!(
        "request",
        id = %id,
        client = client.as_deref().unwrap_or("-"),
        method = %req.method(),
        path = %req.uri().path(),
        route = tracing::field::Empty,
        repository = tracing::field::Empty,
    );
    let mut res = next.run(req).instrument(span.clone()).await;
    res.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    res.headers_mut()
        .insert(REQUEST_ID_HEADER, headers::value(&id));
    for (name, value) in headers.iter() {
        res.headers_mut().insert(name.clone(), value.clone());
    }
    let bytes = res
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let elapsed = start.elapsed();
    let latency_us = elapsed.as_micros() as u64;
    let status = res.status().as_u16();
    if let Some(m) = &metrics {
        let kind = res.extensions().get::<RouteKind>().map_or("other", |k| k.0);
        m.request(kind, &method, status, elapsed);
        if method != Method::HEAD {
            m.sent(bytes.unwrap_or(0));
        }
    }
    let _entered = span.enter();
    match res.extensions().get::<error::ServerErrorDetail>() {
        Some(detail) => {
            tracing::warn!(target: REQUEST_LOG_TARGET, status, bytes, latency_us, error = %detail.0, "request failed")
        }
        None => tracing::info!(target: REQUEST_LOG_TARGET, status, bytes, latency_us, "request"),
    }
    res
}
