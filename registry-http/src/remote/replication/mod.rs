//! Push replication: every change to a matching repository is copied to other registries.
//!
//! [`Replication`] is a subscriber of the registry's change feed: when a tag moves (a push or a
//! restore, from the API, the UI, the admin API or a command), a referrer is stored, or (with
//! [`TargetConfig::delete`]) a tag or manifest is deleted (by a client, retention or garbage
//! collection), it queues the change in storage (`replication/<target>/queue/<replica>/…`, see
//! `registry_core::paths`) before the call that made it returns, so the change is on record
//! before the client is told it happened. When the queue cannot be written (three tries), the
//! failure is logged and counted, the change stands, and the periodic reconcile
//! ([`TargetConfig::reconcile_interval`]) finds the difference. A task per process ([`Replication::run`])
//! drains the queue: an item names a repository and a tag or digest, and the worker copies what
//! the store holds for it now (the manifest, its children, the blobs the target lacks, mounted
//! when the target has them elsewhere, and its referrers), or deletes it on the target when the
//! store no longer holds it. Copying what is there now makes an item safe to apply twice and in
//! any order, and an item queued for a change that then failed is applied as a no-op.
//!
//! Each process sharing the store is a replica with its own queue folder and a heartbeat
//! (`replicas/<id>`). A replica drains its own queue; the queue of a replica whose heartbeat is
//! older than [`STALE`] (it crashed, or restarted under a new id) is drained by the live replica
//! with the smallest id, which also runs the periodic reconcile (local tags compared with the
//! target's, differences queued). So each item is sent by one replica at a time, except in the
//! moment a slow replica is taken for dead, where a second copy is harmless.
//!
//! Failures are retried with a backoff per item (1 s doubling to 5 min); the queue's depth, bytes
//! copied and failures per target are metrics, and each replica's last success and error per
//! target are kept in storage for [`status`] (`registry replication status`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use registry_core::feed::{Committed, Origin, Record, Subscriber};
use registry_core::lifecycle::{TagPattern, repository_matches};
use registry_core::{Digest, RepositoryName, Storage, StorageExt, paths};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::remote::client::Upstream;
use crate::remote::error::MirrorError;
use crate::remote::mirror::Redirects;

mod worker;

/// How often a replica writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(3);
/// A replica whose heartbeat is older than this is taken for gone, and its queue drained by
/// another.
pub const STALE: Duration = Duration::from_secs(15);

/// One registry changes are copied to.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// The target's name: letters, digits, `.`, `_` and `-` (a storage key component).
    pub name: String,
    /// Its URL, `https://dr.example.com:5000`.
    pub url: String,
    /// Credentials for Basic authentication or the token flow.
    pub credentials: Option<(String, String)>,
    /// Repositories copied: names, `prefix/*` or `*`.
    pub repositories: Vec<String>,
    /// Tags copied: regexes searched in the tag's name; every tag when empty.
    pub tags: Vec<TagPattern>,
    /// Deletes are copied too.
    pub delete: bool,
    /// How often the target's tags are compared with the store's and differences queued;
    /// `None` never.
    pub reconcile_interval: Option<Duration>,
    /// How long a request to the target may wait to connect and between reads.
    pub timeout: Duration,
}

impl TargetConfig {
    fn covers(&self, repo: &RepositoryName) -> bool {
        self.repositories
            .iter()
            .any(|p| repository_matches(p, repo.as_str()))
    }

    fn covers_tag(&self, tag: &str) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|p| p.matches(tag))
    }
}

/// What configuring replication can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// A target name that cannot be a storage key component, or used twice.
    #[error("replication target name {name:?}: use letters, digits, '.', '_' and '-', once each")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// The target's URL cannot be used.
    #[error("replication target {name}: {source}")]
    InvalidUrl {
        /// The target.
        name: String,
        /// Why.
        source: MirrorError,
    },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

/// Counters of every target, labelled by its name.
#[derive(Clone, Default)]
struct Stats {
    queued: Family<TargetLabels, Gauge>,
    copied_bytes: Family<TargetLabels, Counter>,
    copied: Family<TargetLabels, Counter>,
    failures: Family<TargetLabels, Counter>,
}

/// A target and its client.
struct Target {
    config: TargetConfig,
    remote: Upstream,
    labels: TargetLabels,
}

/// One queued change: copy what `reference` names in `repository` now, or delete it on the
/// target when the store no longer holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Item {
    repository: RepositoryName,
    reference: String,
    /// The digest the change leaves `reference` at (`None`: gone). Until the store shows it,
    /// the change may not be committed yet, and the item waits (for [`worker::SETTLE`] at most).
    expect: Option<Digest>,
    /// When it was queued, in nanoseconds since the Unix epoch.
    queued: u128,
}

/// What one replica last did for one target, kept in storage for [`status`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// When an item was last copied, in seconds since the Unix epoch.
    pub last_success: Option<u64>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it happened, in seconds since the Unix epoch.
    pub last_error_at: Option<u64>,
    /// Items copied by this replica since it started.
    pub copied: u64,
}

/// Push replication to the configured targets; see the module documentation.
pub struct Replication {
    storage: Arc<dyn Storage>,
    replica: String,
    targets: Vec<Target>,
    wake: Notify,
    stats: Stats,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .targets
            .iter()
            .map(|t| t.config.name.as_str())
            .collect();
        f.debug_struct("Replication")
            .field("replica", &self.replica)
            .field("targets", &names)
            .finish()
    }
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Whether `name` can be a target's name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('.')
}

