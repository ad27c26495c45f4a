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
//!
//! `issuer` holds the token server; this module the claims both sides share and the verifier.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use registry_core::clock::{SharedClock, SystemClock, unix_secs};
use serde::{Deserialize, Serialize};

use crate::auth::access::{
    AccessControl, Action, AuthError, Credentials, Grant, Identity, Resource,
};
use crate::error::Error;

mod issuer;

pub use issuer::{TokenIssuer, token_router};

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
    /// In refresh tokens: the stamp of the user's credentials when it was issued
    /// ([`Identity::stamp`]); the token is refused once the source says they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stamp: Option<String>,
    /// In refresh tokens: the source that vouched for the subject, which checks it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    src: Option<String>,
    /// The subject's groups when the token was issued (the built-in issuer's tokens), for the
    /// rules that decide what listings show.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
}

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Checks of a token's signature, issuer and audience; its times are checked against the
/// verifier's clock by [`Claims::current`] instead of jsonwebtoken's own.
fn validation(alg: Algorithm, issuer: &str, service: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_audience(&[service]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

impl Claims {
    /// Whether the token is within its `nbf` and `exp` at `now` (seconds), with the leeway.
    fn current(&self, now: u64) -> Result<(), String> {
        if self.exp.saturating_add(LEEWAY_SECS) <= now {
            return Err("the token has expired".into());
        }
        if self
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
        {
            return Err("the token is not valid yet".into());
        }
        Ok(())
    }
}

/// The registry side of token authentication.
pub struct TokenAuth {
    realm: String,
    service: String,
    issuer: String,
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    clock: SharedClock,
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
            clock: Arc::new(SystemClock),
        }
    }

    /// The same verifier, checking `exp` and `nbf` against `clock` (tests advance it).
    pub fn with_clock(mut self, clock: SharedClock) -> TokenAuth {
        self.clock = clock;
        self
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

    /// Trusts the public keys of the certificates in a PEM bundle (distribution's
    /// `rootcertbundle`: a token server's signing certificates).
    pub fn with_certificates(mut self, path: &Path) -> Result<TokenAuth, Error> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let invalid = |why: String| Error::TokenKey {
            reason: format!("{}: {why}", path.display()),
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| invalid(format!("not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("no certificate in it".into()));
        }
        for cert in certs {
            let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
                .map_err(|e| invalid(format!("a certificate that does not parse: {e}")))?;
            let spki = parsed.public_key().raw;
            let pem = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(spki)
            );
            let (key, alg) = DecodingKey::from_rsa_pem(pem.as_bytes())
                .map(|k| (k, Algorithm::RS256))
                .or_else(|_| {
                    DecodingKey::from_ec_pem(pem.as_bytes()).map(|k| (k, Algorithm::ES256))
                })
                .or_else(|_| {
                    DecodingKey::from_ed_pem(pem.as_bytes()).map(|k| (k, Algorithm::EdDSA))
                })
                .map_err(|_| invalid("a key that is not RSA, EC P-256 or Ed25519".into()))?;
            self.keys.push((None, key, alg));
        }
        Ok(self)
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
            let v = validation(*alg, &self.issuer, &self.service);
            match jsonwebtoken::decode::<Claims>(token, key, &v) {
                Ok(data) if data.claims.typ.is_none() => {
                    data.claims.current(unix_secs(self.clock.now()))?;
                    return Ok(data.claims);
                }
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
            Resource::Catalog | Resource::Store => Some("registry:catalog:*".into()),
            Resource::Repository(r) => Some(format!("repository:{r}:{}", names.join(","))),
            Resource::Usage(r) => Some(format!("repository:{r}:pull")),
        }
    }
}

/// Whether a token's `grants` cover `actions` on `resource`. The store as a whole is never
/// granted by a token alone (a policy must also say so, see [`crate::auth::gate::Gate`]); a
/// repository's usage needs pull there, from a token with a subject.
pub fn grants_allow(
    grants: &[Grant],
    subject: &str,
    resource: Resource<'_>,
    actions: &[Action],
) -> bool {
    let covers = |repo: &registry_core::RepositoryName, action: Action| {
        grants
            .iter()
            .any(|g| g.kind == "repository" && g.name == repo.as_str() && g.covers(action.as_str()))
    };
    match resource {
        Resource::Base => true,
        Resource::Catalog => grants
            .iter()
            .any(|g| g.kind == "registry" && g.name == "catalog" && g.covers("*")),
        Resource::Store => false,
        Resource::Usage(repo) => !subject.is_empty() && covers(repo, Action::Pull),
        Resource::Repository(repo) => actions.iter().all(|a| covers(repo, *a)),
    }
}

#[async_trait]
impl AccessControl for TokenAuth {
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        match credentials {
            // A client certificate is exchanged for a token at the token endpoint.
            Credentials::Anonymous | Credentials::ClientCertificate { .. } => Ok(None),
            Credentials::Bearer(token) => {
                let claims = self
                    .verify(token)
                    .map_err(|reason| AuthError::InvalidToken { reason })?;
                Ok(Some(Identity {
                    groups: claims.groups,
                    grants: Some(claims.access),
                    ..Identity::from_source(claims.sub, "token")
                }))
            }
            _ => Err(AuthError::Unsupported),
        }
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        match who.and_then(|w| Some((w.grants.as_ref()?, w.name.as_str()))) {
            Some((grants, subject)) => grants_allow(grants, subject, resource, actions),
            None => false,
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
