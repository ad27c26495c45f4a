//! Who may do what, over HTTP: the identity and policy traits live in
//! [`registry_core::access`] (free of axum, for any server to implement); this module reads a
//! request's credentials from its `Authorization` header. [`crate::Htpasswd`] is the built-in
//! access control: Basic authentication against an htpasswd file of bcrypt entries, every
//! authenticated user allowed everything (as distribution's htpasswd mode), anonymous callers
//! refused.
//!
//! The router asks for access before any handler runs: `pull` for reads, `push` for uploads and
//! manifest puts, `delete` for deletes, catalog access for `/v2/_catalog`, and just an identity for
//! `/v2/`. An unauthenticated caller gets 401 with the challenge, an authenticated one that lacks
//! the right gets 403 `DENIED`.

use base64::Engine;
use http::HeaderMap;
pub use registry_core::access::{
    AccessControl, Action, AuthError, Credentials, Grant, Identity, Resource,
};

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
