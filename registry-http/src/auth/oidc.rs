//! [`Oidc`]: logins with OpenID Connect tokens. A client sends an ID token (or an access token
//! in JWT form) from a configured provider as its password (`podman login -u oidc -p "$TOKEN"`);
//! the token's signature, issuer, audience, expiry and not-before are checked against the
//! provider's keys, and its claims name the user, their groups, and whatever else access rules
//! template (`{claim:repository}/*`). Other passwords go to the fallback users (an htpasswd file,
//! a directory), so people and CI jobs log in side by side.
//!
//! Keys come from the provider's discovery document (`/.well-known/openid-configuration`, then
//! its `jwks_uri`), fetched at the first login, kept, and fetched again only when a token names a
//! key id they lack (at most once every [`REFRESH_AT_MOST_EVERY`]): never per request. A verified
//! token is remembered until it expires, so each request of a push does not verify it again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use quick_cache::sync::Cache;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::auth::access::{
    AccessControl, Action, AuthError, Credentials, Identity, Resource, basic_challenge,
};
use crate::error::Error;

/// Keys are fetched again for an unknown key id at most this often, per provider.
pub const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// Clock skew tolerated on expiry and not-before, in seconds.
const LEEWAY_SECS: u64 = 30;

/// One provider whose tokens are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    /// What its identities are qualified with: a token whose username claim says `alice` is the
    /// user `NAME:alice`, its groups `NAME:GROUP`, the source `oidc:NAME`. Never empty, no `:`.
    pub name: String,
    /// The issuer URL, exactly as its tokens' `iss` (discovery is fetched under it). `https://`,
    /// or `http://` on a loopback address only.
    pub issuer: String,
    /// The audience tokens must name (`aud`).
    pub audience: String,
    /// The claim whose value is the user name (`sub`, `email`, `preferred_username`, …).
    pub username_claim: String,
    /// The claim listing the user's groups, if any.
    pub groups_claim: Option<String>,
}

/// A provider and its keys.
struct Provider {
    config: OidcProvider,
    keys: tokio::sync::RwLock<HashMap<String, DecodingKey>>,
    /// When the keys were last fetched; held while fetching, so logins fetch once.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

/// Logins with tokens of OpenID Connect providers, beside fallback users; see the module
/// documentation.
pub struct Oidc {
    providers: Vec<Provider>,
    fallback: Option<Arc<dyn AccessControl>>,
    realm: String,
    http: reqwest::Client,
    verified: Cache<[u8; 32], (Identity, SystemTime)>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self
            .providers
            .iter()
            .map(|p| p.config.issuer.as_str())
            .collect();
        f.debug_struct("Oidc")
            .field("issuers", &issuers)
            .finish_non_exhaustive()
    }
}

/// The discovery document, as far as it is read.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// Why a token was refused.
#[derive(Debug)]
enum Refusal {
    /// The token is not valid: the client is told its credentials are wrong.
    Invalid(String),
    /// The provider could not be asked for its keys.
    Unreachable(String),
}

