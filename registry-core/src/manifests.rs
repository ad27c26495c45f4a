//! [`Manifests`]: a repository's manifests (the exact bytes received, and a revision link per
//! repository) and the referrers index kept beside them.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::blobs::{Blobs, parse_record, to_json};
use crate::cache::Caches;
use crate::digest::{Digest, Digester};
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, Manifest};
use crate::paths;
use crate::reference::{Reference, RepositoryName};
use crate::storage::{Storage, StorageExt};
use crate::stored::ManifestInfo;

/// A stored manifest: the exact bytes received and what describes them.
#[derive(Debug, Clone)]
pub struct ManifestContent {
    /// Digest, media type and size.
    pub info: ManifestInfo,
    /// The bytes as received at push.
    pub bytes: Bytes,
}

/// The record at a manifest's revision link.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestLink {
    media_type: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Digest>,
}

/// Which of what a pushed manifest names must already be in the repository. Whatever is there
/// (and a subject held locally) must have the size its descriptor declares, except for content
/// a source fetched, which is checked when its bytes come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum References {
    /// Every blob and every child manifest.
    All,
    /// Every blob; an index's children may be missing (a sync that keeps some platforms).
    Blobs,
    /// Nothing need be there (`validate_references = false`), but what is must match.
    Present,
    /// Nothing is checked (a source's content, fetched when asked for).
    Unchecked,
}

/// A manifest validated for a repository, ready to be stored.
#[derive(Debug)]
pub(crate) struct Validated {
    pub manifest: Manifest,
    pub info: ManifestInfo,
    pub bytes: Bytes,
}

/// The manifest store.
#[derive(Debug, Clone)]
pub(crate) struct Manifests {
    storage: Arc<dyn Storage>,
    caches: Arc<Caches>,
    blobs: Blobs,
    max_size: u64,
}

impl Manifests {
    pub fn new(
        storage: Arc<dyn Storage>,
        caches: Arc<Caches>,
        blobs: Blobs,
        max_size: u64,
    ) -> Manifests {
        Manifests {
            storage,
            caches,
            blobs,
            max_size,
        }
    }

