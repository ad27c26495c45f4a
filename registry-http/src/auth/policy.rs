//! Access rules: which users and groups may do which actions on which repositories, and who may
//! list the catalog. Nothing is allowed that no rule grants.
//!
//! ```
//! use registry_http::auth::policy::{AccessRules, Rule};
//! use registry_http::Action;
//! let rules = AccessRules::new(vec![
//!     Rule { repositories: vec!["public/*".into()], users: vec!["anonymous".into()], actions: vec!["pull".into()], ..Default::default() },
//!     Rule { repositories: vec!["{user}/*".into()], users: vec!["*".into()], actions: vec!["*".into()], ..Default::default() },
//! ], Default::default());
//! assert!(rules.granted(None, &[], "public/app").contains(&Action::Pull));
//! assert!(rules.granted(Some("alice"), &[], "alice/app").contains(&Action::Push));
//! assert!(!rules.granted(Some("alice"), &[], "bob/app").contains(&Action::Push));
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use registry_core::access::{Action, Identity, Resource};

/// One rule: everyone it names may do its actions on the repositories it matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    /// Repository patterns: a name, `prefix/*`, `*`, `{user}/*` (the caller's own namespace,
    /// the Docker Hub convention), or `{claim:NAME}/*` (a claim of the caller's OpenID Connect
    /// token, such as the repository a CI job's token names).
    pub repositories: Vec<String>,
    /// User names; `*` is any authenticated user, `anonymous` everyone, with or without credentials.
    pub users: Vec<String>,
    /// Groups (from the groups table) whose members the rule applies to.
    pub groups: Vec<String>,
    /// `pull`, `push`, `delete`, or `*` for all three.
    pub actions: Vec<String>,
    /// The rule also lets its users list the catalog.
    pub catalog: bool,
    /// The rule also lets anonymous callers it applies to read the usage figures of the
    /// repositories it lets them pull (identified callers read those of any repository they may
    /// pull).
    pub usage: bool,
}

/// A set of rules and the groups they name.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    rules: Vec<Rule>,
    groups: HashMap<String, Vec<String>>,
}

/// `pattern` with `{user}` and `{claim:NAME}` replaced by the caller's name and claims; `None`
/// when it names one the caller lacks, or one that is not a single name component (a value with
/// `/`, `..`, `*` or braces could reach into someone else's namespace or widen the pattern).
fn expand<'a>(
    pattern: &'a str,
    user: Option<&str>,
    claims: &BTreeMap<String, String>,
) -> Option<std::borrow::Cow<'a, str>> {
    if !pattern.contains('{') {
        return Some(std::borrow::Cow::Borrowed(pattern));
    }
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}')?;
        let value = match &rest[start + 1..end] {
            "user" => user?,
            name => claims.get(name.strip_prefix("claim:")?)?.as_str(),
        };
        if !one_component(value) {
            return None;
        }
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(std::borrow::Cow::Owned(out))
}

/// Whether `value` is one component of a repository name (`alice`, `team-a`, `ci.app`).
fn one_component(value: &str) -> bool {
    !value.contains('/') && value.parse::<registry_core::RepositoryName>().is_ok()
}

fn matches(
    pattern: &str,
    user: Option<&str>,
    claims: &BTreeMap<String, String>,
    repo: &str,
) -> bool {
    expand(pattern, user, claims)
        .is_some_and(|p| registry_core::lifecycle::repository_matches(&p, repo))
}

impl AccessRules {
    /// Rules, and groups as group name -> member user names.
    pub fn new(rules: Vec<Rule>, groups: HashMap<String, Vec<String>>) -> AccessRules {
        AccessRules { rules, groups }
    }

