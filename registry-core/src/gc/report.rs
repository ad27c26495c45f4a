//! What a collection is asked to do, and what it reports.

use std::time::Duration;

use crate::digest::Digest;
use crate::lifecycle::{Decision, ImmutableRule, RetentionRule};
use crate::reference::{RepositoryName, Tag};

/// What [`collect`](super::collect) removes, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Anything written or used more recently than this is kept. Default: one hour.
    pub grace: Duration,
    /// Also remove manifests that no tag reaches (by default they are kept, with their blobs).
    pub delete_untagged: bool,
    /// Keep the referrers (signatures, SBOMs…) of every kept manifest. Default: true.
    pub keep_referrers: bool,
    /// Uploads that received nothing for this long are abandoned and removed. Default: 24 hours.
    pub upload_max_age: Duration,
    /// Report what would be removed, and remove nothing.
    pub dry_run: bool,
    /// Walk the whole store (mark and sweep, an audit) instead of only what the candidate
    /// records name ([`crate::gc`]). A store not reindexed for the records is always walked.
    pub full: bool,
    /// Repositories that cache an upstream registry, whose content goes once unused for a while.
    pub cache: Option<CacheRetention>,
    /// Retention rules: tags no clause keeps are untagged first (see
    /// [`crate::lifecycle::retention`]).
    pub retention: Vec<RetentionRule>,
    /// Immutable tags, which retention never removes.
    pub immutable: Vec<ImmutableRule>,
    /// Manifests a tag's history names from within this long ago are kept (with what they reach),
    /// so that a delete or move can be undone by restoring the tag. Default: seven days.
    pub history: Duration,
}

/// How long a pull-through cache keeps what nobody pulls: in its repositories, a tag or manifest
/// whose link was last written (by the fetch, or by a pull refreshing it) longer ago than
/// `unused_for` is removed, and then whatever only it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRetention {
    /// Repository name prefixes the cache serves (`docker.io` covers `docker.io/…`); an empty
    /// prefix covers every repository.
    pub prefixes: Vec<String>,
    /// How long unused content stays.
    pub unused_for: Duration,
}

impl CacheRetention {
    /// True when `name` is a repository of the cache.
    pub fn covers(&self, name: &RepositoryName) -> bool {
        self.prefixes.iter().any(|p| {
            p.is_empty()
                || name
                    .as_str()
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

impl GcOptions {
    /// A digest of the settings that decide what a collection keeps (not the grace period or
    /// upload ages, which only delay it): a collection under settings other than the last full
    /// one's walks the whole store, since what they keep may have become garbage unrecorded.
    pub fn settings(&self) -> Digest {
        let decisive = format!(
            "{:?}",
            (
                self.delete_untagged,
                self.keep_referrers,
                &self.cache,
                &self.retention,
                &self.immutable,
                self.history,
            )
        );
        Digest::of(decisive.as_bytes())
    }
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            delete_untagged: false,
            keep_referrers: true,
            upload_max_age: Duration::from_secs(24 * 3600),
            dry_run: false,
            full: false,
            cache: None,
            retention: Vec::new(),
            immutable: Vec::new(),
            history: Duration::from_secs(7 * 86400),
        }
    }
}

/// One thing [`collect`](super::collect) removed (or would remove, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A blob's bytes, shared by every repository.
    Blob {
        /// The blob.
        digest: Digest,
        /// Its size.
        bytes: u64,
    },
    /// A cached tag nobody pulled for [`CacheRetention::unused_for`], or a tag no retention
    /// clause keeps.
    Tag {
        /// The repository.
        repository: RepositoryName,
        /// The tag.
        tag: Tag,
    },
    /// An untagged manifest, from one repository.
    Manifest {
        /// The repository.
        repository: RepositoryName,
        /// The manifest.
        digest: Digest,
    },
    /// A blob's link from one repository.
    Link {
        /// The repository.
        repository: RepositoryName,
        /// The blob.
        digest: Digest,
    },
    /// An upload that received nothing for [`GcOptions::upload_max_age`].
    Upload {
        /// The upload's id.
        id: String,
        /// The bytes it had received.
        bytes: u64,
    },
    /// An object nothing points at: bytes of an upload that lost a race or crashed, a stale tail.
    Orphan {
        /// Its key.
        key: String,
        /// Its size.
        bytes: u64,
    },
}

impl Removal {
    /// Storage bytes the removal frees (links and manifest records count as nothing).
    pub fn bytes(&self) -> u64 {
        match self {
            Removal::Blob { bytes, .. }
            | Removal::Upload { bytes, .. }
            | Removal::Orphan { bytes, .. } => *bytes,
            Removal::Tag { .. } | Removal::Manifest { .. } | Removal::Link { .. } => 0,
        }
    }
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Blob { digest, bytes } => write!(f, "blob {digest} ({bytes} bytes)"),
            Removal::Tag { repository, tag } => write!(f, "tag {repository}:{tag}"),
            Removal::Manifest { repository, digest } => {
                write!(f, "manifest {repository}@{digest}")
            }
            Removal::Link { repository, digest } => write!(f, "link {repository}@{digest}"),
            Removal::Upload { id, bytes } => write!(f, "upload {id} ({bytes} bytes)"),
            Removal::Orphan { key, bytes } => write!(f, "orphan {key} ({bytes} bytes)"),
        }
    }
}

/// Why the manifests a collection kept were kept, each counted once, for the first reason that
/// holds in this order (a manifest an index keeps is kept for the index's reason).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptManifests {
    /// A tag reaches them.
    pub tagged: u64,
    /// Recent tag history names them ([`GcOptions::history`]), so that a tag can be restored.
    pub history: u64,
    /// No tag reaches them, and untagged manifests stay ([`GcOptions::delete_untagged`] off).
    pub untagged: u64,
    /// Pushed within the grace period ([`GcOptions::grace`]).
    pub young: u64,
    /// Referrers (signatures, SBOMs) of kept manifests ([`GcOptions::keep_referrers`]).
    pub referrers: u64,
}

impl KeptManifests {
    /// Adds another repository's counts.
    pub fn add(&mut self, other: &KeptManifests) {
        self.tagged += other.tagged;
        self.history += other.history;
        self.untagged += other.untagged;
        self.young += other.young;
        self.referrers += other.referrers;
    }
}

/// What a collection saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    /// The collection walked the whole store (else it read the candidate records).
    pub full: bool,
    /// Repositories walked (all of them, or those the candidate records and time-based rules
    /// named).
    pub repositories: u64,
    /// Blobs whose bytes an incremental collection examined (0 for a full one).
    pub blobs_examined: u64,
    /// Manifests kept, over all repositories.
    pub manifests_kept: u64,
    /// Why they were kept.
    pub kept_because: KeptManifests,
    /// Blobs kept (manifests' bytes included).
    pub blobs_kept: u64,
    /// Of those, blobs no kept manifest names, kept because they changed or were used within
    /// the grace period (a push in progress).
    pub blobs_young: u64,
    /// Everything removed, or that would be in a dry run.
    pub removed: Vec<Removal>,
    /// What retention decided about each tag of the repositories its rules cover: the clause
    /// that kept it, or why it went.
    pub retention: Vec<Decision>,
    /// True when nothing was actually removed.
    pub dry_run: bool,
    /// Catalog entries written or removed to match the repositories holding a manifest (one
    /// push racing the removal of a repository's last manifest can leave one out of step).
    pub catalog_changes: u64,
}

impl GcReport {
    /// Bytes freed (or that would be).
    pub fn bytes_freed(&self) -> u64 {
        self.removed.iter().map(Removal::bytes).sum()
    }
}
