//! The removing half of a collection.

use std::collections::HashSet;
use std::future::Future;
use std::time::SystemTime;

use futures::TryStreamExt;

use crate::admission::Caller;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::feed::{Committed, Origin};
use crate::paths;
use crate::reference::{RepositoryName, Tag};
use crate::registry::Registry;
use crate::storage::{ObjectMeta, StorageExt};
use crate::upload::UploadSession;

use super::{COLLECTOR, GcOptions, RETENTION, Removal, concurrently, used_since};
use crate::walk::StoredBlob;

/// The removing half of a collection: each step removes (unless this is a dry run) and returns
/// what it removed.
#[derive(Clone, Copy)]
pub(super) struct Collection<'a> {
    pub(super) registry: &'a Registry,
    pub(super) dry_run: bool,
}

/// A new announcement that a removal of `digest` is under way ([`paths::blob_collecting`]):
/// unique to that one removal, so that removals running at once (of one manifest from two
/// repositories, or by two collections) never withdraw each other's.
fn announcement(digest: &Digest) -> String {
    paths::blob_collecting(digest, &uuid::Uuid::new_v4().simple().to_string())
}

/// The caller a collection makes its changes as: who (the collector or retention) and from where.
fn collector(identity: &str, origin: Origin) -> Caller {
    Caller {
        identity: Some(identity.into()),
        origin,
        ..Caller::default()
    }
}

