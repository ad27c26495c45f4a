//! Retention: rules, applied by every garbage collection, that remove tags nobody needs any more.
//!
//! A rule covers repositories by pattern and has clauses, each of which **keeps** tags:
//! `keep_last` the N most recently moved, `keep_tags` those whose name matches a regex,
//! `max_age` those moved more recently than that, `keep_pulled_within` those pulled more recently
//! than that. **A tag is removed only when no clause of any rule covering its repository keeps
//! it**; an immutable tag is never removed; a repository no rule covers keeps every tag. What a
//! removed tag pointed at is then untagged, and collected like anything untagged (with
//! `delete_untagged`, once the tag's history no longer protects it).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use registry_core::lifecycle::TagPattern;
//! use registry_core::lifecycle::retention::{decide, RetentionRule, TagFacts};
//!
//! let rule = RetentionRule {
//!     repositories: vec!["ci/*".into()],
//!     keep_last: Some(1),
//!     keep_tags: vec![TagPattern::new("^v[0-9]").unwrap()],
//!     ..Default::default()
//! };
//! let now = SystemTime::now();
//! let day = Duration::from_secs(86400);
//! let digest = registry_core::Digest::of(b"m");
//! let tag = |name: &str, days: u32| TagFacts {
//!     tag: name.parse().unwrap(),
//!     digest: digest.clone(),
//!     moved: now - day * days,
//!     pulled: None,
//! };
//! let repo = "ci/app".parse().unwrap();
//! let decisions = decide(&[rule], &[], &repo, vec![tag("b2", 1), tag("b1", 2), tag("v1", 3)], now);
//! let removed: Vec<_> = decisions.iter().filter(|d| d.removed()).map(|d| d.tag.as_str()).collect();
//! assert_eq!(removed, ["b1"]);
//! ```

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::digest::Digest;
use crate::reference::{RepositoryName, Tag};

use super::immutable::ImmutableRule;
use super::{TagPattern, any_matches};

/// One retention rule; see the module documentation for how clauses combine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRule {
    /// Repository patterns the rule covers.
    pub repositories: Vec<String>,
    /// Keep the N most recently moved tags of each repository.
    pub keep_last: Option<usize>,
    /// Keep tags whose name matches one of these.
    pub keep_tags: Vec<TagPattern>,
    /// Keep tags moved more recently than this.
    pub max_age: Option<Duration>,
    /// Keep tags pulled more recently than this.
    pub keep_pulled_within: Option<Duration>,
}

impl RetentionRule {
    /// Whether the rule covers the repository `name`.
    pub fn covers(&self, name: &RepositoryName) -> bool {
        any_matches(&self.repositories, name.as_str())
    }

    /// Whether the rule keeps anything at all: a rule without a clause would remove every tag of
    /// its repositories, which is refused as a configuration mistake.
    pub fn has_clause(&self) -> bool {
        self.keep_last.is_some()
            || !self.keep_tags.is_empty()
            || self.max_age.is_some()
            || self.keep_pulled_within.is_some()
    }
}

/// What is known of a tag when retention decides about it.
#[derive(Debug, Clone)]
pub struct TagFacts {
    /// The tag.
    pub tag: Tag,
    /// What it points at.
    pub digest: Digest,
    /// When it last moved.
    pub moved: SystemTime,
    /// When it was last pulled, if recorded.
    pub pulled: Option<SystemTime>,
}

/// The clause that kept a tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "clause", rename_all = "snake_case")]
pub enum Clause {
    /// Among the `keep_last` most recently moved.
    KeepLast {
        /// The clause's N.
        keep_last: usize,
    },
    /// Its name matches a `keep_tags` regex.
    KeepTags {
        /// The regex.
        pattern: String,
    },
    /// Moved within `max_age`.
    MaxAge {
        /// The clause's limit, in days.
        max_age_days: f64,
    },
    /// Pulled within `keep_pulled_within`.
    PulledWithin {
        /// The clause's limit, in days.
        within_days: f64,
        /// Days since the last pull.
        pulled_days_ago: f64,
    },
    /// An immutable tag, which retention never removes.
    Immutable {
        /// The immutable rule (1-based, in configuration order).
        rule: usize,
    },
}

impl std::fmt::Display for Clause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clause::KeepLast { keep_last } => write!(f, "keep_last = {keep_last}"),
            Clause::KeepTags { pattern } => write!(f, "keep_tags {pattern:?}"),
            Clause::MaxAge { max_age_days } => write!(f, "max_age_days = {max_age_days}"),
            Clause::PulledWithin {
                within_days,
                pulled_days_ago,
            } => write!(
                f,
                "keep_pulled_within_days = {within_days} (pulled {pulled_days_ago:.1} days ago)"
            ),
            Clause::Immutable { rule } => write!(f, "immutable rule {rule}"),
        }
    }
}

