//! One module per endpoint family; [`handle`] sends each method and route to its handler.

use axum::response::Response;
use http::Method;
use registry_core::{Digest, Error, RepositoryName};

use crate::error::{ApiError, ErrorCode};
use crate::events::{Happened, Target};
use crate::{Ctx, Route};

mod base;
mod blobs;
mod catalog;
mod manifests;
mod referrers;
mod tags;
mod uploads;

/// Calls the handler of a method on a route; 405 `UNSUPPORTED` for other methods.
pub(crate) async fn handle(cx: Ctx, route: Route) -> Result<Response, ApiError> {
    let method = cx.method.clone();
    match (method, route) {
        (Method::GET | Method::HEAD, Route::Base) => base::get(cx).await,
        (Method::GET, Route::Catalog) => catalog::list(cx).await,
        (Method::GET, Route::Tags(name)) => tags::list(cx, name).await,
        (Method::GET | Method::HEAD, Route::Manifest(name, r)) => manifests::get(cx, name, r).await,
        (Method::PUT, Route::Manifest(name, r)) => manifests::put(cx, name, r).await,
        (Method::DELETE, Route::Manifest(name, r)) => manifests::delete(cx, name, r).await,
        (Method::GET | Method::HEAD | Method::DELETE, Route::InvalidTag(_, tag)) => {
            Err(Error::ManifestUnknown { reference: tag }.into())
        }
        (Method::PUT, Route::InvalidTag(_, tag)) => Err(Error::TagInvalid { tag }.into()),
        (Method::GET | Method::HEAD, Route::Blob(name, d)) => blobs::get(cx, name, d).await,
        (Method::DELETE, Route::Blob(name, d)) => blobs::delete(cx, name, d).await,
        (Method::POST, Route::Uploads(name)) => uploads::start(cx, name).await,
        (Method::GET, Route::Upload(name, id)) => uploads::status(cx, name, id).await,
        (Method::PATCH, Route::Upload(name, id)) => uploads::patch(cx, name, id).await,
        (Method::PUT, Route::Upload(name, id)) => uploads::put(cx, name, id).await,
        (Method::DELETE, Route::Upload(name, id)) => uploads::cancel(cx, name, id).await,
        (Method::GET, Route::Referrers(name, d)) => referrers::list(cx, name, d).await,
        (method, route) => Err(ApiError::new(
            ErrorCode::Unsupported,
            format!("{method} is not supported on the {} endpoint", route.kind()),
        )),
    }
}

/// Marks a response as an event about `target`, raised by the router when events are on.
fn happened(res: &mut Response, target: Target) {
    res.extensions_mut().insert(Happened(target));
}

/// The event target of a blob.
fn blob_target(name: &RepositoryName, digest: &Digest) -> Target {
    Target {
        media_type: Some("application/octet-stream".into()),
        digest: digest.to_string(),
        repository: name.to_string(),
        ..Target::default()
    }
}
