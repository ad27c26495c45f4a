//! Immutable tags: a tag a rule names can be created once. Pushing the digest it already points
//! at again succeeds (a retried CI job); moving it to another digest, deleting it, or deleting the
//! manifest it points at is refused with `DENIED`, naming the rule. Garbage collection's retention
//! never removes one.

use async_trait::async_trait;

use crate::admission::{Admission, Caller, Change, Refusal};
use crate::reference::{RepositoryName, Tag};

use super::any_matches;
use super::retention::TagPattern;

/// Tags matching one of `tags` in repositories matching one of `repositories` are immutable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImmutableRule {
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// Tag regexes (unanchored).
    pub tags: Vec<TagPattern>,
}

impl ImmutableRule {
    /// Whether the rule makes `tag` of `repo` immutable.
    pub fn covers(&self, repo: &RepositoryName, tag: &Tag) -> bool {
        any_matches(&self.repositories, repo.as_str())
            && self.tags.iter().any(|p| p.matches(tag.as_str()))
    }

    fn describe(&self, n: usize) -> String {
        let tags: Vec<&str> = self.tags.iter().map(TagPattern::as_str).collect();
        format!(
            "immutable rule {n}: repositories {}, tags {}",
            self.repositories.join(", "),
            tags.join(", ")
        )
    }
}

/// The admission rule enforcing [`ImmutableRule`]s.
///
/// ```
/// use std::sync::Arc;
/// use registry_core::lifecycle::{ImmutableRule, ImmutableTags, TagPattern};
/// # fn demo(registry: registry_core::Registry) -> registry_core::Registry {
/// let rules = vec![ImmutableRule {
///     repositories: vec!["prod/*".into()],
///     tags: vec![TagPattern::new("^v[0-9]").unwrap()],
/// }];
/// registry.with_admission(Arc::new(ImmutableTags::new(rules)))
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ImmutableTags {
    rules: Vec<ImmutableRule>,
}

impl ImmutableTags {
    /// Enforces `rules`.
    pub fn new(rules: Vec<ImmutableRule>) -> ImmutableTags {
        ImmutableTags { rules }
    }

    /// The rules.
    pub fn rules(&self) -> &[ImmutableRule] {
        &self.rules
    }

    /// The first rule making `tag` of `repo` immutable, described for a refusal.
    fn rule_for(&self, repo: &RepositoryName, tag: &Tag) -> Option<String> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.covers(repo, tag))
            .map(|(i, r)| r.describe(i + 1))
    }
}

#[async_trait]
impl Admission for ImmutableTags {
    async fn admit(&self, change: &Change<'_>, _caller: &Caller) -> Result<(), Refusal> {
        match *change {
            Change::MoveTag {
                repository,
                tag,
                from: Some(from),
                to,
            } if from != to => match self.rule_for(repository, tag) {
                Some(rule) => Err(Refusal::new(format!(
                    "tag {repository}:{tag} is immutable ({rule}): it points at {from} and cannot \
                     move to {to}"
                ))),
                None => Ok(()),
            },
            Change::DeleteTag {
                repository, tag, ..
            } => match self.rule_for(repository, tag) {
                Some(rule) => Err(Refusal::new(format!(
                    "tag {repository}:{tag} is immutable ({rule}) and cannot be deleted"
                ))),
                None => Ok(()),
            },
            Change::DeleteManifest {
                repository,
                digest,
                tags,
            } => match tags
                .iter()
                .find_map(|t| Some((t, self.rule_for(repository, t)?)))
            {
                Some((tag, rule)) => Err(Refusal::new(format!(
                    "manifest {repository}@{digest} is the immutable tag {tag} ({rule}) and \
                     cannot be deleted"
                ))),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}
