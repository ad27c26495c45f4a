//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use registry_core::{Digest, Registry, RepositoryName};

use super::{blob_target, happened};
use crate::error::ApiError;
use crate::events::Target;
use crate::headers::{self, value};
use crate::{CONTENT_DIGEST_HEADER, Ctx};

/// `GET|HEAD /v2/<name>/blobs/<digest>`: the blob's bytes (206 for a `Range`), or its size.
pub(crate) async fn get(
    cx: Ctx,
    name: RepositoryName,
    digest: Digest,
) -> Result<Response, ApiError> {
    let head = cx.method == Method::HEAD;
    let fetching = match &cx.options.mirror {
        Some(mirror) => {
            let whole = headers::range(&cx.headers)?.is_none();
            mirror
                .blob(&cx.registry, &name, &digest, head, whole)
                .await?
        }
        None => None,
    };
    let mut res = if let Some((size, stream)) = fetching {
        // Being fetched from the mirror's upstream: streamed as it arrives.
        let mut res = Response::new(if head {
            Body::empty()
        } else {
            Body::from_stream(stream)
        });
        if let Some(size) = size {
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, value(size));
        }
        if !head {
            let target = Target {
                size,
                ..blob_target(&name, &digest)
            };
            happened(&mut res, target);
        }
        res
    } else if head {
        let info = cx.registry.stat_blob(&name, &digest).await?;
        let mut res = StatusCode::OK.into_response();
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, value(info.size));
        res
    } else if let Some(url) =
        redirect(&cx.registry, cx.options.blob_redirect, &name, &digest).await?
    {
        let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
        res.headers_mut().insert(header::LOCATION, url);
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        res.headers_mut()
            .insert(CONTENT_DIGEST_HEADER, value(&digest));
        happened(&mut res, blob_target(&name, &digest));
        return Ok(res);
    } else {
        let range = headers::range(&cx.headers)?;
        let partial = range.is_some();
        let blob = cx.registry.get_blob(&name, &digest, range).await?;
        let len = blob.range.end - blob.range.start;
        let mut res = Response::new(Body::from_stream(blob.stream));
        res.headers_mut().insert(header::CONTENT_LENGTH, value(len));
        if !partial {
            let target = Target {
                size: Some(blob.size),
                ..blob_target(&name, &digest)
            };
            happened(&mut res, target);
        }
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
        }
        res
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(CONTENT_DIGEST_HEADER, value(&digest));
    h.insert(header::ETAG, value(format!("\"{digest}\"")));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000"),
    );
    Ok(res)
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
