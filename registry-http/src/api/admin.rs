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
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::Method;
use http::request::Parts;
use registry_core::{Digest, RepositoryName, Tag};

use crate::api::AppState;
use crate::api::log::{RequestId, RouteKind};
use crate::audit::AuditKind;
use crate::auth::access::{Action, Identity, Refused, Resource, authorize};
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

fn parse<T: std::str::FromStr<Err: Into<ApiError>>>(text: &str) -> Result<T, ApiError> {
    text.parse().map_err(Into::into)
}

async fn answer(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let rest = path
        .split_once("/admin/v1/")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let (what, name) = rest.split_once('/').unwrap_or((rest, ""));
    let asked = Asked {
        state,
        query: super::query_of(&parts.uri),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        client: client_addr(&parts.extensions),
        path: &path,
        parts: &parts,
    };
    match (&parts.method, what, name.is_empty()) {
        (&Method::GET, "history", false) => asked.history(parse(name)?).await,
        (&Method::POST, "restore", false) => asked.restore(parse(name)?).await,
        (&Method::GET, "usage", false) => asked.repository_usage(parse(name)?).await,
        (&Method::GET, "usage", true) => asked.store_usage().await,
        _ => Err(ApiError::new(
            ErrorCode::Unsupported,
            format!("no such endpoint: {} {path}", parts.method),
        )
        .with_status(http::StatusCode::NOT_FOUND)),
    }
}

/// One admin request, and what its answer and audit records need of it.
struct Asked<'a> {
    state: &'a AppState,
    parts: &'a Parts,
    path: &'a str,
    query: HashMap<String, String>,
    request_id: Option<String>,
    client: Option<SocketAddr>,
}

impl Asked<'_> {
    /// Records what happened to `repository` in the audit trail, when there is one.
    fn audit(
        &self,
        kind: AuditKind,
        identity: Option<String>,
        repository: &RepositoryName,
        status: u16,
        detail: Option<String>,
    ) {
        let Some(sink) = &self.state.options.audit else {
            return;
        };
        sink.record(crate::audit::AuditRecord {
            time: crate::events::now(),
            kind,
            identity,
            client: self.client.map(|c| c.ip().to_string()),
            method: self.parts.method.to_string(),
            path: self.path.to_owned(),
            repository: Some(repository.to_string()),
            reference: self.query.get("tag").cloned(),
            digest: None,
            status,
            request_id: self.request_id.clone().unwrap_or_default(),
            detail,
        });
    }

    /// The caller's identity if they may do `actions` on `resource`; the refusal otherwise
    /// (recorded in the audit trail when it concerns `repo`).
    async fn guard(
        &self,
        resource: Resource<'_>,
        actions: &[Action],
        repo: Option<&RepositoryName>,
    ) -> Result<Option<Identity>, Response> {
        let guard = self.state.options.guard();
        let parts = self.parts;
        authorize(guard, &parts.headers, &parts.extensions, resource, actions)
            .await
            .map_err(|r: Refused| {
                if let Some(repo) = repo {
                    let status = r.response.status().as_u16();
                    self.audit(r.kind, r.user, repo, status, Some(r.detail));
                }
                r.response
            })
    }

    /// `GET /admin/v1/history/<name>[?tag=TAG]`: the changes of a repository or one tag.
    async fn history(&self, repo: RepositoryName) -> Result<Response, ApiError> {
        let resource = Resource::Repository(&repo);
        if let Err(res) = self.guard(resource, &[Action::Pull], Some(&repo)).await {
            return Ok(res);
        }
        let registry = &self.state.registry;
        let changes = match self.query.get("tag") {
            Some(tag) => registry.tag_history(&repo, &parse::<Tag>(tag)?).await?,
            None => registry.repository_history(&repo).await?,
        };
        Ok(Json(serde_json::json!({ "repository": repo, "changes": changes })).into_response())
    }

    /// `POST /admin/v1/restore/<name>?tag=TAG[&to=DIGEST]`: a tag put back where it was.
    async fn restore(&self, repo: RepositoryName) -> Result<Response, ApiError> {
        let resource = Resource::Repository(&repo);
        let identity = match self.guard(resource, &[Action::Push], Some(&repo)).await {
            Ok(identity) => identity,
            Err(res) => return Ok(res),
        };
        if self.state.options.read_only {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                "the registry is read-only",
            ));
        }
        let Some(tag) = self.query.get("tag") else {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                "restore needs ?tag=TAG (and optionally &to=DIGEST)",
            )
            .with_status(http::StatusCode::BAD_REQUEST));
        };
        let tag: Tag = parse(tag)?;
        let to: Option<Digest> = self.query.get("to").map(|d| parse(d)).transpose()?;
        let name = identity.map(|i| i.name).filter(|n| !n.is_empty());
        let caller = registry_core::Caller {
            identity: name.clone(),
            request_id: self.request_id.clone(),
            origin: registry_core::feed::Origin::Admin,
            request: None,
        };
        let restored = self
            .state
            .registry
            .as_caller(caller)
            .restore_tag(&repo, &tag, to.as_ref())
            .await;
        match restored {
            Ok(record) => {
                self.audit(AuditKind::Write, name, &repo, 200, None);
                Ok(Json(record).into_response())
            }
            Err(e) => {
                if matches!(e, registry_core::Error::Denied { .. }) {
                    self.audit(AuditKind::Refused, name, &repo, 403, Some(e.to_string()));
                }
                Err(e.into())
            }
        }
    }

    /// `GET /admin/v1/usage/<name>`: the bytes one repository references.
    async fn repository_usage(&self, repo: RepositoryName) -> Result<Response, ApiError> {
        if let Err(res) = self.guard(Resource::Usage(&repo), &[], Some(&repo)).await {
            return Ok(res);
        }
        let registry = &self.state.registry;
        let report = registry_core::lifecycle::usage::repository_usage(registry, &repo).await?;
        Ok(Json(registry_core::lifecycle::UsageReport {
            repositories: vec![report],
            store: None,
        })
        .into_response())
    }

    /// `GET /admin/v1/usage`: the whole store's usage.
    async fn store_usage(&self) -> Result<Response, ApiError> {
        if let Err(res) = self.guard(Resource::Store, &[], None).await {
            return Ok(res);
        }
        let report = registry_core::lifecycle::usage::store_usage(&self.state.registry).await?;
        Ok(Json(&*report).into_response())
    }
}
