//! The access control the configuration asks for: none (an open registry), or a [`Gate`] over
//! the configured identity sources (an htpasswd file or a directory, OpenID providers, client
//! certificates), the access rules, and tokens (the built-in issuer's, or an outside server's).
//! The API, `/token`, the UI and the admin API all ask the same gate.

use std::sync::Arc;
use std::time::Duration;

use registry_http::AccessControl;
use registry_http::Htpasswd;
use registry_http::audit::AuditSink;
use registry_http::auth::gate::Gate;
use registry_http::auth::ldap::LdapUsers;
use registry_http::auth::oidc::Oidc;
use registry_http::auth::policy::AccessRules;
use registry_http::auth::throttle::LoginThrottle;
use registry_http::auth::token::{TokenAuth, TokenIssuer, token_router};

use crate::config::Config;

/// What the configuration asks for: the access control (none when open), the token endpoint's
/// routes when this server issues tokens, and the htpasswd users to reload when the file changes.
pub struct Auth {
    /// Checks every registry request.
    pub access: Option<Arc<dyn AccessControl>>,
    /// `/token`, when the built-in issuer runs.
    pub token_routes: Option<axum::Router>,
    /// The users of the htpasswd file, when there is one.
    pub users: Option<Arc<Htpasswd>>,
}

/// What watches logins: the throttle and the audit trail, shared by the API and `/token`.
#[derive(Clone, Default)]
pub struct LoginWatch {
    /// Throttles failed logins.
    pub throttle: Option<Arc<LoginThrottle>>,
    /// Records logins.
    pub audit: Option<Arc<dyn AuditSink>>,
}

/// The rules of the configuration, checked: a group a rule names must be in `[groups]`, or come
/// from the directory (unqualified, with `[ldap]`) or a provider (`NAME:GROUP`).
fn rules(config: &Config) -> Result<Option<AccessRules>, String> {
    if config.access.is_empty() {
        return Ok(None);
    }
    let rules = AccessRules::new(config.access.clone(), config.groups.clone());
    let providers: Vec<String> = config.oidc.iter().map(|o| format!("{}:", o.name)).collect();
    let directory = config.ldap.is_some();
    rules
        .validate_with(|group| match group.split_once(':') {
            None => directory,
            Some(_) => providers.iter().any(|p| group.starts_with(p.as_str())),
        })
        .map_err(|e| e.to_string())?;
    Ok(Some(rules))
}

/// Builds the access control the configuration asks for.
pub fn access_control(
    config: &Config,
    default_realm: &str,
    watch: &LoginWatch,
) -> Result<Auth, String> {
    let rules = rules(config)?;
    // The registry's own users: an htpasswd file (watched for changes) or a directory.
    let mut watched_users = None;
    let users: Option<Arc<dyn AccessControl>> = match (&config.htpasswd, &config.ldap) {
        (Some(_), Some(_)) => {
            return Err("choose one source of users: htpasswd or [ldap]".into());
        }
        (Some(path), None) => {
            if !path.exists() {
                return Err(format!("htpasswd file {} not found", path.display()));
            }
            let users = Arc::new(Htpasswd::load(path, &config.realm).map_err(|e| e.to_string())?);
            watched_users = Some(users.clone());
            Some(users)
        }
        (None, Some(ldap)) => Some(Arc::new(
            LdapUsers::new(ldap.core()?, &config.realm).map_err(|e| e.to_string())?,
        )),
        (None, None) => None,
    };
    // OpenID Connect tokens, beside those users.
    let users: Option<Arc<dyn AccessControl>> = if config.oidc.is_empty() {
        users
    } else {
        let providers = config.oidc.iter().map(|o| o.core()).collect();
        let oidc = Oidc::new(providers, users, &config.realm).map_err(|e| e.to_string())?;
        Some(Arc::new(oidc))
    };
    let certificates = !config.tls.client_ca.is_empty();
    if users.is_none() && !certificates && config.token.is_none() {
        if rules.is_some() {
            return Err(
                "access rules need users: set htpasswd, [ldap], [[oidc]] or tls client_ca".into(),
            );
        }
        return Ok(Auth {
            access: None,
            token_routes: None,
            users: None,
        });
    }
    let mut gate = Gate::new(&config.realm).aliases(config.identities.clone());
    if let Some(users) = users {
        gate = gate.users(users);
    }
    if certificates {
        gate = gate.certificates();
    }
    if let Some(rules) = rules {
        gate = gate.rules(rules);
    }
    let Some(token) = &config.token else {
        return Ok(Auth {
            access: Some(Arc::new(gate)),
            token_routes: None,
            users: watched_users,
        });
    };
    let realm = token
        .realm
        .clone()
        .unwrap_or_else(|| default_realm.to_owned());
    if token.issue {
        if config.htpasswd.is_none()
            && config.ldap.is_none()
            && config.oidc.is_empty()
            && !certificates
        {
            return Err(
                "the token issuer needs users: set htpasswd, [ldap], [[oidc]] or tls client_ca"
                    .into(),
            );
        }
        let key = match &token.key {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => None,
        };
        // The issuer identifies callers and reads the rules through the same gate.
        let issuer = TokenIssuer::new(
            Arc::new(gate.clone()),
            &token.service,
            &token.issuer,
            Duration::from_secs(token.lifetime_secs),
            key.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let issuer = match &watch.throttle {
            Some(t) => issuer.with_throttle(t.clone()),
            None => issuer,
        };
        let issuer = match &watch.audit {
            Some(a) => issuer.with_audit(a.clone()),
            None => issuer,
        };
        let gate = gate.tokens(issuer.verifier(&realm));
        return Ok(Auth {
            access: Some(Arc::new(gate)),
            token_routes: Some(token_router(Arc::new(issuer))),
            users: watched_users,
        });
    }
    let mut auth = TokenAuth::new(&realm, &token.service, &token.issuer);
    if let Some(jwks) = &token.jwks {
        auth = auth.with_jwks_file(jwks).map_err(|e| e.to_string())?;
    }
    if let Some(pem) = &token.public_key {
        auth = auth.with_pem_file(pem).map_err(|e| e.to_string())?;
    }
    if let Some(bundle) = &token.certificates {
        auth = auth.with_certificates(bundle).map_err(|e| e.to_string())?;
    }
    if token.jwks.is_none() && token.public_key.is_none() && token.certificates.is_none() {
        return Err("[token] needs issue = true, jwks, public_key or certificates".into());
    }
    Ok(Auth {
        access: Some(Arc::new(gate.tokens(auth))),
        token_routes: None,
        users: watched_users,
    })
}

/// How often the htpasswd file is read again to see whether it changed.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Reloads the htpasswd users when the file changes (looked at every [`RELOAD_EVERY`]) and on
/// `SIGHUP`; a file that cannot be read or parsed is reported and the users stay as they were.
pub async fn reload_users(users: Arc<Htpasswd>) {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let hangup = async |h: &mut Option<tokio::signal::unix::Signal>| match h {
        Some(h) => {
            h.recv().await;
        }
        None => std::future::pending().await,
    };
    let mut every = tokio::time::interval(RELOAD_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = hangup(&mut hangups) => tracing::info!("SIGHUP: reading the htpasswd file again"),
        }
        match users.reload().await {
            Ok(true) => tracing::info!("htpasswd file changed: users reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!("{e}; the users stay as they were"),
        }
    }
}
