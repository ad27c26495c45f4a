//! The task that drains replication queues: heartbeats, which queues this replica drains, applying
//! one item, backoff, and the periodic reconcile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use registry_core::transfer::{self, CopyOptions, Destination, Origin};
use registry_core::{Error, Reference, Registry, StorageExt, paths};

use super::{HEARTBEAT, Item, ReplicaStatus, Replication, STALE, Target, now_nanos, now_secs};
use crate::remote::client::UpstreamError;

/// How long an item waits for the store to show the change it was queued for (a store another
/// replica wrote may show it late), unless the tag moved again since; past this the change is
/// taken to be superseded, and the item copies whatever the store holds.
pub(super) const SETTLE: Duration = Duration::from_secs(60);
/// How often queues are looked at when nothing wakes the task.
const POLL: Duration = Duration::from_secs(2);
/// Items read from a queue at once.
const PAGE: usize = 256;
/// The longest wait before an item that failed is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Heartbeats of replicas gone this long are removed (once their queues are drained).
const FORGET: Duration = Duration::from_secs(3600);

/// What applying an item did.
enum Applied {
    /// Copied (these many blob bytes sent) or deleted, or nothing to do: the item is done.
    Done(u64),
    /// The change is not in the store yet: try again shortly.
    NotYet,
}

/// When each failing item is tried again, and how many times it failed.
type Backoff = HashMap<String, (Instant, u32)>;

