//! Tag history, restoring a tag from it, and recording pulls: the lifecycle side of the façade.

use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::admission::Change;
use crate::blobs::parse_record;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::feed::Committed;
use crate::manifests::References;
use crate::paths;
use crate::reference::{Reference, RepositoryName, Tag};
use crate::storage::StorageExt;
use crate::tags::{TagChange, TagRecord};

use super::Registry;

impl Registry {
    /// Every move and delete of a tag that was kept, oldest first.
    pub async fn tag_history(&self, repo: &RepositoryName, tag: &Tag) -> Result<Vec<TagChange>> {
        self.tags.history(repo, tag).await
    }

    /// Every kept change of every tag of a repository, oldest first.
    pub async fn repository_history(&self, repo: &RepositoryName) -> Result<Vec<TagChange>> {
        let mut keys: Vec<(u128, String)> = self
            .storage
            .list_all(&paths::history(repo))
            .try_filter_map(|meta| async move {
                Ok(match paths::parse_repository_key(&meta.key) {
                    Some((_, paths::RepositoryEntry::TagChange { nanos, .. })) => {
                        Some((nanos, meta.key))
                    }
                    _ => None,
                })
            })
            .try_collect()
            .await?;
        keys.sort();
        let storage = &self.storage;
        let changes: Vec<Option<TagChange>> = futures::stream::iter(keys)
            .map(|(_, key)| async move {
                match storage.get_opt(&key).await? {
                    Some(bytes) => parse_record(&key, &bytes).map(Some),
                    None => Ok(None),
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(changes.into_iter().flatten().collect())
    }

    /// Points `tag` back at a digest from its history: `to`, which the history must name, or by
    /// default the digest it pointed at before its last change (undoing a delete or a move). The
    /// manifest must still be stored in the repository; the admission hook is asked as for any
    /// move, and the restore is itself kept in the history. Returns the tag's new record.
    pub async fn restore_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        to: Option<&Digest>,
    ) -> Result<TagRecord> {
        self.writable(repo)?;
        let history = self.tags.history(repo, tag).await?;
        let not_in_history = |reason: String| Error::NotInHistory {
            tag: format!("{repo}:{tag}"),
            reason,
        };
        let target = match to {
            Some(to) => {
                let named = history
                    .iter()
                    .any(|c| c.from.as_ref() == Some(to) || c.to.as_ref() == Some(to));
                if !named {
                    return Err(not_in_history(format!("its history never named {to}")));
                }
                to.clone()
            }
            None => match history.last() {
                Some(TagChange { from: Some(d), .. }) => d.clone(),
                Some(_) => return Err(not_in_history("it pointed at nothing before".into())),
                None => return Err(not_in_history("it has no history".into())),
            },
        };
        self.hold_manifest(repo, &target).await?;
        let current = self.tags.get(repo, tag).await?;
        if let Some(current) = current.as_ref().filter(|c| c.digest == target) {
            return Ok(current.clone());
        }
        self.admit(Change::MoveTag {
            repository: repo,
            tag,
            from: current.as_ref().map(|c| &c.digest),
            to: &target,
        })
        .await?;
        let created = self.catalog.add(repo).await?;
        self.tags
            .set(repo, tag, &target, current.as_ref(), &self.caller, true)
            .await?;
        if created {
            self.publish(Committed::RepositoryCreated {
                repository: repo.clone(),
            })
            .await;
        }
        self.publish(Committed::TagMoved {
            repository: repo.clone(),
            tag: tag.clone(),
            from: current.map(|c| c.digest),
            to: target.clone(),
            restored: true,
        })
        .await;
        self.tags
            .get(repo, tag)
            .await?
            .ok_or_else(|| Error::ManifestUnknown {
                reference: tag.to_string(),
            })
    }

    /// Makes sure a stored manifest a tag is about to point at again stays: checked and stored
    /// as a push of it would be (its blobs and children marked, not being collected, in storage;
    /// its own bytes written and checked), so that a collection racing the restore cannot leave
    /// the tag naming bytes it removes. A manifest whose blobs are gone is refused
    /// (`MANIFEST_BLOB_UNKNOWN`), as its push would be.
    async fn hold_manifest(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        let by_digest = Reference::Digest(digest.clone());
        let content = self.manifests.get(repo, digest, &by_digest).await?;
        let references = match self.config().validate_references {
            true => References::All,
            false => References::Present,
        };
        let validated = self
            .manifests
            .validate(
                repo,
                &by_digest,
                Some(&content.info.media_type),
                content.bytes,
                references,
            )
            .await?;
        self.manifests.store(repo, &validated).await
    }

    /// When `tag` was last pulled, as far as recorded (at most
    /// [`crate::RegistryConfig::pull_record_interval`] late).
    pub async fn last_pulled(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<SystemTime>> {
        match self.storage.head(&paths::tag_pulled(repo, tag)).await {
            Ok(meta) => Ok(Some(meta.last_modified)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a pull of a tag, at most once per interval per tag in this process. Best effort: a
    /// pull never fails for it.
    pub(super) async fn note_pull(&self, repo: &RepositoryName, reference: &Reference) {
        let (Some(interval), Reference::Tag(tag)) = (self.config.pull_record_interval, reference)
        else {
            return;
        };
        if self.config.read_only {
            return;
        }
        let key = (repo.clone(), tag.clone());
        if self.pulls.get(&key).is_some_and(|at| {
            self.config().clock.instant().saturating_duration_since(at) < interval
        }) {
            return;
        }
        self.pulls.insert(key, self.config().clock.instant());
        // A failed record only makes the tag look less recently pulled.
        let _ = self
            .storage
            .put(&paths::tag_pulled(repo, tag), Bytes::new())
            .await;
    }
}
