//! Usage: what takes the space. Per repository, the bytes its manifests name (themselves
//! included), those no other repository names (exclusive) and the rest (shared); per tag, the
//! bytes it reaches and those deleting it would free; for the store, the bytes held once and the
//! deduplication ratio.
//!
//! "Would free" counts what only that tag's manifests name: bytes any other manifest stored
//! anywhere names (another tag's, an untagged one's, another repository's) stay. Sizes are those
//! of the stored objects (pushes are refused when a descriptor declares another); manifests and
//! the sizes of the blobs they name are read, so memory grows with the number of digests, never
//! with blob sizes, and blobs no manifest names (garbage, uploads in progress)
//! are left to `registry gc --dry-run`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

pub use crate::accounting::{
    RepositoryUsage, STORE_REPORT_FRESH_FOR, StoreUsage, TagUsage, UsageReport,
};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{RepositoryName, Tag};
use crate::registry::Registry;
use crate::walk::{Repo, list_repositories};

use super::summary::{Summary, summarize};

/// Manifests read at once.
const CONCURRENCY: usize = 16;

/// The report over the whole store (every repository and the totals), computed at most once per
/// [`STORE_REPORT_FRESH_FOR`] and by one caller at a time: what a server answers with, so that
/// a flood of requests reads the store once.
pub async fn store_usage(registry: &Registry) -> Result<Arc<UsageReport>> {
    let mut cached = registry.reports.store.lock().await;
    if let Some((at, report)) = cached.as_ref()
        && at.elapsed() < STORE_REPORT_FRESH_FOR
    {
        return Ok(report.clone());
    }
    let report = Arc::new(usage(registry, None).await?);
    *cached = Some((Instant::now(), report.clone()));
    Ok(report)
}

