//! Who may do what: the identity and policy an embedding service plugs in by implementing
//! [`AccessControl`], free of any web framework (a service on hyper, actix or tonic implements it
//! as well as one on axum). `registry_http` asks it before every request: `pull` for reads,
//! `push` for uploads and manifest puts, `delete` for deletes, catalog access for `/v2/_catalog`,
//! and just an identity for `/v2/`.
//!
//! ```
//! use registry_core::access::{AccessControl, Action, AuthError, Credentials, Identity, Resource};
//!
//! /// One shared secret; whoever knows it may do everything.
//! struct SharedSecret(String);
//!
//! #[async_trait::async_trait]
//! impl AccessControl for SharedSecret {
//!     async fn identify(&self, c: &Credentials) -> Result<Option<Identity>, AuthError> {
//!         match c {
//!             Credentials::Anonymous => Ok(None),
//!             Credentials::Basic { user, password } if *password == self.0 => {
//!                 Ok(Some(Identity::user(user.clone())))
//!             }
//!             Credentials::Basic { user, .. } => Err(AuthError::WrongCredentials { user: user.clone() }),
//!             _ => Err(AuthError::Unsupported),
//!         }
//!     }
//!     fn allows(&self, who: Option<&Identity>, _: Resource<'_>, _: &[Action]) -> bool {
//!         who.is_some()
//!     }
//!     fn challenge(&self, who: Option<&Identity>, _: Resource<'_>, _: &[Action]) -> Option<String> {
//!         who.is_none().then(|| "Basic realm=\"registry\"".to_owned())
//!     }
//! }
//! ```

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::reference::RepositoryName;

/// Credentials a request carries (an HTTP `Authorization` header, once read).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None.
    Anonymous,
    /// A user name and password (`Basic`).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
    /// A TLS client certificate the server verified against its client CA; `name` is the
    /// identity it carries (its subject's common name, or a subject alternative name).
    ClientCertificate {
        /// The identity the certificate names.
        name: String,
    },
    /// Credentials that could not be read.
    Malformed,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, <secret>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<secret>)"),
            Credentials::Malformed => f.write_str("Malformed"),
            Credentials::ClientCertificate { name } => write!(f, "ClientCertificate({name})"),
        }
    }
}

/// Why credentials were refused. Logged, never sent to the client (which gets the challenge).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The user is unknown, or the password is not theirs.
    #[error("wrong user or password for {user:?}")]
    WrongCredentials {
        /// The user name given.
        user: String,
    },
    /// A token that is forged, expired, not yet valid, or for another service.
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// What was wrong with it.
        reason: String,
    },
    /// Credentials of a kind this access control does not take (a bearer token where Basic is
    /// expected, say).
    #[error("credentials of this kind are not accepted here")]
    Unsupported,
    /// Credentials that could not be read.
    #[error("malformed credentials")]
    Malformed,
    /// The identity source failed (a directory that cannot be reached…).
    #[error("the identity source failed: {source}")]
    Unavailable {
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A caller that presented valid credentials.
///
/// Names are qualified by the source that vouched for them, so that two sources cannot yield
/// the same identity: the registry's own users (an htpasswd file or a directory) keep their
/// plain names, other sources prefix theirs (`gitlab:alice` for an OpenID provider named
/// `gitlab`, `cert:build-host` for a client certificate). Access rules match the qualified name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name, qualified by its source (empty for the bearer of an anonymous token).
    pub name: String,
    /// Which source vouched for it: `htpasswd`, `ldap`, `oidc:<provider>`, `certificate`,
    /// `token`, or an embedder's own word (`local` by default).
    pub source: String,
    /// Groups the user belongs to, for policies that grant by group (qualified as the name is).
    pub groups: Vec<String>,
    /// What a bearer token grants, when the identity comes from one.
    pub grants: Option<Vec<Grant>>,
    /// Claims of the token that identified the caller (an OpenID Connect token), as text, for
    /// access rules that name them (`{claim:repository}/*`); empty otherwise.
    pub claims: std::collections::BTreeMap<String, String>,
    /// When the credentials that vouched for it end (an OpenID Connect token's expiry): nothing
    /// derived from them (a token, a UI session) may outlive this.
    pub expires: Option<std::time::SystemTime>,
    /// A fingerprint of the credentials, which changes when they do (a new password), set by
    /// sources that can check it again ([`AccessControl::recheck`]): credentials that outlive a
    /// login (refresh tokens) are issued only to identities that carry one.
    pub stamp: Option<String>,
}

impl Identity {
    /// A user known by name to an embedder's access control (source `local`), without groups
    /// or token grants.
    pub fn user(name: impl Into<String>) -> Identity {
        Identity::from_source(name, "local")
    }

    /// A user named by `source`, without groups or token grants.
    pub fn from_source(name: impl Into<String>, source: impl Into<String>) -> Identity {
        Identity {
            name: name.into(),
            source: source.into(),
            groups: Vec::new(),
            grants: None,
            claims: std::collections::BTreeMap::new(),
            expires: None,
            stamp: None,
        }
    }

    /// Whether the credentials behind it have ended.
    pub fn expired(&self) -> bool {
        self.expires
            .is_some_and(|at| at <= std::time::SystemTime::now())
    }
}

/// One entry of a token's `access` claim, and of a requested scope (Docker token specification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, or `*`.
    pub actions: Vec<String>,
}

impl Grant {
    /// Reads a scope: `repository:NAME:pull,push` or `registry:catalog:*`.
    pub fn parse_scope(scope: &str) -> Option<Grant> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let kind_ok = matches!((kind, name), ("repository", _) | ("registry", "catalog"));
        if !kind_ok
            || name.is_empty()
            || (kind == "repository" && name.parse::<RepositoryName>().is_err())
        {
            return None;
        }
        Some(Grant {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Whether the grant covers `action` (or `*`).
    pub fn covers(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "*")
    }
}

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    /// `/v2/_catalog`: every repository's name.
    Catalog,
    /// One repository.
    Repository(&'a RepositoryName),
    /// A repository's usage figures: pull for an identified caller, and for anonymous callers
    /// only where a policy grants it explicitly.
    Usage(&'a RepositoryName),
    /// The store as a whole: its totals and every repository's usage, for those who may list the
    /// catalog and pull every repository.
    Store,
}

/// Identity and policy, as an embedding service implements them.
#[async_trait]
pub trait AccessControl: Send + Sync + 'static {
    /// Who the credentials belong to: `Ok(None)` for an anonymous caller, an error (logged, not
    /// sent to the client) for credentials that do not check out.
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError>;

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

    /// `who`, identified earlier (a UI session, a refresh token), checked again: its current form
    /// when the user still stands and their credentials are unchanged since (the stamp still
    /// matches), `None` otherwise. By default an identity stands until it expires, unless it
    /// carries a stamp, which only the source that set it can check.
    async fn recheck(&self, who: &Identity) -> Result<Option<Identity>, AuthError> {
        Ok((!who.expired() && who.stamp.is_none()).then(|| who.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let g = Grant::parse_scope("repository:a/b:pull,push").unwrap();
        assert_eq!(g.actions, ["pull", "push"]);
        assert!(g.covers("push") && !g.covers("delete"));
        assert_eq!(
            Grant::parse_scope("registry:catalog:*").unwrap().name,
            "catalog"
        );
        for bad in [
            "repository:A:pull",
            "repository::pull",
            "x:y:z",
            "repository:a",
            "registry:other:*",
        ] {
            assert!(Grant::parse_scope(bad).is_none(), "{bad}");
        }
        let secret = Credentials::Basic {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
