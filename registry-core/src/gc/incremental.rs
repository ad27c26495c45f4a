//! The incremental collection: reads the candidate records ([`crate::candidates`]) instead of the
//! store. It marks and sweeps only the repositories they name (and those a time-based rule
//! covers: retention, a cache's expiry), each exactly as a full collection would, then examines
//! the bytes of only the blobs whose links went: a blob's `linked/` records name the
//! repositories to ask, and one no repository links goes by the same announced removal as in a
//! full collection.
//!
//! A repository's records go once they are older than the grace period and its pass kept nothing
//! only for a while (young links or manifests, manifests recent tag history names); a blob's
//! once they are older than the grace period and its bytes went or a repository still links it.
//! A record a collection leaves is read by the next one, so a crash at any step leaves at worst
//! work for the next collection.

use std::collections::HashSet;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};

use crate::digest::Digest;
use crate::error::Result;
use crate::paths;
use crate::reference::RepositoryName;
use crate::registry::Registry;
use crate::storage::{ObjectMeta, StorageExt};
use crate::walk::{list_blob, list_repository};

use super::collection::Collection;
use super::{
    GcOptions, GcReport, Pass, REPOSITORIES_AT_ONCE, Removal, Swept, collecting_ended, concurrently,
};

/// Runs one incremental collection; see the module documentation.
pub(super) async fn collect(registry: &Registry, options: &GcOptions) -> Result<GcReport> {
    let now = registry.config().clock.now();
    let cutoff = now
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let listed = registry.blobs.candidates.list().await?;
    let mut visit = listed.repositories;
    for name in timed(registry, options).await? {
        visit.entry(name).or_default();
    }
    let gc = Collection {
        registry,
        dry_run: options.dry_run,
    };
    let pass = Pass {
        registry,
        options,
        gc: &gc,
        blobs: None,
        now,
        cutoff,
    };
    let mut report = GcReport {
        repositories: visit.len() as u64,
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    let mut swept = futures::stream::iter(visit)
        .map(|(name, records)| repository(&pass, name, records))
        .buffered(REPOSITORIES_AT_ONCE);
    while let Some((one, catalog_changed)) = swept.try_next().await? {
        report.retention.extend(one.decisions);
        report.removed.extend(one.removed);
        report.manifests_kept += one.manifests_kept;
        report.kept_because.add(&one.why);
        report.catalog_changes += u64::from(catalog_changed);
    }
    drop(swept);
    // The blobs whose links went: recorded by earlier writes, and by this collection's sweeps.
    let mut unlinked = listed.blobs;
    let mut gone = HashSet::new();
    for removal in &report.removed {
        if let Removal::Link { repository, digest } | Removal::Manifest { repository, digest } =
            removal
        {
            unlinked.entry(digest.clone()).or_default();
            gone.insert((repository.clone(), digest.clone()));
        }
    }
    report.blobs_examined = unlinked.len() as u64;
    let gone = &gone;
    let examined = concurrently(unlinked, |(digest, records)| {
        examine(&gc, digest, records, cutoff, gone)
    })
    .await?;
    for outcome in examined {
        match outcome {
            Examined::Removed(removal) => report.removed.push(removal),
            Examined::Kept { young } => {
                report.blobs_kept += 1;
                report.blobs_young += u64::from(young);
            }
            Examined::Absent => {}
        }
    }
    report.removed.extend(gc.purge_uploads(options, now).await?);
    Ok(report)
}

/// The repositories a time-based rule covers (retention, a cache's expiry): what passes with
/// time alone can make garbage there, so each collection visits them.
async fn timed(registry: &Registry, options: &GcOptions) -> Result<Vec<RepositoryName>> {
    if options.retention.is_empty() && options.cache.is_none() {
        return Ok(Vec::new());
    }
    let covered = |name: &RepositoryName| {
        options.retention.iter().any(|r| r.covers(name))
            || options.cache.as_ref().is_some_and(|c| c.covers(name))
    };
    Ok(registry
        .catalog
        .entries()
        .await?
        .into_iter()
        .filter(|name| covered(name))
        .collect())
}

/// One repository's pass, then its records (unless something in it must be looked at again) and
/// its catalog entry (when it holds no manifest any more). True when the entry went.
async fn repository(
    pass: &Pass<'_>,
    name: RepositoryName,
    records: Vec<ObjectMeta>,
) -> Result<(Swept, bool)> {
    let registry = pass.registry;
    let repo = list_repository(registry.storage().as_ref(), &name).await?;
    let one = pass.repository(&name, &repo).await?;
    if pass.options.dry_run {
        return Ok((one, false));
    }
    if !one.young {
        let old: Vec<String> = records
            .into_iter()
            .filter(|r| r.last_modified <= pass.cutoff)
            .map(|r| r.key)
            .collect();
        delete_all(pass.gc, old).await?;
    }
    let mut unlisted = false;
    if one.holding.is_none() && !registry.index.legacy(&**registry.storage()).await? {
        unlisted = registry
            .catalog
            .remove_if_empty(&name, &registry.manifests)
            .await?;
    }
    Ok((one, unlisted))
}

/// What examining one blob's bytes found.
enum Examined {
    Removed(Removal),
    Kept { young: bool },
    Absent,
}

/// Removes a blob whose link went unless a repository its `linked/` records name still links it
/// or it changed within the grace period; its records go once it is settled either way. `gone`:
/// what this collection removed (or, in a dry run, would have).
async fn examine(
    gc: &Collection<'_>,
    digest: Digest,
    records: Vec<ObjectMeta>,
    cutoff: SystemTime,
    gone: &HashSet<(RepositoryName, Digest)>,
) -> Result<Examined> {
    let storage = gc.registry.storage();
    // A record younger than the grace period may precede a write still under way (bytes stored,
    // a link made): it stays for the next collection to look again.
    let records: Vec<String> = records
        .into_iter()
        .filter(|r| r.last_modified <= cutoff)
        .map(|r| r.key)
        .collect();
    let Some(blob) = list_blob(storage.as_ref(), &digest).await? else {
        delete_all(gc, records).await?;
        return Ok(Examined::Absent);
    };
    let repos: std::collections::BTreeSet<&RepositoryName> =
        blob.linked.iter().map(|(repo, _, _)| repo).collect();
    let now = gc.registry.config().clock.now();
    let (ended, running): (Vec<_>, Vec<_>) = blob
        .collecting
        .iter()
        .partition(|(_, at)| collecting_ended(*at, now));
    let ended: Vec<String> = ended.into_iter().map(|(key, _)| key.clone()).collect();
    for repo in repos {
        if gone.contains(&(repo.clone(), digest.clone())) {
            continue;
        }
        let layer = storage.exists(&paths::layer_link(repo, &digest)).await?;
        if layer || storage.exists(&paths::manifest_link(repo, &digest)).await? {
            // What collections that stopped half way announced goes; while another collection
            // announces a removal, the records stay for the next one to look again.
            delete_all(gc, ended).await?;
            delete_all(gc, superseded(&blob, cutoff)).await?;
            if running.is_empty() {
                delete_all(gc, records).await?;
            }
            return Ok(Examined::Kept { young: false });
        }
    }
    if blob.newest.is_some_and(|t| t > cutoff) {
        return Ok(Examined::Kept { young: true });
    }
    // Every blob examined has a candidate record in the store: one listed (settled only below),
    // or the one this collection's sweep wrote.
    match gc.remove_blob(&digest, &blob, cutoff, true).await? {
        Some(removal) => {
            // What collections that stopped half way announced goes too; one another
            // collection is making now stays, and so do the records, for the next collection
            // to remove that announcement once it is over.
            if !blob.marker_only() {
                delete_all(gc, ended).await?;
            }
            if running.is_empty() || blob.marker_only() {
                delete_all(gc, records).await?;
            }
            Ok(Examined::Removed(removal))
        }
        None => Ok(Examined::Kept { young: true }),
    }
}

/// The `linked/` records of a kept blob that a newer record of the same repository makes
/// redundant (each push of a manifest already stored writes one), once past the grace period:
/// the newest of each repository stays, so removing these never hides a link.
fn superseded(blob: &crate::walk::StoredBlob, cutoff: SystemTime) -> Vec<String> {
    let mut newest: std::collections::BTreeMap<&RepositoryName, SystemTime> = Default::default();
    for (repo, _, at) in &blob.linked {
        let entry = newest.entry(repo).or_insert(*at);
        *entry = (*entry).max(*at);
    }
    let mut kept: HashSet<&RepositoryName> = HashSet::new();
    let mut redundant = Vec::new();
    for (repo, key, at) in &blob.linked {
        // One record per repository stays: the newest (the first of equal times).
        if *at == newest[repo] && kept.insert(repo) {
            continue;
        }
        if *at <= cutoff {
            redundant.push(key.clone());
        }
    }
    redundant
}

/// What a full collection found, from which it settles the candidate records it read before its
/// walk (the next incremental collection then has nothing of that to redo).
pub(super) struct Settled<'a> {
    /// Repositories whose pass kept something only for a while.
    pub(super) young: &'a HashSet<RepositoryName>,
    /// Blobs it removed.
    pub(super) removed: &'a HashSet<Digest>,
    /// Blobs a repository links.
    pub(super) linked: &'a HashSet<Digest>,
    /// Blobs kept manifests reach.
    pub(super) kept: &'a HashSet<Digest>,
    /// Every blob's objects, as the walk read them.
    pub(super) blobs: &'a std::collections::BTreeMap<Digest, crate::walk::StoredBlob>,
}

