//! [`Catalog`]: the repositories holding at least one manifest, one empty object each under
//! [`paths::CATALOG`], listed a page at a time from an offset: `_catalog` costs what its page
//! costs, not what the store holds.
//!
//! An entry is written (idempotently, every time: another replica may have just removed it) when a
//! manifest is pushed, and removed when a repository
//! loses its last manifest (by a delete or a collection): the remover looks again afterwards and
//! puts the entry back if a push landed meanwhile, and every collection reconciles the catalog
//! with what it walked. Nothing is read, modified and written back, so replicas sharing a bucket
//! need no conditional writes.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;

use crate::error::Result;
use crate::index::IndexState;
use crate::manifests::Manifests;
use crate::paths;
use crate::reference::RepositoryName;
use crate::storage::{Storage, join};
use crate::tags::Page;

/// The catalog.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    storage: Arc<dyn Storage>,
    index: Arc<IndexState>,
}

impl Catalog {
    pub fn new(storage: Arc<dyn Storage>, index: Arc<IndexState>) -> Catalog {
        Catalog { storage, index }
    }

    /// Lists `repo`, which just received a manifest; true when it was not listed (a head first,
    /// so that a push into a listed repository writes nothing here).
    pub async fn add(&self, repo: &RepositoryName) -> Result<bool> {
        self.index.legacy(&*self.storage).await?;
        let key = paths::catalog_entry(repo);
        match self.storage.head(&key).await {
            Ok(_) => return Ok(false),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        self.storage.put(&key, Bytes::new()).await?;
        Ok(true)
    }

    /// Unlists `repo` when it holds no manifest any more; puts the entry back when a push landed
    /// meanwhile. True when it was unlisted.
    pub async fn remove_if_empty(
        &self,
        repo: &RepositoryName,
        manifests: &Manifests,
    ) -> Result<bool> {
        if manifests.any(repo).await? {
            return Ok(false);
        }
        let key = paths::catalog_entry(repo);
        self.storage.delete(&key).await?;
        if manifests.any(repo).await? {
            self.storage.put(&key, Bytes::new()).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Repositories holding at least one manifest, in the lexical order of their names'
    /// components, at most `n` after `last` (all when `n` is `None`).
    pub async fn page(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        if self.index.legacy(&*self.storage).await? {
            return Ok(Page::of(self.walk().await?, n, last));
        }
        let after = match last {
            Some(last) => match last.parse::<RepositoryName>() {
                Ok(name) => paths::catalog_entry(&name)
                    .rsplit('/')
                    .next()
                    .map(str::to_owned),
                // A `last` that is no name: start where it would sort.
                Err(_) => Some(last.replace('/', "!")),
            },
            None => None,
        };
        let limit = n.map_or(usize::MAX, |n| n.saturating_add(1));
        let objects = self
            .storage
            .list_after(paths::CATALOG, after.as_deref(), limit)
            .await?;
        let mut items: Vec<String> = objects
            .iter()
            .filter_map(|o| o.key.rsplit('/').next())
            .filter_map(paths::parse_catalog_entry)
            .map(|name| name.to_string())
            .collect();
        let more = n.is_some_and(|n| items.len() > n);
        if let Some(n) = n {
            items.truncate(n);
        }
        Ok(Page { items, more })
    }

    /// Every repository's name, from the catalog's entries (for collections to reconcile).
    pub async fn entries(&self) -> Result<Vec<RepositoryName>> {
        let listed: Vec<_> = self.storage.list_all(paths::CATALOG).try_collect().await?;
        Ok(listed
            .iter()
            .filter_map(|o| o.key.rsplit('/').next())
            .filter_map(paths::parse_catalog_entry)
            .collect())
    }

    /// Puts or removes entries so that the catalog lists exactly `holding` (the repositories
    /// holding a manifest, as a collection found them); returns how many entries changed.
    pub async fn reconcile(&self, holding: &HashSet<RepositoryName>) -> Result<usize> {
        let listed: HashSet<RepositoryName> = self.entries().await?.into_iter().collect();
        let mut changed = 0;
        for repo in holding.iter().filter(|r| !listed.contains(*r)) {
            self.storage
                .put(&paths::catalog_entry(repo), Bytes::new())
                .await?;
            changed += 1;
        }
        for repo in listed.iter().filter(|r| !holding.contains(*r)) {
            self.storage.delete(&paths::catalog_entry(repo)).await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Repositories holding a manifest, by walking the store (stores not yet reindexed).
    pub async fn walk(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pending = vec![(paths::REPOSITORIES.to_owned(), String::new())];
        while let Some((key, name)) = pending.pop() {
            for p in self.storage.list(&key).await?.prefixes {
                if p == paths::MANIFESTS_DIR {
                    names.push(name.clone());
                } else if !paths::is_repository_entry(&p) {
                    pending.push((join(&key, &p), join(&name, &p)));
                }
            }
        }
        names.sort();
        Ok(names)
    }
}
