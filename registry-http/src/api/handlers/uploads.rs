//! Blob uploads: `POST /v2/<name>/blobs/uploads/` and `GET|PATCH|PUT|DELETE
//! /v2/<name>/blobs/uploads/<id>`.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use registry_core::{BlobInfo, Digest, Error, RepositoryName, UploadStatus};

use super::{blob_target, happened};
use crate::api::handlers::Ctx;
use crate::auth::access::{Action, Resource};
use crate::error::ApiError;
use crate::events::Target;
use crate::headers;
use crate::headers::{CONTENT_DIGEST_HEADER, UPLOAD_UUID_HEADER, value};

/// The answer for an upload in progress: `Location`, `Range` and `Docker-Upload-UUID`.
fn in_progress(cx: &Ctx, name: &RepositoryName, status: StatusCode, up: &UploadStatus) -> Response {
    let location = cx.url(&format!("/v2/{name}/blobs/uploads/{}", up.id));
    (
        status,
        [
            (header::LOCATION, value(location)),
            (header::RANGE, value(headers::upload_range(up.offset))),
            (header::CONTENT_LENGTH, value(0)),
            (
                header::HeaderName::from_static(UPLOAD_UUID_HEADER),
                value(&up.id),
            ),
        ],
    )
        .into_response()
}

/// The answer for a blob now in the repository: 201 with `Location` and `Docker-Content-Digest`.
fn created(cx: &Ctx, name: &RepositoryName, blob: &BlobInfo) -> Response {
    let digest = &blob.digest;
    let mut res = (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                value(cx.url(&format!("/v2/{name}/blobs/{digest}"))),
            ),
            (header::CONTENT_LENGTH, value(0)),
            (
                header::HeaderName::from_static(CONTENT_DIGEST_HEADER),
                value(digest),
            ),
        ],
    )
        .into_response();
    let target = Target {
        size: Some(blob.size),
        ..blob_target(name, digest)
    };
    happened(&mut res, target);
    res
}

fn digest_param(cx: &Ctx, key: &str) -> Result<Option<Digest>, ApiError> {
    cx.query(key)
        .map(|d| d.parse().map_err(ApiError::from))
        .transpose()
}

/// `POST /v2/<name>/blobs/uploads/`: starts an upload (202), stores a whole blob when `digest` is
/// given (201), or mounts a blob with `mount` (from `from`, or from anywhere in the store when
/// `from` is absent): 201 when mounted, else a normal upload starts (202).
pub(crate) async fn start(mut cx: Ctx, name: RepositoryName) -> Result<Response, ApiError> {
    if let Some(digest) = digest_param(&cx, "mount")? {
        let from = match cx.query("from") {
            Some(f) => Some(f.parse::<RepositoryName>()?),
            None => None,
        };
        // A blob is mounted only from where the caller may read it: a named repository it may
        // pull, or (without `from`) anywhere only when nobody's access is restricted.
        let readable = match &from {
            Some(from) => cx.may(Resource::Repository(from), &[Action::Pull]),
            None => cx.options.access.is_none(),
        };
        if readable {
            match cx.registry.mount_blob(&name, &digest, from.as_ref()).await {
                Ok(blob) => return Ok(created(&cx, &name, &blob)),
                Err(Error::BlobUnknown { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    } else if let Some(digest) = digest_param(&cx, "digest")? {
        let len = headers::content_length(&cx.headers)?;
        let body = cx.take_body();
        let blob = cx.registry.put_blob(&name, &digest, body, len).await?;
        return Ok(created(&cx, &name, &blob));
    }
    let up = cx.registry.start_upload(&name).await?;
    Ok(in_progress(&cx, &name, StatusCode::ACCEPTED, &up))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: where the upload stands (204 with `Range`).
pub(crate) async fn status(
    cx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    let up = cx.registry.upload_status(&name, &id).await?;
    Ok(in_progress(&cx, &name, StatusCode::NO_CONTENT, &up))
}

/// Adds the upload's `Range` and `Location` to a refused out-of-order chunk (416), so the client
/// can resume from the right offset.
fn chunk_error(cx: &Ctx, name: &RepositoryName, id: &str, e: Error) -> ApiError {
    let current = match e {
        Error::ChunkOutOfOrder { current, .. } => Some(current),
        _ => None,
    };
    let api = ApiError::from(e);
    match current {
        Some(offset) => api
            .with_header(header::RANGE, value(headers::upload_range(offset)))
            .with_header(
                header::LOCATION,
                value(cx.url(&format!("/v2/{name}/blobs/uploads/{id}"))),
            ),
        None => api,
    }
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: appends a chunk (with `Content-Range`) or streams the
/// body (without), 202 with the new `Range`.
pub(crate) async fn patch(
    mut cx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    let chunk = headers::content_range(&cx.headers)?;
    let len = match chunk {
        Some((_, len)) => Some(len),
        None => headers::content_length(&cx.headers)?,
    };
    let body = cx.take_body();
    let up = cx
        .registry
        .append_chunk(&name, &id, chunk.map(|(offset, _)| offset), body, len)
        .await
        .map_err(|e| chunk_error(&cx, &name, &id, e))?;
    Ok(in_progress(&cx, &name, StatusCode::ACCEPTED, &up))
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: stores an optional last chunk, verifies the digest
/// and makes the blob visible (201).
pub(crate) async fn put(
    mut cx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    let digest = digest_param(&cx, "digest")?.ok_or_else(|| {
        ApiError::new(
            crate::error::ErrorCode::DigestInvalid,
            "the digest query parameter is required",
        )
    })?;
    let last = if !axum::body::HttpBody::is_end_stream(&cx.body) {
        let chunk = headers::content_range(&cx.headers)?;
        if let Some((offset, _)) = chunk {
            let up = cx.registry.upload_status(&name, &id).await?;
            if up.offset != offset {
                let e = Error::ChunkOutOfOrder {
                    requested: offset,
                    current: up.offset,
                };
                return Err(chunk_error(&cx, &name, &id, e));
            }
        }
        let len = match chunk {
            Some((_, len)) => Some(len),
            None => headers::content_length(&cx.headers)?,
        };
        Some((cx.take_body(), len))
    } else {
        None
    };
    let blob = cx
        .registry
        .complete_upload(&name, &id, &digest, last)
        .await?;
    Ok(created(&cx, &name, &blob))
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancels the upload (204).
pub(crate) async fn cancel(
    cx: Ctx,
    name: RepositoryName,
    id: String,
) -> Result<Response, ApiError> {
    cx.registry.cancel_upload(&name, &id).await?;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}
