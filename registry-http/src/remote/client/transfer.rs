//! A remote registry as an origin and a destination of `registry_core::transfer`: what
//! `registry copy`, replication and sync copy with.

use async_trait::async_trait;
use registry_core::error::UpstreamFailure;
use registry_core::manifest::{Descriptor, Manifest};
use registry_core::transfer::{Destination, Fetched, Origin};
use registry_core::{ByteStream, Digest, Error, Reference, RepositoryName, Result, Tag};

use super::push::MANIFEST_LIMIT;
use super::{Upstream, UpstreamError};

impl UpstreamError {
    /// This failure as the core's [`Error::Upstream`]; `missing` says what a 404 means.
    pub fn into_error(self, missing: UpstreamFailure) -> Error {
        let failure = match &self {
            UpstreamError::NotFound(_) => missing,
            UpstreamError::TooManyRequests(_) => UpstreamFailure::RateLimited,
            UpstreamError::Refused(_) | UpstreamError::Unreachable(_) => {
                UpstreamFailure::Unavailable
            }
        };
        Error::Upstream {
            failure,
            detail: self.to_string(),
        }
    }
}

fn failed(e: UpstreamError) -> Error {
    e.into_error(UpstreamFailure::Unavailable)
}

#[async_trait]
impl Origin for Upstream {
    async fn manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Fetched>> {
        let expected = match reference {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        };
        match self
            .get_manifest(
                repo.as_str(),
                &reference.to_string(),
                expected,
                MANIFEST_LIMIT,
            )
            .await
        {
            // `get_manifest` checked the bytes against both digests it may have.
            Ok(m) => Ok(Some(Fetched {
                digest: match expected.or(m.digest.as_ref()) {
                    Some(d) => d.clone(),
                    None => Digest::of(&m.bytes),
                },
                bytes: m.bytes,
                media_type: m.media_type,
            })),
            Err(UpstreamError::NotFound(_)) => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    async fn blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<ByteStream> {
        self.blob_stream(repo.as_str(), digest)
            .await
            .map_err(|e| e.into_error(UpstreamFailure::BlobUnknown))
    }

    async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<Descriptor>> {
        Upstream::referrers(self, repo.as_str(), subject)
            .await
            .map_err(failed)
    }

    async fn tags(&self, repo: &RepositoryName) -> Result<Vec<Tag>> {
        let tags = Upstream::tags(self, repo.as_str()).await.map_err(failed)?;
        Ok(tags.iter().filter_map(|t| t.parse().ok()).collect())
    }
}

#[async_trait]
impl Destination for Upstream {
    async fn manifest_digest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Digest>> {
        let name = reference.to_string();
        match self.head_manifest(repo.as_str(), &name).await {
            Ok(Some(digest)) => return Ok(Some(digest)),
            Ok(None) => {}
            Err(UpstreamError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(failed(e)),
        }
        // No digest in the answer: read the manifest to know it.
        Origin::manifest(self, repo, reference)
            .await
            .map(|m| m.map(|m| m.digest))
    }

    async fn has_blob(&self, repo: &RepositoryName, descriptor: &Descriptor) -> Result<bool> {
        let repo = repo.as_str();
        if Upstream::has_blob(self, repo, &descriptor.digest)
            .await
            .map_err(failed)?
        {
            return Ok(true);
        }
        self.mount_blob(repo, &descriptor.digest)
            .await
            .map_err(failed)
    }

    async fn put_blob(
        &self,
        repo: &RepositoryName,
        descriptor: &Descriptor,
        data: ByteStream,
    ) -> Result<()> {
        Upstream::put_blob(
            self,
            repo.as_str(),
            &descriptor.digest,
            descriptor.size,
            data,
        )
        .await
        .map_err(failed)
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        manifest: &Fetched,
        _partial: bool,
    ) -> Result<()> {
        let parsed = Manifest::parse(&manifest.bytes, manifest.media_type.as_deref())?;
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| parsed.media_type.clone());
        let indexed = Upstream::put_manifest(
            self,
            repo.as_str(),
            &reference.to_string(),
            &media_type,
            manifest.bytes.clone(),
        )
        .await
        .map_err(failed)?;
        let Some(subject) = parsed.subject.as_ref().filter(|_| !indexed) else {
            return Ok(());
        };
        let referrer = Descriptor {
            media_type,
            digest: manifest.digest.clone(),
            size: manifest.bytes.len() as u64,
            artifact_type: parsed.referrer_artifact_type(),
            annotations: parsed.annotations.clone(),
            urls: None,
            platform: None,
        };
        self.add_fallback_referrer(repo.as_str(), &subject.digest, referrer)
            .await
            .map_err(failed)
    }
}
