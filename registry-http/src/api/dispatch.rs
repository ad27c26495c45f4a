//! One API request from its route to its handler: the read-only and delete switches, access
//! control, the audit trail, pull events, and what the handler gets ([`Ctx`]).

use std::net::SocketAddr;

use axum::extract::{OriginalUri, Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

use super::handlers::{self, Ctx};
use super::log::{RequestId, RouteKind};
use super::route::Route;
use super::{AppState, HttpOptions};
use crate::audit;
use crate::auth::access::{Action, Identity, Resource, authorize};
use crate::error::{ApiError, ErrorCode};
use crate::events;
use crate::server::client_addr;

/// What a request needs: the resource and the actions on it.
pub(crate) fn required_access<'a>(
    method: &Method,
    route: &'a Route,
) -> (Resource<'a>, Vec<Action>) {
    let actions = match (method, route) {
        (_, Route::Base) => return (Resource::Base, Vec::new()),
        (_, Route::Catalog) => return (Resource::Catalog, Vec::new()),
        (&Method::DELETE, Route::Manifest(..) | Route::InvalidTag(..) | Route::Blob(..)) => {
            vec![Action::Delete]
        }
        // As distribution: whoever writes reads too (a client checks what it pushes).
        (&Method::PUT, Route::Manifest(..) | Route::InvalidTag(..))
        | (_, Route::Uploads(_) | Route::Upload(..)) => vec![Action::Pull, Action::Push],
        _ => vec![Action::Pull],
    };
    let repo = route
        .repository()
        .map_or(Resource::Base, Resource::Repository);
    (repo, actions)
}

/// Asks the access control, if any, whether the request may go on: the caller's identity, or the
/// response refusing it (401 with the challenge when unauthenticated, 403 `DENIED` otherwise),
/// recorded in the audit trail.
async fn admit(
    options: &HttpOptions,
    parts: &Parts,
    route: &Route,
    trail: &Trail<'_>,
) -> Result<Option<Identity>, Response> {
    let (resource, actions) = required_access(&parts.method, route);
    let guard = options.guard();
    match authorize(guard, &parts.headers, &parts.extensions, resource, &actions).await {
        Ok(identity) => Ok(identity),
        Err(refused) => {
            // Every client's first `/v2/` ping comes without credentials, to learn how to log
            // in: a challenge, not a refusal worth a record.
            let ping = *route == Route::Base
                && refused.kind == audit::AuditKind::Refused
                && refused.user.is_none();
            if !ping {
                let status = refused.response.status();
                trail.record(
                    refused.kind,
                    refused.user,
                    status,
                    None,
                    Some(refused.detail),
                );
            }
            Err(refused.response)
        }
    }
}

/// Answers one request under `/v2/`.
pub(super) async fn dispatch(
    State(AppState { registry, options }): State<AppState>,
    OriginalUri(original): OriginalUri,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let (route, prefix) = match route_of(&parts, &original) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let span = tracing::Span::current();
    span.record("route", route.kind());
    if let Some(repo) = route.repository() {
        span.record("repository", repo.as_str());
    }
    let writes = !matches!(parts.method, Method::GET | Method::HEAD);
    if let Some(refusal) = switched_off(&options, &parts.method, writes, &route) {
        return refusal;
    }
    let trail = Trail::of(&options, &parts, &route);
    let identity = match admit(&options, &parts, &route, &trail).await {
        Ok(identity) => identity,
        Err(refusal) => return refusal,
    };
    let _in_flight = match (&options.metrics, &route) {
        (Some(m), Route::Uploads(_) | Route::Upload(..)) if writes => Some(m.upload_started()),
        _ => None,
    };
    let name = identity
        .as_ref()
        .map(|i| i.name.clone())
        .filter(|n| !n.is_empty());
    let request = options
        .events
        .as_ref()
        .map(|_| request_info(&parts, trail.request_id.clone()));
    // What admission rules, tag history and the change feed see of this request.
    let caller = registry_core::Caller {
        identity: name.clone(),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        origin: registry_core::feed::Origin::Api,
        request: request.clone(),
    };
    let login = route == Route::Base && identity.is_some();
    let method = parts.method.clone();
    let kind = RouteKind(route.kind());
    let cx = Ctx {
        registry: registry.as_caller(caller),
        prefix,
        method: parts.method,
        headers: parts.headers,
        query: super::query_of(&parts.uri),
        body,
        options: options.clone(),
        identity,
    };
    let (mut res, failure) = match handlers::handle(cx, route).await {
        Ok(res) => (res, None),
        Err(e) => {
            let detail = e.detail().to_owned();
            (e.into_response(), Some(detail))
        }
    };
    trail.outcome(&res, writes, login, name.clone(), failure);
    if method == Method::GET {
        raise_pull(&options, request, &mut res, name);
    }
    res.extensions_mut().insert(kind);
    res
}

