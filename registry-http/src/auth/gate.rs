//! [`Gate`]: the access control a server assembles from its identity sources, a token verifier
//! and access rules, so that the API (Basic and Bearer), `/token`, the web UI and the admin API
//! take the same credentials and answer the same way.
//!
//! - Passwords (and OpenID Connect tokens sent as passwords) go to the users: an htpasswd file or
//!   a directory, with OpenID providers beside them ([`crate::auth::oidc::Oidc`]).
//! - A verified TLS client certificate is the identity `cert:NAME`.
//! - A bearer token goes to the verifier; what it grants is all it may do (the built-in issuer
//!   granted it from the rules).
//! - Everything else is decided by the rules (without rules: every identified user everything).
//! - `[identities]` aliases map a qualified name onto another (`gitlab:alice` → `alice`).
//!
//! ```
//! use std::sync::Arc;
//! use registry_http::auth::gate::Gate;
//! use registry_http::auth::policy::{AccessRules, Rule};
//! use registry_http::{AccessControl, Htpasswd, Resource};
//! let users = Htpasswd::parse("", "registry").unwrap();
//! let rules = AccessRules::new(
//!     vec![Rule { repositories: vec!["library/*".into()], users: vec!["anonymous".into()],
//!                 actions: vec!["pull".into()], ..Default::default() }],
//!     Default::default(),
//! );
//! let gate = Gate::new("registry").users(Arc::new(users)).rules(rules);
//! let repo = "library/alpine".parse().unwrap();
//! assert!(gate.allows(None, Resource::Repository(&repo), &[registry_http::Action::Pull]));
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::auth::access::{AccessControl, Action, AuthError, Credentials, Identity, Resource};
use crate::auth::policy::{AccessRules, permits};
use crate::auth::token::{TokenAuth, grants_allow};

/// The source name, and the prefix, of client certificate identities.
const CERTIFICATE: &str = "certificate";

/// Identity sources, a token verifier and rules behind one [`AccessControl`]; see the module
/// documentation.
#[derive(Clone)]
pub struct Gate {
    realm: String,
    users: Option<Arc<dyn AccessControl>>,
    certificates: bool,
    tokens: Option<Arc<TokenAuth>>,
    rules: Option<AccessRules>,
    aliases: Arc<HashMap<String, String>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("realm", &self.realm)
            .field("users", &self.users.is_some())
            .field("certificates", &self.certificates)
            .field("tokens", &self.tokens)
            .field("rules", &self.rules.is_some())
            .field("aliases", &self.aliases.len())
            .finish()
    }
}

impl Gate {
    /// A gate that knows nobody yet; `realm` names the Basic challenge.
    pub fn new(realm: &str) -> Gate {
        Gate {
            realm: realm.replace('"', ""),
            users: None,
            certificates: false,
            tokens: None,
            rules: None,
            aliases: Arc::default(),
        }
    }

    /// Passwords (and provider tokens sent as passwords) are checked by `users`.
    pub fn users(mut self, users: Arc<dyn AccessControl>) -> Gate {
        self.users = Some(users);
        self
    }

    /// Verified TLS client certificates identify their clients, as `cert:NAME`.
    pub fn certificates(mut self) -> Gate {
        self.certificates = true;
        self
    }

    /// Bearer tokens are checked by `tokens`, and challenges send clients to its realm.
    pub fn tokens(mut self, tokens: TokenAuth) -> Gate {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// Access is decided by `rules` (without them, every identified user may do everything).
    pub fn rules(mut self, rules: AccessRules) -> Gate {
        self.rules = Some(rules);
        self
    }

    /// Identities named as a key are known by its value (`gitlab:alice` → `alice`): the only
    /// way two sources' identities become one.
    pub fn aliases(mut self, aliases: HashMap<String, String>) -> Gate {
        self.aliases = Arc::new(aliases);
        self
    }

    fn alias(&self, mut who: Identity) -> Identity {
        if let Some(name) = self.aliases.get(&who.name) {
            who.name = name.clone();
        }
        who
    }

    /// What the rules say of a token's subject, for what a token alone never grants (the store
    /// as a whole): the identity the issuer vouched for, with the groups it recorded.
    fn subject_of_token(who: &Identity) -> Option<Identity> {
        (!who.name.is_empty()).then(|| Identity {
            grants: None,
            ..who.clone()
        })
    }
}

#[async_trait]
impl AccessControl for Gate {
    async fn identify(&self, credentials: &Credentials) -> Result<Option<Identity>, AuthError> {
        let who = match credentials {
            Credentials::Anonymous => return Ok(None),
            Credentials::Bearer(_) => match &self.tokens {
                Some(tokens) => tokens.identify(credentials).await?,
                None => return Err(AuthError::Unsupported),
            },
            Credentials::ClientCertificate { name } => match self.certificates {
                true => Some(Identity::from_source(format!("cert:{name}"), CERTIFICATE)),
                false => None,
            },
            Credentials::Basic { .. } | Credentials::Malformed => match &self.users {
                Some(users) => users.identify(credentials).await?,
                None => return Err(AuthError::Unsupported),
            },
        };
        Ok(who.map(|w| self.alias(w)))
    }

