//! Copying images between places that hold them: this registry, another registry, an OCI image
//! layout on disk. An [`Origin`] serves manifests, blobs, referrers and tags; a [`Destination`]
//! takes them and says what it already has. [`copy`] walks an image from one to the other: an
//! index with its children (all, or those of some platforms), an image with its config and
//! layers, and the referrers (signatures, attestations) of each, skipping what the destination
//! holds. The destination verifies every digest it is given (this registry and an OCI layout
//! hash what they store; another registry does the same).
//!
//! A manifest is written only after everything it names, so a copy interrupted at any point is
//! resumed by copying again: what arrived is skipped, and a destination never holds a manifest
//! whose content is missing (except the children a platform filter leaves out).
//!
//! [`Registry`] is both an origin and a destination; `registry_storage::layout` and
//! `registry_http::remote` give the others.

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, Manifest, ManifestKind};
use crate::reference::{Reference, RepositoryName, Tag};
use crate::registry::Registry;
use crate::storage::ByteStream;

/// How deep referrers of referrers are followed (a signature of an attestation of an image).
const MAX_REFERRER_DEPTH: usize = 4;

/// A manifest as an origin holds it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its exact bytes.
    pub bytes: Bytes,
    /// Its media type, as the origin gave it (else the one its body names).
    pub media_type: Option<String>,
    /// The digest of its bytes.
    pub digest: Digest,
}

impl Fetched {
    /// A manifest from its bytes, refused when they do not hash to `expected` (when given).
    pub fn new(
        bytes: Bytes,
        media_type: Option<String>,
        expected: Option<&Digest>,
    ) -> Result<Self> {
        let digest = match expected {
            Some(expected) => {
                let mut check = crate::digest::Digester::new(expected.algorithm());
                check.update(&bytes);
                let actual = check.finish();
                if actual != *expected {
                    return Err(Error::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            None => Digest::of(&bytes),
        };
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }
}

/// Where images are copied from.
#[async_trait]
pub trait Origin: Send + Sync {
    /// A manifest by tag or digest; `None` when the origin has no such manifest.
    async fn manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Fetched>>;
    /// A blob's bytes.
    async fn blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<ByteStream>;
    /// The manifests whose subject is `subject`.
    async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<Descriptor>>;
    /// Every tag of the repository.
    async fn tags(&self, repo: &RepositoryName) -> Result<Vec<Tag>>;
}

/// Where images are copied to.
#[async_trait]
pub trait Destination: Send + Sync {
    /// The digest of the manifest `reference` names, or `None` when the destination lacks it.
    async fn manifest_digest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Digest>>;
    /// Whether the repository holds the blob, or got it now without its bytes being sent (a
    /// mount from elsewhere in the destination).
    async fn has_blob(&self, repo: &RepositoryName, descriptor: &Descriptor) -> Result<bool>;
    /// Stores a blob, verifying that `data` is `descriptor`'s digest and size.
    async fn put_blob(
        &self,
        repo: &RepositoryName,
        descriptor: &Descriptor,
        data: ByteStream,
    ) -> Result<()>;
    /// Stores a manifest under `reference` once everything it names is there; `partial`: an
    /// index of which only some children were copied.
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        manifest: &Fetched,
        partial: bool,
    ) -> Result<()>;
}

/// Which parts of an image a copy takes.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Children of an index kept, as `os/architecture[/variant]`; empty keeps them all.
    pub platforms: Vec<String>,
    /// Copy the referrers of every manifest copied (signatures follow their images).
    pub referrers: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platforms: Vec::new(),
            referrers: true,
        }
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// The digest of the manifest copied.
    pub digest: Option<Digest>,
    /// Manifests written to the destination.
    pub manifests: usize,
    /// Manifests the destination had already.
    pub manifests_present: usize,
    /// Blobs sent.
    pub blobs: usize,
    /// Bytes of the blobs sent.
    pub bytes: u64,
    /// Blobs the destination had, or mounted.
    pub blobs_present: usize,
}

