//! [`LdapUsers`]: users of an LDAP directory. A login searches the user with a service account,
//! reads their groups (for access rules that grant by group), then binds as the user with the
//! password given: the directory decides. A successful login is remembered for a short while under
//! a salted hash of user and password (never the password itself), so that the requests of one
//! push cost one round of LDAP, not one each.
//!
//! URLs may be `ldap://` (optionally upgraded with StartTLS) or `ldaps://`; a CA file replaces the
//! system's roots for the directory's certificate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use quick_cache::sync::Cache;
use sha2::{Digest as _, Sha256};

use crate::auth::access::{
    AccessControl, Action, AuthError, Credentials, Identity, Resource, basic_challenge,
};
use crate::error::Error;

/// Where the directory is and how to find users and groups in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// The service account that searches; `None` searches anonymously.
    pub bind_dn: Option<String>,
    /// Its password.
    pub bind_password: String,
    /// Where users are searched (whole subtree).
    pub user_base: String,
    /// The filter that finds a user; `{username}` is replaced by the escaped user name.
    pub user_filter: String,
    /// The attribute of a user entry holding their name as the directory spells it: logins as
    /// `CAROL` or ` carol` (which directories match to `carol`) are `carol` to access rules, the
    /// throttle and the audit log.
    pub username_attribute: String,
    /// Where groups are searched; `None` reads no groups.
    pub group_base: Option<String>,
    /// The filter that finds a user's groups; `{dn}` is the user's DN, `{username}` their name.
    pub group_filter: String,
    /// The attribute of a group entry that names it for access rules.
    pub group_attribute: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// A PEM file of CA certificates the directory's certificate must chain to (default: the
    /// system's roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// Each LDAP operation, connecting included, fails after this long.
    pub timeout: Duration,
    /// How long a successful login is remembered.
    pub cache_for: Duration,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: "ldap://127.0.0.1:389".into(),
            bind_dn: None,
            bind_password: String::new(),
            user_base: String::new(),
            user_filter: "(uid={username})".into(),
            username_attribute: "uid".into(),
            group_base: None,
            group_filter: "(member={dn})".into(),
            group_attribute: "cn".into(),
            starttls: false,
            ca_file: None,
            timeout: Duration::from_secs(5),
            cache_for: Duration::from_secs(60),
        }
    }
}

/// Users of an LDAP directory (identities of source `ldap`, named as their entry spells it).
/// Alone, every user may do everything, as with an htpasswd file; behind a
/// [`crate::auth::gate::Gate`] access rules decide.
pub struct LdapUsers {
    config: LdapConfig,
    settings: LdapConnSettings,
    realm: String,
    salt: [u8; 16],
    logins: Cache<[u8; 32], (Identity, Instant)>,
    /// Users found (or not) by a search without their password, for [`AccessControl::recheck`].
    present: Cache<String, (bool, Instant)>,
}

/// The source name of directory identities.
const SOURCE: &str = "ldap";

impl std::fmt::Debug for LdapUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapUsers")
            .field("url", &self.config.url)
            .field("user_base", &self.config.user_base)
            .finish_non_exhaustive()
    }
}

/// Why a login failed, before it is told to the router.
enum Failure {
    /// The user is unknown (or ambiguous), or the password is not theirs.
    Refused,
    /// The directory could not be asked.
    Directory(ldap3::LdapError),
}

impl From<ldap3::LdapError> for Failure {
    fn from(e: ldap3::LdapError) -> Failure {
        Failure::Directory(e)
    }
}

