//! Token authentication per the Docker token specification.
//!
//! - [`TokenAuth`] is the registry side: it answers 401 with a `Bearer` challenge naming the realm,
//!   service and scope, and accepts JWTs (RS256, ES256, EdDSA) signed by a token server whose
//!   public keys it holds, checking `iss`, `aud`, `exp` and `nbf` (10 s of leeway) and the
//!   `access` claim.
//! - [`TokenIssuer`] is a built-in token server, so that `login` works with no other service: it
//!   authenticates users against an htpasswd file and grants the intersection of the scopes asked
//!   and what the access rules allow, anonymous callers included (public repositories), signing
//!   ES256 tokens with a key loaded or generated at start. [`token_router`] serves it at `/token`:
//!   `GET` with Basic credentials and repeated `scope`, and the OAuth2 `POST` form with
//!   `grant_type=password` or `refresh_token`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use registry_core::RepositoryName;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::auth::{AccessControl, Action, AuthError, Credentials, Grant, Identity, Resource};
use crate::error::{ApiError, Error, ErrorCode};

/// Longest lifetime a built-in access token may have.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Lifetime of refresh tokens handed out for `access_type=offline`.
const REFRESH_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 10;

/// A token's claims. Per RFC 7519 only `iss`, `aud` and `exp` are required here (the
/// validation checks them); `aud` may be a string or an array.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    #[serde(default)]
    sub: String,
    aud: Audience,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default)]
    access: Vec<Grant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    /// In refresh tokens: the stamp of the user's htpasswd entry when it was issued
    /// ([`AccessControl::stamp`]); the token is refused once the entry changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stamp: Option<String>,
}

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The registry side of token authentication.
pub struct TokenAuth {
    realm: String,
    service: String,
    issuer: String,
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("realm", &self.realm)
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl TokenAuth {
    /// Accepts tokens for `service` from `issuer`; clients are sent to `realm` for them.
    pub fn new(realm: &str, service: &str, issuer: &str) -> TokenAuth {
        TokenAuth {
            realm: realm.to_owned(),
            service: service.to_owned(),
            issuer: issuer.to_owned(),
            keys: Vec::new(),
        }
    }

    /// Trusts a public key (`kid` when the token server names its keys).
    pub fn with_key(
        mut self,
        kid: Option<String>,
        key: DecodingKey,
        algorithm: Algorithm,
    ) -> TokenAuth {
        self.keys.push((kid, key, algorithm));
        self
    }

    /// Trusts the keys of a PEM file (RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA).
    pub fn with_pem_file(self, path: &Path) -> Result<TokenAuth, Error> {
        let pem = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let (key, alg) = DecodingKey::from_rsa_pem(&pem)
            .map(|k| (k, Algorithm::RS256))
            .or_else(|_| DecodingKey::from_ec_pem(&pem).map(|k| (k, Algorithm::ES256)))
            .or_else(|_| DecodingKey::from_ed_pem(&pem).map(|k| (k, Algorithm::EdDSA)))
            .map_err(|_| Error::TokenKey {
                reason: format!(
                    "{}: not an RSA, EC P-256 or Ed25519 public key",
                    path.display()
                ),
            })?;
        Ok(self.with_key(None, key, alg))
    }

    /// Trusts the keys of a JWKS file.
    pub fn with_jwks_file(mut self, path: &Path) -> Result<TokenAuth, Error> {
        let invalid = |why: String| Error::TokenKey {
            reason: format!("{}: {why}", path.display()),
        };
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not a JWKS: {e}")))?;
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?;
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                _ => return Err(invalid("unsupported key type".into())),
            };
            self.keys.push((jwk.common.key_id.clone(), key, alg));
        }
        Ok(self)
    }

    fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("unreadable token: {e}"))?;
        let mut last = "no key matches the token".to_owned();
        for (kid, key, alg) in &self.keys {
            if *alg != header.alg || (kid.is_some() && header.kid.is_some() && *kid != header.kid) {
                continue;
            }
            let mut v = Validation::new(*alg);
            v.leeway = LEEWAY_SECS;
            v.validate_nbf = true;
            v.set_audience(&[&self.service]);
            v.set_issuer(&[&self.issuer]);
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            match jsonwebtoken::decode::<Claims>(token, key, &v) {
                Ok(data) if data.claims.typ.is_none() => return Ok(data.claims),
                Ok(_) => return Err("a refresh token is not an access token".into()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    fn scope(resource: Resource<'_>, actions: &[Action]) -> Option<String> {
        let names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
        match resource {
            Resource::Base => None,
            Resource::Catalog => Some("registry:catalog:*".into()),
            Resource::Repository(r) => Some(format!("repository:{r}:{}", names.join(","))),
        }
    }
}

#[async_trait]
impl AccessControl for TokenAuth {
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        match credentials {
            Credentials::Anonymous => Ok(None),
            Credentials::Bearer(token) => {
                let claims = self
                    .verify(token)
                    .map_err(|reason| AuthError::InvalidToken { reason })?;
                Ok(Some(Identity {
                    name: claims.sub,
                    groups: Vec::new(),
                    grants: Some(claims.access),
                }))
            }
            _ => Err(AuthError::Unsupported),
        }
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        let Some(grants) = who.and_then(|w| w.grants.as_ref()) else {
            return false;
        };
        match resource {
            Resource::Base => true,
            Resource::Catalog => grants
                .iter()
                .any(|g| g.kind == "registry" && g.name == "catalog" && g.covers("*")),
            Resource::Repository(repo) => actions.iter().all(|a| {
                grants.iter().any(|g| {
                    g.kind == "repository" && g.name == repo.as_str() && g.covers(a.as_str())
                })
            }),
        }
    }

    fn challenge(
        &self,
        who: Option<&Identity>,
        resource: Resource<'_>,
        actions: &[Action],
    ) -> Option<String> {
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm, self.service
        );
        if let Some(scope) = Self::scope(resource, actions) {
            c.push_str(&format!(",scope=\"{scope}\""));
        }
        if who.is_some() {
            c.push_str(",error=\"insufficient_scope\"");
        }
        Some(c)
    }
}