    fn allows(&self, who: Option<&Identity>, resource: Resource<'_>, actions: &[Action]) -> bool {
        let Some(grants) = who.and_then(|w| w.grants.as_ref()) else {
            return permits(self.rules.as_ref(), who, resource, actions);
        };
        let subject = who.map(|w| w.name.as_str()).unwrap_or_default();
        match resource {
            Resource::Store => {
                grants_allow(grants, subject, Resource::Catalog, actions)
                    && self.rules.as_ref().is_some_and(|rules| {
                        rules.store(who.and_then(Gate::subject_of_token).as_ref())
                    })
            }
            _ => grants_allow(grants, subject, resource, actions),
        }
    }

    fn challenge(
        &self,
        who: Option<&Identity>,
        resource: Resource<'_>,
        actions: &[Action],
    ) -> Option<String> {
        match &self.tokens {
            // Anonymous callers and token holders are sent for a token; a caller identified by
            // a password or a certificate that lacks the right is refused outright.
            Some(tokens) if who.is_none_or(|w| w.grants.is_some()) => {
                tokens.challenge(who, resource, actions)
            }
            _ => who
                .is_none()
                .then(|| format!("Basic realm=\"{}\"", self.realm)),
        }
    }

    async fn recheck(&self, who: &Identity) -> Result<Option<Identity>, AuthError> {
        if who.source == CERTIFICATE {
            return Ok(Some(who.clone()));
        }
        match &self.users {
            Some(users) => Ok(users.recheck(who).await?.map(|w| self.alias(w))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::auth::htpasswd::Htpasswd;
    use crate::auth::policy::Rule;
    use crate::auth::policy::tests::rule;
    use registry_core::RepositoryName;

    fn gate() -> Gate {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let users = Htpasswd::parse(&format!("alice:{hash}"), "r").unwrap();
        let mut groups = HashMap::new();
        groups.insert("admins".to_owned(), vec!["alice".to_owned()]);
        let rules = AccessRules::new(
            vec![
                rule(&["public/*"], &["anonymous"], &[], &["pull"]),
                rule(&["{user}/*"], &["*"], &[], &["*"]),
                Rule {
                    catalog: true,
                    ..rule(&["*"], &[], &["admins"], &["*"])
                },
            ],
            groups,
        );
        Gate::new("r")
            .users(Arc::new(users))
            .certificates()
            .rules(rules)
    }

    #[tokio::test]
    async fn sources_are_qualified_and_rules_decide() {
        let gate = gate();
        let public: RepositoryName = "public/x".parse().unwrap();
        let own: RepositoryName = "alice/x".parse().unwrap();
        // Challenged at `/v2/` (or clients never send the credentials they have), yet pulling.
        assert!(!gate.allows(None, Resource::Base, &[]));
        assert!(gate.challenge(None, Resource::Base, &[]).is_some());
        assert!(gate.allows(None, Resource::Repository(&public), &[Action::Pull]));
        assert!(!gate.allows(None, Resource::Repository(&public), &[Action::Push]));
        let alice = gate
            .identify(&Credentials::Basic {
                user: "alice".into(),
                password: "pw".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (alice.name.as_str(), alice.source.as_str()),
            ("alice", "htpasswd")
        );
        assert!(gate.allows(Some(&alice), Resource::Store, &[]));
        // A certificate naming alice is not alice: not her namespace, not her group.
        let cert = gate
            .identify(&Credentials::ClientCertificate {
                name: "alice".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cert.name, "cert:alice");
        assert!(!gate.allows(Some(&cert), Resource::Repository(&own), &[Action::Pull]));
        assert!(!gate.allows(Some(&cert), Resource::Catalog, &[]));
        assert_eq!(gate.challenge(Some(&cert), Resource::Catalog, &[]), None);
        // Unless the configuration says it is.
        let aliased = gate.clone().aliases(HashMap::from([(
            "cert:alice".to_owned(),
            "alice".to_owned(),
        )]));
        let cert = aliased
            .identify(&Credentials::ClientCertificate {
                name: "alice".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert!(aliased.allows(Some(&cert), Resource::Repository(&own), &[Action::Pull]));
    }

    #[tokio::test]
    async fn usage_needs_an_identity_or_an_explicit_rule() {
        let gate = gate();
        let public: RepositoryName = "public/x".parse().unwrap();
        assert!(!gate.allows(None, Resource::Usage(&public), &[]));
        let rules = AccessRules::new(
            vec![Rule {
                usage: true,
                ..rule(&["public/*"], &["anonymous"], &[], &["pull"])
            }],
            HashMap::new(),
        );
        let open = gate.rules(rules);
        assert!(open.allows(None, Resource::Usage(&public), &[]));
        let other: RepositoryName = "other/x".parse().unwrap();
        assert!(!open.allows(None, Resource::Usage(&other), &[]));
    }
}
