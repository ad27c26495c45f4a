//! The OCI distribution API (Docker Registry HTTP API V2) as an axum [`Router`](axum::Router)
//! over a [`registry_core::Registry`]: mount it in any axum or tower server, at the root or under
//! a prefix.
//!
//! The crate by concern; imports go down this list, never up, and no module imports this root:
//!
//! - [`server`]: [`serve`], a server loop with TLS, client certificates, the PROXY protocol,
//!   connection and header-timeout limits; [`server::ClientAddr`], where a request came from.
//! - `ui` (feature `ui`): the web UI, a router to merge beside the API.
//! - [`api`]: [`router`] and [`router_with`]: the distribution routes, their handlers, the admin
//!   API under `/admin/v1/`, health, metrics and the request log.
//! - [`remote`] (feature `remote`): a client of other registries, and the pull-through cache,
//!   replication and sync built on it.
//! - [`auth`]: [`auth::AccessControl`] implementations (htpasswd, LDAP with feature `ldap`,
//!   OpenID Connect with feature `oidc`, tokens and the built-in issuer, access rules), the login
//!   throttle, and the check every request passes before its handler.
//! - [`events`], [`audit`], [`metrics`]: what happened, for notifications, the audit trail and
//!   Prometheus; [`events::FeedEvents`] turns the registry's change feed into notifications.
//! - [`error`], [`headers`]: [`ApiError`] with the one table from OCI error code to status, and
//!   the headers the API reads and writes.
//! - `testing` (feature `testing`): `testing::TestRegistry`, an in-process registry for tests.
//!
//! ```
//! use std::sync::Arc;
//! use registry_core::{Registry, RegistryConfig};
//! use registry_storage::MemoryStorage;
//!
//! let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
//! let app: axum::Router = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hi" }))
//!     .nest("/registry", registry_http::router(registry));
//! # drop(app);
//! ```

pub mod api;
pub mod audit;
pub mod auth;
pub mod error;
pub mod events;
pub mod headers;
pub mod metrics;
#[cfg(feature = "remote")]
pub mod remote;
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "ui")]
pub mod ui;

pub use api::log::{REQUEST_LOG_TARGET, request_log};
pub use api::route::Route;
pub use api::{HttpOptions, router, router_with};
pub use auth::{
    AccessControl, Action, AuthError, Credentials, Grant, Htpasswd, Identity, Resource,
};
pub use error::{ApiError, Error, ErrorCode};
pub use headers::{
    API_VERSION_HEADER, CONTENT_DIGEST_HEADER, OCI_FILTERS_APPLIED_HEADER, OCI_SUBJECT_HEADER,
    REQUEST_ID_HEADER, UPLOAD_UUID_HEADER,
};
pub use server::{
    ClientAddr, ClientCertificate, ClientCertificates, ClientName, ServeOptions, TrustedProxies,
    serve, tls_acceptor, tls_acceptor_with,
};
