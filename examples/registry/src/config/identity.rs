//! The identity tables: `[tls]` (client certificates), `[ldap]`, `[[oidc]]`, `[throttle]` and
//! `[audit]`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[tls]` table: client certificates (the server's own are `tls_cert` and `tls_key`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM files of CA certificates (one, or a list): clients presenting a certificate one of
    /// them signed are identified by it, and go through the access rules like any user.
    #[serde(deserialize_with = "one_or_many")]
    pub client_ca: Vec<PathBuf>,
    /// `optional` (the default: clients without a certificate log in as usual) or `required`
    /// (the TLS handshake of a client without one fails).
    pub client_auth: ClientAuth,
    /// Which name of the certificate is the user: `cn` (the subject's common name, the default)
    /// or `san` (its first subject alternative name: e-mail, DNS name or URI).
    pub client_name: ClientNameConfig,
}

/// One path, or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Paths {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match Paths::deserialize(d)? {
        Paths::One(path) => vec![path],
        Paths::Many(paths) => paths,
    })
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Clients may present one.
    #[default]
    Optional,
    /// Clients must present one.
    Required,
}

/// Which name of a client certificate is the user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientNameConfig {
    /// The subject's common name.
    #[default]
    Cn,
    /// The first subject alternative name.
    San,
}

impl TlsConfig {
    /// What the server's TLS asks of clients, if anything.
    pub fn clients(&self) -> Option<registry_http::ClientCertificates> {
        (!self.client_ca.is_empty()).then(|| registry_http::ClientCertificates {
            ca: self.client_ca.clone(),
            required: self.client_auth == ClientAuth::Required,
        })
    }

    /// Which name identifies a client.
    pub fn name(&self) -> registry_http::ClientName {
        match self.client_name {
            ClientNameConfig::Cn => registry_http::ClientName::CommonName,
            ClientNameConfig::San => registry_http::ClientName::SubjectAltName,
        }
    }
}

/// The `[ldap]` table: users (and their groups) from a directory.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://host:389` (StartTLS with `starttls = true`) or `ldaps://host:636`.
    pub url: String,
    /// The service account that searches; unset searches anonymously.
    pub bind_dn: Option<String>,
    /// A file holding its password (trailing newline ignored).
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched.
    pub user_base: String,
    /// Finds a user; `{username}` is the escaped user name.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// The attribute holding the user's name as the directory spells it (the name access rules,
    /// the throttle and the audit log see).
    #[serde(default = "default_username_attribute")]
    pub username_attribute: String,
    /// Where groups are searched; unset reads no groups.
    pub group_base: Option<String>,
    /// Finds a user's groups; `{dn}` is the user's DN, `{username}` their name.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// The attribute naming a group for access rules.
    #[serde(default = "default_group_attribute")]
    pub group_attribute: String,
    /// Upgrade `ldap://` with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// A PEM CA file for the directory's certificate (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Seconds each LDAP operation may take.
    #[serde(default = "default_ldap_timeout")]
    pub timeout_secs: u64,
    /// Seconds a successful login is remembered (as a salted hash, never the password).
    #[serde(default = "default_ldap_cache")]
    pub cache_secs: u64,
}

fn default_user_filter() -> String {
    registry_http::auth::ldap::LdapConfig::default().user_filter
}

fn default_username_attribute() -> String {
    registry_http::auth::ldap::LdapConfig::default().username_attribute
}

fn default_group_filter() -> String {
    registry_http::auth::ldap::LdapConfig::default().group_filter
}

fn default_group_attribute() -> String {
    registry_http::auth::ldap::LdapConfig::default().group_attribute
}

fn default_ldap_timeout() -> u64 {
    registry_http::auth::ldap::LdapConfig::default()
        .timeout
        .as_secs()
}

fn default_ldap_cache() -> u64 {
    registry_http::auth::ldap::LdapConfig::default()
        .cache_for
        .as_secs()
}

impl LdapSettings {
    /// The library's configuration, with the service password read from its file.
    pub fn core(&self) -> Result<registry_http::auth::ldap::LdapConfig, String> {
        let bind_password = match &self.bind_password_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            None => String::new(),
        };
        Ok(registry_http::auth::ldap::LdapConfig {
            url: self.url.clone(),
            bind_dn: self.bind_dn.clone(),
            bind_password,
            user_base: self.user_base.clone(),
            user_filter: self.user_filter.clone(),
            username_attribute: self.username_attribute.clone(),
            group_base: self.group_base.clone(),
            group_filter: self.group_filter.clone(),
            group_attribute: self.group_attribute.clone(),
            starttls: self.starttls,
            ca_file: self.ca_file.clone(),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            cache_for: Duration::from_secs(self.cache_secs),
        })
    }
}

/// The `[throttle]` table: failed logins per client address and per user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSettings {
    /// Throttle at all (whenever logins are checked).
    pub enabled: bool,
    /// Failures an address or user may have before attempts get 429.
    pub max_failures: u32,
    /// The first refusal interval, in seconds; each further failure doubles it.
    pub initial_lockout_secs: u64,
    /// The longest refusal interval, in seconds.
    pub max_lockout_secs: u64,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        let core = registry_http::auth::throttle::ThrottleConfig::default();
        ThrottleSettings {
            enabled: true,
            max_failures: core.max_failures,
            initial_lockout_secs: core.initial_lockout.as_secs(),
            max_lockout_secs: core.max_lockout.as_secs(),
        }
    }
}

impl ThrottleSettings {
    /// The throttle these settings ask for, if any.
    pub fn build(&self) -> Option<std::sync::Arc<registry_http::auth::throttle::LoginThrottle>> {
        self.enabled.then(|| {
            std::sync::Arc::new(registry_http::auth::throttle::LoginThrottle::new(
                registry_http::auth::throttle::ThrottleConfig {
                    max_failures: self.max_failures.max(1),
                    initial_lockout: Duration::from_secs(self.initial_lockout_secs.max(1)),
                    max_lockout: Duration::from_secs(self.max_lockout_secs.max(1)),
                    ..Default::default()
                },
            ))
        })
    }
}

/// The `[audit]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Append one JSON line per login, write and refusal here; `-` writes to standard output.
    pub path: Option<PathBuf>,
}

/// One `[[oidc]]` table: an OpenID Connect provider whose tokens log users in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// What the provider's identities are qualified with: its user `alice` is `NAME:alice` to
    /// access rules and groups, its group `admins` is `NAME:admins`. Distinct per provider.
    #[serde(default = "default_oidc_name")]
    pub name: String,
    /// The issuer URL, exactly as its tokens name it; its discovery document and keys are
    /// fetched from here (https://, or http:// on a loopback address).
    pub issuer: String,
    /// The audience tokens must name.
    pub audience: String,
    /// The claim naming the user.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim listing the user's groups.
    pub groups_claim: Option<String>,
}

fn default_oidc_name() -> String {
    "oidc".into()
}

fn default_username_claim() -> String {
    "sub".into()
}

impl OidcSettings {
    /// The library's description of the provider.
    pub fn core(&self) -> registry_http::auth::oidc::OidcProvider {
        registry_http::auth::oidc::OidcProvider {
            name: self.name.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            username_claim: self.username_claim.clone(),
            groups_claim: self.groups_claim.clone(),
        }
    }
}
