//! UI sessions: who is logged in, and the token every form that changes something must carry,
//! kept in memory behind a random id in an `HttpOnly`, `SameSite=Strict` cookie.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use quick_cache::sync::Cache;

use crate::Identity;

/// The cookie's name.
const COOKIE: &str = "registry_session";

/// One visitor's session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub id: String,
    /// `None` until a login.
    pub identity: Option<Identity>,
    /// The anti-forgery token forms carry.
    pub csrf: String,
    expires: Instant,
}

/// Sessions of this process (a restart logs everyone out).
pub(crate) struct Sessions {
    store: Cache<String, Session>,
    lifetime: Duration,
    secure: bool,
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

impl Sessions {
    pub fn new(lifetime: Duration, secure: bool) -> Sessions {
        Sessions {
            store: Cache::new(100_000),
            lifetime,
            secure,
        }
    }

    /// The live session the request's cookie names, if any.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == COOKIE).then(|| value.to_owned())
            })?;
        let session = self.store.get(&id)?;
        if session.expires <= Instant::now() {
            self.store.remove(&id);
            return None;
        }
        Some(session)
    }

    /// A new session for `identity` (a login gets a new id: a planted one is worthless).
    pub fn start(&self, identity: Option<Identity>) -> Session {
        let session = Session {
            id: random_token(),
            identity,
            csrf: random_token(),
            expires: Instant::now() + self.lifetime,
        };
        self.store.insert(session.id.clone(), session.clone());
        session
    }

    /// Forgets a session.
    pub fn end(&self, id: &str) {
        self.store.remove(id);
    }

    /// The `Set-Cookie` value for `session`.
    pub fn cookie(&self, session: &Session) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        crate::headers::value(format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            session.id,
            self.lifetime.as_secs()
        ))
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        crate::headers::value(format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        ))
    }
}
