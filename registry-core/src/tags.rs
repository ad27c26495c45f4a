//! `Tags`: a repository's tags, each a record of the digest it points at and when it last
//! moved, listed a page at a time; and their history, one append-only record per change.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::admission::Caller;
use crate::blobs::{parse_record, to_json};
use crate::candidates::Candidates;
use crate::clock::SharedClock;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::index::IndexState;
use crate::paths;
use crate::reference::{RepositoryName, Tag};
use crate::storage::{Storage, StorageExt};

/// One page of a listing, and whether more follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The items, in lexical order.
    pub items: Vec<String>,
    /// True when items after the last one exist.
    pub more: bool,
}

impl Page {
    /// The first `n` of `items` (sorted) after `last`; all of them when `n` is `None`.
    pub(crate) fn of(mut items: Vec<String>, n: Option<usize>, last: Option<&str>) -> Page {
        if let Some(last) = last {
            items.retain(|i| i.as_str() > last);
        }
        let more = n.is_some_and(|n| items.len() > n);
        if let Some(n) = n {
            items.truncate(n);
        }
        Page { items, more }
    }
}

/// What a tag is: the manifest it points at, and when it last moved there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// The manifest's digest.
    pub digest: Digest,
    /// When the tag was last set, in seconds since the Unix epoch (0 when not known: a tag moved
    /// from a store written before tag records).
    pub moved: u64,
    /// Nanoseconds past `moved`, which orders tags moved within the same second.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moved_nanos: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TagRecord {
    /// When the tag last moved (the Unix epoch when not known).
    pub fn moved_at(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::new(self.moved, self.moved_nanos)
    }
}

/// One change of a tag, kept in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChange {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// The tag.
    pub tag: Tag,
    /// What it pointed at before (`None`: it was created).
    pub from: Option<Digest>,
    /// What it points at after (`None`: it was deleted).
    pub to: Option<Digest>,
    /// Who changed it.
    pub identity: Option<String>,
    /// The request that changed it.
    pub request_id: Option<String>,
    /// The change restored the tag from its history (`registry restore`, the admin API, the UI).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
}

/// The tag store.
#[derive(Debug, Clone)]
pub(crate) struct Tags {
    storage: Arc<dyn Storage>,
    index: Arc<IndexState>,
    clock: SharedClock,
    /// A moved or deleted tag may leave its manifest garbage: recorded for collection.
    candidates: Arc<Candidates>,
}

impl Tags {
    pub fn new(
        storage: Arc<dyn Storage>,
        index: Arc<IndexState>,
        clock: SharedClock,
        candidates: Arc<Candidates>,
    ) -> Tags {
        Tags {
            storage,
            index,
            clock,
            candidates,
        }
    }

    /// Time since the Unix epoch by the registry's clock.
    fn now(&self) -> std::time::Duration {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }

    /// A tag's record; `None` when the repository has no such tag.
    pub async fn get(&self, repo: &RepositoryName, tag: &Tag) -> Result<Option<TagRecord>> {
        let key = paths::tag(repo, tag);
        if let Some(bytes) = self.storage.get_opt(&key).await? {
            return parse_record(&key, &bytes).map(Some);
        }
        if !self.index.legacy(&*self.storage).await? {
            return Ok(None);
        }
        let key = paths::legacy_tag_link(repo, tag);
        let Some(bytes) = self.storage.get_opt(&key).await? else {
            return Ok(None);
        };
        Ok(Some(TagRecord {
            digest: parse_digest_link(&key, &bytes)?,
            moved: 0,
            moved_nanos: 0,
        }))
    }

    /// The digest a tag points at. [`Error::ManifestUnknown`] when the repository lacks the tag.
    pub async fn resolve(&self, repo: &RepositoryName, tag: &Tag) -> Result<Digest> {
        match self.get(repo, tag).await? {
            Some(record) => Ok(record.digest),
            None => Err(Error::ManifestUnknown {
                reference: tag.to_string(),
            }),
        }
    }

    /// Points a tag at `to`; `previous` is its record as read before. A move is recorded in the
    /// tag's history first, then the record is replaced whole (written again when the tag stays
    /// where it was, which keeps its time of move and refreshes its age).
    pub async fn set(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        to: &Digest,
        previous: Option<&TagRecord>,
        caller: &Caller,
        restored: bool,
    ) -> Result<()> {
        let from = previous.map(|p| &p.digest);
        let (moved, moved_nanos) = match previous {
            Some(p) if p.digest == *to => (p.moved, p.moved_nanos),
            _ => {
                self.record_change(repo, tag, from, Some(to), caller, restored)
                    .await?;
                let now = self.now();
                (now.as_secs(), now.subsec_nanos())
            }
        };
        let record = TagRecord {
            digest: to.clone(),
            moved,
            moved_nanos,
        };
        self.storage
            .put(&paths::tag(repo, tag), to_json(&record)?)
            .await?;
        if self.index.legacy(&*self.storage).await? {
            self.storage
                .delete(&paths::legacy_tag_link(repo, tag))
                .await?;
        }
        Ok(())
    }