impl Replication {
    /// Replication of the store `storage` to `targets`, as a new replica (its id is random).
    /// Attach it to the registry as an admission rule (the last of them, so that a change
    /// another rule refuses is not queued), then start [`Replication::run`].
    pub fn new(
        storage: Arc<dyn Storage>,
        targets: Vec<TargetConfig>,
    ) -> Result<Replication, ReplicationError> {
        let mut built: Vec<Target> = Vec::new();
        for config in targets {
            if !valid_name(&config.name) || built.iter().any(|t| t.config.name == config.name) {
                return Err(ReplicationError::InvalidName { name: config.name });
            }
            let remote = Upstream::new(
                &config.url,
                config.credentials.clone(),
                config.timeout,
                Redirects::Any,
            )
            .map_err(|source| ReplicationError::InvalidUrl {
                name: config.name.clone(),
                source,
            })?;
            built.push(Target {
                labels: TargetLabels {
                    target: config.name.clone(),
                },
                config,
                remote,
            });
        }
        Ok(Replication {
            storage,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            targets: built,
            wake: Notify::new(),
            stats: Stats::default(),
        })
    }

    /// This process's replica id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Adds the replication metrics to `metrics`, labelled by target: items waiting, items and
    /// bytes copied, failed attempts.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let s = &self.stats;
        metrics.register(
            "replication_queue_depth",
            "Changes waiting to be copied to a replication target",
            s.queued.clone(),
        );
        metrics.register(
            "replication_copied_bytes",
            "Blob bytes sent to a replication target",
            s.copied_bytes.clone(),
        );
        metrics.register(
            "replication_copied",
            "Changes copied to a replication target",
            s.copied.clone(),
        );
        metrics.register(
            "replication_failures",
            "Attempts to copy a change to a replication target that failed",
            s.failures.clone(),
        );
    }

    /// The items a change queues: `(target, item)`.
    fn items_for(&self, change: &Committed) -> Vec<(usize, Item)> {
        let queued = now_nanos();
        let item = |repo: &RepositoryName, reference: String, expect: Option<&Digest>| Item {
            repository: repo.clone(),
            reference,
            expect: expect.cloned(),
            queued,
        };
        let mut items = Vec::new();
        for (n, target) in self.targets.iter().enumerate() {
            let config = &target.config;
            match change {
                Committed::TagMoved {
                    repository,
                    tag,
                    to,
                    ..
                } if config.covers(repository) && config.covers_tag(tag.as_str()) => {
                    items.push((n, item(repository, tag.to_string(), Some(to))));
                }
                Committed::ManifestStored {
                    repository,
                    digest,
                    tag: None,
                    subject: Some(_),
                    ..
                } if config.covers(repository) => {
                    items.push((n, item(repository, digest.to_string(), Some(digest))));
                }
                Committed::TagDeleted {
                    repository, tag, ..
                } if config.delete
                    && config.covers(repository)
                    && config.covers_tag(tag.as_str()) =>
                {
                    items.push((n, item(repository, tag.to_string(), None)));
                }
                Committed::ManifestDeleted {
                    repository, digest, ..
                } if config.delete && config.covers(repository) => {
                    items.push((n, item(repository, digest.to_string(), None)));
                }
                _ => {}
            }
        }
        items
    }

    /// Puts an item in this replica's queue for `target`.
    async fn enqueue(&self, target: &Target, item: &Item) -> registry_core::Result<()> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let key = paths::replication_item(&target.config.name, &self.replica, item.queued, &nonce);
        let body = serde_json::to_vec(item).map_err(registry_core::Error::storage)?;
        Ok(self.storage.put(&key, body.into()).await?)
    }
}

/// How many times queueing an item is tried before it is left to the reconcile.
const ENQUEUE_TRIES: u32 = 3;

#[async_trait]
impl Subscriber for Replication {
    async fn committed(&self, record: &Record) {
        // What a pull-through cache stores is the upstream's, not this registry's to replicate.
        if record.caller.origin == Origin::Mirror {
            return;
        }
        let items = self.items_for(&record.change);
        for (n, item) in &items {
            let target = &self.targets[*n];
            let mut tries = 0;
            while let Err(e) = self.enqueue(target, item).await {
                tries += 1;
                if tries == ENQUEUE_TRIES {
                    self.stats.failures.get_or_create(&target.labels).inc();
                    tracing::error!(
                        target = %target.config.name,
                        repository = %item.repository,
                        reference = %item.reference,
                        "cannot queue a change for replication (the reconcile will find it): {e}"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100 << tries)).await;
            }
        }
        if !items.is_empty() {
            self.wake.notify_one();
        }
    }
}

/// A target's state as the store records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStatus {
    /// The target's name.
    pub name: String,
    /// Changes waiting, over every replica's queue.
    pub backlog: u64,
    /// Each replica's record, by replica id.
    pub replicas: Vec<(String, ReplicaStatus)>,
}

/// The backlog and each replica's last success and error for each target named.
pub async fn status(
    storage: &dyn Storage,
    targets: &[String],
) -> registry_core::Result<Vec<TargetStatus>> {
    use futures::TryStreamExt;
    let mut all = Vec::new();
    for name in targets {
        let backlog = storage
            .list_all(&paths::replication_queues(name))
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await?;
        let mut replicas = Vec::new();
        for object in storage
            .list(&paths::replication_statuses(name))
            .await?
            .objects
        {
            let replica = object.key.rsplit('/').next().unwrap_or("").to_owned();
            let record = storage.get_bytes(&object.key).await?;
            if let Ok(record) = serde_json::from_slice(&record) {
                replicas.push((replica, record));
            }
        }
        all.push(TargetStatus {
            name: name.clone(),
            backlog,
            replicas,
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_key_components() {
        for good in ["dr", "eu-west.1", "a_b"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a/b", "..", ".hidden", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
