//! Who may do what. An embedding service plugs its own identity and policy in by implementing
//! [`AccessControl`]; [`Htpasswd`] is the built-in one: Basic authentication against an htpasswd
//! file of bcrypt entries, every authenticated user allowed everything (as distribution's htpasswd
//! mode), anonymous callers refused.
//!
//! The router asks for access before any handler runs: `pull` for reads, `push` for uploads and
//! manifest puts, `delete` for deletes, catalog access for `/v2/_catalog`, and just an identity for
//! `/v2/`. An unauthenticated caller gets 401 with the challenge, an authenticated one that lacks
//! the right gets 403 `DENIED`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use http::HeaderMap;
use registry_core::RepositoryName;
use sha2::{Digest as _, Sha256};

use crate::policy::AccessRules;

/// Credentials a request carries in its `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    Anonymous,
    /// `Basic` user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A `Bearer` token.
    Bearer(String),
    /// An `Authorization` header that could not be read.
    Malformed,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, <secret>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<secret>)"),
            Credentials::Malformed => f.write_str("Malformed"),
        }
    }
}

impl Credentials {
    /// Reads the `Authorization` header.
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Credentials::Anonymous;
        };
        let Ok(text) = value.to_str() else {
            return Credentials::Malformed;
        };
        let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((user, password)) => Credentials::Basic {
                    user: user.to_owned(),
                    password: password.to_owned(),
                },
                None => Credentials::Malformed,
            }
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            Credentials::Bearer(rest.trim().to_owned())
        } else {
            Credentials::Malformed
        }
    }
}

/// A caller that presented valid credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (empty for the bearer of an anonymous token).
    pub name: String,
    /// Groups the user belongs to, for policies that grant by group.
    pub groups: Vec<String>,
    /// What a bearer token grants, when the identity comes from one.
    pub grants: Option<Vec<crate::token::Grant>>,
}

impl Identity {
    /// A user known by name, without groups or token grants.
    pub fn user(name: impl Into<String>) -> Identity {
        Identity {
            name: name.into(),
            groups: Vec::new(),
            grants: None,
        }
    }
}

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read blobs, manifests, tags, referrers.
    Pull,
    /// Upload blobs, put manifests, mount.
    Push,
    /// Delete blobs, manifests, tags.
    Delete,
}

impl Action {
    /// The action's name in token scopes: `pull`, `push`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// What a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `/v2/`: only an identity is needed.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// One repository.
    Repository(&'a RepositoryName),
}

/// Identity and policy, as an embedding service implements them.
#[async_trait]
pub trait AccessControl: Send + Sync + 'static {
    /// Who the credentials belong to: `Ok(None)` for an anonymous caller, `Err` with a reason (not
    /// sent to the client) for credentials that do not check out.
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, String>;

    /// Whether `who` (`None`: anonymous) may do every one of `actions` on `resource`.
    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool;

    /// How to refuse `who`: `Some(WWW-Authenticate value)` for a 401 that invites the client to
    /// (re)authenticate, `None` for a 403 `DENIED`.
    fn challenge(
        &self,
        who: Option<&Identity>,
        resource: Resource<'_>,
        actions: &[Action],
    ) -> Option<String>;
}

/// How long a verified password is remembered, so that bcrypt runs once per client, not per request.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// How long a failed login waits before it is answered.
const FAILURE_DELAY: Duration = Duration::from_millis(500);

