//! Immutable tags: a tag a rule names can be created once. Pushing the digest it already points
//! at again succeeds (a retried CI job); moving it to another digest, deleting it, deleting the
//! manifest it points at, or deleting anything that manifest reaches in its repository (an
//! index's children, a layer or config) is refused with `DENIED`, naming the rule. Garbage
//! collection's retention never removes one, and collection keeps what tags reach.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::admission::{Admission, Caller, Change, Refusal};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{RepositoryName, Tag};
use crate::registry::Registry;

use super::TagPattern;
use super::any_matches;
use super::summary::Summaries;

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

/// The admission rule enforcing [`ImmutableRule`]s over a registry's store: besides the tags
/// themselves, it refuses unlinking a blob or deleting a manifest that an immutable tag's manifest
/// reaches in that repository (an index's children, and the config and layers of each), so that
/// an immutable image stays whole.
///
/// ```
/// use std::sync::Arc;
/// use registry_core::lifecycle::{ImmutableRule, ImmutableTags, TagPattern};
/// # fn demo(registry: registry_core::Registry) -> registry_core::Registry {
/// let rules = vec![ImmutableRule {
///     repositories: vec!["prod/*".into()],
///     tags: vec![TagPattern::new("^v[0-9]").unwrap()],
/// }];
/// let immutable = ImmutableTags::new(registry.clone(), rules);
/// registry.with_admission(Arc::new(immutable))
/// # }
/// ```
pub struct ImmutableTags {
    rules: Vec<ImmutableRule>,
    registry: Registry,
    summaries: Summaries,
}

impl std::fmt::Debug for ImmutableTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImmutableTags")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl ImmutableTags {
    /// Enforces `rules`, reading what immutable tags reach from `registry`'s store.
    pub fn new(registry: Registry, rules: Vec<ImmutableRule>) -> ImmutableTags {
        ImmutableTags {
            rules,
            registry,
            summaries: Summaries::new(16 * 1024),
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[ImmutableRule] {
        &self.rules
    }

    /// Whether a rule makes `tag` of `repo` immutable.
    pub fn covers(&self, repo: &RepositoryName, tag: &Tag) -> bool {
        self.rules.iter().any(|r| r.covers(repo, tag))
    }

    /// The first rule making `tag` of `repo` immutable, described for a refusal.
    fn rule_for(&self, repo: &RepositoryName, tag: &Tag) -> Option<String> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.covers(repo, tag))
            .map(|(i, r)| r.describe(i + 1))
    }

    /// The immutable tag of `repo` whose manifest reaches `digest` (itself, an index's child, or
    /// a blob one of those names), with its rule described; `None` when none does. Reads only
    /// the records of immutable tags and the manifests they reach.
    pub async fn reaching(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(Tag, String)>> {
        if !self
            .rules
            .iter()
            .any(|r| any_matches(&r.repositories, repo.as_str()))
        {
            return Ok(None);
        }
        let tags = self
            .registry
            .tags
            .matching(repo, |t| self.covers(repo, t))
            .await?;
        for (tag, record) in tags {
            let mut seen = HashSet::new();
            let mut pending = vec![record.digest];
            while let Some(manifest) = pending.pop() {
                if !seen.insert(manifest.clone()) {
                    continue;
                }
                if manifest == *digest {
                    return Ok(self.rule_for(repo, &tag).map(|rule| (tag, rule)));
                }
                let summary = match self.summaries.get(&self.registry, repo, &manifest).await {
                    Ok(s) => s,
                    Err(Error::ManifestUnknown { .. }) => continue,
                    Err(e) => return Err(e),
                };
                if summary.blobs.iter().any(|(d, _)| d == digest) {
                    return Ok(self.rule_for(repo, &tag).map(|rule| (tag, rule)));
                }
                pending.extend(summary.children.iter().cloned());
            }
        }
        Ok(None)
    }

    /// Refuses removing `digest` (`what` it is) from `repo` when an immutable tag reaches it.
    async fn keep_reached(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        what: &str,
    ) -> Result<(), Refusal> {
        match self.reaching(repo, digest).await {
            Ok(None) => Ok(()),
            Ok(Some((tag, rule))) => Err(Refusal::new(format!(
                "{what} {repo}@{digest} belongs to the immutable tag {tag} ({rule}) and cannot \
                 be deleted"
            ))),
            Err(e) => Err(Refusal::unavailable(format!(
                "the immutable tags of {repo} cannot be read now: {e}"
            ))),
        }
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
                None => self.keep_reached(repository, digest, "manifest").await,
            },
            Change::DeleteBlob { repository, digest } => {
                self.keep_reached(repository, digest, "blob").await
            }
            _ => Ok(()),
        }
    }
}
