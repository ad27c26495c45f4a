//! Garbage collection: removes what no tag reaches, and abandoned uploads, while pushes go on.
//!
//! [`collect`] is incremental (`incremental`): it reads the candidate records the writes left
//! (`candidates`) and marks and sweeps only the repositories and blobs they name, each as
//! the full collection below does. The full one (mark and sweep of the whole store) runs with
//! [`GcOptions::full`], on a store without the records, and under settings other than the last
//! full collection's ([`GcOptions::settings`]).
//!
//! [`collect`] marks, in every repository, the manifests its tags reach, the children of reachable
//! indexes and (optionally) the referrers of reachable manifests, then the blobs they name. It
//! then removes, in an order that never leaves a link to missing bytes:
//!
//! 1. cached tags and manifests unused past [`GcOptions::cache`]'s retention, and untagged
//!    manifests nothing reaches (only with [`GcOptions::delete_untagged`]);
//! 2. layer links to blobs no kept manifest of the repository names;
//! 3. blobs no repository links any more, with their location record and `used` marker;
//! 4. bytes of streamed uploads that nothing points at (`data/<id>`), and stale upload tails;
//! 5. uploads idle for longer than [`GcOptions::upload_max_age`] (aborting their multipart
//!    uploads on object stores);
//!
//! and then reconciles the catalog with the repositories left holding a manifest.
//!
//! **Safe during pushes.** Nothing younger than [`GcOptions::grace`] is removed: a blob whose
//! bytes, any link or its `used` marker ([`crate::paths::blob_used`]) changed within the grace
//! period is kept with all its links, and so is a manifest pushed within it, with everything it
//! reaches. Ages are the storage's modification times against this host's clock, so the grace
//! must also exceed any skew between the two. A push that reuses a stored blob marks it used (on
//! `HEAD`, mount, and manifest `PUT`, at most once per
//! [`crate::RegistryConfig::touch_interval`]); the grace period must therefore exceed the touch
//! interval plus the longest push (the default hour against ten minutes leaves room).
//!
//! **No acknowledged push loses a blob to a race.** Removing a blob (or a layer link, or a
//! manifest's revision) is announced first: the
//! collection writes `blobs/…/collecting-<id>` ([`crate::paths::blob_collecting`], one per removal), reads the
//! blob's objects and in-use mark again (kept, announcement withdrawn, if a push marked it), then
//! removes the bytes and, last, the announcement. A manifest `PUT` marks each blob it names, then
//! looks for an announcement younger than five minutes, then for the bytes in storage (never in
//! a cache), in that order: a collection that read the mark keeps the blob, and one that read it
//! before has announced the removal, or finished it, before the push looks, so the push is
//! refused (`MANIFEST_BLOB_UNKNOWN`: upload again) instead of acknowledged over bytes about to
//! go. A manifest's own bytes are written, then checked the same way; a removal announced
//! meanwhile fails the push with [`crate::Error::BeingCollected`] (503: push again). A
//! collection that stops between announcing and removing leaves an announcement that pushes
//! ignore after five minutes and the next collection removes: no collection may pause that long
//! in between. The deterministic simulation (`registry-storage/tests/simulation.rs`) checks this
//! with replicas interleaved at every storage call.
//!
//! Repositories are marked and swept a few at a time, each on its own marks (so only their union,
//! for the blobs, is held), and removals run 16 storage requests at a time. If a manifest that
//! must be kept cannot be read, collection stops with an error before removing any blob or
//! anything of that repository; repositories swept already (each on its own marks) stay swept.
//!
//! - `report`: what a collection is asked ([`GcOptions`]) and what it reports ([`GcReport`]).
//! - `incremental`: the collection from the candidate records.
//! - `mark`: what each repository keeps (the store itself is read by `crate::walk`).
//! - `collection`: the removing steps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::digest::Digest;
use crate::error::Result;
use crate::lifecycle::Decision;
use crate::lifecycle::retention::{TagFacts, decide};
use crate::paths;
use crate::reference::{RepositoryName, Tag};
use crate::registry::Registry;
use crate::storage::StorageExt;

mod collection;
mod incremental;
mod mark;
mod report;

use crate::walk::{Repo, StoredBlob, list_blobs, list_repositories};
use collection::Collection;
use mark::{expiry, mark};
pub use report::{CacheRetention, GcOptions, GcReport, KeptManifests, Removal};

/// Runs one collection over the registry's storage: incremental, from the candidate records,
/// unless [`GcOptions::full`] asks for a walk of the whole store or the store does not keep the
/// records yet; see the module documentation.
pub async fn collect(registry: &Registry, options: &GcOptions) -> Result<GcReport> {
    let storage = registry.storage();
    let settings = Bytes::from(options.settings().to_string());
    if !options.full
        && registry.index.records(&**storage).await?
        && storage.get_opt(paths::COLLECTION_SETTINGS).await?.as_ref() == Some(&settings)
    {
        return incremental::collect(registry, options).await;
    }
    let report = full(registry, options).await?;
    if !options.dry_run {
        storage.put(paths::COLLECTION_SETTINGS, settings).await?;
    }
    Ok(report)
}

