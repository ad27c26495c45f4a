//! `GET /v2/`: the API version check clients make first.

use axum::response::{IntoResponse, Response};

use crate::api::handlers::Ctx;
use crate::error::ApiError;

/// `GET /v2/`: 200 with an empty JSON object; the layer adds the version header.
pub(crate) async fn get(_cx: Ctx) -> Result<Response, ApiError> {
    Ok(axum::Json(serde_json::json!({})).into_response())
}
