//! In-memory caches that spare storage round trips on hot reads. What is cached by digest is
//! immutable (a manifest's bytes, a blob's size); what a repository says about a digest (its
//! manifest revision) is cached for a short time only, and dropped at once when this process
//! deletes it, so another replica's delete is seen within [`crate::RegistryConfig::metadata_ttl`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::clock::SharedClock;
use crate::digest::Digest;
use crate::reference::RepositoryName;
use crate::stored::{BlobLocation, ManifestInfo};

#[derive(Clone)]
struct ByLength;

impl Weighter<Digest, Bytes> for ByLength {
    fn weight(&self, _: &Digest, v: &Bytes) -> u64 {
        v.len() as u64 + 64
    }
}

/// The caches of one [`crate::Registry`].
pub(crate) struct Caches {
    manifest_bytes: Cache<Digest, Bytes, ByLength>,
    revisions: Cache<(RepositoryName, Digest), (ManifestInfo, Instant)>,
    blob_locations: Cache<Digest, BlobLocation>,
    touched: Cache<Digest, Instant>,
    ttl: Duration,
    /// Times entries and their age (the registry's clock, so that a simulation's time is theirs).
    clock: SharedClock,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Caches {
    /// Caches holding at most `manifest_bytes` bytes of manifests, timed by `clock`.
    pub fn new(manifest_bytes: u64, ttl: Duration, clock: SharedClock) -> Caches {
        Caches {
            manifest_bytes: Cache::with_weighter(1024, manifest_bytes.max(1), ByLength),
            revisions: Cache::new(16 * 1024),
            blob_locations: Cache::new(64 * 1024),
            touched: Cache::new(64 * 1024),
            ttl,
            clock,
        }
    }

    pub fn manifest_bytes(&self, d: &Digest) -> Option<Bytes> {
        self.manifest_bytes.get(d)
    }

    pub fn put_manifest_bytes(&self, d: &Digest, bytes: &Bytes) {
        self.manifest_bytes.insert(d.clone(), bytes.clone());
    }

    pub fn revision(&self, repo: &RepositoryName, d: &Digest) -> Option<ManifestInfo> {
        let key = (repo.clone(), d.clone());
        match self.revisions.get(&key) {
            Some((info, at)) if self.age(at) < self.ttl => Some(info),
            Some(_) => {
                self.revisions.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn put_revision(&self, repo: &RepositoryName, info: &ManifestInfo) {
        if !self.ttl.is_zero() {
            self.revisions.insert(
                (repo.clone(), info.digest.clone()),
                (info.clone(), self.clock.instant()),
            );
        }
    }

    pub fn forget_revision(&self, repo: &RepositoryName, d: &Digest) {
        self.revisions.remove(&(repo.clone(), d.clone()));
    }

    pub fn blob_location(&self, d: &Digest) -> Option<BlobLocation> {
        self.blob_locations.get(d)
    }

    pub fn put_blob_location(&self, d: &Digest, location: &BlobLocation) {
        self.blob_locations.insert(d.clone(), location.clone());
    }

    pub fn forget_blob(&self, d: &Digest) {
        self.blob_locations.remove(d);
        self.touched.remove(d);
        self.manifest_bytes.remove(d);
    }

    /// True when this process marked the blob as in use less than `interval` ago.
    pub fn touched_within(&self, d: &Digest, interval: Duration) -> bool {
        self.touched
            .get(d)
            .is_some_and(|at| self.age(at) < interval)
    }

    pub fn put_touched(&self, d: &Digest) {
        self.touched.insert(d.clone(), self.clock.instant());
    }

    /// How long ago `at` was, by the clock.
    fn age(&self, at: Instant) -> Duration {
        self.clock.instant().saturating_duration_since(at)
    }
}
