//! The layer around the API and the routes beside it: one log line per request in a span with a
//! request id (echoed as `X-Request-Id`), request metrics, `Docker-Distribution-API-Version` and
//! the configured headers on every response.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::TryStreamExt;
use http::{HeaderValue, Method};
use tracing::Instrument;

use crate::headers::{self, API_VERSION_HEADER, REQUEST_ID_HEADER};
use crate::server::client_addr;
use crate::{error, metrics};

/// The tracing target of the one line logged per request (filter it out to log no requests).
pub const REQUEST_LOG_TARGET: &str = "registry_http::requests";

/// What the request log layer holds: where metrics go, and the headers every response gets.
#[derive(Clone)]
struct Logged {
    metrics: Option<Arc<metrics::Metrics>>,
    headers: Arc<Vec<(http::HeaderName, HeaderValue)>>,
}

/// `router` with the layer [`router_with`](super::router_with) puts around the API: one log line per request (with
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

/// The request id, for handlers (set by the logging layer).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// The route kind a response answered, for metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteKind(pub(crate) &'static str);

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