/// The built-in token server.
pub struct TokenIssuer {
    users: Arc<dyn AccessControl>,
    service: String,
    issuer: String,
    lifetime: Duration,
    key: EncodingKey,
    kid: String,
    public: DecodingKey,
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
    /// `lifetime` is capped at [`MAX_TOKEN_LIFETIME`]. Refresh tokens carry
    /// [`AccessControl::stamp`] and are issued only for users that have one.
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
        })
    }

    /// The registry side that accepts this issuer's tokens; clients are sent to `realm`.
    pub fn verifier(&self, realm: &str) -> TokenAuth {
        TokenAuth::new(realm, &self.service, &self.issuer).with_key(
            Some(self.kid.clone()),
            self.public.clone(),
            Algorithm::ES256,
        )
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

    fn sign(
        &self,
        sub: &str,
        access: Vec<Grant>,
        lifetime: Duration,
        typ: Option<&str>,
    ) -> Result<String, String> {
        let now = now();
        let refresh = typ == Some("refresh");
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: Audience::One(self.service.clone()),
            exp: now + lifetime.as_secs(),
            nbf: Some(now.saturating_sub(1)),
            iat: Some(now),
            jti: Some(hex_id()),
            access,
            typ: typ.map(str::to_owned),
            stamp: refresh.then(|| self.users.stamp(sub)).flatten(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }

    fn refresh_subject(&self, token: &str) -> Result<String, String> {
        let mut v = Validation::new(Algorithm::ES256);
        v.leeway = LEEWAY_SECS;
        v.set_audience(&[&self.service]);
        v.set_issuer(&[&self.issuer]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.public, &v).map_err(|e| e.to_string())?;
        let current = self.users.stamp(&data.claims.sub);
        match data.claims.typ.as_deref() {
            Some("refresh") if current.is_some() && current == data.claims.stamp => {
                Ok(data.claims.sub)
            }
            _ => Err("not a refresh token of a known user whose password is unchanged".into()),
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
    RawQuery(query): RawQuery,
) -> Response {
    let query = pairs(query.as_deref().unwrap_or(""));
    let who = match crate::auth::credentials(&headers) {
        Credentials::Anonymous => None,
        creds @ Credentials::Basic { .. } => match issuer.users.identify(&creds).await {
            Ok(who) => who,
            Err(_) => return unauthorized(),
        },
        _ => return unauthorized(),
    };
    let asked: Vec<Grant> = query
        .iter()
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, v)| Grant::parse_scope(v))
        .collect();
    let access = issuer.grant(who.as_ref(), &asked);
    let sub = who.as_ref().map(|w| w.name.as_str()).unwrap_or("");
    let offline = query
        .iter()
        .any(|(k, v)| k == "offline_token" && v == "true");
    respond(&issuer, sub, access, offline && who.is_some())
}

/// `POST /token` with `grant_type=password|refresh_token`, the OAuth2 form.
async fn token_post(State(issuer): State<Arc<TokenIssuer>>, body: String) -> Response {
    let form: HashMap<String, String> = pairs(&body).into_iter().collect();
    let sub = match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let creds = Credentials::Basic {
                user: form.get("username").cloned().unwrap_or_default(),
                password: form.get("password").cloned().unwrap_or_default(),
            };
            match issuer.users.identify(&creds).await {
                Ok(Some(who)) => who.name,
                _ => return unauthorized(),
            }
        }
        Some("refresh_token") => {
            match issuer
                .refresh_subject(form.get("refresh_token").map(String::as_str).unwrap_or(""))
            {
                Ok(sub) => sub,
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
    let who = Identity::user(sub.clone());
    let access = issuer.grant(Some(&who), &asked);
    let offline = form.get("access_type").is_some_and(|a| a == "offline");
    respond(&issuer, &sub, access, offline)
}

fn respond(issuer: &TokenIssuer, sub: &str, access: Vec<Grant>, refresh: bool) -> Response {
    let token = match issuer.sign(sub, access, issuer.lifetime, None) {
        Ok(t) => t,
        Err(e) => return ApiError::new(ErrorCode::Unknown, e).into_response(),
    };
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": issuer.lifetime.as_secs(),
    });
    // Only for users whose credentials have a stamp, which the refresh token carries.
    if refresh
        && issuer.users.stamp(sub).is_some()
        && let Ok(r) = issuer.sign(sub, Vec::new(), REFRESH_LIFETIME, Some("refresh"))
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
mod tests {
    use super::*;
    use crate::Htpasswd;
    use crate::policy::{AccessRules, Rule};

    fn issuer() -> TokenIssuer {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let rules = AccessRules::new(
            vec![
                Rule {
                    repositories: vec!["public/*".into()],
                    users: vec!["anonymous".into()],
                    actions: vec!["pull".into()],
                    ..Default::default()
                },
                Rule {
                    repositories: vec!["{user}/*".into()],
                    users: vec!["*".into()],
                    actions: vec!["*".into()],
                    ..Default::default()
                },
            ],
            HashMap::new(),
        );
        let users = Htpasswd::parse(&format!("alice:{hash}"), "registry")
            .unwrap()
            .with_rules(rules);
        TokenIssuer::new(
            Arc::new(users),
            "registry.test",
            "issuer.test",
            Duration::from_secs(300),
            None,
        )
        .unwrap()
    }

    fn scope(s: &str) -> Grant {
        Grant::parse_scope(s).unwrap()
    }

    /// Access-token claims valid for a minute, from `iss` for `aud`.
    fn claims(iss: &str, aud: &str, sub: &str, access: &str) -> Claims {
        Claims {
            iss: iss.into(),
            sub: sub.into(),
            aud: Audience::One(aud.into()),
            exp: now() + 60,
            nbf: Some(now()),
            iat: Some(now()),
            jti: Some("j".into()),
            access: vec![scope(access)],
            typ: None,
            stamp: None,
        }
    }

    /// A verifier for `registry.test` trusting the keys of this JWKS text, issued by `auth.test`.
    fn jwks_verifier(dir: &Path, jwks: &str) -> TokenAuth {
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks).unwrap();
        TokenAuth::new("https://auth.test/token", "registry.test", "auth.test")
            .with_jwks_file(&path)
            .unwrap()
    }

    #[test]
    fn scopes() {
        assert_eq!(scope("repository:a/b:pull,push").actions, ["pull", "push"]);
        assert_eq!(scope("registry:catalog:*").name, "catalog");
        for bad in [
            "repository:A:pull",
            "repository::pull",
            "x:y:z",
            "repository:a",
            "registry:other:*",
        ] {
            assert!(Grant::parse_scope(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn grants_are_the_intersection_of_asked_and_allowed() {
        let i = issuer();
        let alice = Identity::user("alice");
        let asked = [
            scope("repository:alice/app:pull,push"),
            scope("repository:bob/app:pull,push"),
            scope("repository:public/x:pull,push"),
        ];
        let got = i.grant(Some(&alice), &asked);
        assert_eq!(
            got,
            [
                scope("repository:alice/app:pull,push"),
                scope("repository:public/x:pull")
            ]
        );
        let anon = i.grant(None, &asked);
        assert_eq!(anon, [scope("repository:public/x:pull")]);
        assert!(
            i.grant(Some(&alice), &[scope("registry:catalog:*")])
                .is_empty()
        );
    }

    #[tokio::test]
    async fn tokens_are_verified() {
        let i = issuer();
        let auth = i.verifier("https://r.test/token");
        let repo: RepositoryName = "alice/app".parse().unwrap();
        let good = i
            .sign(
                "alice",
                vec![scope("repository:alice/app:pull")],
                Duration::from_secs(60),
                None,
            )
            .unwrap();
        let who = auth.identify(&Credentials::Bearer(good)).await.unwrap();
        assert!(auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Pull]));
        assert!(
            !auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Push]),
            "wrong scope accepted"
        );
        let challenge = auth
            .challenge(who.as_ref(), Resource::Repository(&repo), &[Action::Push])
            .unwrap();
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"repository:alice/app:push\""),
            "{challenge}"
        );

        let mut expired = claims(
            "issuer.test",
            "registry.test",
            "alice",
            "repository:alice/app:pull",
        );
        (expired.exp, expired.nbf, expired.iat) =
            (now() - 120, Some(now() - 300), Some(now() - 300));
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(i.kid.clone());
        let sign = |c: &Claims| jsonwebtoken::encode(&header, c, &i.key).unwrap();
        let refused = |t: String| {
            let auth = &auth;
            async move { auth.identify(&Credentials::Bearer(t)).await.is_err() }
        };
        assert!(refused(sign(&expired)).await, "expired token accepted");
        expired.exp = now() + 60;
        expired.nbf = Some(now() + 120);
        assert!(
            refused(sign(&expired)).await,
            "token not yet valid accepted"
        );
        expired.nbf = Some(now());
        assert!(!refused(sign(&expired)).await, "valid token refused");
        expired.aud = Audience::One("other.service".into());
        assert!(refused(sign(&expired)).await, "wrong audience accepted");
        expired.aud = Audience::Many(vec!["other.service".into()]);
        assert!(refused(sign(&expired)).await, "wrong audiences accepted");
        // RFC 7519: nbf, iat and jti are optional, and aud may be an array.
        (expired.nbf, expired.iat, expired.jti) = (None, None, None);
        expired.aud = Audience::Many(vec!["other.service".into(), "registry.test".into()]);
        assert!(
            !refused(sign(&expired)).await,
            "a token with an audience array and without nbf, iat and jti refused"
        );
        expired.aud = Audience::One("registry.test".into());
        expired.iss = "someone.else".into();
        assert!(refused(sign(&expired)).await, "wrong issuer accepted");
        let forger = issuer();
        let forged = forger
            .sign(
                "alice",
                vec![scope("repository:alice/app:pull")],
                Duration::from_secs(60),
                None,
            )
            .unwrap();
        assert!(refused(forged).await, "forged token accepted");
        let refresh = i
            .sign(
                "alice",
                vec![scope("repository:alice/app:pull")],
                Duration::from_secs(60),
                Some("refresh"),
            )
            .unwrap();
        assert!(
            refused(refresh).await,
            "refresh token accepted as access token"
        );
        assert!(refused("not.a.token".into()).await);
        assert!(
            auth.identify(&Credentials::Basic {
                user: "alice".into(),
                password: "pw".into()
            })
            .await
            .is_err()
        );
        assert_eq!(auth.identify(&Credentials::Anonymous).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refresh_tokens_die_with_the_password_or_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        let entry = |user: &str| format!("{user}:{}\n", bcrypt::hash("pw", 4).unwrap());
        std::fs::write(&file, entry("alice") + &entry("bob")).unwrap();
        let users = Arc::new(Htpasswd::load(&file, "r").unwrap());
        let i =
            TokenIssuer::new(users.clone(), "svc", "iss", Duration::from_secs(60), None).unwrap();
        let refresh = |sub: &str| i.sign(sub, Vec::new(), REFRESH_LIFETIME, Some("refresh"));
        let (alice, bob) = (refresh("alice").unwrap(), refresh("bob").unwrap());
        assert_eq!(i.refresh_subject(&alice).unwrap(), "alice");
        assert_eq!(i.refresh_subject(&bob).unwrap(), "bob");
        // Alice sets the same password again (a new salt), Bob is removed.
        std::fs::write(&file, entry("alice")).unwrap();
        assert!(users.reload().await.unwrap());
        assert!(
            i.refresh_subject(&alice).is_err(),
            "survived a password change"
        );
        assert!(
            i.refresh_subject(&bob).is_err(),
            "survived the user's removal"
        );
        let fresh = refresh("alice").unwrap();
        assert_eq!(i.refresh_subject(&fresh).unwrap(), "alice");
    }

    #[tokio::test]
    async fn outside_tokens_verified_with_a_jwks_file() {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let dir = tempfile::tempdir().unwrap();
        let auth = jwks_verifier(
            dir.path(),
            &format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"k1","alg":"EdDSA"}}]}}"#
            ),
        );
        let claims = claims(
            "auth.test",
            "registry.test",
            "bob",
            "repository:bob/app:pull,push",
        );
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8.as_ref()))
                .unwrap();
        let who = auth.identify(&Credentials::Bearer(token)).await.unwrap();
        let repo: RepositoryName = "bob/app".parse().unwrap();
        assert!(auth.allows(
            who.as_ref(),
            Resource::Repository(&repo),
            &[Action::Pull, Action::Push]
        ));
        assert!(!auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Delete]));
    }

    #[tokio::test]
    async fn a_loaded_key_signs_what_its_pem_public_key_verifies() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let users = Arc::new(Htpasswd::parse("", "r").unwrap());
        let issuer = TokenIssuer::new(
            users,
            "svc",
            "iss",
            Duration::from_secs(60),
            Some(pair.serialize_pem().as_bytes()),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("token.pub.pem");
        std::fs::write(&public, pair.public_key_pem()).unwrap();
        let auth = TokenAuth::new("https://r.test/token", "svc", "iss")
            .with_pem_file(&public)
            .unwrap();
        let token = issuer
            .sign(
                "carol",
                vec![scope("repository:carol/x:pull")],
                Duration::from_secs(60),
                None,
            )
            .unwrap();
        let who = auth
            .identify(&Credentials::Bearer(token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(who.name, "carol");
        assert!(
            TokenIssuer::new(
                Arc::new(Htpasswd::parse("", "r").unwrap()),
                "s",
                "i",
                Duration::from_secs(1),
                Some(b"not a key")
            )
            .is_err()
        );
        assert!(
            TokenAuth::new("r", "s", "i")
                .with_pem_file(&dir.path().join("missing.pem"))
                .is_err()
        );
    }

    #[tokio::test]
    async fn outside_rs256_tokens_verified_with_a_jwks_file() {
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let public = pair.public_key();
        let n = b64.encode(public.modulus().big_endian_without_leading_zero());
        let e = b64.encode(public.exponent().big_endian_without_leading_zero());
        let dir = tempfile::tempdir().unwrap();
        let auth = jwks_verifier(
            dir.path(),
            &format!(
                r#"{{"keys":[{{"kty":"RSA","n":"{n}","e":"{e}","kid":"r1","alg":"RS256"}}]}}"#
            ),
        );
        let claims = claims(
            "auth.test",
            "registry.test",
            "erin",
            "repository:erin/app:pull",
        );
        let signing_input = format!(
            "{}.{}",
            b64.encode(br#"{"alg":"RS256","typ":"JWT","kid":"r1"}"#),
            b64.encode(serde_json::to_vec(&claims).unwrap())
        );
        let mut sig = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let token = format!("{signing_input}.{}", b64.encode(&sig));
        let who = auth
            .identify(&Credentials::Bearer(token.clone()))
            .await
            .unwrap();
        let repo: RepositoryName = "erin/app".parse().unwrap();
        assert!(auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Pull]));
        let mut tampered = token.into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            auth.identify(&Credentials::Bearer(String::from_utf8(tampered).unwrap()))
                .await
                .is_err()
        );
    }
}