/// Copies the manifest `from` names in `from_repo`, with everything it reaches, to `to` in
/// `to_repo`. [`Error::ManifestUnknown`] when the origin lacks it.
pub async fn copy(
    origin: &dyn Origin,
    from_repo: &RepositoryName,
    from: &Reference,
    destination: &dyn Destination,
    to_repo: &RepositoryName,
    to: &Reference,
    options: &CopyOptions,
) -> Result<Copied> {
    let top = origin
        .manifest(from_repo, from)
        .await?
        .ok_or_else(|| Error::ManifestUnknown {
            reference: from.to_string(),
        })?;
    let mut run = Run {
        origin,
        destination,
        from_repo,
        to_repo,
        options,
        copied: Copied {
            digest: Some(top.digest.clone()),
            ..Copied::default()
        },
        seen: HashSet::new(),
    };
    let here = destination.manifest_digest(to_repo, to).await?;
    if here.as_ref() == Some(&top.digest) {
        // There already; an index may hold only some platforms (an earlier filtered copy).
        run.copied.manifests_present += 1;
        run.seen.insert(top.digest.clone());
        let parsed = Manifest::parse(&top.bytes, top.media_type.as_deref())?;
        for child in &parsed.manifests {
            if run.wanted(child) {
                run.by_digest(&child.digest, 0).await?;
            }
        }
        run.referrers_of(&top.digest, 0).await?;
    } else {
        run.manifest(top, to, 0).await?;
    }
    Ok(run.copied)
}

/// One copy's state.
struct Run<'a> {
    origin: &'a dyn Origin,
    destination: &'a dyn Destination,
    from_repo: &'a RepositoryName,
    to_repo: &'a RepositoryName,
    options: &'a CopyOptions,
    copied: Copied,
    /// Manifests handled, so that a cycle of referrers ends.
    seen: HashSet<Digest>,
}

impl Run<'_> {
    /// Copies a fetched manifest and what it names, then stores it under `to`.
    async fn manifest(&mut self, fetched: Fetched, to: &Reference, depth: usize) -> Result<()> {
        self.seen.insert(fetched.digest.clone());
        let parsed = Manifest::parse(&fetched.bytes, fetched.media_type.as_deref())?;
        let mut partial = false;
        match parsed.kind {
            ManifestKind::Index => {
                for child in &parsed.manifests {
                    if !self.wanted(child) {
                        partial = true;
                        continue;
                    }
                    self.by_digest(&child.digest, depth).await?;
                }
            }
            ManifestKind::Image => {
                for blob in parsed.blob_references() {
                    self.blob(blob).await?;
                }
            }
        }
        self.destination
            .put_manifest(self.to_repo, to, &fetched, partial)
            .await?;
        self.copied.manifests += 1;
        self.referrers_of(&fetched.digest, depth).await
    }

    /// Copies a manifest named by digest (a child, a referrer) unless the destination has it.
    fn by_digest<'s>(
        &'s mut self,
        digest: &'s Digest,
        depth: usize,
    ) -> futures::future::BoxFuture<'s, Result<()>> {
        Box::pin(async move {
            if !self.seen.insert(digest.clone()) {
                return Ok(());
            }
            let reference = Reference::Digest(digest.clone());
            if self
                .destination
                .manifest_digest(self.to_repo, &reference)
                .await?
                .is_some()
            {
                self.copied.manifests_present += 1;
                return self.referrers_of(digest, depth).await;
            }
            let fetched = self
                .origin
                .manifest(self.from_repo, &reference)
                .await?
                .ok_or_else(|| Error::ManifestUnknown {
                    reference: digest.to_string(),
                })?;
            self.manifest(fetched, &reference, depth).await
        })
    }

    /// Copies the referrers of `subject`, and theirs, to [`MAX_REFERRER_DEPTH`].
    async fn referrers_of(&mut self, subject: &Digest, depth: usize) -> Result<()> {
        if !self.options.referrers || depth >= MAX_REFERRER_DEPTH {
            return Ok(());
        }
        let referrers = self.origin.referrers(self.from_repo, subject).await?;
        for referrer in referrers {
            self.by_digest(&referrer.digest, depth + 1).await?;
        }
        Ok(())
    }

    async fn blob(&mut self, blob: &Descriptor) -> Result<()> {
        if self.destination.has_blob(self.to_repo, blob).await? {
            self.copied.blobs_present += 1;
            return Ok(());
        }
        let data = self.origin.blob(self.from_repo, &blob.digest).await?;
        self.destination.put_blob(self.to_repo, blob, data).await?;
        self.copied.blobs += 1;
        self.copied.bytes += blob.size;
        Ok(())
    }

    /// Whether a child of an index is kept by the platform filter.
    fn wanted(&self, child: &Descriptor) -> bool {
        self.options.platforms.is_empty()
            || child.platform.as_ref().is_none_or(|p| {
                self.options
                    .platforms
                    .iter()
                    .any(|f| platform_matches(f, p))
            })
    }
}