impl LdapUsers {
    /// Users of the directory `config` describes, under the Basic realm `realm`. Fails on a CA
    /// file that cannot be read.
    pub fn new(config: LdapConfig, realm: &str) -> Result<LdapUsers, Error> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(config.timeout)
            .set_starttls(config.starttls);
        if let Some(ca) = &config.ca_file {
            settings = settings.set_config(Arc::new(client_tls(ca)?));
        }
        let mut salt = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut salt);
        Ok(LdapUsers {
            config,
            settings,
            realm: realm.to_owned(),
            salt,
            logins: Cache::new(10_000),
            present: Cache::new(10_000),
        })
    }

    fn fingerprint(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// A connection bound as the service account (anonymous without one).
    async fn connect(&self) -> Result<ldap3::Ldap, Failure> {
        let c = &self.config;
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings.clone(), &c.url).await?;
        ldap3::drive!(conn);
        ldap.with_timeout(c.timeout);
        if let Some(dn) = &c.bind_dn {
            ldap.simple_bind(dn, &c.bind_password).await?.success()?;
        }
        Ok(ldap)
    }

    /// The one entry the user filter finds for `user`: its DN and the user's name as the entry
    /// spells it. [`Failure::Refused`] for none, or several (never guess).
    async fn find(&self, ldap: &mut ldap3::Ldap, user: &str) -> Result<(String, String), Failure> {
        let c = &self.config;
        let filter = c.user_filter.replace("{username}", &ldap_escape(user));
        ldap.with_timeout(c.timeout);
        let (entries, _) = ldap
            .search(
                &c.user_base,
                Scope::Subtree,
                &filter,
                vec![c.username_attribute.as_str()],
            )
            .await?
            .success()?;
        let [entry] = entries.as_slice() else {
            return Err(Failure::Refused);
        };
        let mut entry = SearchEntry::construct(entry.clone());
        let name = entry
            .attrs
            .remove(&c.username_attribute)
            .and_then(|values| values.into_iter().next())
            .unwrap_or_else(|| user.trim().to_lowercase());
        // A name with `:` would read as another source's qualified identity.
        if name.is_empty() || name.contains(':') {
            return Err(Failure::Refused);
        }
        Ok((entry.dn, name))
    }

    /// Searches the user, reads their groups, then binds as them.
    async fn login(&self, user: &str, password: &str) -> Result<Identity, Failure> {
        let c = &self.config;
        let mut ldap = self.connect().await?;
        let (dn, name) = self.find(&mut ldap, user).await?;
        let mut groups = Vec::new();
        if let Some(base) = &c.group_base {
            let filter = c
                .group_filter
                .replace("{dn}", &ldap_escape(&dn))
                .replace("{username}", &ldap_escape(&name));
            ldap.with_timeout(c.timeout);
            let (entries, _) = ldap
                .search(
                    base,
                    Scope::Subtree,
                    &filter,
                    vec![c.group_attribute.as_str()],
                )
                .await?
                .success()?;
            for entry in entries {
                let mut attrs = SearchEntry::construct(entry).attrs;
                groups.extend(attrs.remove(&c.group_attribute).unwrap_or_default());
            }
        }
        ldap.with_timeout(c.timeout);
        let bound = ldap.simple_bind(&dn, password).await?;
        let _ = ldap.unbind().await;
        match bound.rc {
            0 => Ok(Identity {
                groups,
                ..Identity::from_source(name, SOURCE)
            }),
            // invalidCredentials
            49 => Err(Failure::Refused),
            _ => Err(Failure::Directory(ldap3::LdapError::LdapResult {
                result: bound,
            })),
        }
    }

    /// Whether the directory still has `name`, searched with the service account at most once
    /// per [`LdapConfig::cache_for`].
    async fn still_present(&self, name: &str) -> Result<bool, Failure> {
        if let Some((present, at)) = self.present.get(name)
            && at.elapsed() < self.config.cache_for
        {
            return Ok(present);
        }
        let mut ldap = self.connect().await?;
        let present = match self.find(&mut ldap, name).await {
            Ok((_, found)) => found == name,
            Err(Failure::Refused) => false,
            Err(e) => return Err(e),
        };
        let _ = ldap.unbind().await;
        self.present
            .insert(name.to_owned(), (present, Instant::now()));
        Ok(present)
    }
}

/// A rustls client configuration trusting the CA certificates of a PEM file.
fn client_tls(ca: &std::path::Path) -> Result<tokio_rustls::rustls::ClientConfig, Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let tls = |reason: String| Error::Tls { reason };
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls(format!("cannot read {}: {e}", ca.display())))?;
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| tls(format!("invalid CA certificate in {}: {e}", ca.display())))?;
    }
    Ok(tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[async_trait]
impl AccessControl for LdapUsers {
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        let (user, password) = match credentials {
            Credentials::Anonymous => return Ok(None),
            Credentials::Basic { user, password } => (user, password),
            Credentials::Malformed => return Err(AuthError::Malformed),
            Credentials::Bearer(_) | Credentials::ClientCertificate { .. } => {
                return Err(AuthError::Unsupported);
            }
        };
        let wrong = || AuthError::WrongCredentials { user: user.clone() };
        // An empty password would be an unauthenticated bind, which directories accept.
        if user.trim().is_empty() || password.is_empty() {
            return Err(wrong());
        }
        let key = self.fingerprint(user, password);
        if let Some((who, at)) = self.logins.get(&key)
            && at.elapsed() < self.config.cache_for
        {
            return Ok(Some(who));
        }
        match self.login(user, password).await {
            Ok(who) => {
                self.logins.insert(key, (who.clone(), Instant::now()));
                Ok(Some(who))
            }
            Err(Failure::Refused) => Err(wrong()),
            Err(Failure::Directory(e)) => Err(AuthError::Unavailable {
                source: Box::new(e),
            }),
        }
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        crate::auth::policy::permits(None, who, resource, actions)
    }

    /// The same user while the directory still has them (searched at most once per
    /// `cache_for`); a password change is not seen (it needs the password), a removal is.
    async fn recheck(&self, who: &Identity) -> Result<Option<Identity>, AuthError> {
        if who.source != SOURCE {
            return Ok(None);
        }
        match self.still_present(&who.name).await {
            Ok(present) => Ok(present.then(|| who.clone())),
            Err(Failure::Refused) => Ok(None),
            Err(Failure::Directory(e)) => Err(AuthError::Unavailable {
                source: Box::new(e),
            }),
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
