//! [`Htpasswd`]: Basic authentication against an htpasswd file of bcrypt entries, reloaded when
//! the file changes, with bcrypt checked on a small pool of threads of its own.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use sha2::{Digest as _, Sha256};

use crate::auth::access::{
    AccessControl, Action, AuthError, Credentials, Identity, Resource, basic_challenge,
};
use crate::error::Error;

/// How long a verified password is remembered, so that bcrypt runs once per client, not per request.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// How long a failed login waits before it is answered.
const FAILURE_DELAY: Duration = Duration::from_millis(500);

/// The users of one version of the file.
struct Users {
    /// Each user's bcrypt hash.
    hashes: HashMap<String, String>,
    /// A hash of the file's most common cost (the highest, on a tie), checked for unknown users so
    /// that refusing them takes as long as refusing a typical user's wrong password.
    decoy: String,
    /// The text they were read from.
    text: String,
}

impl Users {
    /// The users of htpasswd text; `origin` names where it came from, for errors.
    fn parse(text: &str, origin: &Path) -> Result<Users, Error> {
        let invalid = |line: usize, reason| Error::Htpasswd {
            origin: match origin.as_os_str().is_empty() {
                true => String::new(),
                false => format!("{} ", origin.display()),
            },
            line,
            reason,
        };
        let mut hashes = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| invalid(n + 1, "not user:hash"))?;
            let bcrypt = ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p));
            if !bcrypt {
                return Err(invalid(
                    n + 1,
                    "only bcrypt entries are supported (htpasswd -B)",
                ));
            }
            hashes.insert(user.to_owned(), hash.to_owned());
        }
        // bcrypt takes costs 4 to 31; a malformed entry must not leave unknown users without a decoy.
        let cost = decoy_cost(hashes.values()).clamp(4, 31);
        let decoy = bcrypt::hash(random_password(), cost)
            .map_err(|_| invalid(0, "bcrypt cannot hash with the entries' cost"))?;
        Ok(Users {
            hashes,
            decoy,
            text: text.to_owned(),
        })
    }
}

/// The most common bcrypt cost among `hashes` (the highest of the most common), or bcrypt's
/// default for none.
fn decoy_cost<'a>(hashes: impl Iterator<Item = &'a String>) -> u32 {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for cost in hashes.filter_map(|h| h.get(4..6)?.parse().ok()) {
        *counts.entry(cost).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(cost, n)| (n, cost))
        .map_or(bcrypt::DEFAULT_COST, |(cost, _)| cost)
}