/// Marks and sweeps the whole store.
async fn full(registry: &Registry, options: &GcOptions) -> Result<GcReport> {
    let now = registry.config().clock.now();
    let cutoff = now
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // Read before the walk, so that what they record is in it.
    let records = registry.blobs.candidates.list().await?;
    let blobs = list_blobs(registry.storage().as_ref()).await?;
    let repos = list_repositories(registry.storage().as_ref()).await?;
    let gc = Collection {
        registry,
        dry_run: options.dry_run,
    };
    let mut report = GcReport {
        full: true,
        repositories: repos.len() as u64,
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    let mut linked = HashSet::new();
    let mut kept = HashSet::new();
    // Repositories left holding a manifest: what the catalog must list.
    let mut holding = HashSet::new();
    let pass = Pass {
        registry,
        options,
        gc: &gc,
        blobs: Some(&blobs),
        now,
        cutoff,
    };
    // A few repositories at a time, each marked and swept on its own marks, which are then
    // dropped (only their union is kept, for the blobs).
    // By index: a closure taking the map's references would be higher-ranked over their
    // lifetimes, which the compiler then cannot prove `Send` for a spawned collection.
    let entries: Vec<(&RepositoryName, &Repo)> = repos.iter().collect();
    let mut swept = futures::stream::iter(0..entries.len())
        .map(|i| pass.repository(entries[i].0, entries[i].1))
        .buffered(REPOSITORIES_AT_ONCE);
    let mut young = HashSet::new();
    let mut names = entries.iter().map(|(name, _)| *name);
    while let Some(one) = swept.try_next().await? {
        if let Some(name) = names.next()
            && one.young
        {
            young.insert(name.clone());
        }
        report.retention.extend(one.decisions);
        report.removed.extend(one.removed);
        report.manifests_kept += one.manifests_kept;
        report.kept_because.add(&one.why);
        kept.extend(one.kept);
        linked.extend(one.linked);
        holding.extend(one.holding);
    }
    let mut candidates = Vec::new();
    let mut abandoned = Vec::new();
    for (digest, blob) in &blobs {
        let in_use = kept.contains(digest)
            || linked.contains(digest)
            || blob.newest.is_none_or(|t| t > cutoff);
        if !in_use {
            candidates.push((digest.clone(), blob.clone()));
        } else {
            let ended = blob
                .collecting
                .iter()
                .filter(|(_, t)| collecting_ended(*t, now));
            abandoned.extend(ended.map(|(key, _)| key.clone()));
        }
    }
    // What a collection that stopped half way announced about blobs that stay.
    concurrently(abandoned, |key| gc.delete_owned(key)).await?;
    let decided = concurrently(candidates, |(digest, blob)| async move {
        gc.remove_blob(&digest, &blob, cutoff, false).await
    })
    .await?;
    let removed_blobs: HashSet<Digest> = decided
        .iter()
        .flatten()
        .filter_map(|r| match r {
            Removal::Blob { digest, .. } => Some(digest.clone()),
            _ => None,
        })
        .collect();
    let mut targets = HashSet::new();
    for (digest, blob) in &blobs {
        let orphan_marker = blob.marker_only();
        if !removed_blobs.contains(digest) && !orphan_marker {
            report.blobs_kept += 1;
            if !kept.contains(digest) && blob.newest.is_none_or(|t| t > cutoff) {
                report.blobs_young += 1;
            }
            targets.extend(blob.target.clone());
        }
    }
    report.removed.extend(decided.into_iter().flatten());
    report
        .removed
        .extend(gc.remove_orphans(&targets, cutoff).await?);
    report.removed.extend(gc.purge_uploads(options, now).await?);
    if !options.dry_run && !registry.index.legacy(&**registry.storage()).await? {
        report.catalog_changes = registry.catalog.reconcile(&holding).await? as u64;
    }
    let settled = incremental::Settled {
        young: &young,
        removed: &removed_blobs,
        linked: &linked,
        kept: &kept,
        blobs: &blobs,
    };
    incremental::settle(&gc, records, &settled, cutoff, now).await?;
    Ok(report)
}

/// Repositories marked and swept at once (each with [`CONCURRENCY`] storage requests in flight).
const REPOSITORIES_AT_ONCE: usize = 4;

/// What a collection reads once and every repository's pass uses.
struct Pass<'a> {
    registry: &'a Registry,
    options: &'a GcOptions,
    gc: &'a Collection<'a>,
    /// Every blob of the store, when the collection walked it; else each repository's pass reads
    /// the blobs it may remove links to.
    blobs: Option<&'a BTreeMap<Digest, StoredBlob>>,
    now: SystemTime,
    cutoff: SystemTime,
}

