//! Who may do what. An embedding service plugs its own identity and policy in by implementing
//! [`AccessControl`]; [`crate::Htpasswd`] is the built-in one: Basic authentication against an
//! htpasswd file of bcrypt entries, every authenticated user allowed everything (as
//! distribution's htpasswd mode), anonymous callers refused.
//!
//! The router asks for access before any handler runs: `pull` for reads, `push` for uploads and
//! manifest puts, `delete` for deletes, catalog access for `/v2/_catalog`, and just an identity for
//! `/v2/`. An unauthenticated caller gets 401 with the challenge, an authenticated one that lacks
//! the right gets 403 `DENIED`.

use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use http::HeaderMap;
use registry_core::RepositoryName;

/// Credentials a request carries in its `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    Anonymous,
    /// `Basic` user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A `Bearer` token.
    Bearer(String),
    /// An `Authorization` header that could not be read.
    Malformed,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, <secret>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<secret>)"),
            Credentials::Malformed => f.write_str("Malformed"),
        }
    }
}

impl Credentials {
    /// Reads the `Authorization` header.
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Credentials::Anonymous;
        };
        let Ok(text) = value.to_str() else {
            return Credentials::Malformed;
        };
        let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((user, password)) => Credentials::Basic {
                    user: user.to_owned(),
                    password: password.to_owned(),
                },
                None => Credentials::Malformed,
            }
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            Credentials::Bearer(rest.trim().to_owned())
        } else {
            Credentials::Malformed
        }
    }
}

/// A caller that presented valid credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (empty for the bearer of an anonymous token).
    pub name: String,
    /// Groups the user belongs to, for policies that grant by group.
    pub groups: Vec<String>,
    /// What a bearer token grants, when the identity comes from one.
    pub grants: Option<Vec<crate::token::Grant>>,
}

impl Identity {
    /// A user known by name, without groups or token grants.
    pub fn user(name: impl Into<String>) -> Identity {
        Identity {
            name: name.into(),
            groups: Vec::new(),
            grants: None,
        }
    }
}

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read blobs, manifests, tags, referrers.
    Pull,
    /// Upload blobs, put manifests, mount.
    Push,
    /// Delete blobs, manifests, tags.
    Delete,
}

impl Action {
    /// The action's name in token scopes: `pull`, `push`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// What a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `/v2/`: only an identity is needed.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// One repository.
    Repository(&'a RepositoryName),
}

/// Identity and policy, as an embedding service implements them.
#[async_trait]
pub trait AccessControl: Send + Sync + 'static {
    /// Who the credentials belong to: `Ok(None)` for an anonymous caller, `Err` with a reason (not
    /// sent to the client) for credentials that do not check out.
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, String>;

    /// Whether `who` (`None`: anonymous) may do every one of `actions` on `resource`.
    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool;

    /// How to refuse `who`: `Some(WWW-Authenticate value)` for a 401 that invites the client to
    /// (re)authenticate, `None` for a 403 `DENIED`.
    fn challenge(
        &self,
        who: Option<&Identity>,
        resource: Resource<'_>,
        actions: &[Action],
    ) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            http::header::AUTHORIZATION,
            format!("Basic {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn reads_authorization_headers() {
        assert_eq!(
            Credentials::from_headers(&HeaderMap::new()),
            Credentials::Anonymous
        );
        assert_eq!(
            Credentials::from_headers(&basic("u", "p:w")),
            Credentials::Basic {
                user: "u".into(),
                password: "p:w".into()
            }
        );
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(
            Credentials::from_headers(&h),
            Credentials::Bearer("abc".into())
        );
        for bad in ["Basic !!!", "Basic dXNlcg==", "Digest x", "Bearer "] {
            h.insert(http::header::AUTHORIZATION, bad.parse().unwrap());
            assert_eq!(
                Credentials::from_headers(&h),
                Credentials::Malformed,
                "{bad}"
            );
        }
        assert!(
            !format!("{:?}", Credentials::from_headers(&basic("u", "hunter2"))).contains("hunter2")
        );
    }
}