/// Basic authentication against an htpasswd file of bcrypt entries. Without rules every user may
/// do everything and anonymous callers nothing; with [`Htpasswd::with_rules`] the rules decide.
pub struct Htpasswd {
    rules: Option<AccessRules>,
    realm: String,
    users: HashMap<String, String>,
    verified: Mutex<HashMap<(String, [u8; 32]), Instant>>,
    /// A hash of the same cost as the file's, checked for unknown users so that refusing them
    /// takes as long as refusing a wrong password.
    decoy: String,
}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("realm", &self.realm)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Reads an htpasswd file (`user:$2y$…` lines). Entries that are not bcrypt (MD5, SHA-1, crypt,
    /// plain) are refused with the line that holds them.
    pub fn load(path: &Path, realm: &str) -> Result<Htpasswd, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read htpasswd file {}: {e}", path.display()))?;
        Htpasswd::parse(&text, realm).map_err(|e| format!("htpasswd file {}: {e}", path.display()))
    }

    /// Parses htpasswd text.
    pub fn parse(text: &str, realm: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: not user:hash", n + 1))?;
            let bcrypt = ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p));
            if !bcrypt {
                return Err(format!(
                    "line {} ({user}): only bcrypt entries are supported (htpasswd -B)",
                    n + 1
                ));
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        let cost = users
            .values()
            .next()
            .and_then(|h| h.get(4..6))
            .and_then(|c| c.parse().ok())
            .unwrap_or(bcrypt::DEFAULT_COST);
        let decoy = bcrypt::hash(uuid_like(), cost).map_err(|e| format!("bcrypt: {e}"))?;
        Ok(Htpasswd {
            rules: None,
            realm: realm.to_owned(),
            users,
            verified: Mutex::new(HashMap::new()),
            decoy,
        })
    }

    /// Whether a user of this name is in the file.
    pub fn knows(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The same users, with access decided by `rules`.
    pub fn with_rules(mut self, rules: AccessRules) -> Htpasswd {
        self.rules = Some(rules);
        self
    }

    /// What `who` may do on `resource` under the rules (or under the default: users everything).
    pub(crate) fn permits(
        &self,
        who: Option<&Identity>,
        resource: Resource<'_>,
        actions: &[Action],
    ) -> bool {
        let Some(rules) = &self.rules else {
            return who.is_some();
        };
        let (user, groups) = match who {
            Some(w) => (Some(w.name.as_str()), w.groups.as_slice()),
            None => (None, &[][..]),
        };
        match resource {
            Resource::Base => who.is_some() || rules.admits_anonymous(),
            Resource::Catalog => rules.catalog(user, groups),
            Resource::Repository(repo) => {
                let granted = rules.granted(user, groups, repo.as_str());
                actions.iter().all(|a| granted.contains(a))
            }
        }
    }

    fn remembered(&self, user: &str, fingerprint: [u8; 32]) -> bool {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified
            .get(&(user.to_owned(), fingerprint))
            .is_some_and(|at| at.elapsed() < VERIFIED_FOR)
    }

    fn remember(&self, user: &str, fingerprint: [u8; 32]) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        verified.retain(|_, at| at.elapsed() < VERIFIED_FOR);
        verified.insert((user.to_owned(), fingerprint), Instant::now());
    }
}