/// What one repository's pass decided and did.
struct Swept {
    decisions: Vec<Decision>,
    removed: Vec<Removal>,
    manifests_kept: u64,
    /// Why it keeps its manifests.
    why: KeptManifests,
    /// Manifests and blobs it keeps.
    kept: HashSet<Digest>,
    /// Digests it still links (kept, young, or put back by a push meanwhile).
    linked: HashSet<Digest>,
    /// Its name, if it still holds a manifest.
    holding: Option<RepositoryName>,
    /// It keeps something only for a while: young links or manifests, or manifests recent tag
    /// history names (a later collection must look at it again).
    young: bool,
}

impl Pass<'_> {
    /// Retention, marking and sweeping of one repository, on its own marks alone.
    async fn repository(&self, name: &RepositoryName, repo: &Repo) -> Result<Swept> {
        let (gc, cutoff) = (self.gc, self.cutoff);
        let decisions = retention(self.registry, name, repo, self.options, self.now).await?;
        let untagged: Vec<(Tag, Digest)> = decisions
            .iter()
            .filter(|d| d.removed())
            .map(|d| (d.tag.clone(), d.digest.clone()))
            .collect();
        let mut removed: Vec<Removal> =
            concurrently(untagged.clone(), |(tag, digest)| async move {
                gc.untag(name, &tag, &digest).await
            })
            .await?
            .into_iter()
            .flatten()
            .collect();
        let untagged: HashSet<Tag> = untagged.into_iter().map(|(tag, _)| tag).collect();
        let keep = mark(self.registry, name, repo, &untagged, self.options, cutoff).await?;
        if let Some(expired) = expiry(self.options, name, self.registry.config().clock.now()) {
            let tags: Vec<Tag> = repo
                .tags
                .iter()
                .filter(|(_, modified)| *modified < expired && *modified <= cutoff)
                .map(|(tag, _)| tag.clone())
                .collect();
            removed.extend(
                concurrently(tags, |tag| async move { gc.remove_tag(name, &tag).await }).await?,
            );
        }
        let read = match self.blobs {
            Some(_) => BTreeMap::new(),
            None => read_blobs(self.registry, repo, &keep, cutoff).await?,
        };
        let blobs = self.blobs.unwrap_or(&read);
        let mut linked = HashSet::new();
        let manifest_stays = |d: &Digest, modified| {
            keep.manifests.contains(d) || modified > cutoff || fresh(blobs, d, cutoff)
        };
        let remove_manifest = |d: Digest| async move { gc.remove_manifest(name, &d, cutoff).await };
        let before = removed.len();
        sweep(
            &repo.revisions,
            manifest_stays,
            remove_manifest,
            &mut linked,
            &mut removed,
        )
        .await?;
        let holds = removed.len() - before < repo.revisions.len();
        let link_stays = |d: &Digest, modified| {
            keep.blobs.contains(d) || modified > cutoff || fresh(blobs, d, cutoff)
        };
        let remove_link =
            |d: Digest| async move { gc.remove_link(name, &d, blobs.get(&d), cutoff).await };
        sweep(
            &repo.layers,
            link_stays,
            remove_link,
            &mut linked,
            &mut removed,
        )
        .await?;
        let manifests_kept = keep.manifests.len() as u64;
        let kept: HashSet<Digest> = keep.manifests.into_iter().chain(keep.blobs).collect();
        let young =
            keep.why.young > 0 || keep.why.history > 0 || linked.iter().any(|d| !kept.contains(d));
        Ok(Swept {
            decisions,
            removed,
            manifests_kept,
            why: keep.why,
            kept,
            linked,
            holding: holds.then(|| name.clone()),
            young,
        })
    }
}

/// Whether the blob's objects changed after `cutoff`.
fn fresh(blobs: &BTreeMap<Digest, StoredBlob>, d: &Digest, cutoff: SystemTime) -> bool {
    blobs
        .get(d)
        .and_then(|b| b.newest)
        .is_some_and(|t| t > cutoff)
}

/// The blobs a repository's pass may remove links to (neither kept nor linked within the grace
/// period), dated folder by folder without their `linked/` records: what an incremental
/// collection reads instead of `blobs/`.
async fn read_blobs(
    registry: &Registry,
    repo: &Repo,
    keep: &mark::Marked,
    cutoff: SystemTime,
) -> Result<BTreeMap<Digest, StoredBlob>> {
    let revisions = repo
        .revisions
        .iter()
        .filter(|(d, m)| !keep.manifests.contains(*d) && **m <= cutoff);
    let layers = repo
        .layers
        .iter()
        .filter(|(d, m)| !keep.blobs.contains(*d) && **m <= cutoff);
    let wanted: HashSet<Digest> = revisions.chain(layers).map(|(d, _)| d.clone()).collect();
    let storage = registry.storage();
    let read = concurrently(wanted, |d| async move {
        let blob = crate::walk::date_blob(storage.as_ref(), &d).await?;
        Ok(blob.map(|blob| (d, blob)))
    })
    .await?;
    Ok(read.into_iter().flatten().collect())
}

