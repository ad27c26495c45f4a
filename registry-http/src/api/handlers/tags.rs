//! `GET /v2/<name>/tags/list`.

use axum::response::{IntoResponse, Response};
use registry_core::RepositoryName;

use crate::api::handlers::Ctx;
use crate::api::handlers::catalog::{page_params, with_next_link};
use crate::error::ApiError;

/// `GET /v2/<name>/tags/list?n=&last=`: tags in lexical order, with a `Link` to the next page.
pub(crate) async fn list(cx: Ctx, name: RepositoryName) -> Result<Response, ApiError> {
    let (n, last) = page_params(&cx)?;
    let page = cx.registry.list_tags(&name, n, last.as_deref()).await?;
    let next = cx.url(&format!("/v2/{name}/tags/list"));
    let body = serde_json::json!({ "name": name.as_str(), "tags": &page.items });
    Ok(with_next_link(
        axum::Json(body).into_response(),
        &next,
        n,
        &page,
    ))
}