impl Replication {
    /// Drains the queues for as long as the process runs (spawn it): this replica's, and those of
    /// replicas gone, when this one is the live replica with the smallest id; reconciles each
    /// target at its interval on that replica.
    pub async fn run(self: Arc<Self>, registry: Registry) {
        let mut backoff = Backoff::new();
        let mut last_heartbeat: Option<Instant> = None;
        let start = Instant::now();
        let mut reconciled: Vec<Instant> = vec![start; self.targets.len()];
        loop {
            if last_heartbeat.is_none_or(|t| t.elapsed() >= HEARTBEAT) {
                match self.heartbeat().await {
                    Ok(()) => last_heartbeat = Some(Instant::now()),
                    Err(e) => tracing::warn!("replication heartbeat failed: {e}"),
                }
            }
            let live = match self.live_replicas().await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!("replication cannot list replicas: {e}");
                    vec![self.replica.clone()]
                }
            };
            let leader = live.iter().min() == Some(&self.replica);
            for (n, target) in self.targets.iter().enumerate() {
                if let Err(e) = self
                    .drain(&registry, target, leader, &live, &mut backoff)
                    .await
                {
                    tracing::warn!(target = %target.config.name, "replication queue unreadable: {e}");
                }
                let due = target
                    .config
                    .reconcile_interval
                    .is_some_and(|every| reconciled[n].elapsed() >= every);
                if leader && due {
                    reconciled[n] = Instant::now();
                    match self.reconcile(&registry, target).await {
                        Ok(queued) => tracing::info!(
                            target = %target.config.name,
                            "replication reconciled: {queued} differences queued"
                        ),
                        Err(e) => {
                            tracing::warn!(target = %target.config.name, "reconcile failed: {e}")
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn heartbeat(&self) -> registry_core::Result<()> {
        Ok(self
            .storage
            .put(&paths::replica(&self.replica), bytes::Bytes::new())
            .await?)
    }

    /// The replicas whose heartbeat is recent, this one included; heartbeats of replicas long
    /// gone are removed.
    async fn live_replicas(&self) -> registry_core::Result<Vec<String>> {
        let now = SystemTime::now();
        let mut live = vec![self.replica.clone()];
        for object in self.storage.list(paths::REPLICAS).await?.objects {
            let id = object.key.rsplit('/').next().unwrap_or("").to_owned();
            let age = now.duration_since(object.last_modified).unwrap_or_default();
            if age < STALE {
                if id != self.replica {
                    live.push(id);
                }
            } else if age > FORGET {
                let _ = self.storage.delete(&object.key).await;
            }
        }
        Ok(live)
    }

    /// Applies what is due in the queues this replica drains for `target`.
    async fn drain(
        &self,
        registry: &Registry,
        target: &Target,
        leader: bool,
        live: &[String],
        backoff: &mut Backoff,
    ) -> registry_core::Result<()> {
        let name = &target.config.name;
        let queues = self
            .storage
            .list(&paths::replication_queues(name))
            .await?
            .prefixes;
        let mut waiting = 0i64;
        let mut status: Option<ReplicaStatus> = None;
        for replica in queues {
            let mine = replica == self.replica;
            let orphan = leader && !live.contains(&replica);
            if !mine && !orphan {
                continue;
            }
            if !mine {
                tracing::info!(target = %name, %replica, "draining the queue of a replica gone");
            }
            let queue = paths::replication_queue(name, &replica);
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .storage
                    .list_after(&queue, after.as_deref(), PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.key.rsplit('/').next().map(str::to_owned);
                for object in page {
                    if backoff
                        .get(&object.key)
                        .is_some_and(|(at, _)| Instant::now() < *at)
                    {
                        waiting += 1;
                        continue;
                    }
                    let item: Item = match self.storage.get_opt(&object.key).await? {
                        Some(bytes) => match serde_json::from_slice(&bytes) {
                            Ok(item) => item,
                            Err(e) => {
                                tracing::warn!(key = %object.key, "unreadable replication item dropped: {e}");
                                self.storage.delete(&object.key).await?;
                                continue;
                            }
                        },
                        None => continue,
                    };
                    let record = status.get_or_insert_with(ReplicaStatus::default);
                    match self.apply(registry, target, &item).await {
                        Ok(Applied::Done(bytes)) => {
                            self.storage.delete(&object.key).await?;
                            backoff.remove(&object.key);
                            self.stats.copied.get_or_create(&target.labels).inc();
                            self.stats
                                .copied_bytes
                                .get_or_create(&target.labels)
                                .inc_by(bytes);
                            record.last_success = Some(now_secs());
                            record.copied += 1;
                        }
                        Ok(Applied::NotYet) => {
                            waiting += 1;
                            backoff.insert(object.key, (Instant::now() + POLL / 2, 0));
                        }
                        Err(e) => {
                            waiting += 1;
                            self.stats.failures.get_or_create(&target.labels).inc();
                            let failures = backoff.get(&object.key).map_or(0, |(_, n)| *n) + 1;
                            let wait =
                                Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF);
                            tracing::warn!(
                                target = %name,
                                repository = %item.repository,
                                reference = %item.reference,
                                "replication failed (attempt {failures}, again in {wait:?}): {e}"
                            );
                            backoff.insert(object.key, (Instant::now() + wait, failures));
                            record.last_error = Some(e.to_string());
                            record.last_error_at = Some(now_secs());
                        }
                    }
                }
            }
        }
        self.stats.queued.get_or_create(&target.labels).set(waiting);
        if let Some(update) = status {
            self.record(target, update).await?;
        }
        Ok(())
    }

    /// Merges `update` into this replica's status record for `target`.
    async fn record(&self, target: &Target, update: ReplicaStatus) -> registry_core::Result<()> {
        let key = paths::replication_status(&target.config.name, &self.replica);
        let mut status: ReplicaStatus = match self.storage.get_opt(&key).await? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => ReplicaStatus::default(),
        };
        status.copied += update.copied;
        if update.last_success.is_some() {
            status.last_success = update.last_success;
        }
        if update.last_error.is_some() {
            status.last_error = update.last_error;
            status.last_error_at = update.last_error_at;
        }
        let body = serde_json::to_vec(&status).map_err(Error::storage)?;
        Ok(self.storage.put(&key, body.into()).await?)
    }

    /// Copies what the item's reference names in the store now, or deletes it on the target.
    async fn apply(
        &self,
        registry: &Registry,
        target: &Target,
        item: &Item,
    ) -> registry_core::Result<Applied> {
        let repo = &item.repository;
        let reference: Reference = item.reference.parse()?;
        // What the store holds now, and whether a tag moved again after the item was queued.
        let (local, superseded) = match &reference {
            Reference::Tag(tag) => match registry.tag(repo, tag).await? {
                Some(record) => {
                    let moved = record.moved_at().duration_since(UNIX_EPOCH);
                    let moved = moved.unwrap_or_default().as_nanos();
                    (Some(record.digest), moved >= item.queued)
                }
                None => (None, false),
            },
            Reference::Digest(digest) => match registry.stat_manifest(repo, &reference).await {
                Ok(_) => (Some(digest.clone()), false),
                Err(Error::ManifestUnknown { .. } | Error::NameUnknown { .. }) => (None, false),
                Err(e) => return Err(e),
            },
        };
        let age = Duration::from_nanos(
            u64::try_from(now_nanos().saturating_sub(item.queued)).unwrap_or(u64::MAX),
        );
        if local != item.expect && !superseded && age < SETTLE {
            return Ok(Applied::NotYet);
        }
        match local {
            Some(digest) => {
                let copied = transfer::copy(
                    registry,
                    repo,
                    &Reference::Digest(digest),
                    &target.remote,
                    repo,
                    &reference,
                    &CopyOptions::default(),
                )
                .await?;
                Ok(Applied::Done(copied.bytes))
            }
            None if target.config.delete => {
                match target
                    .remote
                    .delete_manifest(repo.as_str(), &item.reference)
                    .await
                {
                    Ok(_) => Ok(Applied::Done(0)),
                    // The target does not delete this way (distribution without deletes
                    // enabled, or no tag deletes): nothing a retry would change.
                    Err(UpstreamError::Refused(why)) => {
                        tracing::warn!(target = %target.config.name, "delete not copied: {why}");
                        Ok(Applied::Done(0))
                    }
                    Err(e) => Err(e.into_error(registry_core::error::UpstreamFailure::Unavailable)),
                }
            }
            None => Ok(Applied::Done(0)),
        }
    }

    /// Queues an item for every covered tag whose digest differs between the store and the
    /// target (and, with deletes, for the target's covered tags the store lacks); how many.
    async fn reconcile(
        &self,
        registry: &Registry,
        target: &Target,
    ) -> registry_core::Result<usize> {
        let mut queued = 0;
        let mut last: Option<String> = None;
        loop {
            let page = registry
                .list_repositories(Some(1000), last.as_deref())
                .await?;
            last = page.items.last().cloned();
            for name in &page.items {
                let Ok(repo) = name.parse() else { continue };
                if target.config.covers(&repo) {
                    queued += self.reconcile_repository(registry, target, &repo).await?;
                }
            }
            if !page.more || last.is_none() {
                return Ok(queued);
            }
        }
    }

    async fn reconcile_repository(
        &self,
        registry: &Registry,
        target: &Target,
        repo: &registry_core::RepositoryName,
    ) -> registry_core::Result<usize> {
        let mut queued = 0;
        let local = Origin::tags(registry, repo).await?;
        for tag in local
            .iter()
            .filter(|t| target.config.covers_tag(t.as_str()))
        {
            let Some(record) = registry.tag(repo, tag).await? else {
                continue;
            };
            let there = target
                .remote
                .manifest_digest(repo, &Reference::Tag(tag.clone()))
                .await?;
            if there.as_ref() != Some(&record.digest) {
                let item = Item {
                    repository: repo.clone(),
                    reference: tag.to_string(),
                    expect: Some(record.digest),
                    queued: now_nanos(),
                };
                self.enqueue(target, &item).await?;
                queued += 1;
            }
        }
        if target.config.delete {
            let remote =
                target.remote.tags(repo.as_str()).await.map_err(|e| {
                    e.into_error(registry_core::error::UpstreamFailure::Unavailable)
                })?;
            for tag in remote {
                let referrers_tag = tag.starts_with("sha256-") && tag.len() == 71;
                if referrers_tag
                    || !target.config.covers_tag(&tag)
                    || local.iter().any(|t| t.as_str() == tag)
                {
                    continue;
                }
                let item = Item {
                    repository: repo.clone(),
                    reference: tag,
                    expect: None,
                    queued: now_nanos(),
                };
                self.enqueue(target, &item).await?;
                queued += 1;
            }
        }
        Ok(queued)
    }
}
