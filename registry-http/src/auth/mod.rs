//! Who may do what, over HTTP. The identity and policy traits live in
//! [`registry_core::access`] (free of axum, for any server to implement); this module reads a
//! request's credentials, identifies the caller from one or more sources and asks the policy
//! before any handler runs.
//!
//! - [`access`]: credentials from the `Authorization` header or the client certificate, and the
//!   answer to a request: its identity, or 401 with the challenge, 403 `DENIED`, 429 or 503.
//! - [`gate`]: [`Gate`], the access control a server assembles from identity sources, tokens
//!   and rules; [`Htpasswd`] alone is distribution's htpasswd mode (every user may do all).
//! - [`htpasswd`], [`ldap`] (feature `ldap`), [`oidc`] (feature `oidc`): identity sources.
//! - [`policy`]: access rules by repository pattern, user and group.
//! - [`token`]: Docker token authentication, and `token::issuer`, the built-in token server.
//! - [`throttle`]: failed logins counted per address and user, then refused for a while.
//!
//! Imports go one way: `gate` → sources, `policy`, `token` → `access`; `throttle` stands alone.

pub mod access;
pub mod gate;
pub mod htpasswd;
#[cfg(feature = "ldap")]
pub mod ldap;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod policy;
pub mod throttle;
pub mod token;

pub use access::{AccessControl, Action, AuthError, Credentials, Grant, Identity, Resource};
pub use gate::Gate;
pub use htpasswd::Htpasswd;
