//! Manifests and tags: storing, reading and deleting them, the admission hook asked before a
//! change and the change feed told after.

use bytes::Bytes;

use crate::admission::Change;
use crate::digest::Digest;
use crate::error::Result;
use crate::feed::Committed;
use crate::manifests::{ManifestContent, References};
use crate::reference::{Reference, RepositoryName, Tag};
use crate::stored::ManifestInfo;
use crate::tags::TagRecord;

use super::Registry;

impl Registry {
    /// Stores a manifest's exact bytes under a tag or its digest, after validating them and
    /// asking the admission hook.
    ///
    /// Order of writes (each atomic): the bytes, the revision link, the referrers entry, the
    /// catalog entry, the tag's history, the tag. A crash between two leaves at worst
    /// unreferenced data, never a tag pointing at nothing.
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.writable(repo)?;
        let references = match self.config.validate_references {
            true => References::All,
            false => References::Present,
        };
        self.store_manifest(repo, reference, content_type, bytes, references, true)
            .await
    }

    /// Stores an index of which only some children are here, as a sync that keeps some
    /// platforms does: as [`Registry::put_manifest`] (the admission hook asked, every blob
    /// required), but the children it names may be missing, and a pull of one of those is
    /// `MANIFEST_UNKNOWN`. The index keeps its bytes, so its digest is the upstream's.
    pub async fn put_partial_index(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.writable(repo)?;
        self.store_manifest(
            repo,
            reference,
            content_type,
            bytes,
            References::Blobs,
            true,
        )
        .await
    }

    /// Stores a manifest a source fetched, as [`Registry::put_manifest`] does but without
    /// requiring its blobs and children in the repository (the source fetches those when they
    /// are asked for) and without the admission hook (the upstream's content is not a user's
    /// change). Storing it again refreshes its links' age, which tells garbage collection the
    /// cached manifest is still in use.
    pub(crate) async fn cache_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<ManifestInfo> {
        self.store_manifest(
            repo,
            reference,
            content_type,
            bytes,
            References::Unchecked,
            false,
        )
        .await
    }

    async fn store_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        references: References,
        admit: bool,
    ) -> Result<ManifestInfo> {
        let m = self
            .manifests
            .validate(repo, reference, content_type, bytes, references)
            .await?;
        let digest = &m.info.digest;
        let one_at_a_time = match (&self.admission, admit) {
            (Some(rules), true) => self.groups.hold(rules.serial_groups(repo)).await,
            _ => Vec::new(),
        };
        let (tag, previous) = match reference {
            Reference::Tag(t) => (Some(t), self.tags.get(repo, t).await?),
            Reference::Digest(_) => (None, None),
        };
        if admit {
            self.admit(Change::PutManifest {
                repository: repo,
                digest,
                manifest: &m.manifest,
                size: m.info.size,
                tag,
            })
            .await?;
            if let Some(tag) = tag {
                self.admit(Change::MoveTag {
                    repository: repo,
                    tag,
                    from: previous.as_ref().map(|p| &p.digest),
                    to: digest,
                })
                .await?;
            }
        }
        self.manifests.store(repo, &m).await?;
        let created = self.catalog.add(repo).await?;
        if let Some(tag) = tag {
            self.tags
                .set(repo, tag, digest, previous.as_ref(), &self.caller, false)
                .await?;
        }
        drop(one_at_a_time);
        if created {
            self.publish(Committed::RepositoryCreated {
                repository: repo.clone(),
            })
            .await;
        }
        self.publish(Committed::ManifestStored {
            repository: repo.clone(),
            digest: digest.clone(),
            media_type: m.info.media_type.clone(),
            size: m.info.size,
            tag: tag.cloned(),
            subject: m.info.subject.clone(),
        })
        .await;
        let from = previous.map(|p| p.digest);
        if let Some(tag) = tag
            && from.as_ref() != Some(digest)
        {
            self.publish(Committed::TagMoved {
                repository: repo.clone(),
                tag: tag.clone(),
                from,
                to: digest.clone(),
                restored: false,
            })
            .await;
        }
        Ok(m.info)
    }

    /// Digest, media type and size of a manifest, by tag or digest.
    pub async fn stat_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestInfo> {
        self.refresh_from_source(repo, reference).await?;
        let digest = self.resolve(repo, reference).await?;
        let info = self.manifests.stat(repo, &digest, reference).await?;
        self.note_pull(repo, reference).await;
        Ok(info)
    }

    /// A manifest's bytes as received, by tag or digest.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        self.refresh_from_source(repo, reference).await?;
        let digest = self.resolve(repo, reference).await?;
        let content = self.manifests.get(repo, &digest, reference).await?;
        self.note_pull(repo, reference).await;
        Ok(content)
    }

    /// A manifest as [`Registry::get_manifest`] reads it, without recording a pull: for pages
    /// that show manifests to people (a look is not a pull, and retention must not count it).
    pub async fn peek_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestContent> {
        let digest = self.resolve(repo, reference).await?;
        self.manifests.get(repo, &digest, reference).await
    }

    /// Every tag of a repository with when it was last pushed or moved: one listing of its tag
    /// folder, whatever the number of tags (for pages that sort tags by push).
    pub async fn tag_times(
        &self,
        repo: &RepositoryName,
    ) -> Result<Vec<(Tag, std::time::SystemTime)>> {
        self.tags.times(repo).await
    }

    async fn resolve(&self, repo: &RepositoryName, reference: &Reference) -> Result<Digest> {
        match reference {
            Reference::Digest(d) => Ok(d.clone()),
            Reference::Tag(t) => self.tags.resolve(repo, t).await,
        }
    }

    /// Deletes a manifest from a repository, with every tag pointing at it (each change kept in
    /// the tag's history) and its referrers entry, once the admission hook allows it.
    pub async fn delete_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.writable(repo)?;
        let info = self
            .manifests
            .stat(repo, digest, &Reference::Digest(digest.clone()))
            .await?;
        let tags: Vec<Tag> = self
            .tags
            .all(repo)
            .await?
            .into_iter()
            .filter(|(_, record)| record.digest == *digest)
            .map(|(tag, _)| tag)
            .collect();
        self.admit(Change::DeleteManifest {
            repository: repo,
            digest,
            tags: &tags,
        })
        .await?;
        for tag in &tags {
            self.tags.delete(repo, tag, digest, &self.caller).await?;
        }
        self.manifests.remove(repo, digest).await?;
        let emptied = self.catalog.remove_if_empty(repo, &self.manifests).await?;
        for tag in tags {
            self.publish(Committed::TagDeleted {
                repository: repo.clone(),
                tag,
                digest: digest.clone(),
            })
            .await;
        }
        self.publish(Committed::ManifestDeleted {
            repository: repo.clone(),
            digest: digest.clone(),
            media_type: Some(info.media_type),
        })
        .await;
        if emptied {
            self.publish(Committed::RepositoryEmptied {
                repository: repo.clone(),
            })
            .await;
        }
        Ok(())
    }

    /// Removes a tag, keeping the change in its history; the manifest it pointed at stays.
    pub async fn delete_tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<()> {
        self.writable(repo)?;
        let digest = self.tags.resolve(repo, tag).await?;
        self.admit(Change::DeleteTag {
            repository: repo,
            tag,
            digest: &digest,
        })
        .await?;
        self.tags.delete(repo, tag, &digest, &self.caller).await?;
        self.publish(Committed::TagDeleted {
            repository: repo.clone(),
            tag: tag.clone(),
            digest,
        })
        .await;
        Ok(())
    }

    /// A tag's record: the manifest it points at and when it last moved. `None` when the
    /// repository has no such tag.
    pub async fn tag(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<TagRecord>> {
        self.tags.get(repo, tag).await
    }
}