    /// Deletes a tag that pointed at `digest`, recording it in the tag's history first.
    pub async fn delete(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        digest: &Digest,
        caller: &Caller,
    ) -> Result<()> {
        self.record_change(repo, tag, Some(digest), None, caller, false)
            .await?;
        self.storage.delete(&paths::tag(repo, tag)).await?;
        if self.index.legacy(&*self.storage).await? {
            self.storage
                .delete(&paths::legacy_tag_link(repo, tag))
                .await?;
        }
        Ok(())
    }

    async fn record_change(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        from: Option<&Digest>,
        to: Option<&Digest>,
        caller: &Caller,
        restored: bool,
    ) -> Result<()> {
        self.candidates.repository(repo).await?;
        let at = self.now();
        let change = TagChange {
            at: at.as_secs(),
            tag: tag.clone(),
            from: from.cloned(),
            to: to.cloned(),
            identity: caller.identity.clone(),
            request_id: caller.request_id.clone(),
            restored,
        };
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let key = paths::tag_change(repo, tag, at.as_nanos(), &nonce[..8]);
        Ok(self.storage.put(&key, to_json(&change)?).await?)
    }

    /// Tags of a repository in lexical order, at most `n` after `last` (all when `n` is `None`):
    /// one listing from the offset, whatever the number of tags.
    pub async fn page(
        &self,
        repo: &RepositoryName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page> {
        if self.index.legacy(&*self.storage).await? {
            let mut names = self.names(repo).await?;
            names.sort();
            names.dedup();
            return Ok(Page::of(names, n, last));
        }
        let limit = n.map_or(usize::MAX, |n| n.saturating_add(1));
        let objects = self
            .storage
            .list_after(&paths::tags(repo), last, limit)
            .await?;
        let mut items: Vec<String> = objects
            .into_iter()
            .filter_map(|o| o.key.rsplit('/').next().map(str::to_owned))
            .collect();
        let more = n.is_some_and(|n| items.len() > n);
        if let Some(n) = n {
            items.truncate(n);
        }
        Ok(Page { items, more })
    }

    /// Every tag of the repository with its record (the whole folder: for deletes and garbage
    /// collection, not for listings).
    pub async fn all(&self, repo: &RepositoryName) -> Result<Vec<(Tag, TagRecord)>> {
        self.matching(repo, |_| true).await
    }

    /// The tags of the repository `keep` picks, with their records: only those records are read.
    pub async fn matching(
        &self,
        repo: &RepositoryName,
        keep: impl Fn(&Tag) -> bool,
    ) -> Result<Vec<(Tag, TagRecord)>> {
        let names = self.names(repo).await?;
        let tags: Vec<Tag> = names
            .iter()
            .filter_map(|n| n.parse().ok())
            .filter(|t| keep(t))
            .collect();
        let found: Vec<Option<(Tag, TagRecord)>> = futures::stream::iter(tags)
            .map(|tag| async move { Ok::<_, Error>(self.get(repo, &tag).await?.map(|r| (tag, r))) })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Every tag of the repository with when its record was last written (by a push or a
    /// move): one listing of the tag folder. On a store not yet reindexed, legacy tags are read
    /// one by one.
    pub async fn times(&self, repo: &RepositoryName) -> Result<Vec<(Tag, SystemTime)>> {
        let mut times: Vec<(Tag, SystemTime)> = self
            .storage
            .list(&paths::tags(repo))
            .await?
            .objects
            .into_iter()
            .filter_map(|o| Some((o.key.rsplit('/').next()?.parse().ok()?, o.last_modified)))
            .collect();
        if self.index.legacy(&*self.storage).await? {
            let legacy: Vec<Tag> = self
                .storage
                .list(&paths::legacy_tags(repo))
                .await?
                .prefixes
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect();
            for tag in legacy {
                if let Some(record) = self.get(repo, &tag).await? {
                    let at = UNIX_EPOCH + std::time::Duration::from_secs(record.moved);
                    times.push((tag, at));
                }
            }
        }
        Ok(times)
    }

    /// Names of the tags, records and (on stores not yet reindexed) legacy links alike.
    async fn names(&self, repo: &RepositoryName) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .storage
            .list(&paths::tags(repo))
            .await?
            .objects
            .into_iter()
            .filter_map(|o| o.key.rsplit('/').next().map(str::to_owned))
            .collect();
        if self.index.legacy(&*self.storage).await? {
            names.extend(self.storage.list(&paths::legacy_tags(repo)).await?.prefixes);
        }
        Ok(names)
    }

    /// The changes of a tag, oldest first.
    pub async fn history(&self, repo: &RepositoryName, tag: &Tag) -> Result<Vec<TagChange>> {
        let objects = self
            .storage
            .list(&paths::tag_history(repo, tag))
            .await?
            .objects;
        let changes: Vec<Option<TagChange>> = futures::stream::iter(objects)
            .map(|o| async move {
                match self.storage.get_opt(&o.key).await? {
                    Some(bytes) => parse_record(&o.key, &bytes).map(Some),
                    None => Ok(None),
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(changes.into_iter().flatten().collect())
    }
}

/// The digest a legacy tag link holds.
pub(crate) fn parse_digest_link(key: &str, bytes: &[u8]) -> Result<Digest> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::storage(format!("corrupt link at {key}")))
}

/// A tag record, as stored.
pub(crate) fn record_bytes(record: &TagRecord) -> Result<Bytes> {
    to_json(record)
}
