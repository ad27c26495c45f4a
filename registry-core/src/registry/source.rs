//! Read-through sources: somewhere a registry reads from when a repository lacks what is asked.
//! A pull-through cache's upstream is one (`registry_http::mirror::Mirror`); a sync or
//! replication source would be another.
//!
//! The registry consults the source serving a repository before it reads one of its manifests
//! (to fetch it, or to check a tag again), and when it lacks one of its blobs; writes to the
//! repositories a source serves are refused. What the source fetches comes in through a
//! [`Fill`], the narrow door that stores upstream content without the checks and hooks of a push.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::blobs::BlobInfo;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifests::ManifestContent;
use crate::reference::{Reference, RepositoryName};
use crate::storage::ByteStream;
use crate::stored::ManifestInfo;

use super::{Registry, RegistryConfig};
use crate::admission::Caller;
use crate::error::Error;

/// A blob streaming in from a source: its size, and its bytes as they arrive. The last byte
/// comes only once the whole blob is stored and verified.
pub struct SourcedBlob {
    /// The blob's size in bytes.
    pub size: u64,
    /// Its bytes.
    pub stream: ByteStream,
}

impl std::fmt::Debug for SourcedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcedBlob")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// What a read asked for, for a source's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A manifest.
    Manifest,
    /// A blob.
    Blob,
}

/// Somewhere a registry reads from when a repository lacks what is asked.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// What `repo` is, when this source serves it (`a pull-through cache of https://…`): its
    /// reads go through the source, and its pushes and deletes are refused with that reason.
    /// `None` for a repository the source does not serve.
    fn serves(&self, repo: &RepositoryName) -> Option<String>;

    /// Makes the manifest `reference` names in `repo` current in `fill` before it is read:
    /// fetches it when missing, checks a tag again when due. Fails only when nothing can be
    /// served (an upstream failure with nothing cached).
    async fn manifest(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()>;

    /// Fetches a blob `repo` lacks into `fill`. `Some` streams it as it arrives (only when the
    /// whole blob is wanted and its size known); `None` once it is stored, for the registry to
    /// read. `head`: only the size is wanted, nothing is stored (`Some`, with an empty stream).
    async fn blob(
        &self,
        fill: &Fill,
        repo: &RepositoryName,
        digest: &Digest,
        head: bool,
        whole: bool,
    ) -> Result<Option<SourcedBlob>>;

    /// A read in a repository this source serves that local storage answered (for counters).
    fn served_locally(&self, read: Read) {
        let _ = read;
    }
}

/// What a source may do to the registry it fills: read what is stored, and store manifests and
/// blobs it fetched (verified against their digests, like any content) without the reference
/// checks, admission hook and refusals of a push.
#[derive(Debug, Clone)]
pub struct Fill {
    registry: Registry,
}

impl Fill {
    pub(crate) fn new(registry: Registry) -> Fill {
        Fill { registry }
    }

    /// The registry's configuration (its manifest size limit, for one).
    pub fn config(&self) -> &RegistryConfig {
        self.registry.config()
    }

    /// A stored manifest's digest, media type and size.
    pub async fn stat_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        self.registry.stat_manifest(repo, reference).await
    }

    /// A stored manifest.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        self.registry.get_manifest(repo, reference).await
    }

    /// Stores a fetched manifest under `reference` (again, to refresh its age for garbage
    /// collection's retention).
    pub async fn store_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        media_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.registry
            .cache_manifest(repo, reference, media_type, bytes)
            .await
    }

    /// Whether `repo` holds the blob locally (the source is not asked): a fetch that lost a race
    /// with another one finds the blob already stored.
    pub async fn has_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        match self.registry.blobs.stat(repo, digest).await {
            Ok(_) => Ok(true),
            Err(Error::BlobUnknown { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores a fetched blob, verified against its digest as it streams in.
    pub async fn store_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<BlobInfo> {
        self.registry
            .put_blob(repo, digest, data, expected_len)
            .await
    }
}

/// The source of a registry, shared by its clones.
pub(crate) type SharedSource = Option<Arc<dyn Source>>;

impl Registry {
    /// The same registry, reading through `source` in the repositories it serves: a miss there
    /// asks the source, and pushes and deletes there are refused ([`Error::Sourced`]).
    pub fn with_source(mut self, source: Arc<dyn Source>) -> Registry {
        self.source = Some(source);
        self
    }

    /// The source serving `repo`, if any.
    pub(super) fn source_for(&self, repo: &RepositoryName) -> Option<&Arc<dyn Source>> {
        self.source.as_ref().filter(|s| s.serves(repo).is_some())
    }

    /// What a source fills: this registry without its source or hook, its changes made by the
    /// mirror.
    pub(super) fn fill(&self) -> Fill {
        Fill::new(Registry {
            admission: None,
            source: None,
            caller: Caller {
                origin: crate::feed::Origin::Mirror,
                ..Caller::default()
            },
            ..self.clone()
        })
    }

    /// Refuses a write into a repository a source serves.
    pub(super) fn writable(&self, repo: &RepositoryName) -> Result<()> {
        match self.source.as_ref().and_then(|s| s.serves(repo)) {
            Some(source_of) => Err(Error::Sourced {
                name: repo.to_string(),
                source_of,
            }),
            None => Ok(()),
        }
    }

    /// Counts a read a source's repository answered locally.
    pub(super) fn served_locally<T>(&self, repo: &RepositoryName, read: Read, answer: &Result<T>) {
        if answer.is_ok()
            && let Some(source) = self.source_for(repo)
        {
            source.served_locally(read);
        }
    }

    /// Makes the manifest `reference` names current from the source serving `repo`, if any.
    pub(super) async fn refresh_from_source(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        match self.source_for(repo) {
            Some(source) => source.manifest(&self.fill(), repo, reference).await,
            None => Ok(()),
        }
    }
}
