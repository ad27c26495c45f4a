//! The access control the configuration asks for: none, htpasswd (Basic), the built-in token
//! issuer over the htpasswd users, or an outside token server's keys.

use std::sync::Arc;
use std::time::Duration;

use registry_http::policy::AccessRules;
use registry_http::token::{TokenAuth, TokenIssuer, token_router};
use registry_http::{AccessControl, Htpasswd};

use crate::config::Config;

/// What the configuration asks for: the access control (none when open), and the token
/// endpoint's routes when this server issues tokens.
pub struct Auth {
    /// Checks every registry request.
    pub access: Option<Arc<dyn AccessControl>>,
    /// `/token`, when the built-in issuer runs.
    pub token_routes: Option<axum::Router>,
}

/// Builds the access control the configuration asks for.
pub fn access_control(config: &Config, default_realm: &str) -> Result<Auth, String> {
    let rules = if config.access.is_empty() {
        None
    } else {
        let rules = AccessRules::new(config.access.clone(), config.groups.clone());
        rules.validate()?;
        Some(rules)
    };
    let users = match &config.htpasswd {
        Some(path) => {
            let users = Htpasswd::load(path, "registry")?;
            Some(match rules {
                Some(rules) => users.with_rules(rules),
                None => users,
            })
        }
        None if rules.is_some() => return Err("access rules need users: set htpasswd".into()),
        None => None,
    };
    let Some(token) = &config.token else {
        return Ok(Auth {
            access: users.map(|u| Arc::new(u) as Arc<dyn AccessControl>),
            token_routes: None,
        });
    };
    let realm = token
        .realm
        .clone()
        .unwrap_or_else(|| default_realm.to_owned());
    if token.issue {
        let users = users.ok_or("the token issuer needs users: set htpasswd")?;
        let key = match &token.key {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let issuer = TokenIssuer::new(
            Arc::new(users),
            &token.service,
            &token.issuer,
            Duration::from_secs(token.lifetime_secs),
            key.as_deref(),
        )?;
        let verifier = issuer.verifier(&realm);
        return Ok(Auth {
            access: Some(Arc::new(verifier)),
            token_routes: Some(token_router(Arc::new(issuer))),
        });
    }
    let mut auth = TokenAuth::new(&realm, &token.service, &token.issuer);
    if let Some(jwks) = &token.jwks {
        auth = auth.with_jwks_file(jwks)?;
    }
    if let Some(pem) = &token.public_key {
        auth = auth.with_pem_file(pem)?;
    }
    if token.jwks.is_none() && token.public_key.is_none() {
        return Err("[token] needs issue = true, jwks or public_key".into());
    }
    Ok(Auth {
        access: Some(Arc::new(auth)),
        token_routes: None,
    })
}