/// A password nobody knows, for the decoy hash.
fn uuid_like() -> String {
    let seed = format!("{:?}{:?}", Instant::now(), std::thread::current().id());
    hex_string(&Sha256::digest(seed.as_bytes()))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl AccessControl for Htpasswd {
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, String> {
        let (user, password) = match credentials {
            Credentials::Anonymous => return Ok(None),
            Credentials::Basic { user, password } => (user.clone(), password.clone()),
            Credentials::Bearer(_) => return Err("bearer tokens are not accepted".into()),
            Credentials::Malformed => return Err("malformed Authorization header".into()),
        };
        let fingerprint: [u8; 32] = Sha256::digest(format!("{user}\0{password}")).into();
        if self.users.contains_key(&user) && self.remembered(&user, fingerprint) {
            return Ok(Some(Identity::user(user)));
        }
        let hash = self.users.get(&user).cloned();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.clone());
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok && known {
            self.remember(&user, fingerprint);
            Ok(Some(Identity::user(user)))
        } else {
            tokio::time::sleep(FAILURE_DELAY).await;
            Err(format!("wrong user or password for {user:?}"))
        }
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        self.permits(who, resource, actions)
    }

    fn challenge(
        &self,
        who: Option<&Identity>,
        _resource: Resource<'_>,
        _actions: &[Action],
    ) -> Option<String> {
        who.is_none()
            .then(|| format!("Basic realm=\"{}\"", self.realm.replace('"', "")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            http::header::AUTHORIZATION,
            format!("Basic {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn reads_authorization_headers() {
        assert_eq!(
            Credentials::from_headers(&HeaderMap::new()),
            Credentials::Anonymous
        );
        assert_eq!(
            Credentials::from_headers(&basic("u", "p:w")),
            Credentials::Basic {
                user: "u".into(),
                password: "p:w".into()
            }
        );
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(
            Credentials::from_headers(&h),
            Credentials::Bearer("abc".into())
        );
        for bad in ["Basic !!!", "Basic dXNlcg==", "Digest x", "Bearer "] {
            h.insert(http::header::AUTHORIZATION, bad.parse().unwrap());
            assert_eq!(
                Credentials::from_headers(&h),
                Credentials::Malformed,
                "{bad}"
            );
        }
        assert!(
            !format!("{:?}", Credentials::from_headers(&basic("u", "hunter2"))).contains("hunter2")
        );
    }

    #[test]
    fn only_bcrypt_entries_are_accepted() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(Htpasswd::parse(&format!("# users\nalice:{hash}\n"), "r").is_ok());
        for bad in ["bob:$apr1$abc$def", "bob:{SHA}abc=", "bob:plain", "bob"] {
            let err = Htpasswd::parse(bad, "r").unwrap_err();
            assert!(err.contains("line 1"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn checks_passwords() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let h = Htpasswd::parse(&format!("alice:{hash}"), "registry").unwrap();
        let creds = |u: &str, p: &str| Credentials::Basic {
            user: u.into(),
            password: p.into(),
        };
        // The second answer comes from the cache of verified passwords, which must not let a
        // wrong password through afterwards.
        for _ in 0..2 {
            let who = h.identify(&creds("alice", "right")).await.unwrap().unwrap();
            assert_eq!(who.name, "alice");
        }
        assert!(h.identify(&creds("alice", "wrong")).await.is_err());
        assert!(h.identify(&creds("mallory", "right")).await.is_err());
        assert!(h.identify(&Credentials::Bearer("t".into())).await.is_err());
        assert_eq!(h.identify(&Credentials::Anonymous).await.unwrap(), None);
        assert!(!h.allows(None, Resource::Base, &[]));
        assert_eq!(
            h.challenge(None, Resource::Catalog, &[]).unwrap(),
            "Basic realm=\"registry\""
        );
        let alice = Identity::user("alice");
        assert_eq!(h.challenge(Some(&alice), Resource::Catalog, &[]), None);
    }

    #[tokio::test]
    async fn rules_decide_with_users() {
        use crate::policy::{AccessRules, Rule};
        let hash = bcrypt::hash("pw", 4).unwrap();
        let rules = AccessRules::new(
            vec![Rule {
                repositories: vec!["public/*".into()],
                users: vec!["anonymous".into()],
                actions: vec!["pull".into()],
                ..Default::default()
            }],
            HashMap::new(),
        );
        let h = Htpasswd::parse(&format!("alice:{hash}"), "r")
            .unwrap()
            .with_rules(rules);
        let public: RepositoryName = "public/x".parse().unwrap();
        let private: RepositoryName = "alice/x".parse().unwrap();
        assert!(h.allows(None, Resource::Base, &[]));
        assert!(h.allows(None, Resource::Repository(&public), &[Action::Pull]));
        assert!(!h.allows(None, Resource::Repository(&public), &[Action::Push]));
        let alice = Identity::user("alice");
        assert!(
            !h.allows(
                Some(&alice),
                Resource::Repository(&private),
                &[Action::Pull]
            ),
            "a user got what no rule grants"
        );
        assert!(!h.allows(Some(&alice), Resource::Catalog, &[]));
    }
}