impl Collection<'_> {
    /// Hands a change the collection made to the change feed.
    async fn publish(&self, caller: Caller, change: Committed) {
        self.registry.as_caller(caller).publish(change).await;
    }

    pub(super) async fn delete(&self, key: &str) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        Ok(self.registry.storage().delete(key).await?)
    }

    /// [`Collection::delete`] of a key it owns, for `concurrently`.
    pub(super) async fn delete_owned(&self, key: String) -> Result<()> {
        self.delete(&key).await
    }

    pub(super) async fn remove_tag(&self, name: &RepositoryName, tag: &Tag) -> Result<Removal> {
        if !self.dry_run
            && let Some(record) = self.registry.tags.get(name, tag).await?
        {
            let caller = collector(COLLECTOR, Origin::Gc);
            self.registry
                .tags
                .delete(name, tag, &record.digest, &caller)
                .await?;
            self.publish(
                caller,
                Committed::TagDeleted {
                    repository: name.clone(),
                    tag: tag.clone(),
                    digest: record.digest,
                },
            )
            .await;
        }
        Ok(Removal::Tag {
            repository: name.clone(),
            tag: tag.clone(),
        })
    }

    /// Removes a tag retention keeps no clause for, unless it moved since it was read. `None`
    /// when it stays.
    pub(super) async fn untag(
        &self,
        name: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<Option<Removal>> {
        if !self.dry_run {
            match self.registry.tags.get(name, tag).await? {
                Some(record) if record.digest == *digest => {
                    let caller = collector(RETENTION, Origin::Retention);
                    self.registry
                        .tags
                        .delete(name, tag, digest, &caller)
                        .await?;
                    self.publish(
                        caller,
                        Committed::TagDeleted {
                            repository: name.clone(),
                            tag: tag.clone(),
                            digest: digest.clone(),
                        },
                    )
                    .await;
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(Removal::Tag {
            repository: name.clone(),
            tag: tag.clone(),
        }))
    }

    /// Runs `remove` unless `in_use` finds that a push used the content since the listing. Outside
    /// a dry run the removal is announced first ([`announcement`]), `in_use` is read after the
    /// announcement (a push that used the content before it is seen; one after it sees the
    /// announcement, or the content gone, and is refused), and the announcement is withdrawn
    /// last. A dry run only reads. True when the content went (or would go). `recorded`: a
    /// candidate record of the blob is in the store already (an incremental collection examining
    /// it settles that record only after this), so none is written first.
    async fn unless_in_use<U, R>(
        &self,
        digest: &Digest,
        recorded: bool,
        in_use: impl FnOnce() -> U,
        remove: impl FnOnce() -> R,
    ) -> Result<bool>
    where
        U: Future<Output = Result<bool>>,
        R: Future<Output = Result<()>>,
    {
        if self.dry_run {
            return Ok(!in_use().await?);
        }
        let storage = self.registry.storage();
        // First the candidate record: a collection that stops after announcing leaves an
        // announcement the next incremental collection then looks at, and removes.
        if !recorded {
            self.registry.blobs.candidates.blob(digest).await?;
        }
        let key = announcement(digest);
        storage.put(&key, bytes::Bytes::new()).await?;
        let removed = match in_use().await {
            Ok(true) => Ok(false),
            Ok(false) => remove().await.map(|()| true),
            Err(e) => Err(e),
        };
        storage.delete(&key).await?;
        removed
    }

    /// Removes an unreached manifest's revision unless the manifest was pushed again since the
    /// listing (its revision, bytes or in-use mark newer; a push writes the bytes, then looks for
    /// an announcement, then writes the revision). `None` when it stays.
    pub(super) async fn remove_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<Option<Removal>> {
        let remove = || async {
            match self.registry.manifests.remove(name, digest).await {
                Ok(()) => {
                    self.publish(
                        collector(COLLECTOR, Origin::Gc),
                        Committed::ManifestDeleted {
                            repository: name.clone(),
                            digest: digest.clone(),
                            media_type: None,
                        },
                    )
                    .await;
                    Ok(())
                }
                Err(Error::ManifestUnknown { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        };
        let in_use = || self.pushed_since(name, digest, cutoff);
        Ok(self
            .unless_in_use(digest, false, in_use, remove)
            .await?
            .then(|| Removal::Manifest {
                repository: name.clone(),
                digest: digest.clone(),
            }))
    }

    /// Whether the revision of `digest` in `name` is gone, or it or the manifest's bytes or
    /// in-use mark were written after `cutoff`: a push of that manifest since the listing.
    async fn pushed_since(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<bool> {
        let storage = self.registry.storage();
        for (key, missing) in [
            // No revision: a delete came first, nothing to remove.
            (paths::manifest_link(name, digest), true),
            // No bytes: no push wrote them since.
            (paths::blob_data(digest), false),
        ] {
            match storage.head(&key).await {
                Ok(meta) if meta.last_modified > cutoff => return Ok(true),
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    if missing {
                        return Ok(true);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        used_since(self.registry, digest, None, cutoff).await
    }

    /// Removes a layer link unless a push marked its blob since the listing (a manifest push
    /// looks for the link only after it looked for an announcement). `None` when it stays.
    pub(super) async fn remove_link(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        blob: Option<&StoredBlob>,
        cutoff: SystemTime,
    ) -> Result<Option<Removal>> {
        let remove = || async {
            let storage = self.registry.storage();
            storage.delete(&paths::layer_link(name, digest)).await?;
            self.publish(
                collector(COLLECTOR, Origin::Gc),
                Committed::BlobUnlinked {
                    repository: name.clone(),
                    digest: digest.clone(),
                },
            )
            .await;
            Ok(())
        };
        let in_use = || used_since(self.registry, digest, blob, cutoff);
        Ok(self
            .unless_in_use(digest, false, in_use, remove)
            .await?
            .then(|| Removal::Link {
                repository: name.clone(),
                digest: digest.clone(),
            }))
    }

    /// Removes a blob unless a push marked it since the listing: its data or location record
    /// first (the blob is then unknown), then the bytes a location pointed at, then its marker.
    /// `None` when it stays. `recorded`: a candidate record of the blob is in the store already
    /// (see `unless_in_use`).
    pub(super) async fn remove_blob(
        &self,
        digest: &Digest,
        blob: &StoredBlob,
        cutoff: SystemTime,
        recorded: bool,
    ) -> Result<Option<Removal>> {
        let marker = paths::blob_used(digest);
        if blob.marker_only() {
            // A marker whose blob never arrived, or what a stopped collection left.
            self.delete(&marker).await?;
            for (key, _) in &blob.collecting {
                self.delete(key).await?;
            }
            for key in self.linked_records(digest, blob, cutoff).await? {
                self.delete(&key).await?;
            }
            return Ok(Some(Removal::Orphan {
                key: marker,
                bytes: 0,
            }));
        }
        let remove = || async {
            let storage = self.registry.storage();
            for key in blob.keys(digest).iter().chain(&blob.target) {
                storage.delete(key).await?;
            }
            storage.delete(&marker).await?;
            // No repository links it (a full collection saw none; an incremental one asked each
            // repository these records name): the records listed are stale (a push linking it
            // since wrote a record of its own).
            for key in self.linked_records(digest, blob, cutoff).await? {
                storage.delete(&key).await?;
            }
            self.registry.blobs.forget(digest);
            self.publish(
                collector(COLLECTOR, Origin::Gc),
                Committed::BlobRemoved {
                    digest: digest.clone(),
                    size: blob.size,
                },
            )
            .await;
            Ok(())
        };
        let in_use = || used_since(self.registry, digest, Some(blob), cutoff);
        Ok(self
            .unless_in_use(digest, recorded, in_use, remove)
            .await?
            .then(|| Removal::Blob {
                digest: digest.clone(),
                bytes: blob.size,
            }))
    }

    /// The keys of the blob's `linked/` records to remove with it: those its record holds (listed
    /// before the removal was announced), or, for a full collection's record, which keeps none,
    /// those a listing of the blob's folder finds older than `cutoff` (a younger one may be a
    /// push's that linked the blob again since the announcement: its record stays).
    async fn linked_records(
        &self,
        digest: &Digest,
        blob: &StoredBlob,
        cutoff: SystemTime,
    ) -> Result<Vec<String>> {
        if !blob.linked.is_empty() {
            return Ok(blob.linked.iter().map(|(_, key, _)| key.clone()).collect());
        }
        let listed: Vec<ObjectMeta> = self
            .registry
            .storage()
            .list_all(&paths::blob_folder(digest))
            .try_collect()
            .await?;
        Ok(listed
            .into_iter()
            .filter(|m| {
                m.last_modified <= cutoff
                    && matches!(
                        paths::parse_blob_key(&m.key),
                        Some((_, paths::BlobObject::Linked(_)))
                    )
            })
            .map(|m| m.key)
            .collect())
    }

    /// Removes `data/<id>` objects that no blob location names and no upload is writing.
    pub(super) async fn remove_orphans(
        &self,
        targets: &HashSet<String>,
        cutoff: SystemTime,
    ) -> Result<Vec<Removal>> {
        let storage = self.registry.storage();
        let listed: Vec<ObjectMeta> = storage.list_all(paths::DATA).try_collect().await?;
        let mut old = Vec::new();
        for meta in listed {
            if meta.last_modified <= cutoff && !targets.contains(&meta.key) {
                old.push(meta);
            }
        }
        let removed = concurrently(old, |meta| async move {
            let id = meta.key.rsplit('/').next().unwrap_or_default();
            if storage.exists(&paths::upload_session(id)).await? {
                return Ok(None);
            }
            self.remove_orphan(meta).await.map(Some)
        })
        .await?;
        Ok(removed.into_iter().flatten().collect())
    }

    pub(super) async fn remove_orphan(&self, meta: ObjectMeta) -> Result<Removal> {
        self.delete(&meta.key).await?;
        Ok(Removal::Orphan {
            key: meta.key,
            bytes: meta.size,
        })
    }

    /// Ends uploads whose session was last written longer than `upload_max_age` ago, and removes
    /// what a crash left in upload folders (tails no session names) once older than the grace.
    pub(super) async fn purge_uploads(
        &self,
        options: &GcOptions,
        now: SystemTime,
    ) -> Result<Vec<Removal>> {
        let since = |age| now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
        let (idle_since, cutoff) = (since(options.upload_max_age), since(options.grace));
        let ids = self.registry.storage().list(paths::UPLOADS).await?.prefixes;
        let removed = concurrently(ids, |id| self.purge_upload(id, idle_since, cutoff)).await?;
        Ok(removed.into_iter().flatten().collect())
    }

    pub(super) async fn purge_upload(
        &self,
        id: String,
        idle_since: SystemTime,
        cutoff: SystemTime,
    ) -> Result<Vec<Removal>> {
        let storage = self.registry.storage();
        let mut removed = Vec::new();
        let objects = storage.list(&paths::upload(&id)).await?.objects;
        let session_key = paths::upload_session(&id);
        let Some(session_meta) = objects.iter().find(|o| o.key == session_key) else {
            // No session: leftovers of an upload that ended.
            for meta in objects {
                if meta.last_modified <= cutoff {
                    removed.push(self.remove_orphan(meta).await?);
                }
            }
            return Ok(removed);
        };
        let idle = session_meta.last_modified < idle_since;
        let session = storage
            .get_opt(&session_key)
            .await?
            .and_then(|bytes| serde_json::from_slice::<UploadSession>(&bytes).ok());
        let mut keep: Vec<String> = Vec::new();
        match &session {
            Some(s) => {
                if idle {
                    if !self.dry_run {
                        self.registry.uploads.end_session(s).await?;
                    }
                    removed.push(Removal::Upload {
                        id: id.clone(),
                        bytes: s.offset,
                    });
                }
                keep.push(session_key.clone());
                keep.extend(s.tail_key());
            }
            // Unreadable: the upload cannot go on; left alone until idle.
            None if idle => {}
            None => return Ok(removed),
        }
        for meta in objects {
            if !keep.contains(&meta.key) && (idle || meta.last_modified <= cutoff) {
                removed.push(self.remove_orphan(meta).await?);
            }
        }
        Ok(removed)
    }
}