/// Whether `filter` (`os/architecture[/variant]`) names the platform of an index entry.
pub fn platform_matches(filter: &str, platform: &serde_json::Value) -> bool {
    let mut parts = filter.split('/');
    let field = |name: &str| platform.get(name).and_then(|v| v.as_str()).unwrap_or("");
    let os = parts.next().unwrap_or("");
    let arch = parts.next().unwrap_or("");
    let variant = parts.next();
    os == field("os")
        && arch == field("architecture")
        && variant.is_none_or(|v| v == field("variant"))
}

#[async_trait]
impl Origin for Registry {
    async fn manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Fetched>> {
        match self.get_manifest(repo, reference).await {
            Ok(content) => Ok(Some(Fetched {
                digest: content.info.digest,
                media_type: Some(content.info.media_type),
                bytes: content.bytes,
            })),
            Err(Error::ManifestUnknown { .. } | Error::NameUnknown { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<ByteStream> {
        Ok(self.get_blob(repo, digest, None).await?.stream)
    }

    async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<Descriptor>> {
        self.list_referrers(repo, subject, None).await
    }

    async fn tags(&self, repo: &RepositoryName) -> Result<Vec<Tag>> {
        let mut tags = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let page = match self.list_tags(repo, Some(1000), last.as_deref()).await {
                Ok(page) => page,
                Err(Error::NameUnknown { .. }) => return Ok(tags),
                Err(e) => return Err(e),
            };
            last = page.items.last().cloned();
            for tag in page.items {
                tags.push(tag.parse()?);
            }
            if !page.more || last.is_none() {
                return Ok(tags);
            }
        }
    }
}

#[async_trait]
impl Destination for Registry {
    async fn manifest_digest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Digest>> {
        let found = match reference {
            Reference::Tag(tag) => return Ok(self.tag(repo, tag).await?.map(|r| r.digest)),
            Reference::Digest(_) => self.stat_manifest(repo, reference).await,
        };
        match found {
            Ok(info) => Ok(Some(info.digest)),
            Err(Error::ManifestUnknown { .. } | Error::NameUnknown { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn has_blob(&self, repo: &RepositoryName, descriptor: &Descriptor) -> Result<bool> {
        let found = match self.stat_blob(repo, &descriptor.digest).await {
            Err(Error::BlobUnknown { .. }) => self.mount_blob(repo, &descriptor.digest, None).await,
            found => found,
        };
        match found {
            Ok(_) => Ok(true),
            Err(Error::BlobUnknown { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn put_blob(
        &self,
        repo: &RepositoryName,
        descriptor: &Descriptor,
        data: ByteStream,
    ) -> Result<()> {
        Registry::put_blob(self, repo, &descriptor.digest, data, Some(descriptor.size))
            .await
            .map(drop)
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        manifest: &Fetched,
        partial: bool,
    ) -> Result<()> {
        let (bytes, media_type) = (manifest.bytes.clone(), manifest.media_type.as_deref());
        match partial {
            true => {
                self.put_partial_index(repo, reference, media_type, bytes)
                    .await
            }
            false => Registry::put_manifest(self, repo, reference, media_type, bytes).await,
        }
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_match_by_os_architecture_and_variant() {
        let arm = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        assert!(platform_matches("linux/arm64", &arm));
        assert!(platform_matches("linux/arm64/v8", &arm));
        assert!(!platform_matches("linux/arm64/v7", &arm));
        assert!(!platform_matches("linux/amd64", &arm));
        assert!(!platform_matches("windows/arm64", &arm));
    }
}