    /// Checks that every action named is known and every group named is in the groups table;
    /// returns the first problem.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_with(|_| false)
    }

    /// [`AccessRules::validate`]; groups `external` accepts may also come from an identity
    /// source (an LDAP directory's, or a provider's `name:group`), so the groups table need not
    /// list them.
    pub fn validate_with(&self, external: impl Fn(&str) -> bool) -> Result<(), Error> {
        for rule in &self.rules {
            for a in &rule.actions {
                if !matches!(a.as_str(), "pull" | "push" | "delete" | "*") {
                    return Err(Error::Policy {
                        reason: format!("unknown action {a:?} (pull, push, delete, *)"),
                    });
                }
            }
            for g in &rule.groups {
                if !external(g) && !self.groups.contains_key(g) {
                    return Err(Error::Policy {
                        reason: format!(
                            "a rule names group {g:?}, which the groups table lacks and no \
                             identity source provides"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn applies(&self, rule: &Rule, user: Option<&str>, groups: &[String]) -> bool {
        rule.users.iter().any(|u| match (u.as_str(), user) {
            ("anonymous", _) => true,
            ("*", Some(_)) => true,
            (name, Some(user)) => name == user,
            _ => false,
        }) || user.is_some_and(|user| {
            rule.groups.iter().any(|g| {
                groups.contains(g)
                    || self
                        .groups
                        .get(g)
                        .is_some_and(|members| members.iter().any(|m| m == user))
            })
        })
    }

    /// The actions `user` (`None`: anonymous), member of `groups`, may do on `repo`.
    pub fn granted(&self, user: Option<&str>, groups: &[String], repo: &str) -> HashSet<Action> {
        self.grants(user, groups, &BTreeMap::new(), repo)
    }

    /// The actions `who` may do on `repo`, patterns naming their claims included.
    pub fn granted_to(&self, who: Option<&Identity>, repo: &str) -> HashSet<Action> {
        match who {
            Some(w) => self.grants(Some(&w.name), &w.groups, &w.claims, repo),
            None => self.grants(None, &[], &BTreeMap::new(), repo),
        }
    }

    fn grants(
        &self,
        user: Option<&str>,
        groups: &[String],
        claims: &BTreeMap<String, String>,
        repo: &str,
    ) -> HashSet<Action> {
        let mut granted = HashSet::new();
        for rule in &self.rules {
            if self.applies(rule, user, groups)
                && rule
                    .repositories
                    .iter()
                    .any(|p| matches(p, user, claims, repo))
            {
                for a in &rule.actions {
                    match a.as_str() {
                        "pull" => granted.insert(Action::Pull),
                        "push" => granted.insert(Action::Push),
                        "delete" => granted.insert(Action::Delete),
                        "*" => {
                            granted.extend([Action::Pull, Action::Push, Action::Delete]);
                            true
                        }
                        _ => false,
                    };
                }
            }
        }
        granted
    }

    /// Whether some rule applies to callers without credentials.
    pub fn admits_anonymous(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.users.iter().any(|u| u == "anonymous"))
    }

    /// Whether `user` may list the catalog.
    pub fn catalog(&self, user: Option<&str>, groups: &[String]) -> bool {
        self.rules
            .iter()
            .any(|r| r.catalog && self.applies(r, user, groups))
    }

    /// Whether `who` may see the store as a whole: list the catalog and pull every repository
    /// (a rule matching `*` grants them pull).
    pub fn store(&self, who: Option<&Identity>) -> bool {
        let (user, groups) = parts(who);
        self.catalog(user, groups)
            && self.rules.iter().any(|r| {
                self.applies(r, user, groups)
                    && r.repositories.iter().any(|p| p == "*")
                    && r.actions.iter().any(|a| a == "pull" || a == "*")
            })
    }

    /// Whether `who` may read the usage figures of `repo`: pull there, and for an anonymous
    /// caller a rule that says `usage = true`.
    pub fn usage(&self, who: Option<&Identity>, repo: &str) -> bool {
        if who.is_some() {
            return self.granted_to(who, repo).contains(&Action::Pull);
        }
        self.rules.iter().any(|r| {
            r.usage
                && self.applies(r, None, &[])
                && r.actions.iter().any(|a| a == "pull" || a == "*")
                && r.repositories
                    .iter()
                    .any(|p| matches(p, None, &BTreeMap::new(), repo))
        })
    }
}

/// The name and groups of a caller, if any.
fn parts(who: Option<&Identity>) -> (Option<&str>, &[String]) {
    match who {
        Some(w) => (Some(w.name.as_str()), w.groups.as_slice()),
        None => (None, &[]),
    }
}

/// What `who` may do on `resource` under `rules`, or, without rules, what users of a password
/// file may: everything once logged in. `/v2/` needs a login (anonymous callers get the challenge,
/// so that clients send the credentials they have); catalog and repositories follow the rules.
pub fn permits(
    rules: Option<&AccessRules>,
    who: Option<&Identity>,
    resource: Resource<'_>,
    actions: &[Action],
) -> bool {
    let Some(rules) = rules else {
        return who.is_some();
    };
    let (user, groups) = parts(who);
    match resource {
        Resource::Base => who.is_some(),
        Resource::Catalog => rules.catalog(user, groups),
        Resource::Store => rules.store(who),
        Resource::Usage(repo) => rules.usage(who, repo.as_str()),
        Resource::Repository(repo) => {
            let granted = rules.granted_to(who, repo.as_str());
            actions.iter().all(|a| granted.contains(a))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A rule of these repositories, users, groups and actions (for the tests of `auth`).
    pub(crate) fn rule(repos: &[&str], users: &[&str], groups: &[&str], actions: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule {
            repositories: v(repos),
            users: v(users),
            groups: v(groups),
            actions: v(actions),
            ..Default::default()
        }
    }

    #[test]
    fn grants_follow_the_rules() {
        let mut groups = HashMap::new();
        groups.insert("team".to_owned(), vec!["carol".to_owned()]);
        let rules = AccessRules::new(
            vec![
                rule(&["library/*"], &["anonymous"], &[], &["pull"]),
                rule(&["{user}/*"], &["*"], &[], &["*"]),
                rule(&["team/*"], &[], &["team"], &["pull", "push"]),
                rule(&["exact"], &["dave"], &[], &["delete"]),
            ],
            groups,
        );
        rules.validate().unwrap();
        let g = |u: Option<&str>, r: &str| {
            let mut v: Vec<&str> = rules
                .granted(u, &[], r)
                .into_iter()
                .map(|a| a.as_str())
                .collect();
            v.sort();
            v
        };
        assert_eq!(g(None, "library/alpine"), ["pull"]);
        assert!(g(None, "alice/app").is_empty());
        assert!(g(None, "libraryx").is_empty());
        assert_eq!(g(Some("alice"), "alice/app"), ["delete", "pull", "push"]);
        assert!(g(Some("alice"), "bob/app").is_empty());
        assert!(g(Some("alice"), "alice").is_empty());
        assert_eq!(g(Some("carol"), "team/x"), ["pull", "push"]);
        assert_eq!(g(Some("dave"), "exact"), ["delete"]);
        assert!(g(Some("dave"), "exact/sub").is_empty());
        assert_eq!(g(Some("bob"), "library/alpine"), ["pull"]);
        assert!(!rules.catalog(Some("alice"), &[]));
    }

    #[test]
    fn claims_in_patterns_grant_what_the_token_names() {
        let rules = AccessRules::new(
            vec![rule(
                &["team/{claim:repository}/*"],
                &["*"],
                &[],
                &["push", "pull"],
            )],
            HashMap::new(),
        );
        let mut job = Identity::user("ci");
        job.claims.insert("repository".into(), "proj".into());
        assert!(
            rules
                .granted_to(Some(&job), "team/proj/app")
                .contains(&Action::Push)
        );
        assert!(rules.granted_to(Some(&job), "team/other/app").is_empty());
        assert!(rules.granted_to(Some(&job), "team/proj").is_empty());
        // A caller without the claim, or whose claim would widen the pattern, gets nothing.
        assert!(
            rules
                .granted_to(Some(&Identity::user("ci")), "team/proj/app")
                .is_empty()
        );
        job.claims.insert("repository".into(), "*".into());
        assert!(rules.granted_to(Some(&job), "team/anything/x").is_empty());
        job.claims.insert("repository".into(), "{user}".into());
        assert!(rules.granted_to(Some(&job), "team/ci/x").is_empty());
        // A value of several components, or `..`, would reach into another namespace.
        for bad in ["team/proj", "..", "team/../x", "Team", "a b"] {
            job.claims.insert("repository".into(), bad.into());
            assert!(
                rules.granted_to(Some(&job), "team/proj/app").is_empty(),
                "{bad}"
            );
        }
        let own = AccessRules::new(
            vec![rule(&["{user}/*"], &["*"], &[], &["*"])],
            HashMap::new(),
        );
        assert!(
            own.granted(Some("bob/evil"), &[], "bob/evil/app")
                .is_empty()
        );
        assert!(
            own.granted(Some("bob"), &[], "bob/evil/app")
                .contains(&Action::Push)
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(
            AccessRules::new(vec![rule(&["*"], &["*"], &[], &["write"])], HashMap::new())
                .validate()
                .is_err()
        );
        assert!(
            AccessRules::new(
                vec![rule(&["*"], &[], &["ghosts"], &["pull"])],
                HashMap::new()
            )
            .validate()
            .is_err()
        );
    }
}