/// Pulls change nothing, so the router raises their events; pushes and deletes reach the sink
/// through the change feed (`events::FeedEvents`), whoever makes them.
fn raise_pull(
    options: &HttpOptions,
    request: Option<events::RequestInfo>,
    res: &mut Response,
    name: Option<String>,
) {
    if let (Some(sink), Some(request)) = (&options.events, request)
        && (res.status().is_success() || res.status().is_redirection())
        && let Some(events::Happened(target)) = res.extensions_mut().remove()
    {
        sink.send(events::Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: events::now(),
            action: Action::Pull,
            target,
            request,
            actor: events::Actor { name },
        });
    }
}

/// The route a request's path names under `/v2/`, and the path before it when the router is
/// nested; the error response for a path that is no endpoint.
fn route_of(parts: &Parts, original: &http::Uri) -> Result<(Route, String), ApiError> {
    let path = parts.uri.path();
    let prefix = original
        .path()
        .strip_suffix(path)
        .unwrap_or_default()
        .to_owned();
    let rest = path
        .strip_prefix("/v2/")
        .or_else(|| (path == "/v2").then_some(""));
    match rest.and_then(Route::parse) {
        Some(Ok(route)) => Ok((route, prefix)),
        Some(Err(e)) => Err(e),
        None => Err(
            ApiError::new(ErrorCode::Unsupported, format!("no such endpoint: {path}"))
                .with_status(StatusCode::NOT_FOUND),
        ),
    }
}

/// The refusal of a write on a read-only registry, or of a delete where deletes are off.
fn switched_off(
    options: &HttpOptions,
    method: &Method,
    writes: bool,
    route: &Route,
) -> Option<Response> {
    if options.read_only && writes && *route != Route::Base {
        return Some(
            ApiError::new(ErrorCode::Unsupported, "the registry is read-only").into_response(),
        );
    }
    if !options.deletes && *method == Method::DELETE && !matches!(route, Route::Upload(..)) {
        return Some(
            ApiError::new(
                ErrorCode::Unsupported,
                "deletes are disabled on this registry (storage.delete.enabled)",
            )
            .into_response(),
        );
    }
    None
}

/// What the audit trail says of one request; nothing is built for it without an audit sink.
struct Trail<'a> {
    heard: Option<Heard<'a>>,
    request_id: String,
}

/// The parts of a request its audit records repeat.
struct Heard<'a> {
    sink: &'a std::sync::Arc<dyn audit::AuditSink>,
    client: Option<SocketAddr>,
    method: String,
    path: String,
    repository: Option<String>,
    reference: Option<String>,
}

impl<'a> Trail<'a> {
    fn of(options: &'a HttpOptions, parts: &Parts, route: &Route) -> Trail<'a> {
        Trail {
            heard: options.audit.as_ref().map(|sink| Heard {
                sink,
                client: client_addr(&parts.extensions),
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                repository: route.repository().map(|r| r.to_string()),
                reference: route.reference(),
            }),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
        }
    }

    fn record(
        &self,
        kind: audit::AuditKind,
        identity: Option<String>,
        status: StatusCode,
        digest: Option<String>,
        detail: Option<String>,
    ) {
        let Some(heard) = &self.heard else {
            return;
        };
        heard.sink.record(audit::AuditRecord {
            time: events::now(),
            kind,
            identity,
            client: heard.client.map(|c| c.ip().to_string()),
            method: heard.method.clone(),
            path: heard.path.clone(),
            repository: heard.repository.clone(),
            reference: heard.reference.clone(),
            digest,
            status: status.as_u16(),
            request_id: self.request_id.clone(),
            detail,
        });
    }

    /// Records what a handler's answer was: a write, a refusal or a login.
    fn outcome(
        &self,
        res: &Response,
        writes: bool,
        login: bool,
        name: Option<String>,
        failure: Option<String>,
    ) {
        let status = res.status();
        let target = res.extensions().get::<events::Happened>().map(|h| &h.0);
        if writes && (status.is_success() || status.is_redirection()) && target.is_some() {
            let digest = target.map(|t| t.digest.clone());
            self.record(audit::AuditKind::Write, name, status, digest, None);
        } else if matches!(status.as_u16(), 401 | 403) {
            self.record(audit::AuditKind::Refused, name, status, None, failure);
        } else if login && status.is_success() {
            self.record(audit::AuditKind::Login, name, status, None, None);
        }
    }
}

/// The request as notifications describe it.
fn request_info(parts: &Parts, id: String) -> events::RequestInfo {
    events::RequestInfo {
        id,
        host: header_str(&parts.headers, http::header::HOST),
        method: parts.method.to_string(),
        useragent: header_str(&parts.headers, http::header::USER_AGENT),
    }
}

fn header_str(headers: &HeaderMap, name: http::header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
