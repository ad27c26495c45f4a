//! [`TokenIssuer`], the built-in token server, and [`token_router`], its `/token` endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use registry_core::RepositoryName;
use registry_core::clock::{SharedClock, SystemClock, unix_secs};
use sha2::{Digest as _, Sha256};

use super::{Audience, Claims, MAX_TOKEN_LIFETIME, REFRESH_LIFETIME, TokenAuth, validation};
use crate::audit::{AuditKind, AuditRecord, AuditSink};
use crate::auth::access::{AccessControl, Action, Credentials, Grant, Identity, Resource};
use crate::auth::throttle::LoginThrottle;
use crate::error::{ApiError, Error, ErrorCode};

/// The built-in token server.
pub struct TokenIssuer {
    users: Arc<dyn AccessControl>,
    service: String,
    issuer: String,
    lifetime: Duration,
    key: EncodingKey,
    kid: String,
    public: DecodingKey,
    throttle: Option<Arc<LoginThrottle>>,
    audit: Option<Arc<dyn AuditSink>>,
    clock: SharedClock,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer for `service` named `issuer`, identifying callers and granting what `users`
    /// allows (any [`AccessControl`]: the htpasswd users and their rules, or an embedder's own),
    /// signing with `key_pem` (a PKCS#8 EC P-256 key) or with a key generated now when `None`.
    /// `lifetime` is capped at [`MAX_TOKEN_LIFETIME`], and a token never outlives the
    /// credentials behind it ([`Identity::expires`]). Refresh tokens carry the identity's
    /// source and stamp, are issued only to identities that have a stamp, and are honoured only
    /// while [`AccessControl::recheck`] still vouches for them.
    pub fn new(
        users: Arc<dyn AccessControl>,
        service: &str,
        issuer: &str,
        lifetime: Duration,
        key_pem: Option<&[u8]>,
    ) -> Result<TokenIssuer, Error> {
        let invalid = |reason: &str| Error::TokenKey {
            reason: reason.to_owned(),
        };
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pkcs8 = match key_pem {
            Some(pem) => {
                let text = std::str::from_utf8(pem).map_err(|_| invalid("not PEM text"))?;
                let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(body.trim())
                    .map_err(|_| invalid("not PEM"))?
            }
            None => EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .map_err(|_| invalid("cannot generate a signing key"))?
            .as_ref()
            .to_vec(),
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| invalid("not a PKCS#8 EC P-256 private key"))?;
        let point = pair.public_key().as_ref().to_vec();
        if point.len() != 65 {
            return Err(invalid("unexpected public key encoding"));
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let public = DecodingKey::from_ec_components(
            &b64.encode(&point[1..33]),
            &b64.encode(&point[33..65]),
        )
        .map_err(|e| invalid(&e.to_string()))?;
        let kid = b64.encode(&Sha256::digest(&point)[..12]);
        Ok(TokenIssuer {
            users,
            service: service.to_owned(),
            issuer: issuer.to_owned(),
            lifetime: lifetime.min(MAX_TOKEN_LIFETIME),
            key: EncodingKey::from_ec_der(&pkcs8),
            kid,
            public,
            throttle: None,
            audit: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same issuer, dating its tokens by `clock` (its verifiers check them against it too).
    pub fn with_clock(mut self, clock: SharedClock) -> TokenIssuer {
        self.clock = clock;
        self
    }

    /// The same issuer, throttling failed logins at `/token` with `throttle` (share it with
    /// [`crate::api::HttpOptions::throttle`] so that both doors count together).
    pub fn with_throttle(mut self, throttle: Arc<LoginThrottle>) -> TokenIssuer {
        self.throttle = Some(throttle);
        self
    }

    /// The same issuer, recording logins at `/token` in `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> TokenIssuer {
        self.audit = Some(audit);
        self
    }

    /// Checks a password login at `/token`: throttled, identified, recorded. `Ok(None)` for an
    /// anonymous caller; the response to send otherwise.
    async fn login(
        &self,
        credentials: &Credentials,
        extensions: &http::Extensions,
        method: &str,
    ) -> Result<Option<Identity>, Response> {
        let (user, secret) = match credentials {
            Credentials::Anonymous => return Ok(None),
            Credentials::Basic { user, password } => (user.as_str(), password.as_str()),
            Credentials::ClientCertificate { name } => (name.as_str(), ""),
            _ => return Err(unauthorized()),
        };
        let client = crate::server::client_addr(extensions);
        let ip = client.map(|c| c.ip());
        // Counted against the user they name, unless that is no user: a token, a certificate.
        let named = match credentials {
            Credentials::Basic { password, .. }
                if !crate::auth::access::looks_like_jwt(password) =>
            {
                Some(user)
            }
            _ => None,
        };
        let record = |kind, identity: &str, status: u16, detail: Option<String>| {
            if let Some(audit) = &self.audit {
                audit.record(AuditRecord {
                    time: crate::events::now(),
                    kind,
                    identity: Some(identity.to_owned()),
                    client: ip.map(|i| i.to_string()),
                    method: method.to_owned(),
                    path: "/token".into(),
                    repository: None,
                    reference: None,
                    digest: None,
                    status,
                    request_id: String::new(),
                    detail,
                });
            }
        };
        let throttle = self.throttle.as_ref().filter(|_| !secret.is_empty());
        if let Some(wait) = throttle.and_then(|t| t.check(ip, named).err()) {
            let (response, secs) = crate::auth::throttle::refusal(wait);
            record(
                AuditKind::Throttled,
                user,
                429,
                Some(format!("retry after {secs} s")),
            );
            return Err(response);
        }
        match self.users.identify(credentials).await {
            Ok(Some(who)) => {
                if let Some(t) = throttle {
                    t.succeeded(&who.name);
                }
                record(AuditKind::Login, &who.name, 200, None);
                Ok(Some(who))
            }
            Ok(None) => Err(unauthorized()),
            Err(reason) => {
                let unavailable =
                    matches!(reason, crate::auth::access::AuthError::Unavailable { .. });
                if let Some(t) = throttle.filter(|_| !unavailable) {
                    t.failed(ip, named, secret);
                }
                let status = if unavailable { 503 } else { 401 };
                record(
                    AuditKind::LoginFailed,
                    user,
                    status,
                    Some(reason.to_string()),
                );
                Err(match unavailable {
                    true => crate::auth::access::source_unavailable(),
                    false => unauthorized(),
                })
            }
        }
    }

    /// The registry side that accepts this issuer's tokens; clients are sent to `realm`.
    pub fn verifier(&self, realm: &str) -> TokenAuth {
        TokenAuth::new(realm, &self.service, &self.issuer)
            .with_key(
                Some(self.kid.clone()),
                self.public.clone(),
                Algorithm::ES256,
            )
            .with_clock(self.clock.clone())
    }

    /// What `who` gets of what it asked: each scope cut down to the actions the rules allow.
    pub fn grant(&self, who: Option<&Identity>, asked: &[Grant]) -> Vec<Grant> {
        asked
            .iter()
            .filter_map(|g| {
                let actions: Vec<String> = if g.kind == "registry" {
                    if self.users.allows(who, Resource::Catalog, &[]) {
                        vec!["*".to_owned()]
                    } else {
                        Vec::new()
                    }
                } else {
                    let repo: RepositoryName = g.name.parse().ok()?;
                    [Action::Pull, Action::Push, Action::Delete]
                        .into_iter()
                        .filter(|a| g.covers(a.as_str()))
                        .filter(|a| self.users.allows(who, Resource::Repository(&repo), &[*a]))
                        .map(|a| a.as_str().to_owned())
                        .collect()
                };
                (!actions.is_empty()).then(|| Grant {
                    actions,
                    ..g.clone()
                })
            })
            .collect()
    }

    /// A token for `who` (anonymous when `None`) granting `access`, living `lifetime` at most
    /// and never past the end of the credentials behind it; a refresh token with `refresh`.
    fn sign(
        &self,
        who: Option<&Identity>,
        access: Vec<Grant>,
        lifetime: Duration,
        refresh: bool,
    ) -> Result<String, String> {
        let now = unix_secs(self.clock.now());
        let ends = who
            .and_then(|w| w.expires)
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(u64::MAX, |d| d.as_secs());
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: who.map(|w| w.name.clone()).unwrap_or_default(),
            aud: Audience::One(self.service.clone()),
            exp: (now + lifetime.as_secs()).min(ends),
            nbf: Some(now.saturating_sub(1)),
            iat: Some(now),
            jti: Some(hex_id()),
            access,
            typ: refresh.then(|| "refresh".to_owned()),
            stamp: who.and_then(|w| w.stamp.clone()).filter(|_| refresh),
            src: who.map(|w| w.source.clone()).filter(|_| refresh),
            groups: who.map(|w| w.groups.clone()).unwrap_or_default(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }

    /// The identity a refresh token stands for, checked again by the source that vouched for it
    /// (a removed user, a changed password: none).
    async fn refreshed(&self, token: &str) -> Result<Identity, String> {
        let v = validation(Algorithm::ES256, &self.issuer, &self.service);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.public, &v).map_err(|e| e.to_string())?;
        let claims = data.claims;
        claims.current(unix_secs(self.clock.now()))?;
        let (Some("refresh"), Some(src), Some(stamp)) =
            (claims.typ.as_deref(), claims.src, claims.stamp)
        else {
            return Err("not a refresh token".into());
        };
        let who = Identity {
            stamp: Some(stamp),
            groups: claims.groups,
            ..Identity::from_source(claims.sub, src)
        };
        match self.users.recheck(&who).await {
            Ok(Some(current)) => Ok(current),
            Ok(None) => Err("the user is gone or their password changed".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn hex_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token endpoint, at `/token`: `GET` (Docker token flow) and `POST` (OAuth2 form).
pub fn token_router(issuer: Arc<TokenIssuer>) -> Router {
    Router::new()
        .route("/token", axum::routing::get(token_get).post(token_post))
        .with_state(issuer)
}

fn pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

fn unauthorized() -> Response {
    ApiError::new(ErrorCode::Unauthorized, "wrong user or password").into_response()
}

/// `GET /token?service=&scope=…`: a token for the scopes the caller may have.
async fn token_get(
    State(issuer): State<Arc<TokenIssuer>>,
    headers: HeaderMap,
    extensions: http::Extensions,
    RawQuery(query): RawQuery,
) -> Response {
    let query = pairs(query.as_deref().unwrap_or(""));
    let creds = crate::auth::access::request_credentials(&headers, &extensions);
    let who = match issuer.login(&creds, &extensions, "GET").await {
        Ok(who) => who,
        Err(res) => return res,
    };
    let asked: Vec<Grant> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, v)| Grant::parse_scope(v))
        .collect();
    let access = issuer.grant(who.as_ref(), &asked);
    let offline = query
        .iter()
        .any(|(k, v)| k == "offline_token" && v == "true");
    respond(&issuer, who.as_ref(), access, offline)
}

/// `POST /token` with `grant_type=password|refresh_token`, the OAuth2 form.
async fn token_post(
    State(issuer): State<Arc<TokenIssuer>>,
    extensions: http::Extensions,
    body: String,
) -> Response {
    let form: HashMap<String, String> = pairs(&body).into_iter().collect();
    let who = match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let creds = Credentials::Basic {
                user: form.get("username").cloned().unwrap_or_default(),
                password: form.get("password").cloned().unwrap_or_default(),
            };
            match issuer.login(&creds, &extensions, "POST").await {
                Ok(Some(who)) => who,
                Ok(None) => return unauthorized(),
                Err(res) => return res,
            }
        }
        Some("refresh_token") => {
            let token = form.get("refresh_token").map(String::as_str).unwrap_or("");
            match issuer.refreshed(token).await {
                Ok(who) => who,
                Err(_) => return unauthorized(),
            }
        }
        _ => {
            return ApiError::new(
                ErrorCode::Unsupported,
                "grant_type must be password or refresh_token",
            )
            .with_status(http::StatusCode::BAD_REQUEST)
            .into_response();
        }
    };
    let asked: Vec<Grant> = form
        .get("scope")
        .map(|s| s.split(' ').filter_map(Grant::parse_scope).collect())
        .unwrap_or_default();
    let access = issuer.grant(Some(&who), &asked);
    let offline = form.get("access_type").is_some_and(|a| a == "offline");
    respond(&issuer, Some(&who), access, offline)
}

/// The token answer; with `refresh`, a refresh token too, for identities whose source can check
/// them again (those carrying a stamp: htpasswd users), never for one whose credentials expire.
fn respond(
    issuer: &TokenIssuer,
    who: Option<&Identity>,
    access: Vec<Grant>,
    refresh: bool,
) -> Response {
    let remaining = who
        .and_then(|w| w.expires)
        .map(|at| at.duration_since(issuer.clock.now()).unwrap_or_default());
    let lifetime = remaining.map_or(issuer.lifetime, |r| r.min(issuer.lifetime));
    let token = match issuer.sign(who, access, lifetime, false) {
        Ok(t) => t,
        Err(e) => return ApiError::new(ErrorCode::Unknown, e).into_response(),
    };
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime.as_secs(),
    });
    let lasting = who.filter(|w| w.stamp.is_some() && w.expires.is_none());
    if refresh
        && let Some(who) = lasting
        && let Ok(r) = issuer.sign(Some(who), Vec::new(), REFRESH_LIFETIME, true)
    {
        body["refresh_token"] = serde_json::json!(r);
    }
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    res
}

#[cfg(test)]
mod tests;
