//! Blobs and uploads: the content side of the façade.

use std::time::Duration;

use crate::admission::Change;
use crate::blobs::{BlobContent, BlobInfo};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::feed::Committed;
use crate::reference::RepositoryName;
use crate::storage::{ByteStream, GetRange};
use crate::upload::UploadStatus;

use super::Registry;
use super::source::Read;

impl Registry {
    /// Size of a blob in the repository. [`Error::BlobUnknown`] when the repository lacks it.
    pub async fn stat_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<BlobInfo> {
        let local = self.blobs.stat(repo, digest).await;
        self.served_locally(repo, Read::Blob, &local);
        let source = match (&local, self.source_for(repo)) {
            (Err(Error::BlobUnknown { .. }), Some(source)) => source,
            _ => return local,
        };
        match source.blob(&self.fill(), repo, digest, true, false).await? {
            Some(sourced) => Ok(BlobInfo {
                digest: digest.clone(),
                size: sourced.size,
            }),
            None => self.blobs.stat(repo, digest).await,
        }
    }

    /// Streams a blob, or a range of it.
    pub async fn get_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<GetRange>,
    ) -> Result<BlobContent> {
        let local = self.blobs.get(repo, digest, range.clone()).await;
        self.served_locally(repo, Read::Blob, &local);
        let source = match (&local, self.source_for(repo)) {
            (Err(Error::BlobUnknown { .. }), Some(source)) => source,
            _ => return local,
        };
        let whole = range.is_none();
        match source
            .blob(&self.fill(), repo, digest, false, whole)
            .await?
        {
            Some(sourced) => Ok(BlobContent {
                digest: digest.clone(),
                size: sourced.size,
                range: 0..sourced.size,
                stream: sourced.stream,
            }),
            None => self.blobs.get(repo, digest, range).await,
        }
    }

    /// A URL from which the blob can be read directly from storage for `expires_in`, when the
    /// backend can sign one; `None` otherwise, and when the blob is still to come from the source
    /// serving the repository. [`Error::BlobUnknown`] when the repository lacks it.
    pub async fn blob_url(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        expires_in: Duration,
    ) -> Result<Option<String>> {
        match self.blobs.url(repo, digest, expires_in).await {
            Err(Error::BlobUnknown { .. }) if self.source_for(repo).is_some() => Ok(None),
            Ok(Some(url)) => {
                self.served_locally(repo, Read::Blob, &Ok(()));
                Ok(Some(url))
            }
            answer => answer,
        }
    }

    /// Removes a blob from a repository. Its bytes stay for other repositories (and for garbage
    /// collection to reclaim when nothing links them).
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.writable(repo)?;
        self.admit(Change::DeleteBlob {
            repository: repo,
            digest,
        })
        .await?;
        self.blobs.unlink(repo, digest).await?;
        self.publish(Committed::BlobUnlinked {
            repository: repo.clone(),
            digest: digest.clone(),
        })
        .await;
        Ok(())
    }

    /// Stores a whole blob in one go, when its digest is known up front (a monolithic push):
    /// hashed as it streams, visible only once the digest (and `expected_len`, if given)
    /// matched. Stored bytes are never replaced.
    pub async fn put_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<BlobInfo> {
        self.writable(repo)?;
        let info = self.blobs.put(repo, digest, data, expected_len).await?;
        self.blob_stored(repo, &info).await;
        Ok(info)
    }

    /// Links a blob into `repo` from `from`, or from anywhere in the store when `from` is `None`,
    /// without copying bytes. [`Error::BlobUnknown`] when the source lacks it.
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: Option<&RepositoryName>,
    ) -> Result<BlobInfo> {
        self.writable(repo)?;
        let info = self.blobs.mount(repo, digest, from).await?;
        self.blob_stored(repo, &info).await;
        Ok(info)
    }

    /// Starts an upload session in `repo`. Storage is touched for the bytes only once they come.
    pub async fn start_upload(&self, repo: &RepositoryName) -> Result<UploadStatus> {
        self.writable(repo)?;
        self.uploads.start(repo).await
    }

    /// Where an upload stands.
    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        self.uploads.status(repo, id).await
    }

    /// Appends a chunk to an upload. `offset`, when the client gave one, must equal the bytes
    /// already received ([`Error::ChunkOutOfOrder`] otherwise, with the current offset);
    /// `expected_len`, when given, must equal the bytes the body carries.
    pub async fn append_chunk(
        &self,
        repo: &RepositoryName,
        id: &str,
        offset: Option<u64>,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<UploadStatus> {
        self.writable(repo)?;
        self.uploads
            .append(repo, id, offset, data, expected_len)
            .await
    }

    /// Ends an upload: stores an optional last chunk, checks the digest of everything received,
    /// and only then makes the blob visible in the repository. On a digest mismatch nothing is
    /// stored and the session ends. Every step can be repeated: a client retrying after a crash at
    /// any point gets the blob.
    pub async fn complete_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        last_chunk: Option<(ByteStream, Option<u64>)>,
    ) -> Result<BlobInfo> {
        self.writable(repo)?;
        let info = self.uploads.complete(repo, id, digest, last_chunk).await?;
        self.blob_stored(repo, &info).await;
        Ok(info)
    }

    /// Abandons an upload and frees what it stored.
    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.writable(repo)?;
        self.uploads.cancel(repo, id).await
    }

    async fn blob_stored(&self, repo: &RepositoryName, info: &BlobInfo) {
        self.publish(Committed::BlobStored {
            repository: repo.clone(),
            digest: info.digest.clone(),
            size: info.size,
        })
        .await;
    }
}