    /// Checks a manifest pushed to `repo` under `reference`: its size, its kind and shape, its
    /// digest when pushed by digest, and, as `references` says, that the repository holds
    /// every blob and child it names (marking them in use for garbage collection).
    pub async fn validate(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        references: References,
    ) -> Result<Validated> {
        if bytes.len() as u64 > self.max_size {
            return Err(Error::ManifestTooLarge {
                size: bytes.len() as u64,
                limit: self.max_size,
            });
        }
        let manifest = Manifest::parse(&bytes, content_type)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let mut d = Digester::new(expected.algorithm());
                d.update(&bytes);
                let actual = d.finish();
                if actual != *expected {
                    return Err(Error::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::of(&bytes),
        };
        if references != References::Unchecked {
            self.check_references(repo, &manifest, references).await?;
        }
        let info = ManifestInfo {
            digest,
            media_type: manifest.media_type.clone(),
            size: bytes.len() as u64,
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
        };
        Ok(Validated {
            manifest,
            info,
            bytes,
        })
    }

    /// Stores a validated manifest in `repo`, in an order that leaves at worst unreferenced data
    /// after a crash: the bytes, the revision link, the referrers entry.
    pub async fn store(&self, repo: &RepositoryName, m: &Validated) -> Result<()> {
        let info = &m.info;
        self.blobs.put_held(&info.digest, m.bytes.clone()).await?;
        let link = ManifestLink {
            media_type: info.media_type.clone(),
            size: info.size,
            subject: info.subject.clone(),
        };
        self.blobs.candidates.linking(repo, &info.digest).await?;
        self.storage
            .put(&paths::manifest_link(repo, &info.digest), to_json(&link)?)
            .await?;
        if let Some(subject) = &info.subject {
            let entry = Descriptor {
                media_type: info.media_type.clone(),
                digest: info.digest.clone(),
                size: info.size,
                artifact_type: m.manifest.referrer_artifact_type(),
                annotations: m.manifest.annotations.clone(),
                urls: None,
                platform: None,
            };
            self.storage
                .put(
                    &paths::referrer(repo, subject, &info.digest),
                    to_json(&entry)?,
                )
                .await?;
        }
        self.caches.put_manifest_bytes(&info.digest, &m.bytes);
        self.caches.put_revision(repo, info);
        Ok(())
    }

    /// Digest, media type and size of a manifest of `repo`. [`Error::ManifestUnknown`] naming
    /// `asked` (the tag or digest the client gave) when the repository lacks it.
    pub async fn stat(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        asked: &Reference,
    ) -> Result<ManifestInfo> {
        if let Some(info) = self.caches.revision(repo, digest) {
            return Ok(info);
        }
        let key = paths::manifest_link(repo, digest);
        let bytes = self
            .storage
            .get_opt(&key)
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: asked.to_string(),
            })?;
        let link = match parse_record::<ManifestLink>(&key, &bytes) {
            Ok(link) => link,
            // A store distribution wrote: the link holds the digest alone.
            Err(e) => match crate::tags::parse_digest_link(&key, &bytes) {
                Ok(linked) if linked == *digest => self.described(digest, asked).await?.0,
                _ => return Err(e),
            },
        };
        let info = ManifestInfo {
            digest: digest.clone(),
            media_type: link.media_type,
            size: link.size,
            subject: link.subject,
        };
        self.caches.put_revision(repo, &info);
        Ok(info)
    }

    /// What a revision link of ours says of the manifest `digest`, read from the manifest's own
    /// bytes (for a link distribution wrote, which holds the digest alone), with the manifest.
    async fn described(
        &self,
        digest: &Digest,
        asked: &Reference,
    ) -> Result<(ManifestLink, Manifest)> {
        let bytes = self
            .storage
            .get_opt(&paths::blob_data(digest))
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: asked.to_string(),
            })?;
        // An OCI manifest may leave its media type to the request that pushed it.
        let manifest = Manifest::parse(&bytes, None)
            .or_else(|_| Manifest::parse(&bytes, Some(crate::manifest::OCI_MANIFEST)))
            .or_else(|_| Manifest::parse(&bytes, Some(crate::manifest::OCI_INDEX)))?;
        let link = ManifestLink {
            media_type: manifest.media_type.clone(),
            size: bytes.len() as u64,
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
        };
        Ok((link, manifest))
    }

    /// Rewrites a revision link distribution wrote (the digest alone) as ours, and indexes the
    /// manifest's subject: what reindexing does for a store distribution wrote. `false` when the
    /// link was ours already.
    pub async fn adopt(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let key = paths::manifest_link(repo, digest);
        let Some(bytes) = self.storage.get_opt(&key).await? else {
            return Ok(false);
        };
        if parse_record::<ManifestLink>(&key, &bytes).is_ok() {
            return Ok(false);
        }
        let (link, manifest) = self
            .described(digest, &Reference::Digest(digest.clone()))
            .await?;
        if let Some(subject) = &link.subject {
            let entry = Descriptor {
                media_type: link.media_type.clone(),
                digest: digest.clone(),
                size: link.size,
                artifact_type: manifest.referrer_artifact_type(),
                annotations: manifest.annotations.clone(),
                urls: None,
                platform: None,
            };
            self.storage
                .put(&paths::referrer(repo, subject, digest), to_json(&entry)?)
                .await?;
        }
        self.storage.put(&key, to_json(&link)?).await?;
        self.caches.forget_revision(repo, digest);
        Ok(true)
    }

    /// A manifest of `repo`: its bytes as received, checked against their digest.
    pub async fn get(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        asked: &Reference,
    ) -> Result<ManifestContent> {
        let info = self.stat(repo, digest, asked).await?;
        if let Some(bytes) = self.caches.manifest_bytes(&info.digest) {
            return Ok(ManifestContent { info, bytes });
        }
        let bytes = self
            .storage
            .get_opt(&paths::blob_data(&info.digest))
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: asked.to_string(),
            })?;
        let mut check = Digester::new(info.digest.algorithm());
        check.update(&bytes);
        if check.finish() != info.digest {
            return Err(Error::storage(format!(
                "stored manifest {} does not match its digest",
                info.digest
            )));
        }
        self.caches.put_manifest_bytes(&info.digest, &bytes);
        Ok(ManifestContent { info, bytes })
    }

    /// Removes a manifest from `repo`: its referrers entry, then its revision link. Its bytes
    /// stay for garbage collection.
    pub async fn remove(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        let info = self
            .stat(repo, digest, &Reference::Digest(digest.clone()))
            .await?;
        self.blobs.candidates.repository(repo).await?;
        self.blobs.candidates.blob(digest).await?;
        if let Some(subject) = &info.subject {
            self.storage
                .delete(&paths::referrer(repo, subject, digest))
                .await?;
        }
        self.caches.forget_revision(repo, digest);
        Ok(self
            .storage
            .delete(&paths::manifest_link(repo, digest))
            .await?)
    }

    /// Whether `repo` holds any manifest (one listing).
    pub async fn any(&self, repo: &RepositoryName) -> Result<bool> {
        let level = self.storage.list(&paths::revisions(repo)).await?;
        Ok(!level.prefixes.is_empty() || !level.objects.is_empty())
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`, optionally only those of
    /// one artifact type. Read from the index kept at push: no scan.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let entries = self.storage.list(&paths::referrers(repo, subject)).await?;
        let storage = self.storage.clone();
        let descriptors: Vec<Option<Descriptor>> = futures::stream::iter(entries.objects)
            .map(move |o| {
                let storage = storage.clone();
                async move {
                    match storage.get_opt(&o.key).await? {
                        Some(bytes) => parse_record(&o.key, &bytes).map(Some),
                        None => Ok(None),
                    }
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(descriptors
            .into_iter()
            .flatten()
            .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
            .collect())
    }

    async fn check_references(
        &self,
        repo: &RepositoryName,
        manifest: &Manifest,
        references: References,
    ) -> Result<()> {
        let blobs = manifest.blob_references().map(|d| (d.clone(), true));
        let children = manifest.manifests.iter().map(|d| (d.clone(), false));
        let checks: Vec<(Descriptor, bool)> = blobs.chain(children).collect();
        futures::stream::iter(checks)
            .map(move |(d, blob)| async move {
                let required = match references {
                    References::All => true,
                    References::Blobs => blob,
                    References::Present | References::Unchecked => false,
                };
                let stored = match blob {
                    true => self.stored_blob_size(repo, &d.digest).await?,
                    false => self.stored_manifest_size(repo, &d.digest).await?,
                };
                match stored {
                    Some(size) => check_size(&d, size, if blob { "blob" } else { "manifest" }),
                    None if required => Err(Error::ManifestBlobUnknown {
                        digest: d.digest.clone(),
                    }),
                    None => Ok(()),
                }
            })
            .buffer_unordered(16)
            .try_collect::<()>()
            .await?;
        if let Some(subject) = &manifest.subject
            && let Some(size) = self.stored_manifest_size(repo, &subject.digest).await?
        {
            check_size(subject, size, "manifest")?;
        }
        Ok(())
    }

    /// The size of a blob `repo` links, `None` when it links none of that digest.
    async fn stored_blob_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        if !self.blobs.linked(repo, digest).await? {
            return Ok(None);
        }
        // Marked in use, then not being collected, then linked and found in storage (not in this
        // process's cache), in that order: a collection that reads the mark keeps the blob and
        // its links; one that read it before the mark announced the removal first, and its
        // announcement is seen here until the link or the bytes are gone, which the last looks
        // then see.
        self.blobs.touch(digest).await?;
        if self.blobs.being_collected(digest).await? || !self.blobs.linked(repo, digest).await? {
            return Ok(None);
        }
        match self.blobs.locate_in_storage(digest).await {
            Ok(location) => Ok(Some(location.size)),
            Err(Error::BlobUnknown { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The size of a manifest `repo` holds, `None` when it holds none of that digest.
    async fn stored_manifest_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        match self
            .stat(repo, digest, &Reference::Digest(digest.clone()))
            .await
        {
            // Marked, not being collected, then its revision and bytes in storage (the revision
            // may have come from this process's cache), in that order (see `stored_blob_size`).
            Ok(info) => {
                self.blobs.touch(digest).await?;
                let gone = self.blobs.being_collected(digest).await?
                    || !self
                        .storage
                        .exists(&paths::manifest_link(repo, digest))
                        .await?
                    || !self.storage.exists(&paths::blob_data(digest)).await?;
                Ok((!gone).then_some(info.size))
            }
            Err(Error::ManifestUnknown { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// [`Error::ManifestInvalid`] naming `descriptor` unless it declares the stored `size`: usage and
/// quotas count what a manifest names, so a size no object has would let a push hide its bytes.
fn check_size(descriptor: &Descriptor, size: u64, what: &str) -> Result<()> {
    if descriptor.size == size {
        return Ok(());
    }
    Err(Error::ManifestInvalid {
        reason: format!(
            "the descriptor of {what} {} declares {} bytes, but the stored {what} has {size}",
            descriptor.digest, descriptor.size
        ),
    })
}