/// Removes the links (manifest revisions or layer links) of one repository that `stays` does not
/// keep, [`CONCURRENCY`] at a time: what went joins `removed`; what stays, or what `remove` left
/// because a push used it meanwhile, joins `linked`.
async fn sweep<F, Fut>(
    entries: &BTreeMap<Digest, SystemTime>,
    stays: impl Fn(&Digest, SystemTime) -> bool,
    remove: F,
    linked: &mut HashSet<Digest>,
    removed: &mut Vec<Removal>,
) -> Result<()>
where
    F: Fn(Digest) -> Fut,
    Fut: Future<Output = Result<Option<Removal>>>,
{
    let mut go = Vec::new();
    for (digest, &modified) in entries {
        if stays(digest, modified) {
            linked.insert(digest.clone());
        } else {
            go.push(digest.clone());
        }
    }
    let outcomes = concurrently(go, |d| {
        let removing = remove(d.clone());
        async move { Ok((d, removing.await?)) }
    })
    .await?;
    for (digest, outcome) in outcomes {
        match outcome {
            Some(removal) => removed.push(removal),
            None => {
                linked.insert(digest);
            }
        }
    }
    Ok(())
}

/// What retention decides about the tags of one repository (nothing when no rule covers it).
async fn retention(
    registry: &Registry,
    name: &RepositoryName,
    repo: &Repo,
    options: &GcOptions,
    now: SystemTime,
) -> Result<Vec<Decision>> {
    if !options.retention.iter().any(|r| r.covers(name)) {
        return Ok(Vec::new());
    }
    let written: HashMap<&Tag, SystemTime> = repo.tags.iter().map(|(t, m)| (t, *m)).collect();
    let facts = registry
        .tags
        .all(name)
        .await?
        .into_iter()
        .map(|(tag, record)| TagFacts {
            // A record from before tag times: when it was last written.
            moved: match record.moved {
                0 => written.get(&tag).copied().unwrap_or(now),
                _ => record.moved_at(),
            },
            pulled: repo.pulled.get(&tag).copied(),
            digest: record.digest,
            tag,
        })
        .collect();
    Ok(decide(
        &options.retention,
        &options.immutable,
        name,
        facts,
        now,
    ))
}

/// Who the tag history names for the tags a collection removes.
const COLLECTOR: &str = "garbage collection";

/// Who the tag history names for the tags retention removes.
const RETENTION: &str = "garbage collection (retention)";

/// How many storage requests a collection keeps in flight.
const CONCURRENCY: usize = 16;

/// Runs `f` over `items`, [`CONCURRENCY`] at a time, and returns the results in order, or the
/// first error.
async fn concurrently<I, T, F, Fut>(items: I, f: F) -> Result<Vec<T>>
where
    I: IntoIterator,
    F: Fn(I::Item) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    futures::stream::iter(items)
        .map(f)
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

/// Only the last step of [`collect`]: ends uploads idle for longer than
/// [`GcOptions::upload_max_age`] and removes what crashes left in upload folders. Cheap (it reads
/// `uploads/` alone), so servers run it often even where full collection is off.
pub async fn purge_uploads(registry: &Registry, options: &GcOptions) -> Result<GcReport> {
    let gc = Collection {
        registry,
        dry_run: options.dry_run,
    };
    Ok(GcReport {
        dry_run: options.dry_run,
        removed: gc
            .purge_uploads(options, registry.config().clock.now())
            .await?,
        ..GcReport::default()
    })
}

/// Whether an announcement of a blob's removal made at `at` is past
/// [`crate::blobs::COLLECTING_FOR`] at `now`: its collection stopped (pushes ignore it then).
fn collecting_ended(at: SystemTime, now: SystemTime) -> bool {
    now.duration_since(at)
        .is_ok_and(|age| age >= crate::blobs::COLLECTING_FOR)
}

/// True when the blob's objects changed after `cutoff` since they were listed: a push reused it.
async fn used_since(
    registry: &Registry,
    digest: &Digest,
    blob: Option<&StoredBlob>,
    cutoff: SystemTime,
) -> Result<bool> {
    let storage = registry.storage();
    let mut keys = blob.map(|b| b.keys(digest)).unwrap_or_default();
    keys.push(paths::blob_used(digest));
    for key in keys {
        match storage.head(&key).await {
            Ok(meta) if meta.last_modified > cutoff => return Ok(true),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}
