//! Accounting: what the store's repositories and tags take ([`UsageReport`] and its parts), and
//! what bounds the cost of computing it for one registry (`Reports`). The reports are
//! computed by [`crate::lifecycle::usage`]; these types hold no logic of the registry, so that
//! [`crate::Registry`] can keep the bound without depending on the lifecycle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::digest::Digest;
use crate::reference::{RepositoryName, Tag};

/// What one tag takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagUsage {
    /// The tag.
    pub tag: Tag,
    /// The manifest it points at.
    pub digest: Digest,
    /// Bytes it reaches: its manifest (and an index's children) and every blob they name.
    pub bytes: u64,
    /// Bytes deleting it would free: what no other manifest anywhere names. Only in reports
    /// over the whole store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frees_bytes: Option<u64>,
}

/// What one repository takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryUsage {
    /// The repository.
    pub name: RepositoryName,
    /// Manifests it holds.
    pub manifests: u64,
    /// Bytes its manifests name, themselves included, each digest once.
    pub referenced_bytes: u64,
    /// Of those, bytes no other repository names. Only in reports over the whole store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_bytes: Option<u64>,
    /// Of those, bytes other repositories name too. Only in reports over the whole store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_bytes: Option<u64>,
    /// Its tags, by name.
    pub tags: Vec<TagUsage>,
}

/// Totals over the whole store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreUsage {
    /// Repositories holding a manifest.
    pub repositories: u64,
    /// Distinct digests (manifests and blobs) some manifest names.
    pub digests: u64,
    /// Bytes of those digests, each once: what the store holds for them.
    pub stored_bytes: u64,
    /// The sum of every repository's referenced bytes: what copies per repository would take.
    pub logical_bytes: u64,
    /// `logical_bytes / stored_bytes` (1 when nothing is stored).
    pub dedup_ratio: f64,
}

/// What [`crate::lifecycle::usage::usage`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// The repositories asked about, by name.
    pub repositories: Vec<RepositoryUsage>,
    /// Totals over the store, when every repository was asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreUsage>,
}

/// How long a report over the whole store is served again before it is computed anew.
pub const STORE_REPORT_FRESH_FOR: Duration = Duration::from_secs(10);
/// Reports of single repositories computed at once; further callers wait their turn.
const REPOSITORY_REPORTS_AT_ONCE: usize = 4;

/// What bounds the cost of usage reports for a registry: one report over the whole store at a
/// time, reused for [`STORE_REPORT_FRESH_FOR`], and a few single-repository reports at once.
pub(crate) struct Reports {
    pub(crate) store: tokio::sync::Mutex<Option<(Instant, Arc<UsageReport>)>>,
    pub(crate) repositories: tokio::sync::Semaphore,
}

impl Reports {
    pub fn new() -> Reports {
        Reports {
            store: tokio::sync::Mutex::new(None),
            repositories: tokio::sync::Semaphore::new(REPOSITORY_REPORTS_AT_ONCE),
        }
    }
}
