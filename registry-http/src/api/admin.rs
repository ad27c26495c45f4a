//! JSON under `/admin/v1/` for what the lifecycle adds, guarded by the same access control as
//! the API:
//!
//! | Request | Needs | Answer |
//! |---|---|---|
//! | `GET /admin/v1/history/<repo>[?tag=T]` | `pull` on the repository | `{"repository", "changes": [TagChange…]}`, oldest first |
//! | `POST /admin/v1/restore/<repo>?tag=T[&to=DIGEST]` | `push` on the repository | the tag's new record `{"digest", "moved"}` |
//! | `GET /admin/v1/usage/<repo>` | `pull` on the repository, from an identified caller (anonymous: a rule with `usage = true`) | that repository's usage, read from it alone |
//! | `GET /admin/v1/usage` | the whole store (catalog access and pull on every repository) | every repository's usage and the store's totals |
//!
//! Reports cost what they answer: one repository's reads that repository (a few at once, the
//! rest wait their turn); the whole store's is computed by one caller at a time and served again
//! for 10 s. Errors are OCI error JSON, as on `/v2/`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::Method;
use registry_core::{Digest, RepositoryName, Tag};

use crate::api::AppState;
use crate::api::log::{RequestId, RouteKind};
use crate::audit::AuditKind;
use crate::auth::access::{Action, Refused, Resource, authorize};
use crate::error::{ApiError, ErrorCode};
use crate::server::client_addr;

/// Answers every `/admin/v1/…` request.
pub(crate) async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let mut res = match answer(&state, req).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    res.extensions_mut().insert(RouteKind("admin"));
    res
}

fn parse<T: std::str::FromStr<Err = registry_core::Error>>(text: &str) -> Result<T, ApiError> {
    text.parse().map_err(ApiError::from)
}

async fn answer(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let path = parts.uri.path();
    let rest = path
        .split_once("/admin/v1/")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (what, name) = rest.split_once('/').unwrap_or((rest, ""));
    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
    let caller = |identity: Option<crate::auth::access::Identity>| registry_core::Caller {
        identity: identity.map(|i| i.name).filter(|n| !n.is_empty()),
        request_id: request_id.clone(),
        origin: registry_core::feed::Origin::Admin,
        request: None,
    };
    let options = &state.options;
    let registry = &state.registry;
    let client = client_addr(&parts.extensions);
    let audit =
        |kind, identity: Option<String>, repository: &RepositoryName, status: u16, detail| {
            if let Some(sink) = &options.audit {
                sink.record(crate::audit::AuditRecord {
                    time: crate::events::now(),
                    kind,
                    identity,
                    client: client.map(|c| c.ip().to_string()),
                    method: parts.method.to_string(),
                    path: path.to_owned(),
                    repository: Some(repository.to_string()),
                    reference: query.get("tag").cloned(),
                    digest: None,
                    status,
                    request_id: request_id.clone().unwrap_or_default(),
                    detail,
                });
            }
        };
    // The caller's identity if they may do `action` in `repo`; the refusal (audited) otherwise.
    let guard = async |repo: &RepositoryName, action: Action| {
        let resource = Resource::Repository(repo);
        authorize(
            options.guard(),
            &parts.headers,
            &parts.extensions,
            resource,
            &[action],
        )
        .await
        .map_err(|r: Refused| {
            let status = r.response.status().as_u16();
            audit(r.kind, r.user, repo, status, Some(r.detail));
            r.response
        })
    };
    match (&parts.method, what, name.is_empty()) {
        (&Method::GET, "history", false) => {
            let repo: RepositoryName = parse(name)?;
            if let Err(res) = guard(&repo, Action::Pull).await {
                return Ok(res);
            }
            let changes = match query.get("tag") {
                Some(tag) => registry.tag_history(&repo, &parse::<Tag>(tag)?).await?,
                None => registry.repository_history(&repo).await?,
            };
            Ok(Json(serde_json::json!({ "repository": repo, "changes": changes })).into_response())
        }
        (&Method::POST, "restore", false) => {
            let repo: RepositoryName = parse(name)?;
            let identity = match guard(&repo, Action::Push).await {
                Ok(identity) => identity,
                Err(res) => return Ok(res),
            };
            if options.read_only {
                return Err(ApiError::new(
                    ErrorCode::Unsupported,
                    "the registry is read-only",
                ));
            }
            let tag: Tag = match query.get("tag") {
                Some(tag) => parse(tag)?,
                None => {
                    return Err(ApiError::new(
                        ErrorCode::Unsupported,
                        "restore needs ?tag=TAG (and optionally &to=DIGEST)",
                    )
                    .with_status(http::StatusCode::BAD_REQUEST));
                }
            };
            let to: Option<Digest> = query.get("to").map(|d| parse(d)).transpose()?;
            let caller = caller(identity);
            let name = caller.identity.clone();
            match registry
                .as_caller(caller)
                .restore_tag(&repo, &tag, to.as_ref())
                .await
            {
                Ok(record) => {
                    audit(AuditKind::Write, name, &repo, 200, None);
                    Ok(Json(record).into_response())
                }
                Err(e) => {
                    if matches!(e, registry_core::Error::Denied { .. }) {
                        audit(AuditKind::Refused, name, &repo, 403, Some(e.to_string()));
                    }
                    Err(e.into())
                }
            }
        }
        (&Method::GET, "usage", false) => {
            let repo: RepositoryName = parse(name)?;
            let resource = Resource::Usage(&repo);
            if let Err(r) = authorize(
                options.guard(),
                &parts.headers,
                &parts.extensions,
                resource,
                &[],
            )
            .await
            {
                let status = r.response.status().as_u16();
                audit(r.kind, r.user, &repo, status, Some(r.detail));
                return Ok(r.response);
            }
            let report = registry_core::lifecycle::usage::repository_usage(registry, &repo).await?;
            Ok(Json(registry_core::lifecycle::UsageReport {
                repositories: vec![report],
                store: None,
            })
            .into_response())
        }
        (&Method::GET, "usage", true) => {
            let resource = Resource::Store;
            if let Err(r) = authorize(
                options.guard(),
                &parts.headers,
                &parts.extensions,
                resource,
                &[],
            )
            .await
            {
                return Ok(r.response);
            }
            let report = registry_core::lifecycle::usage::store_usage(registry).await?;
            Ok(Json(&*report).into_response())
        }
        _ => Err(ApiError::new(
            ErrorCode::Unsupported,
            format!("no such endpoint: {} {path}", parts.method),
        )
        .with_status(http::StatusCode::NOT_FOUND)),
    }
}
