//! [`MemoryStorage`]: objects in a map in memory. Blobs are held whole, so it suits tests and
//! small ephemeral registries, not large images.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use registry_core::clock::{SharedClock, SystemClock};
use registry_core::storage::join;
use registry_core::storage::{Result, StorageError};
use registry_core::{
    GetRange, GetResult, ListResult, Multipart, MultipartId, ObjectMeta, PartId, Storage,
};

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, (Bytes, SystemTime)>,
    uploads: HashMap<String, HashMap<String, Bytes>>,
}

/// A store in memory. Clones share the same data, like handles on one store.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
    /// What dates the objects written.
    clock: SharedClock,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage {
            state: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store, dating what it writes by `clock` (a simulation's `ManualClock`).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn not_found(key: &str) -> StorageError {
    StorageError::NotFound {
        key: key.to_owned(),
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        let data = self.state().objects.get(key).map(|(d, _)| d.clone());
        let data = data.ok_or_else(|| not_found(key))?;
        let size = data.len() as u64;
        let range = match range {
            Some(r) => r.resolve(size)?,
            None => 0..size,
        };
        let slice = data.slice(range.start as usize..range.end as usize);
        Ok(GetResult {
            size,
            range,
            stream: futures::stream::once(async move { Ok(slice) }).boxed(),
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let state = self.state();
        let (data, modified) = state.objects.get(key).ok_or_else(|| not_found(key))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: data.len() as u64,
            last_modified: *modified,
        })
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.state()
            .objects
            .insert(key.to_owned(), (data, self.clock.now()));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.state().objects.remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        let start = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let state = self.state();
        let mut objects = Vec::new();
        let mut prefixes = BTreeSet::new();
        for (key, (data, modified)) in state.objects.range(start.clone()..) {
            let Some(rest) = key.strip_prefix(&start) else {
                break;
            };
            match rest.split_once('/') {
                Some((dir, _)) => {
                    prefixes.insert(dir.to_owned());
                }
                None => objects.push(ObjectMeta {
                    key: join(prefix, rest),
                    size: data.len() as u64,
                    last_modified: *modified,
                }),
            }
        }
        Ok(ListResult {
            objects,
            prefixes: prefixes.into_iter().collect(),
        })
    }

    async fn list_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>> {
        let folder = join(prefix, "");
        let start = join(prefix, after.unwrap_or(""));
        let state = self.state();
        let objects = state
            .objects
            .range::<str, _>((
                std::ops::Bound::Excluded(start.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&folder))
            .filter(|(k, _)| !k[folder.len()..].contains('/'))
            .take(limit)
            .map(|(key, (data, modified))| ObjectMeta {
                key: key.clone(),
                size: data.len() as u64,
                last_modified: *modified,
            })
            .collect();
        Ok(objects)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let mut state = self.state();
        let object = state.objects.remove(from).ok_or_else(|| not_found(from))?;
        state.objects.insert(to.to_owned(), object);
        Ok(())
    }

    async fn rename_if_absent(&self, from: &str, to: &str) -> Result<bool> {
        let mut state = self.state();
        if !state.objects.contains_key(from) {
            return Err(not_found(from));
        }
        if state.objects.contains_key(to) {
            return Ok(false);
        }
        let object = state.objects.remove(from).ok_or_else(|| not_found(from))?;
        state.objects.insert(to.to_owned(), object);
        Ok(true)
    }
}

#[async_trait]
impl Multipart for MemoryStorage {
    async fn create_multipart(&self, _key: &str) -> Result<MultipartId> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.state().uploads.insert(id.clone(), HashMap::new());
        Ok(MultipartId(id))
    }

    async fn put_part(
        &self,
        key: &str,
        id: &MultipartId,
        part_idx: usize,
        data: registry_core::ByteStream,
    ) -> Result<PartId> {
        if !self.state().uploads.contains_key(&id.0) {
            return Err(not_found(key));
        }
        let bytes = data
            .try_fold(BytesMut::new(), |mut acc, chunk| async move {
                acc.extend_from_slice(&chunk);
                Ok(acc)
            })
            .await
            .map_err(StorageError::backend)?
            .freeze();
        let part = format!("{part_idx}-{}", uuid::Uuid::new_v4().simple());
        self.state()
            .uploads
            .get_mut(&id.0)
            .ok_or_else(|| not_found(key))?
            .insert(part.clone(), bytes);
        Ok(PartId(part))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<()> {
        let mut state = self.state();
        let stored = state.uploads.get(&id.0).ok_or_else(|| not_found(key))?;
        let mut data = BytesMut::new();
        for part in &parts {
            let bytes = stored.get(&part.0).ok_or_else(|| {
                StorageError::backend(format!("unknown part {} of upload {}", part.0, id.0))
            })?;
            data.extend_from_slice(bytes);
        }
        state.uploads.remove(&id.0);
        state
            .objects
            .insert(key.to_owned(), (data.freeze(), self.clock.now()));
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, id: &MultipartId) -> Result<()> {
        self.state().uploads.remove(&id.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    registry_core::storage_testsuite!({
        let store = super::MemoryStorage::new();
        move || std::sync::Arc::new(store.clone()) as std::sync::Arc<dyn registry_core::Storage>
    });
}