/// Removes the candidate records a full collection read before its walk and settled: older than
/// the grace period, of a repository whose pass kept nothing only for a while, or of a blob it
/// removed, that a repository links (and that no running collection announces a removal of), or
/// that is not stored at all.
pub(super) async fn settle(
    gc: &Collection<'_>,
    records: crate::candidates::Listed,
    found: &Settled<'_>,
    cutoff: SystemTime,
    now: SystemTime,
) -> Result<()> {
    let old = |metas: Vec<ObjectMeta>| {
        metas
            .into_iter()
            .filter(|m| m.last_modified <= cutoff)
            .map(|m| m.key)
    };
    let mut keys: Vec<String> = Vec::new();
    for (name, metas) in records.repositories {
        if !found.young.contains(&name) {
            keys.extend(old(metas));
        }
    }
    for (digest, metas) in records.blobs {
        let settled = match found.blobs.get(&digest) {
            None => true,
            Some(blob) => {
                let fresh = blob.newest.is_some_and(|t| t > cutoff);
                let announced = blob
                    .collecting
                    .iter()
                    .any(|(_, at)| !collecting_ended(*at, now));
                found.removed.contains(&digest)
                    || ((found.linked.contains(&digest) || found.kept.contains(&digest))
                        && !fresh
                        && !announced)
            }
        };
        if settled {
            keys.extend(old(metas));
        }
    }
    delete_all(gc, keys).await
}

/// Deletes `keys` (unless this is a dry run), [`super::CONCURRENCY`] at a time.
async fn delete_all(gc: &Collection<'_>, keys: Vec<String>) -> Result<()> {
    concurrently(keys, |key| gc.delete_owned(key)).await?;
    Ok(())
}