/// Whether `url` may be fetched: HTTPS, or plain HTTP to this machine only.
fn allowed_url(url: &str) -> bool {
    let Ok(parsed) = url.parse::<http::Uri>() else {
        return false;
    };
    match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => matches!(parsed.host(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    }
}

impl Oidc {
    /// Accepts tokens of `providers`; other Basic logins go to `fallback`. Fails on an issuer
    /// that is neither HTTPS nor loopback HTTP, and on names that are empty, hold `:` or are
    /// given twice.
    pub fn new(
        providers: Vec<OidcProvider>,
        fallback: Option<Arc<dyn AccessControl>>,
        realm: &str,
    ) -> Result<Oidc, Error> {
        let mut names = std::collections::HashSet::new();
        for p in &providers {
            if p.name.is_empty() || p.name.contains(':') || !names.insert(p.name.as_str()) {
                return Err(Error::Policy {
                    reason: format!(
                        "OpenID provider name {:?}: give each provider a distinct name without \
                         ':' (its identities are NAME:USER)",
                        p.name
                    ),
                });
            }
            if !allowed_url(&p.issuer) {
                return Err(Error::Policy {
                    reason: format!(
                        "OpenID issuer {:?} must be https:// (http:// only on a loopback address)",
                        p.issuer
                    ),
                });
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Policy {
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Oidc {
            providers: providers
                .into_iter()
                .map(|config| Provider {
                    config,
                    keys: tokio::sync::RwLock::default(),
                    fetched: tokio::sync::Mutex::default(),
                })
                .collect(),
            fallback,
            realm: realm.to_owned(),
            http,
            verified: Cache::new(10_000),
        })
    }

    /// Fetches `provider`'s keys (unless fetched within [`REFRESH_AT_MOST_EVERY`]).
    async fn refresh(&self, provider: &Provider) -> Result<(), Refusal> {
        let mut fetched = provider.fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < REFRESH_AT_MOST_EVERY) {
            return Ok(());
        }
        *fetched = Some(Instant::now());
        let issuer = provider.config.issuer.trim_end_matches('/');
        let unreachable = |e: String| Refusal::Unreachable(format!("{issuer}: {e}"));
        let discovery: Discovery = self
            .fetch_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await
            .map_err(|e| unreachable(format!("discovery document: {e}")))?;
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(unreachable(format!(
                "the discovery document names issuer {:?}",
                discovery.issuer
            )));
        }
        if !allowed_url(&discovery.jwks_uri) {
            return Err(unreachable(format!(
                "jwks_uri {:?} refused",
                discovery.jwks_uri
            )));
        }
        let set: JwkSet = self
            .fetch_json(&discovery.jwks_uri)
            .await
            .map_err(|e| unreachable(format!("key set: {e}")))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect();
        *provider.keys.write().await = keys;
        Ok(())
    }

    /// GETs `url` and reads its JSON body (at most 1 MiB).
    async fn fetch_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let res = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        if res.content_length().is_some_and(|n| n > 1 << 20) {
            return Err("larger than 1 MiB".into());
        }
        let body = res.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    /// Verifies a token of `provider`: its identity, and when it expires.
    async fn verify(
        &self,
        provider: &Provider,
        token: &str,
    ) -> Result<(Identity, SystemTime), Refusal> {
        let invalid = |e: String| Refusal::Invalid(e);
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(invalid(format!("algorithm {:?} refused", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the token names no key id".into()))?;
        if !provider.keys.read().await.contains_key(&kid) {
            self.refresh(provider).await?;
        }
        let keys = provider.keys.read().await;
        let key = keys
            .get(&kid)
            .ok_or_else(|| invalid(format!("unknown key id {kid:?}")))?;
        let c = &provider.config;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[c.issuer.as_str()]);
        validation.set_audience(&[c.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            key,
            &validation,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let name = claims
            .get(&c.username_claim)
            .and_then(serde_json::Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(format!("no {:?} claim to name the user", c.username_claim)))?;
        let qualified = |value: &str| format!("{}:{value}", c.name);
        let groups = match c.groups_claim.as_ref().and_then(|g| claims.get(g)) {
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|g| g.as_str().map(qualified))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![qualified(one)],
            _ => Vec::new(),
        };
        let texts: BTreeMap<String, String> = claims
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        let expires = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .map_or(SystemTime::now(), |exp| {
                UNIX_EPOCH + Duration::from_secs(exp)
            });
        Ok((
            Identity {
                groups,
                claims: texts,
                expires: Some(expires),
                ..Identity::from_source(qualified(name), format!("oidc:{}", c.name))
            },
            expires,
        ))
    }
}

/// The `iss` of a JWT, read without verifying anything; `None` when `text` is no JWT.
fn unverified_issuer(text: &str) -> Option<String> {
    let mut parts = text.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

#[async_trait]
impl AccessControl for Oidc {
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        let fallback = async || match &self.fallback {
            Some(f) => f.identify(credentials).await,
            None => match credentials {
                Credentials::Anonymous => Ok(None),
                Credentials::Basic { user, .. } => {
                    Err(AuthError::WrongCredentials { user: user.clone() })
                }
                _ => Err(AuthError::Unsupported),
            },
        };
        let Credentials::Basic { password, .. } = credentials else {
            return fallback().await;
        };
        let issuer = unverified_issuer(password);
        let provider = issuer.as_deref().and_then(|iss| {
            self.providers
                .iter()
                .find(|p| p.config.issuer.trim_end_matches('/') == iss.trim_end_matches('/'))
        });
        let Some(provider) = provider else {
            return fallback().await;
        };
        let key: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if let Some((who, expires)) = self.verified.get(&key)
            && SystemTime::now() < expires
        {
            return Ok(Some(who));
        }
        match self.verify(provider, password).await {
            Ok((who, expires)) => {
                self.verified.insert(key, (who.clone(), expires));
                Ok(Some(who))
            }
            Err(Refusal::Invalid(reason)) => Err(AuthError::InvalidToken { reason }),
            Err(Refusal::Unreachable(reason)) => Err(AuthError::Unavailable {
                source: reason.into(),
            }),
        }
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        crate::auth::policy::permits(None, who, resource, actions)
    }

    /// A provider's identity stands until its token expires (nothing outlives it); others are
    /// the fallback's to check.
    async fn recheck(&self, who: &Identity) -> Result<Option<Identity>, AuthError> {
        if who.source.starts_with("oidc:") {
            return Ok((!who.expired()).then(|| who.clone()));
        }
        match &self.fallback {
            Some(f) => f.recheck(who).await,
            None => Ok(None),
        }
    }

    fn challenge(
        &self,
        who: Option<&Identity>,
        _resource: Resource<'_>,
        _actions: &[Action],
    ) -> Option<String> {
        basic_challenge(who, &self.realm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::access::looks_like_jwt;

    #[test]
    fn only_https_or_loopback_issuers_are_fetched() {
        assert!(allowed_url("https://id.example.com"));
        assert!(allowed_url("http://127.0.0.1:8080"));
        assert!(allowed_url("http://localhost:8080/realms/x"));
        assert!(!allowed_url("http://id.example.com"));
        assert!(!allowed_url("ftp://id.example.com"));
        assert!(!allowed_url("not a url"));
    }

    #[test]
    fn the_issuer_of_a_jwt_is_read_before_anything_is_verified() {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b(r#"{"alg":"RS256"}"#),
            b(r#"{"iss":"https://id"}"#)
        );
        assert_eq!(unverified_issuer(&jwt).as_deref(), Some("https://id"));
        assert!(looks_like_jwt(&jwt));
        assert_eq!(unverified_issuer("a password"), None);
        assert!(!looks_like_jwt("hunter2"));
    }
}
