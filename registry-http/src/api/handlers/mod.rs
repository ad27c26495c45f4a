//! One module per endpoint family; [`handle`] sends each method and route to its handler.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method};
use registry_core::{ByteStream, Digest, Error, Registry, RepositoryName};

use crate::api::HttpOptions;
use crate::api::route::Route;
use crate::auth::access::{Action, Identity, Resource};
use crate::error::{ApiError, ErrorCode};
use crate::events::{Happened, Target};

/// What a handler gets: the registry and the parts of the request it may read.
pub(crate) struct Ctx {
    pub registry: Registry,
    /// The path before `/v2/` when the router is nested, so that `Location` values work.
    pub prefix: String,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: Body,
    pub options: Arc<HttpOptions>,
    /// The caller, when access control identified one.
    pub identity: Option<Identity>,
}

impl Ctx {
    /// A URL path under this registry, e.g. `self.url("/v2/a/blobs/…")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The request body as a stream of bytes for storage; it fails when the client sends nothing
    /// for [`HttpOptions::body_idle_timeout`].
    pub fn take_body(&mut self) -> ByteStream {
        use futures::{StreamExt, TryStreamExt};
        let idle = self.options.body_idle_timeout;
        let body = std::mem::take(&mut self.body)
            .into_data_stream()
            .map_err(std::io::Error::other);
        futures::stream::unfold(Some(body), move |state| async move {
            let mut body = state?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(item)) => Some((item, Some(body))),
                Ok(None) => None,
                Err(_) => {
                    let e =
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "request body stalled");
                    Some((Err(e), None))
                }
            }
        })
        .boxed()
    }

    /// A query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// Whether the caller may do `actions` on `resource` (always, without access control).
    pub fn may(&self, resource: Resource<'_>, actions: &[Action]) -> bool {
        self.options
            .access
            .as_ref()
            .is_none_or(|a| a.allows(self.identity.as_ref(), resource, actions))
    }
}

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
