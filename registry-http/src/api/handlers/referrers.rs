//! `GET /v2/<name>/referrers/<digest>`.

use axum::response::{IntoResponse, Response};
use http::header;
use registry_core::manifest::OCI_INDEX;
use registry_core::{Digest, RepositoryName};

use crate::api::handlers::Ctx;
use crate::error::ApiError;
use crate::headers::OCI_FILTERS_APPLIED_HEADER;

/// `GET /v2/<name>/referrers/<digest>?artifactType=`: an image index of the manifests whose
/// subject is the digest (empty for an unknown digest), filtered by artifact type on request.
pub(crate) async fn list(
    cx: Ctx,
    name: RepositoryName,
    digest: Digest,
) -> Result<Response, ApiError> {
    let artifact_type = cx.query("artifactType");
    let manifests = cx
        .registry
        .list_referrers(&name, &digest, artifact_type)
        .await?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(OCI_INDEX),
    );
    if artifact_type.is_some() {
        res.headers_mut().insert(
            OCI_FILTERS_APPLIED_HEADER,
            http::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(res)
}
