//! `GET /v2/_catalog`, and the pagination it shares with the tag list.

use axum::response::{IntoResponse, Response};
use http::header;
use registry_core::Page;

use crate::api::handlers::Ctx;
use crate::error::{ApiError, ErrorCode};
use crate::headers::value;

/// Reads `n` and `last`.
pub(crate) fn page_params(cx: &Ctx) -> Result<(Option<usize>, Option<String>), ApiError> {
    let n = cx
        .query("n")
        .map(|n| {
            n.parse::<usize>().map_err(|_| {
                ApiError::new(
                    ErrorCode::PaginationNumberInvalid,
                    format!("n={n:?} is not a count"),
                )
            })
        })
        .transpose()?;
    Ok((n, cx.query("last").map(str::to_owned)))
}

/// Adds `Link: <path?n=…&last=…>; rel="next"` when more items follow.
pub(crate) fn with_next_link(
    mut res: Response,
    path: &str,
    n: Option<usize>,
    page: &Page,
) -> Response {
    if let (true, Some(n), Some(last)) = (page.more, n, page.items.last()) {
        let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
        res.headers_mut().insert(
            header::LINK,
            value(format!("<{path}?n={n}&last={last}>; rel=\"next\"")),
        );
    }
    res
}

/// `GET /v2/_catalog?n=&last=`: repositories in lexical order, with a `Link` to the next page.
pub(crate) async fn list(cx: Ctx) -> Result<Response, ApiError> {
    let (n, last) = page_params(&cx)?;
    let page = cx.registry.list_repositories(n, last.as_deref()).await?;
    let body = serde_json::json!({ "repositories": &page.items });
    Ok(with_next_link(
        axum::Json(body).into_response(),
        &cx.url("/v2/_catalog"),
        n,
        &page,
    ))
}
