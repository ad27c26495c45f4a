//! The invariants, checked against the store through a registry with no cache.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use registry_core::manifest::Manifest;
use registry_core::{
    Digest, Error, Reference, Registry, RegistryConfig, RepositoryName, Storage, paths,
};

use super::{REPOSITORIES, World, repository, tag};

impl World {
    /// A registry reading the store directly, with no cache and the store's clock.
    fn checker(&self) -> Registry {
        Registry::new(
            Arc::new(self.store.clone()),
            RegistryConfig {
                clock: Arc::new(self.clock.clone()),
                metadata_ttl: Duration::ZERO,
                touch_interval: None,
                pull_record_interval: None,
                ..RegistryConfig::default()
            },
        )
    }

    /// Invariant 1: every acknowledged push no later operation touched still pulls.
    pub(super) fn check_acks(&self) -> Result<(), String> {
        let r = self.checker();
        futures::executor::block_on(async {
            for ack in self.acks.iter().filter(|a| !a.touched) {
                let (repo, t) = (repository(ack.at.0), tag(ack.at.1));
                let record = r
                    .tag(&repo, &t)
                    .await
                    .map_err(|e| format!("reading {repo}:{t}: {e}"))?;
                let pushed = &ack.pushed;
                match record {
                    Some(record) if record.digest == pushed.manifest => {}
                    other => {
                        return Err(format!(
                            "{repo}:{t} was pushed as {} and is now {other:?}",
                            pushed.manifest
                        ));
                    }
                }
                for manifest in std::iter::once(&pushed.manifest).chain(&pushed.children) {
                    r.get_manifest(&repo, &Reference::Digest(manifest.clone()))
                        .await
                        .map_err(|e| format!("manifest {manifest} of {repo}:{t} lost: {e}"))?;
                }
                for blob in &pushed.blobs {
                    readable(&r, &repo, blob)
                        .await
                        .map_err(|e| format!("blob {blob} of {repo}:{t} lost: {e}"))?;
                }
            }
            Ok(())
        })
    }

    /// Invariant 2: the store holds exactly what its tags reach.
    pub(super) fn check_store(&self) -> Result<(), String> {
        let r = self.checker();
        futures::executor::block_on(async {
            let mut reached = BTreeSet::new();
            for (i, repo) in REPOSITORIES
                .iter()
                .map(|n| n.parse::<RepositoryName>())
                .enumerate()
            {
                let repo = repo.map_err(|e| e.to_string())?;
                let tags = match r.list_tags(&repo, None, None).await {
                    Ok(page) => page.items,
                    Err(Error::NameUnknown { .. }) => continue,
                    Err(e) => return Err(format!("listing the tags of {repo}: {e}")),
                };
                for t in tags {
                    // The tag's manifest, by digest: a delete racing a push of the same manifest
                    // may leave the tag naming it deleted (as with distribution).
                    let named = r
                        .tag(&repo, &t.parse().map_err(|e: Error| e.to_string())?)
                        .await
                        .map_err(|e| format!("reading {repo}:{t}: {e}"))?;
                    let Some(named) = named else {
                        return Err(format!("{repo}:{t} is listed and has no record"));
                    };
                    let mut manifests = vec![Reference::Digest(named.digest)];
                    while let Some(reference) = manifests.pop() {
                        let content = match r.get_manifest(&repo, &reference).await {
                            Ok(content) => content,
                            Err(Error::ManifestUnknown { .. })
                                if matches!(&reference, Reference::Digest(d)
                                    if self.deleted.contains(&(i, d.clone()))) =>
                            {
                                continue;
                            }
                            Err(e) => {
                                return Err(format!(
                                    "manifest {reference} of {repo}:{t} lost: {e}"
                                ));
                            }
                        };
                        let manifest = Manifest::parse(&content.bytes, None)
                            .map_err(|e| format!("{repo}:{t}: {e}"))?;
                        reached.insert(content.info.digest.clone());
                        for child in &manifest.manifests {
                            manifests.push(Reference::Digest(child.digest.clone()));
                        }
                        for d in manifest.blob_references() {
                            readable(&r, &repo, &d.digest).await.map_err(|e| {
                                format!("blob {} of {repo}:{t} lost: {e}", d.digest)
                            })?;
                            reached.insert(d.digest.clone());
                        }
                    }
                }
            }
            let stored: Vec<String> = self
                .store
                .list_all(paths::BLOBS)
                .filter_map(|m| async move { m.ok().map(|m| m.key) })
                .collect()
                .await;
            let extra: Vec<&String> = stored
                .iter()
                .filter(|key| {
                    paths::parse_blob_key(key).is_some_and(|(d, _)| !reached.contains(&d))
                })
                .collect();
            if !extra.is_empty() {
                return Err(format!(
                    "unreachable blobs survived two collections past the grace period: {extra:?}"
                ));
            }
            Ok(())
        })
    }
}

/// Reads a blob whole.
async fn readable(r: &Registry, repo: &RepositoryName, digest: &Digest) -> Result<(), Error> {
    let content = r.get_blob(repo, digest, None).await?;
    let bytes: Vec<Bytes> = content
        .stream
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(Error::storage)?;
    let read: Vec<u8> = bytes.concat();
    if Digest::of(&read) != *digest {
        return Err(Error::storage(format!(
            "{digest} reads back as other bytes"
        )));
    }
    Ok(())
}