/// One repository's usage, reading that repository only (its manifests, tags and the sizes of
/// the blobs they name): the bytes it references and what each tag reaches. What it shares
/// with others (and so what deleting a tag frees) needs the whole store, and is left out.
/// [`Error::NameUnknown`] when it holds no manifest.
pub async fn repository_usage(
    registry: &Registry,
    repo: &RepositoryName,
) -> Result<RepositoryUsage> {
    let _turn = registry
        .reports
        .repositories
        .acquire()
        .await
        .map_err(|_| Error::storage("usage reports are shut down"))?;
    let revisions: Vec<Digest> = registry
        .storage()
        .list_all(&crate::paths::revisions(repo))
        .try_filter_map(|meta| async move {
            Ok(match crate::paths::parse_repository_key(&meta.key) {
                Some((_, crate::paths::RepositoryEntry::Revision(d))) => Some(d),
                _ => None,
            })
        })
        .try_collect()
        .await?;
    if revisions.is_empty() {
        return Err(Error::NameUnknown {
            name: repo.to_string(),
        });
    }
    let summaries: HashMap<Digest, Arc<Summary>> = futures::stream::iter(revisions.clone())
        .map(|digest| async move {
            match summarize(registry, repo, &digest).await {
                Ok(s) => Ok(Some((digest, Arc::new(s)))),
                Err(Error::ManifestUnknown { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    let mut named: HashMap<&Digest, u64> = HashMap::new();
    for (digest, summary) in &summaries {
        named.extend(names(digest, summary));
    }
    let mut tags: Vec<TagUsage> = registry
        .tags
        .all(repo)
        .await?
        .into_iter()
        .map(|(tag, record)| {
            let mut bytes: HashMap<&Digest, u64> = HashMap::new();
            for m in reachable(&record.digest, |_| true, &summaries) {
                bytes.extend(names(m, &summaries[m]));
            }
            TagUsage {
                tag,
                digest: record.digest.clone(),
                bytes: bytes.values().sum(),
                frees_bytes: None,
            }
        })
        .collect();
    tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    Ok(RepositoryUsage {
        name: repo.clone(),
        manifests: summaries.len() as u64,
        referenced_bytes: named.values().sum(),
        exclusive_bytes: None,
        shared_bytes: None,
        tags,
    })
}

/// Measures the store (every repository, or only `only`, whose exclusive bytes are still reckoned
/// against every other repository); see the module documentation.
pub async fn usage(registry: &Registry, only: Option<&RepositoryName>) -> Result<UsageReport> {
    let repos = list_repositories(registry.storage().as_ref()).await?;
    let summaries = summaries(registry, &repos).await?;
    let naming = Naming::count(&repos, &summaries);
    let tagged = tag_records(registry, &repos, only).await?;
    let mut report = UsageReport {
        repositories: Vec::new(),
        store: None,
    };
    for (name, repo) in &repos {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let named = &naming.named_by[name];
        let sum = |pick: &dyn Fn(&Digest) -> bool| -> u64 {
            named
                .iter()
                .filter(|d| pick(d))
                .map(|d| naming.sizes[*d])
                .sum()
        };
        let referenced_bytes = sum(&|_| true);
        let exclusive_bytes = sum(&|d| naming.repos_naming[d] == 1);
        let tagged = tagged.get(name).map(Vec::as_slice).unwrap_or_default();
        report.repositories.push(RepositoryUsage {
            name: name.clone(),
            manifests: repo.revisions.len() as u64,
            referenced_bytes,
            exclusive_bytes: Some(exclusive_bytes),
            shared_bytes: Some(referenced_bytes - exclusive_bytes),
            tags: tag_usages(tagged, repo, &summaries, &naming),
        });
    }
    if only.is_none() {
        report.store = Some(naming.totals(&report.repositories));
    }
    Ok(report)
}

/// Every stored manifest's summary, each read once from one repository holding it.
async fn summaries(
    registry: &Registry,
    repos: &BTreeMap<RepositoryName, Repo>,
) -> Result<HashMap<Digest, Arc<Summary>>> {
    let mut holder: HashMap<&Digest, &RepositoryName> = HashMap::new();
    for (name, repo) in repos {
        for digest in repo.revisions.keys() {
            holder.entry(digest).or_insert(name);
        }
    }
    let holder: Vec<(Digest, RepositoryName)> = holder
        .into_iter()
        .map(|(d, r)| (d.clone(), r.clone()))
        .collect();
    futures::stream::iter(holder)
        .map(|(digest, repo)| async move {
            match summarize(registry, &repo, &digest).await {
                Ok(s) => Ok(Some((digest, Arc::new(s)))),
                // Deleted since the listing.
                Err(Error::ManifestUnknown { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await
}

/// Who names each digest: what sharing and "would free" are reckoned from.
struct Naming<'a> {
    /// Every named digest's size.
    sizes: HashMap<&'a Digest, u64>,
    /// Repositories naming each digest.
    repos_naming: HashMap<&'a Digest, u32>,
    /// (repository, manifest) pairs naming each digest.
    pairs_naming: HashMap<&'a Digest, u32>,
    /// The digests each repository names.
    named_by: BTreeMap<&'a RepositoryName, HashSet<&'a Digest>>,
}

impl<'a> Naming<'a> {
    fn count(
        repos: &'a BTreeMap<RepositoryName, Repo>,
        summaries: &'a HashMap<Digest, Arc<Summary>>,
    ) -> Naming<'a> {
        let mut naming = Naming {
            sizes: HashMap::new(),
            repos_naming: HashMap::new(),
            pairs_naming: HashMap::new(),
            named_by: BTreeMap::new(),
        };
        for (name, repo) in repos {
            let named = naming.named_by.entry(name).or_default();
            for digest in repo.revisions.keys() {
                let Some(summary) = summaries.get(digest) else {
                    continue;
                };
                for (d, size) in names(digest, summary) {
                    naming.sizes.insert(d, size);
                    *naming.pairs_naming.entry(d).or_default() += 1;
                    if named.insert(d) {
                        *naming.repos_naming.entry(d).or_default() += 1;
                    }
                }
            }
        }
        naming
    }

    /// The store's totals, given every repository's usage.
    fn totals(&self, repositories: &[RepositoryUsage]) -> StoreUsage {
        let stored_bytes: u64 = self.sizes.values().sum();
        let logical_bytes: u64 = repositories.iter().map(|r| r.referenced_bytes).sum();
        StoreUsage {
            repositories: self.named_by.values().filter(|n| !n.is_empty()).count() as u64,
            digests: self.sizes.len() as u64,
            stored_bytes,
            logical_bytes,
            dedup_ratio: if stored_bytes == 0 {
                1.0
            } else {
                logical_bytes as f64 / stored_bytes as f64
            },
        }
    }
}

/// The tags of every repository asked about, with the manifest each points at.
async fn tag_records(
    registry: &Registry,
    repos: &BTreeMap<RepositoryName, Repo>,
    only: Option<&RepositoryName>,
) -> Result<HashMap<RepositoryName, Vec<(Tag, Digest)>>> {
    let asked: Vec<(RepositoryName, Tag)> = repos
        .iter()
        .filter(|(name, _)| only.is_none_or(|o| o == *name))
        .flat_map(|(name, repo)| repo.tags.iter().map(|(tag, _)| (name.clone(), tag.clone())))
        .collect();
    let records: Vec<_> = futures::stream::iter(asked)
        .map(|(name, tag)| async move {
            let record = registry.tags.get(&name, &tag).await?;
            Ok::<_, Error>(record.map(|r| (name, tag, r.digest)))
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut tagged: HashMap<RepositoryName, Vec<(Tag, Digest)>> = HashMap::new();
    for (name, tag, digest) in records.into_iter().flatten() {
        tagged.entry(name).or_default().push((tag, digest));
    }
    Ok(tagged)
}

/// What each of a repository's tags reaches, and what deleting it would free: the bytes only
/// manifests no other tag reaches name, and that no other manifest anywhere names.
fn tag_usages(
    tagged: &[(Tag, Digest)],
    repo: &Repo,
    summaries: &HashMap<Digest, Arc<Summary>>,
    naming: &Naming<'_>,
) -> Vec<TagUsage> {
    let reach: Vec<HashSet<&Digest>> = tagged
        .iter()
        .map(|(_, d)| reachable(d, |m| repo.revisions.contains_key(m), summaries))
        .collect();
    let mut tags_reaching: HashMap<&Digest, u32> = HashMap::new();
    for manifests in &reach {
        for m in manifests {
            *tags_reaching.entry(m).or_default() += 1;
        }
    }
    let mut tags = Vec::new();
    for ((tag, digest), manifests) in tagged.iter().zip(&reach) {
        let mut bytes = HashMap::new();
        let mut own: HashMap<&Digest, u32> = HashMap::new();
        for m in manifests {
            for (d, size) in names(m, &summaries[*m]) {
                bytes.insert(d, size);
                if tags_reaching[m] == 1 {
                    *own.entry(d).or_default() += 1;
                }
            }
        }
        let frees_bytes = own
            .iter()
            .filter(|(d, n)| naming.pairs_naming.get(*d) == Some(*n))
            .map(|(d, _)| naming.sizes[*d])
            .sum();
        tags.push(TagUsage {
            tag: tag.clone(),
            digest: digest.clone(),
            bytes: bytes.values().sum(),
            frees_bytes: Some(frees_bytes),
        });
    }
    tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    tags
}

/// The digests a manifest names, itself first, with their sizes.
fn names<'a>(
    digest: &'a Digest,
    summary: &'a Summary,
) -> impl Iterator<Item = (&'a Digest, u64)> + 'a {
    std::iter::once((digest, summary.size)).chain(summary.blobs.iter().map(|(d, s)| (d, *s)))
}

/// The manifests of a repository that `from` reaches: itself and, for an index, its children
/// the repository holds (`held` says which).
fn reachable<'a>(
    from: &'a Digest,
    held: impl Fn(&Digest) -> bool,
    summaries: &'a HashMap<Digest, Arc<Summary>>,
) -> HashSet<&'a Digest> {
    let mut seen = HashSet::new();
    let mut pending = vec![from];
    while let Some(d) = pending.pop() {
        if !held(d) || !summaries.contains_key(d) || !seen.insert(d) {
            continue;
        }
        pending.extend(summaries[d].children.iter());
    }
    seen
}
