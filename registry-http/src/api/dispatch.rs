//! One API request from its route to its handler: the read-only and delete switches, access
//! control, the audit trail, pull events, and what the handler gets ([`Ctx`]).

use axum::extract::{OriginalUri, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method};

use super::handlers::{self, Ctx};
use super::log::{RequestId, RouteKind};
use super::route::Route;
use super::{AppState, HttpOptions};
use crate::audit;
use crate::auth::access::{Action, Identity, Refused, Resource, authorize};
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
/// response refusing it (401 with the challenge when unauthenticated, 403 `DENIED` otherwise).
async fn check_access(
    options: &HttpOptions,
    method: &Method,
    headers: &HeaderMap,
    extensions: &http::Extensions,
    route: &Route,
) -> Result<Option<Identity>, Refused> {
    let (resource, actions) = required_access(method, route);
    authorize(options.guard(), headers, extensions, resource, &actions).await
}

pub(super) async fn dispatch(
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
    let identity = match check_access(
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