/// Kept or removed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Kept by `clause` of `rule` (1-based, in configuration order; 0 for an immutable tag).
    Kept {
        /// The retention rule.
        rule: usize,
        /// Its clause that kept the tag.
        clause: Clause,
    },
    /// No clause of the covering `rules` kept it.
    Removed {
        /// The retention rules covering the repository (1-based).
        rules: Vec<usize>,
    },
}

/// What retention decided about one tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The repository.
    pub repository: RepositoryName,
    /// The tag.
    pub tag: Tag,
    /// What it points at.
    pub digest: Digest,
    /// Days since it last moved.
    pub age_days: f64,
    /// Its rank among the repository's tags, most recently moved first (1 is the newest).
    pub rank: usize,
    /// The decision.
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Decision {
    /// Whether the tag goes.
    pub fn removed(&self) -> bool {
        matches!(self.verdict, Verdict::Removed { .. })
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Decision {
            repository,
            tag,
            age_days,
            rank,
            ..
        } = self;
        match &self.verdict {
            Verdict::Kept { rule: 0, clause } => {
                write!(f, "keep {repository}:{tag} ({clause})")
            }
            Verdict::Kept { rule, clause } => write!(
                f,
                "keep {repository}:{tag} (retention rule {rule}: {clause}; moved {age_days:.1} days ago, newest #{rank})"
            ),
            Verdict::Removed { rules } => {
                let rules: Vec<String> = rules.iter().map(usize::to_string).collect();
                write!(
                    f,
                    "untag {repository}:{tag} (retention rule {}: no clause keeps it; moved {age_days:.1} days ago, newest #{rank})",
                    rules.join(", ")
                )
            }
        }
    }
}

fn days(d: Duration) -> f64 {
    (d.as_secs_f64() / 86400.0 * 10.0).round() / 10.0
}

/// Decides about every tag of `repo` under `rules` (immutable tags first): one [`Decision`] per
/// tag, most recently moved first; none when no rule covers the repository.
pub fn decide(
    rules: &[RetentionRule],
    immutable: &[ImmutableRule],
    repo: &RepositoryName,
    mut tags: Vec<TagFacts>,
    now: SystemTime,
) -> Vec<Decision> {
    let covering: Vec<(usize, &RetentionRule)> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.covers(repo))
        .map(|(i, r)| (i + 1, r))
        .collect();
    if covering.is_empty() {
        return Vec::new();
    }
    tags.sort_by(|a, b| b.moved.cmp(&a.moved).then_with(|| a.tag.cmp(&b.tag)));
    let age = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    tags.into_iter()
        .enumerate()
        .map(|(i, facts)| {
            let rank = i + 1;
            let moved_ago = age(facts.moved);
            let kept = immutable
                .iter()
                .position(|r| r.covers(repo, &facts.tag))
                .map(|r| (0, Clause::Immutable { rule: r + 1 }))
                .or_else(|| {
                    covering.iter().find_map(|(n, rule)| {
                        keeping_clause(rule, &facts, rank, moved_ago, now).map(|c| (*n, c))
                    })
                });
            let verdict = match kept {
                Some((rule, clause)) => Verdict::Kept { rule, clause },
                None => Verdict::Removed {
                    rules: covering.iter().map(|(n, _)| *n).collect(),
                },
            };
            Decision {
                repository: repo.clone(),
                tag: facts.tag,
                digest: facts.digest,
                age_days: days(moved_ago),
                rank,
                verdict,
            }
        })
        .collect()
}