/// Basic authentication against an htpasswd file of bcrypt entries. Alone, every user may do
/// everything and anonymous callers nothing; behind a [`crate::auth::gate::Gate`] access rules decide.
/// Its identities have the source `htpasswd`, their plain names, and a stamp of their entry.
///
/// [`Htpasswd::reload`] reads the file again (the server does so when it changes, and on
/// `SIGHUP`): a removed user or changed password takes effect at once, verified passwords
/// remembered before are forgotten, and tokens refreshed for a user carry a stamp of their entry
/// ([`Htpasswd::stamp`]) that no longer matches once it changes.
pub struct Htpasswd {
    realm: String,
    path: Option<PathBuf>,
    users: RwLock<Arc<Users>>,
    verified: Mutex<HashMap<(String, [u8; 32]), Instant>>,
}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("realm", &self.realm)
            .field("path", &self.path)
            .field("users", &self.current().hashes.len())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Reads an htpasswd file (`user:$2y$…` lines). Entries that are not bcrypt (MD5, SHA-1, crypt,
    /// plain) are refused with the line that holds them.
    pub fn load(path: &Path, realm: &str) -> Result<Htpasswd, Error> {
        let users = Users::parse(&read(path)?, path)?;
        Ok(Htpasswd {
            path: Some(path.to_owned()),
            ..Htpasswd::with_users(users, realm)
        })
    }

    /// Parses htpasswd text.
    pub fn parse(text: &str, realm: &str) -> Result<Htpasswd, Error> {
        Ok(Htpasswd::with_users(
            Users::parse(text, Path::new(""))?,
            realm,
        ))
    }

    fn with_users(users: Users, realm: &str) -> Htpasswd {
        Htpasswd {
            realm: realm.to_owned(),
            path: None,
            users: RwLock::new(Arc::new(users)),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the file again if its text changed: `Ok(true)` when the users changed, `Ok(false)`
    /// when nothing did (or the users came from [`Htpasswd::parse`]). A file that cannot be read
    /// or parsed is an error and leaves the users as they were.
    pub async fn reload(&self) -> Result<bool, Error> {
        let Some(path) = self.path.clone() else {
            return Ok(false);
        };
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
        if text == self.current().text {
            return Ok(false);
        }
        let parsed = tokio::task::spawn_blocking(move || Users::parse(&text, &path)).await;
        let users = parsed.map_err(|e| Error::Read {
            path: self.path.clone().unwrap_or_default(),
            source: std::io::Error::other(e),
        })??;
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(true)
    }

    fn current(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a user of this name is in the file.
    pub fn knows(&self, user: &str) -> bool {
        self.current().hashes.contains_key(user)
    }

    /// A short fingerprint of the user's entry, which changes whenever the password is set again
    /// (bcrypt salts every hash): tokens that outlive a login carry it, and are refused once it
    /// no longer matches. `None` for an unknown user.
    pub fn stamp(&self, user: &str) -> Option<String> {
        let users = self.current();
        let hash = users.hashes.get(user)?;
        let digest = Sha256::digest(format!("{user}\0{hash}"));
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..12]))
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

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// A password nobody knows, for the decoy hash.
fn random_password() -> String {
    let mut bytes = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Htpasswd {
    /// The identity of `user`, a known user of the current file.
    fn identity(&self, user: String) -> Identity {
        let stamp = self.stamp(&user);
        Identity {
            stamp,
            ..Identity::from_source(user, SOURCE)
        }
    }
}

/// The source name of htpasswd identities.
const SOURCE: &str = "htpasswd";

#[async_trait]
impl AccessControl for Htpasswd {
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        let (user, password) = match credentials {
            Credentials::Anonymous => return Ok(None),
            Credentials::Basic { user, password } => (user.clone(), password.clone()),
            Credentials::Malformed => return Err(AuthError::Malformed),
            Credentials::Bearer(_) | Credentials::ClientCertificate { .. } => {
                return Err(AuthError::Unsupported);
            }
        };
        let users = self.current();
        let fingerprint: [u8; 32] = Sha256::digest(format!("{user}\0{password}")).into();
        if users.hashes.contains_key(&user) && self.remembered(&user, fingerprint) {
            return Ok(Some(self.identity(user)));
        }
        let hash = users.hashes.get(&user).cloned();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| users.decoy.clone());
        let ok = bcrypt_pool().verify(password, hash).await;
        if ok && known {
            self.remember(&user, fingerprint);
            Ok(Some(self.identity(user)))
        } else {
            tokio::time::sleep(FAILURE_DELAY).await;
            Err(AuthError::WrongCredentials { user })
        }
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        crate::auth::policy::permits(None, who, resource, actions)
    }

    /// The same user while their entry is unchanged (the stamp still matches).
    async fn recheck(&self, who: &Identity) -> Result<Option<Identity>, AuthError> {
        if who.source != SOURCE || who.stamp.is_none() || self.stamp(&who.name) != who.stamp {
            return Ok(None);
        }
        Ok(Some(Identity {
            groups: who.groups.clone(),
            ..self.identity(who.name.clone())
        }))
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

/// A password to check against a bcrypt hash, and where the answer goes.
type Job = (String, String, tokio::sync::oneshot::Sender<bool>);

/// A few threads that only check bcrypt hashes (one per core, at most four): a flood of logins
/// waits in a queue (without holding a thread) instead of taking tokio's blocking threads, which
/// file I/O needs, or running more hashes at once than there are cores.
struct BcryptPool {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

fn bcrypt_pool() -> &'static BcryptPool {
    static POOL: OnceLock<BcryptPool> = OnceLock::new();
    POOL.get_or_init(BcryptPool::start)
}

impl BcryptPool {
    fn start() -> BcryptPool {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let (jobs, queue) = tokio::sync::mpsc::channel::<Job>(1024);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bcrypt-{i}"))
                .spawn(move || {
                    loop {
                        let job = queue
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .blocking_recv();
                        let Some((password, hash, answer)) = job else {
                            return;
                        };
                        let _ = answer.send(bcrypt::verify(password, &hash).unwrap_or(false));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a bcrypt thread: {e}");
            }
        }
        BcryptPool { jobs }
    }

    /// Whether `password` matches `hash`; false when the pool is gone.
    async fn verify(&self, password: String, hash: String) -> bool {
        let (answer, answered) = tokio::sync::oneshot::channel();
        if self.jobs.send((password, hash, answer)).await.is_err() {
            return false;
        }
        answered.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bcrypt_entries_are_accepted() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(Htpasswd::parse(&format!("# users\nalice:{hash}\n"), "r").is_ok());
        for bad in ["bob:$apr1$abc$def", "bob:{SHA}abc=", "bob:plain", "bob"] {
            let err = Htpasswd::parse(bad, "r").err().unwrap().to_string();
            assert!(err.contains("line 1"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_decoy_costs_what_most_entries_cost() {
        let entries =
            ["$2y$05$x", "$2y$12$x", "$2y$05$x", "$2y$12$x", "$2y$12$x"].map(String::from);
        assert_eq!(decoy_cost(entries.iter()), 12);
        let tie = ["$2y$04$x", "$2y$06$x"].map(String::from);
        assert_eq!(decoy_cost(tie.iter()), 6, "a tie takes the higher cost");
        assert_eq!(decoy_cost([].iter()), bcrypt::DEFAULT_COST);
        let users = Users::parse(
            &format!(
                "a:{}\nb:{}\nc:{}",
                bcrypt::hash("x", 4).unwrap(),
                bcrypt::hash("x", 5).unwrap(),
                bcrypt::hash("x", 5).unwrap()
            ),
            Path::new(""),
        )
        .unwrap();
        assert_eq!(&users.decoy[4..6], "05");
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
    async fn a_reload_takes_removed_users_and_new_passwords_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        let entry = |user: &str, pw: &str| format!("{user}:{}\n", bcrypt::hash(pw, 4).unwrap());
        std::fs::write(&file, entry("alice", "old") + &entry("bob", "pw")).unwrap();
        let h = Htpasswd::load(&file, "r").unwrap();
        let creds = |u: &str, p: &str| Credentials::Basic {
            user: u.into(),
            password: p.into(),
        };
        let alice = h.identify(&creds("alice", "old")).await.unwrap().unwrap();
        let bob = h.identify(&creds("bob", "pw")).await.unwrap().unwrap();
        assert_eq!(h.recheck(&alice).await.unwrap(), Some(alice.clone()));
        let stamp = h.stamp("alice").unwrap();
        assert!(!h.reload().await.unwrap(), "nothing changed");
        std::fs::write(&file, entry("alice", "new")).unwrap();
        assert!(h.reload().await.unwrap());
        assert!(
            h.identify(&creds("alice", "old")).await.is_err(),
            "the old password, remembered before the reload, still works"
        );
        assert!(h.identify(&creds("alice", "new")).await.is_ok());
        assert!(h.identify(&creds("bob", "pw")).await.is_err());
        assert_ne!(h.stamp("alice").unwrap(), stamp);
        assert_eq!(h.stamp("bob"), None);
        // Identities vouched for before (a UI session) end with their entry.
        assert_eq!(h.recheck(&alice).await.unwrap(), None, "a changed password");
        assert_eq!(h.recheck(&bob).await.unwrap(), None, "a removed user");
        std::fs::write(&file, "broken").unwrap();
        assert!(h.reload().await.is_err());
        assert!(
            h.identify(&creds("alice", "new")).await.is_ok(),
            "a broken file replaced the users"
        );
    }
}
