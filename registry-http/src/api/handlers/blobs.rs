//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use registry_core::{Digest, Registry, RepositoryName};

use super::{blob_target, happened};
use crate::api::handlers::Ctx;
use crate::error::ApiError;
use crate::events::Target;
use crate::headers;
use crate::headers::{CONTENT_DIGEST_HEADER, value};

/// `GET|HEAD /v2/<name>/blobs/<digest>`: the blob's bytes (206 for a `Range`), or its size.
pub(crate) async fn get(
    cx: Ctx,
    name: RepositoryName,
    digest: Digest,
) -> Result<Response, ApiError> {
    let registry = &cx.registry;
    if cx.method == Method::HEAD {
        let info = registry.stat_blob(&name, &digest).await?;
        let mut res = StatusCode::OK.into_response();
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, value(info.size));
        return Ok(blob_headers(res, &digest));
    }
    let range = headers::range(&cx.headers)?;
    if let Some(url) = redirect(registry, cx.options.blob_redirect, &name, &digest).await? {
        let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
        res.headers_mut().insert(header::LOCATION, url);
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        res.headers_mut()
            .insert(CONTENT_DIGEST_HEADER, value(&digest));
        happened(&mut res, blob_target(&name, &digest));
        return Ok(res);
    }
    let partial = range.is_some();
    let blob = registry.get_blob(&name, &digest, range).await?;
    let len = blob.range.end - blob.range.start;
    let mut res = Response::new(Body::from_stream(blob.stream));
    res.headers_mut().insert(header::CONTENT_LENGTH, value(len));
    if partial {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        res.headers_mut().insert(
            header::CONTENT_RANGE,
            value(format!(
                "bytes {}-{}/{}",
                blob.range.start,
                blob.range.end - 1,
                blob.size
            )),
        );
    } else {
        let target = Target {
            size: Some(blob.size),
            ..blob_target(&name, &digest)
        };
        happened(&mut res, target);
    }
    Ok(blob_headers(res, &digest))
}

/// The headers every blob answer carries but a redirect.
fn blob_headers(mut res: Response, digest: &Digest) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(CONTENT_DIGEST_HEADER, value(digest));
    h.insert(header::ETAG, value(format!("\"{digest}\"")));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    res
}

/// Where to send a blob GET instead of streaming it, in redirect mode when the storage signs URLs.
async fn redirect(
    registry: &Registry,
    ttl: Option<std::time::Duration>,
    name: &RepositoryName,
    digest: &Digest,
) -> Result<Option<HeaderValue>, ApiError> {
    let Some(ttl) = ttl else {
        return Ok(None);
    };
    let url = registry.blob_url(name, digest, ttl).await?;
    Ok(url.and_then(|u| HeaderValue::try_from(u).ok()))
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository (202).
pub(crate) async fn delete(
    cx: Ctx,
    name: RepositoryName,
    digest: Digest,
) -> Result<Response, ApiError> {
    cx.registry.delete_blob(&name, &digest).await?;
    let mut res = (StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response();
    happened(&mut res, blob_target(&name, &digest));
    Ok(res)
}
