//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, Method, StatusCode, header};
use http_body_util::BodyExt;
use registry_core::{Error, ManifestInfo, Reference, RepositoryName};

use super::happened;
use crate::api::handlers::Ctx;
use crate::error::ApiError;
use crate::events::Target;
use crate::headers;
use crate::headers::{CONTENT_DIGEST_HEADER, OCI_SUBJECT_HEADER, value};

/// `GET|HEAD /v2/<name>/manifests/<reference>`: the manifest's bytes as pushed, with their media type.
pub(crate) async fn get(
    cx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
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

/// The most bytes of a refused manifest body read and dropped, and for how long, so that a client
/// that sends its whole body before it reads the answer (Python's `http.client`, many HTTP
/// libraries) sees the 413 instead of a broken pipe. A larger announced body is answered at once
/// and its connection closed.
const DRAIN_BYTES: u64 = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// `PUT /v2/<name>/manifests/<reference>`: validates and stores a manifest (201 with `Location`,
/// `Docker-Content-Digest` and, for a manifest with a subject, `OCI-Subject`). A body larger than
/// the limit is refused (413) from its `Content-Length`, or as soon as it exceeds it; what the
/// client sends of it is read and dropped first, up to [`DRAIN_BYTES`] (not when it waits for
/// `100 Continue`), so that the client can read the answer.
pub(crate) async fn put(
    mut cx: Ctx,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, ApiError> {
    let limit = cx.registry.config().max_manifest_size;
    let too_large = |size| ApiError::from(Error::ManifestTooLarge { size, limit });
    let waits_for_continue = cx
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut body = std::mem::take(&mut cx.body);
    if let Some(len) = headers::content_length(&cx.headers)?
        && len > limit
    {
        if !waits_for_continue && len <= DRAIN_BYTES {
            drain(body).await;
        }
        return Err(too_large(len));
    }
    let mut bytes = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map(|f| f.into_data()) else {
            return Err(ApiError::from(Error::ManifestInvalid {
                reason: "the request body failed".into(),
            }));
        };
        let Ok(data) = data else { continue };
        if (bytes.len() + data.len()) as u64 > limit {
            drain(body).await;
            return Err(too_large(limit + 1));
        }
        bytes.extend_from_slice(&data);
    }
    let bytes = bytes.freeze();
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

/// Reads and drops what is left of a body, up to [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let read = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
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