/// The first clause of `rule` that keeps the tag, in the order the configuration lists them.
fn keeping_clause(
    rule: &RetentionRule,
    facts: &TagFacts,
    rank: usize,
    moved_ago: Duration,
    now: SystemTime,
) -> Option<Clause> {
    if let Some(n) = rule.keep_last.filter(|n| rank <= *n) {
        return Some(Clause::KeepLast { keep_last: n });
    }
    if let Some(p) = rule
        .keep_tags
        .iter()
        .find(|p| p.matches(facts.tag.as_str()))
    {
        return Some(Clause::KeepTags {
            pattern: p.as_str().to_owned(),
        });
    }
    if let Some(max) = rule.max_age.filter(|max| moved_ago < *max) {
        return Some(Clause::MaxAge {
            max_age_days: days(max),
        });
    }
    let pulled_ago = facts
        .pulled
        .map(|t| now.duration_since(t).unwrap_or_default());
    match (rule.keep_pulled_within, pulled_ago) {
        (Some(within), Some(ago)) if ago < within => Some(Clause::PulledWithin {
            within_days: days(within),
            pulled_days_ago: days(ago),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    fn facts(now: SystemTime, name: &str, moved_days: u32, pulled_days: Option<u32>) -> TagFacts {
        TagFacts {
            tag: name.parse().unwrap(),
            digest: Digest::of(name.as_bytes()),
            moved: now - DAY * moved_days,
            pulled: pulled_days.map(|d| now - DAY * d),
        }
    }

    fn removed(decisions: &[Decision]) -> Vec<&str> {
        let mut v: Vec<&str> = decisions
            .iter()
            .filter(|d| d.removed())
            .map(|d| d.tag.as_str())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_tag_goes_only_when_no_clause_keeps_it() {
        let now = SystemTime::now();
        let rule = RetentionRule {
            repositories: vec!["ci/*".into()],
            keep_last: Some(2),
            keep_tags: vec![TagPattern::new("^v[0-9]").unwrap()],
            max_age: Some(DAY * 30),
            keep_pulled_within: Some(DAY * 7),
        };
        let repo: RepositoryName = "ci/app".parse().unwrap();
        let tags = vec![
            facts(now, "new1", 1, None),
            facts(now, "new2", 2, None),
            facts(now, "young", 10, None),
            facts(now, "v1.0", 100, None),
            facts(now, "pulled", 100, Some(3)),
            facts(now, "stale-pull", 100, Some(20)),
            facts(now, "old", 101, None),
        ];
        let d = decide(&[rule], &[], &repo, tags, now);
        assert_eq!(removed(&d), ["old", "stale-pull"]);
        let clause = |name: &str| {
            d.iter()
                .find(|d| d.tag.as_str() == name)
                .map(|d| d.verdict.clone())
                .unwrap()
        };
        assert_eq!(
            clause("new2"),
            Verdict::Kept {
                rule: 1,
                clause: Clause::KeepLast { keep_last: 2 }
            }
        );
        assert!(matches!(
            clause("young"),
            Verdict::Kept {
                clause: Clause::MaxAge { .. },
                ..
            }
        ));
        assert!(matches!(
            clause("pulled"),
            Verdict::Kept {
                clause: Clause::PulledWithin { .. },
                ..
            }
        ));
        assert_eq!(d.iter().find(|d| d.tag.as_str() == "old").unwrap().rank, 7);
    }

    #[test]
    fn uncovered_repositories_and_immutable_tags_keep_everything() {
        let now = SystemTime::now();
        let rule = RetentionRule {
            repositories: vec!["ci/*".into()],
            keep_last: Some(0),
            ..Default::default()
        };
        let other: RepositoryName = "prod/app".parse().unwrap();
        assert!(
            decide(
                std::slice::from_ref(&rule),
                &[],
                &other,
                vec![facts(now, "a", 9, None)],
                now
            )
            .is_empty()
        );
        let immutable = ImmutableRule {
            repositories: vec!["ci/*".into()],
            tags: vec![TagPattern::new("^release$").unwrap()],
        };
        let repo: RepositoryName = "ci/app".parse().unwrap();
        let d = decide(
            &[rule],
            &[immutable],
            &repo,
            vec![facts(now, "release", 99, None), facts(now, "x", 1, None)],
            now,
        );
        assert_eq!(removed(&d), ["x"]);
    }

    #[test]
    fn several_rules_keep_what_any_of_them_keeps() {
        let now = SystemTime::now();
        let last = RetentionRule {
            repositories: vec!["*".into()],
            keep_last: Some(1),
            ..Default::default()
        };
        let named = RetentionRule {
            repositories: vec!["ci/*".into()],
            keep_tags: vec![TagPattern::new("keep").unwrap()],
            ..Default::default()
        };
        let repo: RepositoryName = "ci/app".parse().unwrap();
        let tags = vec![
            facts(now, "a", 1, None),
            facts(now, "b-keep", 2, None),
            facts(now, "c", 3, None),
        ];
        let d = decide(&[last, named], &[], &repo, tags, now);
        assert_eq!(removed(&d), ["c"]);
        let c = d.iter().find(|d| d.tag.as_str() == "c").unwrap();
        assert_eq!(c.verdict, Verdict::Removed { rules: vec![1, 2] });
        assert!(
            c.to_string()
                .starts_with("untag ci/app:c (retention rule 1, 2")
        );
    }
}
