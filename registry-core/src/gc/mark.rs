//! Marking what each repository keeps: what its tags, recent history, young manifests and
//! referrers reach.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::reference::{Reference, RepositoryName, Tag};
use crate::registry::Registry;
use crate::storage::StorageExt;
use crate::tags::TagChange;
use crate::walk::Repo;

use super::{GcOptions, KeptManifests, concurrently};

/// Why a manifest is kept (the first reason found, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Tagged,
    History,
    Untagged,
    Young,
    Referrer,
}

impl KeptManifests {
    fn count(&mut self, why: Why) {
        let n = match why {
            Why::Tagged => &mut self.tagged,
            Why::History => &mut self.history,
            Why::Untagged => &mut self.untagged,
            Why::Young => &mut self.young,
            Why::Referrer => &mut self.referrers,
        };
        *n += 1;
    }
}

/// What one repository keeps, and why it keeps its manifests.
#[derive(Debug, Default)]
pub(super) struct Marked {
    pub(super) manifests: HashSet<Digest>,
    pub(super) blobs: HashSet<Digest>,
    pub(super) why: KeptManifests,
}

/// The digests the repository's tag changes of the last [`GcOptions::history`] name.
async fn recent_history(
    registry: &Registry,
    repo: &Repo,
    options: &GcOptions,
) -> Result<Vec<Digest>> {
    let since = registry
        .config()
        .clock
        .now()
        .checked_sub(options.history)
        .unwrap_or(SystemTime::UNIX_EPOCH)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let recent: Vec<String> = repo
        .changes
        .iter()
        .filter(|(nanos, _)| *nanos >= since)
        .map(|(_, key)| key.clone())
        .collect();
    let storage = registry.storage();
    let changes = concurrently(recent, |key| async move {
        match storage.get_opt(&key).await? {
            Some(bytes) => serde_json::from_slice::<TagChange>(&bytes)
                .map(|c| c.from.into_iter().chain(c.to).collect::<Vec<_>>())
                .map_err(|e| Error::storage(format!("corrupt record at {key}: {e}"))),
            None => Ok(Vec::new()),
        }
    })
    .await?;
    Ok(changes.into_iter().flatten().collect())
}

/// When `name` is a cache repository, the time before which its content counts as unused, at
/// `now`.
pub(super) fn expiry(
    options: &GcOptions,
    name: &RepositoryName,
    now: SystemTime,
) -> Option<SystemTime> {
    let cache = options.cache.as_ref().filter(|c| c.covers(name))?;
    Some(
        now.checked_sub(cache.unused_for)
            .unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// Marks what one repository keeps: what its tags (but those in `untagged`) reach, what its
/// recent tag history names, and every manifest pushed within the grace period (or every
/// manifest, unless untagged ones go).
pub(super) async fn mark(
    registry: &Registry,
    name: &RepositoryName,
    repo: &Repo,
    untagged: &HashSet<Tag>,
    options: &GcOptions,
    cutoff: SystemTime,
) -> Result<Marked> {
    let expired = expiry(options, name, registry.config().clock.now());
    let live_tags: Vec<Tag> = repo
        .tags
        .iter()
        .filter(|(tag, modified)| expired.is_none_or(|t| *modified >= t) && !untagged.contains(tag))
        .map(|(tag, _)| tag.clone())
        .collect();
    let tagged = concurrently(live_tags, |tag| async move {
        Ok(registry.tags.get(name, &tag).await?.map(|r| r.digest))
    })
    .await?;
    // The roots, each with why it is kept; a manifest reached from several counts once, for
    // the first reason in this order.
    let mut roots: Vec<(Digest, Why)> = tagged
        .into_iter()
        .flatten()
        .map(|d| (d, Why::Tagged))
        .collect();
    // A cache's content comes back from upstream: its history protects nothing.
    if expired.is_none() {
        let named = recent_history(registry, repo, options).await?;
        roots.extend(named.into_iter().map(|d| (d, Why::History)));
    }
    for (digest, &modified) in &repo.revisions {
        let untagged_stay = !options.delete_untagged && expired.is_none_or(|t| modified >= t);
        if untagged_stay {
            roots.push((digest.clone(), Why::Untagged));
        } else if modified > cutoff {
            roots.push((digest.clone(), Why::Young));
        }
    }
    let mut marked = Marked::default();
    let mut pending = roots;
    while !pending.is_empty() {
        // A tag or index naming a manifest this repository lacks: nothing to keep.
        let batch: Vec<(Digest, Why)> = std::mem::take(&mut pending)
            .into_iter()
            .filter(|(d, _)| repo.revisions.contains_key(d) && marked.manifests.insert(d.clone()))
            .collect();
        for (_, why) in &batch {
            marked.why.count(*why);
        }
        let manifests = concurrently(batch, |(digest, why)| async move {
            let unreadable = |e: Error| {
                Error::storage(format!(
                    "garbage collection stopped before removing any blob: cannot read manifest \
                     {name}@{digest} ({e}); `registry scrub` checks the store"
                ))
            };
            let content = registry
                .get_manifest(name, &Reference::Digest(digest.clone()))
                .await
                .map_err(unreadable)?;
            let manifest = Manifest::parse(&content.bytes, Some(&content.info.media_type))
                .map_err(unreadable)?;
            Ok((digest, why, manifest))
        })
        .await?;
        for (digest, why, manifest) in manifests {
            marked
                .blobs
                .extend(manifest.blob_references().map(|d| d.digest.clone()));
            // An index's children are kept for its reason.
            pending.extend(manifest.manifests.iter().map(|d| (d.digest.clone(), why)));
            if options.keep_referrers
                && let Some(referrers) = repo.referrers.get(&digest)
            {
                pending.extend(referrers.iter().map(|d| (d.clone(), Why::Referrer)));
            }
        }
    }
    Ok(marked)
}
