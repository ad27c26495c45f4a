//! Quotas: a byte limit on a group of repositories. A manifest push that would take the group past
//! its limit, counting what the manifest names that no manifest of the group names yet, is refused
//! with `DENIED` ("quota exceeded: X of Y used…"); a push that adds nothing new always passes.
//!
//! Usage is read from the store at each manifest push: the group's repositories (from the
//! catalog), their manifests (one listing each), and what each manifest names (read once per
//! digest, then kept in memory). A blob counts once per group however many of its repositories
//! name it. In one process, manifest pushes that an admission rule checks are made one at a time
//! ([`crate::Registry::with_admission`]), so the limit holds exactly. Replicas sharing a bucket
//! each read the store: two pushes landing on two replicas at the same instant can both pass, so
//! a group may overshoot by what pushes racing at that instant add, never more.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::TryStreamExt;

use crate::admission::{Admission, Caller, Change, Refusal};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::paths;
use crate::reference::RepositoryName;
use crate::registry::Registry;

use super::summary::Summaries;
use super::{any_matches, human_bytes, number};

/// Repositories matching one of `repositories` may hold at most `max_bytes` together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRule {
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// The limit, in bytes: manifests and the blobs they name, each counted once.
    pub max_bytes: u64,
    /// The unit the limit was written in (`KB`) and its size in bytes, so that refusals speak
    /// it; sizes are shown as `1.5 KiB` without one.
    pub unit: Option<(String, u64)>,
}

impl QuotaRule {
    /// `bytes` in the rule's unit (`150 KB`), else for people (`146.5 KiB`).
    pub fn shown(&self, bytes: u64) -> String {
        match &self.unit {
            Some((suffix, scale)) => format!("{} {suffix}", number(bytes as f64 / *scale as f64)),
            None => human_bytes(bytes),
        }
    }

    /// Whether the rule covers the repository `name`.
    pub fn covers(&self, name: &RepositoryName) -> bool {
        any_matches(&self.repositories, name.as_str())
    }
}

/// The admission rule enforcing [`QuotaRule`]s over a registry's store.
pub struct Quotas {
    rules: Vec<QuotaRule>,
    registry: Registry,
    summaries: Summaries,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl Quotas {
    /// Enforces `rules`, reading usage from `registry`'s store.
    pub fn new(registry: Registry, rules: Vec<QuotaRule>) -> Quotas {
        Quotas {
            rules,
            registry,
            summaries: Summaries::new(64 * 1024),
        }
    }

    /// The rules, in configuration order.
    pub fn rules(&self) -> &[QuotaRule] {
        &self.rules
    }

    /// Bytes the repositories of rule `rule` (0-based) hold now.
    pub async fn used(&self, rule: usize) -> Result<u64> {
        match self.rules.get(rule) {
            Some(r) => Ok(self.group(r, None).await?.values().sum()),
            None => Ok(0),
        }
    }

    /// Every digest the group's manifests name (themselves included), with its size; `also` is
    /// counted in the group even before the catalog lists it.
    async fn group(
        &self,
        rule: &QuotaRule,
        also: Option<&RepositoryName>,
    ) -> Result<HashMap<Digest, u64>> {
        let mut repos: Vec<RepositoryName> = self
            .registry
            .catalog
            .page(None, None)
            .await?
            .items
            .into_iter()
            .filter_map(|n| n.parse::<RepositoryName>().ok())
            .filter(|n| rule.covers(n))
            .collect();
        if let Some(also) = also.filter(|a| !repos.contains(a)) {
            repos.push(also.clone());
        }
        let mut named = HashMap::new();
        let storage = self.registry.storage();
        for repo in &repos {
            let links: Vec<_> = storage
                .list_all(&paths::revisions(repo))
                .try_collect()
                .await?;
            for meta in links {
                let Some((_, paths::RepositoryEntry::Revision(digest))) =
                    paths::parse_repository_key(&meta.key)
                else {
                    continue;
                };
                if named.contains_key(&digest) {
                    continue;
                }
                let summary = match self.summaries.get(&self.registry, repo, &digest).await {
                    Ok(s) => s,
                    // Deleted since the listing.
                    Err(Error::ManifestUnknown { .. }) => continue,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                named.insert(digest, summary.size);
                named.extend(summary.blobs.iter().cloned());
            }
        }
        Ok(named)
    }
}

#[async_trait]
impl Admission for Quotas {
    /// Each rule covering the repository: pushes into one group are counted one at a time.
    fn serial_groups(&self, repository: &RepositoryName) -> Vec<String> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.covers(repository))
            .map(|(i, _)| format!("quota {i}"))
            .collect()
    }

    async fn admit(&self, change: &Change<'_>, _caller: &Caller) -> Result<(), Refusal> {
        let Change::PutManifest {
            repository,
            digest,
            manifest,
            size,
            ..
        } = *change
        else {
            return Ok(());
        };
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.covers(repository) {
                continue;
            }
            let named = self.group(rule, Some(repository)).await.map_err(|e| {
                Refusal::unavailable(format!("the quota cannot be checked now: {e}"))
            })?;
            let mut adds: HashMap<&Digest, u64> = HashMap::new();
            if !named.contains_key(digest) {
                adds.insert(digest, size);
            }
            for blob in manifest.blob_references() {
                if !named.contains_key(&blob.digest) {
                    adds.insert(&blob.digest, blob.size);
                }
            }
            let adds: u64 = adds.values().sum();
            let used: u64 = named.values().sum();
            if adds > 0 && used.saturating_add(adds) > rule.max_bytes {
                return Err(Refusal::new(format!(
                    "quota exceeded: {} of {} used, and this push adds {} (quota rule {}: {})",
                    rule.shown(used),
                    rule.shown(rule.max_bytes),
                    rule.shown(adds),
                    i + 1,
                    rule.repositories.join(", ")
                )));
            }
        }
        Ok(())
    }
}
