//! UI sessions: who is logged in, and the token every form that changes something must carry.
//!
//! Only a login creates a session (kept in memory behind a random id in an `HttpOnly`,
//! `SameSite=Strict` cookie), so no number of anonymous page views can evict logged-in visitors.
//! An anonymous visitor's forms (the login form) carry instead a token of their own cookie,
//! signed with a key of this process so that it cannot be planted; nothing is stored for them.

use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use http::{HeaderMap, HeaderValue};
use quick_cache::sync::Cache;

use crate::auth::access::Identity;

/// The session cookie's name.
const COOKIE: &str = "registry_session";
/// The anonymous anti-forgery cookie's name.
const FORM_COOKIE: &str = "registry_form";

/// One logged-in visitor's session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    pub identity: Identity,
    /// The anti-forgery token forms carry.
    pub csrf: String,
    expires: Instant,
}

/// Sessions of this process (a restart logs everyone out).
pub(crate) struct Sessions {
    store: Cache<String, Session>,
    lifetime: Duration,
    secure: bool,
    key: hmac::Key,
}

/// 32 random bytes, as hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// Compares two tokens in time independent of where they differ.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in a request's headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

impl Sessions {
    pub fn new(lifetime: Duration, secure: bool) -> Sessions {
        let mut secret = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut secret);
        Sessions {
            store: Cache::new(100_000),
            lifetime,
            secure,
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }

    /// The live session the request's cookie names, if any.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let session = self.store.get(id)?;
        if session.expires <= Instant::now() {
            self.store.remove(id);
            return None;
        }
        Some(session)
    }

    /// A new session for `identity` (a login gets a new id: a planted one is worthless), ending
    /// no later than the credentials behind it.
    pub fn start(&self, identity: Identity) -> Session {
        let mut lifetime = self.lifetime;
        if let Some(left) = identity
            .expires
            .and_then(|at| at.duration_since(std::time::SystemTime::now()).ok())
        {
            lifetime = lifetime.min(left);
        }
        let session = Session {
            id: random_token(),
            identity,
            csrf: random_token(),
            expires: Instant::now() + lifetime,
        };
        self.store.insert(session.id.clone(), session.clone());
        session
    }

    /// Replaces the identity a session holds (what its source says of it now).
    pub fn update(&self, session: &Session) {
        self.store.insert(session.id.clone(), session.clone());
    }

    /// Forgets a session.
    pub fn end(&self, id: &str) {
        self.store.remove(id);
    }

    /// The `Set-Cookie` value for `session`.
    pub fn cookie(&self, session: &Session) -> HeaderValue {
        self.set(COOKIE, &session.id, self.lifetime.as_secs())
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear(&self) -> HeaderValue {
        self.set(COOKIE, "", 0)
    }

    fn set(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        crate::headers::value(format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        ))
    }

    /// An anonymous visitor's form token: the one of their cookie when it carries this
    /// process's signature, else a new one, with the cookie to set. 32 hex digits of nonce,
    /// then 32 of its HMAC.
    pub fn form_token(&self, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
        if let Some(value) = cookie(headers, FORM_COOKIE)
            && value.len() == 64
            && let Some((nonce, mac)) = value.split_at_checked(32)
            && same_token(mac, &self.mac(nonce))
        {
            return (value.to_owned(), None);
        }
        let mut bytes = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        let nonce = hex::encode(bytes);
        let token = format!("{nonce}{}", self.mac(&nonce));
        let set = self.set(FORM_COOKIE, &token, self.lifetime.as_secs());
        (token, Some(set))
    }

    /// The first 16 bytes of the HMAC of `nonce`, as hex.
    fn mac(&self, nonce: &str) -> String {
        hex::encode(&hmac::sign(&self.key, nonce.as_bytes()).as_ref()[..16])
    }

    /// Live sessions, for tests of what fills the store.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.store.len()
    }
}
