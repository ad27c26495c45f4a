//! Who may do what, over HTTP: the identity and policy traits live in
//! [`registry_core::access`] (free of axum, for any server to implement); this module reads a
//! request's credentials from its `Authorization` header (or the connection's client
//! certificate) and asks the access control before any handler runs.
//!
//! The router asks for access before any handler runs: `pull` for reads, `push` for uploads and
//! manifest puts, `delete` for deletes, catalog access for `/v2/_catalog`, and just an identity for
//! `/v2/`. An unauthenticated caller gets 401 with the challenge, an authenticated one that lacks
//! the right gets 403 `DENIED`; with a throttle, failed logins are counted and, past the limit,
//! answered 429 (`crate::auth::throttle`).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::HeaderMap;

use crate::audit::AuditKind;
use crate::auth::throttle::LoginThrottle;
use crate::error::{ApiError, ErrorCode};

pub use registry_core::access::{
    AccessControl, Action, AuthError, Credentials, Grant, Identity, Resource,
};

/// A request's credentials: its `Authorization` header, or else the verified client certificate
/// of its connection.
pub(crate) fn request_credentials(
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Credentials {
    match (
        credentials(headers),
        extensions.get::<crate::server::ClientCertificate>(),
    ) {
        (Credentials::Anonymous, Some(certificate)) => Credentials::ClientCertificate {
            name: certificate.0.clone(),
        },
        (credentials, _) => credentials,
    }
}

/// The credentials of a request's `Authorization` header.
pub fn credentials(headers: &HeaderMap) -> Credentials {
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
            // What clients without credentials send once a Basic challenge told them to.
            Some(("", "")) => Credentials::Anonymous,
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

/// Whether a password looks like a JWT (three base64url parts, a JSON header): logins with one
/// are not counted against the user name they give (CI jobs share names like `oidc`).
pub fn looks_like_jwt(password: &str) -> bool {
    password.starts_with("eyJ") && password.split('.').count() == 3
}

/// The challenge of a password source: Basic in `realm` for a caller not yet identified, none for
/// one who is (a refusal then is 403, not a new login).
pub(crate) fn basic_challenge(who: Option<&Identity>, realm: &str) -> Option<String> {
    who.is_none()
        .then(|| format!("Basic realm=\"{}\"", realm.replace('"', "")))
}

/// The answer when the identity source (a directory, a provider's keys) cannot be asked: 503,
/// so that the client retries instead of doubting its credentials.
pub(crate) fn source_unavailable() -> Response {
    ApiError::new(
        ErrorCode::Unavailable,
        "the identity source cannot be reached; retry later",
    )
    .into_response()
}

/// What a caller asked for, as a refusal says it: `pull,push in team/app`.
fn what_is_asked(resource: Resource<'_>, actions: &[Action]) -> String {
    let actions: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    match resource {
        Resource::Base => "use this registry".into(),
        Resource::Catalog => "list the catalog".into(),
        Resource::Store => "see the whole store".into(),
        Resource::Usage(repo) => format!("read the usage of {repo}"),
        Resource::Repository(repo) => format!("{} in {repo}", actions.join(",")),
    }
}

/// A request refused before its handler: the response, and what the audit trail says of it.
pub(crate) struct Refused {
    pub response: Response,
    pub kind: AuditKind,
    /// The authenticated user, or the name a failed login gave.
    pub user: Option<String>,
    pub detail: String,
}

/// What guards a request: who may do what (`None` lets everyone do everything), and the
/// throttle of failed logins.
#[derive(Clone, Copy)]
pub(crate) struct Guard<'a> {
    pub access: Option<&'a Arc<dyn AccessControl>>,
    pub throttle: Option<&'a Arc<LoginThrottle>>,
}

/// Whether the caller the headers name may do `actions` on `resource`: their identity, or the
/// response refusing them (401 with the challenge when unauthenticated, 403 `DENIED` otherwise).
pub(crate) async fn authorize(
    guard: Guard<'_>,
    headers: &HeaderMap,
    extensions: &http::Extensions,
    resource: Resource<'_>,
    actions: &[Action],
) -> Result<Option<Identity>, Refused> {
    let Some(access) = guard.access else {
        return Ok(None);
    };
    let client = crate::server::client_addr(extensions);
    let credentials = request_credentials(headers, extensions);
    // A token as password names no user to throttle: CI jobs share names such as `oidc`.
    let (named, secret) = match &credentials {
        Credentials::Basic { user, password } => (
            (!looks_like_jwt(password)).then(|| user.clone()),
            password.as_str(),
        ),
        _ => (None, ""),
    };
    // Logins are what send a secret to check: a password or a provider's token. A registry
    // token that expired is no guess (clients fetch another), and must not lock anyone out.
    let login = matches!(credentials, Credentials::Basic { .. });
    let ip = client.map(|c| c.ip());
    let throttle = guard.throttle.filter(|_| login);
    if let Some(wait) = throttle.and_then(|t| t.check(ip, named.as_deref()).err()) {
        let (response, secs) = crate::auth::throttle::refusal(wait);
        return Err(Refused {
            response,
            kind: AuditKind::Throttled,
            user: named,
            detail: format!("too many failed logins; retry after {secs} s"),
        });
    }
    let refuse = |who: Option<&Identity>| match access.challenge(who, resource, actions) {
        Some(challenge) => ApiError::new(ErrorCode::Unauthorized, "authentication required")
            .with_header(
                http::header::WWW_AUTHENTICATE,
                crate::headers::value(challenge),
            )
            .into_response(),
        None => {
            let name = who.map_or("anonymous", |w| w.name.as_str());
            ApiError::new(
                ErrorCode::Denied,
                format!("{name} may not {}", what_is_asked(resource, actions)),
            )
            .into_response()
        }
    };
    let who = match access.identify(&credentials).await {
        Ok(who) => {
            if let (Some(t), Some(who)) = (throttle, &who) {
                t.succeeded(&who.name);
            }
            who
        }
        Err(reason) => {
            tracing::info!(%reason, "authentication failed");
            // The identity source (a directory, a provider's keys) could not be asked: the
            // credentials may be right, so the client is told to retry, and nothing is counted.
            let unavailable = matches!(reason, AuthError::Unavailable { .. });
            if let Some(t) = throttle.filter(|_| !unavailable) {
                t.failed(ip, named.as_deref(), secret);
            }
            let response = match unavailable {
                true => source_unavailable(),
                false => refuse(None),
            };
            return Err(Refused {
                response,
                kind: AuditKind::LoginFailed,
                user: named,
                detail: reason.to_string(),
            });
        }
    };
    if access.allows(who.as_ref(), resource, actions) {
        Ok(who)
    } else {
        let response = refuse(who.as_ref());
        let anonymous = who.is_none();
        Err(Refused {
            detail: if anonymous {
                "authentication required".into()
            } else {
                "not allowed".into()
            },
            user: who.map(|w| w.name),
            kind: AuditKind::Refused,
            response,
        })
    }
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
        assert_eq!(credentials(&HeaderMap::new()), Credentials::Anonymous);
        assert_eq!(
            credentials(&basic("u", "p:w")),
            Credentials::Basic {
                user: "u".into(),
                password: "p:w".into()
            }
        );
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(credentials(&h), Credentials::Bearer("abc".into()));
        for bad in ["Basic !!!", "Basic dXNlcg==", "Digest x", "Bearer "] {
            h.insert(http::header::AUTHORIZATION, bad.parse().unwrap());
            assert_eq!(credentials(&h), Credentials::Malformed, "{bad}");
        }
        assert!(!format!("{:?}", credentials(&basic("u", "hunter2"))).contains("hunter2"));
    }
}
