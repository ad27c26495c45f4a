//! What a manifest adds up to: its own bytes, the blobs it names and the manifests it lists, read
//! once per digest (a digest's content never changes).

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use quick_cache::sync::Cache;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::reference::{Reference, RepositoryName};
use crate::registry::Registry;

/// A manifest, summed up.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// Its own bytes.
    pub size: u64,
    /// The blobs it names (config, layers), with their stored sizes (the sizes its descriptors
    /// give for those not stored: a cache's content not fetched yet).
    pub blobs: Vec<(Digest, u64)>,
    /// The manifests it lists (an index's children).
    pub children: Vec<Digest>,
}

/// Reads and sums up the manifest `digest` of `repo`.
pub(crate) async fn summarize(
    registry: &Registry,
    repo: &RepositoryName,
    digest: &Digest,
) -> Result<Summary> {
    let content = registry
        .manifests
        .get(repo, digest, &Reference::Digest(digest.clone()))
        .await?;
    let manifest = Manifest::parse(&content.bytes, Some(&content.info.media_type))?;
    let named: Vec<(Digest, u64)> = manifest
        .blob_references()
        .map(|d| (d.digest.clone(), d.size))
        .collect();
    let blobs = futures::stream::iter(named)
        .map(|(digest, declared)| async move {
            match registry.blobs.locate(&digest).await {
                Ok(location) => Ok((digest, location.size)),
                Err(Error::BlobUnknown { .. }) => Ok((digest, declared)),
                Err(e) => Err(e),
            }
        })
        .buffered(8)
        .try_collect()
        .await?;
    Ok(Summary {
        size: content.info.size,
        blobs,
        children: manifest
            .manifests
            .iter()
            .map(|d| d.digest.clone())
            .collect(),
    })
}

/// Summaries kept in memory by digest.
pub(crate) struct Summaries(Cache<Digest, Arc<Summary>>);

impl Summaries {
    /// Room for `entries` summaries.
    pub fn new(entries: usize) -> Summaries {
        Summaries(Cache::new(entries))
    }

    /// The summary of `digest`, read from `repo` on a miss.
    pub async fn get(
        &self,
        registry: &Registry,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Arc<Summary>> {
        if let Some(s) = self.0.get(digest) {
            return Ok(s);
        }
        let summary = Arc::new(summarize(registry, repo, digest).await?);
        self.0.insert(digest.clone(), summary.clone());
        Ok(summary)
    }
}
