//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, Method, StatusCode, header};
use registry_core::{Error, ManifestInfo, Reference, RepositoryName};

use super::happened;
use crate::error::ApiError;
use crate::events::Target;
use crate::headers::{self, value};
use crate::{CONTENT_DIGEST_HEADER, Ctx, OCI_SUBJECT_HEADER};

/// `GET|HEAD /v2/<name>/manifests/<reference>`: the manifest's bytes as pushed, with their media type.
pub(crate) async fn get(
    cx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
    if let Some(mirror) = &cx.options.mirror {
        mirror
            .ensure_manifest(&cx.registry, &name, &reference)
            .await?;
    }
    let head = cx.method == Method::HEAD;
    let (info, body) = if head {
        (
            cx.registry.stat_manifest(&name, &reference).await?,
            Body::empty(),
        )
    } else {
        let m = cx.registry.get_manifest(&name, &reference).await?;
        (m.info, Body::from(m.bytes))
    };
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, value(&info.media_type));
    h.insert(header::CONTENT_LENGTH, value(info.size));
    h.insert(CONTENT_DIGEST_HEADER, value(&info.digest));
    h.insert(header::ETAG, value(format!("\"{}\"", info.digest)));
    if !head {
        happened(&mut res, manifest_target(&name, &reference, &info));
    }
    Ok(res)
}

/// The event target of a manifest.
fn manifest_target(name: &RepositoryName, reference: &Reference, info: &ManifestInfo) -> Target {
    Target {
        media_type: Some(info.media_type.clone()),
        size: Some(info.size),
        digest: info.digest.to_string(),
        repository: name.to_string(),
        tag: match reference {
            Reference::Tag(t) => Some(t.to_string()),
            Reference::Digest(_) => None,
        },
    }
}

/// `PUT /v2/<name>/manifests/<reference>`: validates and stores a manifest (201 with `Location`,
/// `Docker-Content-Digest` and, for a manifest with a subject, `OCI-Subject`). A body larger than
/// the limit is refused from its `Content-Length` before it is read, or as soon as it exceeds it.
pub(crate) async fn put(
    mut cx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
    let limit = cx.registry.config().max_manifest_size;
    let too_large = |size| ApiError::from(Error::ManifestTooLarge { size, limit });
    if let Some(len) = headers::content_length(&cx.headers)?
        && len > limit
    {
        return Err(too_large(len));
    }
    let body = std::mem::take(&mut cx.body);
    let bytes = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| too_large(limit + 1))?;
    let content_type = cx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let info = cx
        .registry
        .put_manifest(&name, &reference, content_type, bytes)
        .await?;
    let mut res = (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                value(cx.url(&format!("/v2/{name}/manifests/{}", info.digest))),
            ),
            (header::CONTENT_LENGTH, value(0)),
            (
                HeaderName::from_static(CONTENT_DIGEST_HEADER),
                value(&info.digest),
            ),
        ],
    )
        .into_response();
    if let Some(subject) = &info.subject {
        res.headers_mut().insert(OCI_SUBJECT_HEADER, value(subject));
    }
    happened(&mut res, manifest_target(&name, &reference, &info));
    Ok(res)
}

/// `DELETE /v2/<name>/manifests/<reference>`: by digest, deletes the manifest and the tags pointing
/// at it; by tag, deletes only the tag (202).
pub(crate) async fn delete(
    cx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
    // For the event; a dangling tag can still be deleted.
    let info = cx.registry.stat_manifest(&name, &reference).await.ok();
    match &reference {
        Reference::Digest(d) => cx.registry.delete_manifest(&name, d).await?,
        Reference::Tag(t) => cx.registry.delete_tag(&name, t).await?,
    }
    let mut res = (StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response();
    if let Some(info) = info {
        happened(&mut res, manifest_target(&name, &reference, &info));
    }
    Ok(res)
}
