//! Sorted names of large folders, kept between pages. Reading a folder of 100,000 entries costs
//! the kernel about 50 ms (ext4 hashes and sorts every entry on each read), so without this the
//! first page of a big catalog or tag list would cost that every time.
//!
//! A folder's names are reused while its modification time and size are what they were when
//! they were read, and only if that time was already [`SETTLED`] old then: a change within the
//! same tick of the file system's clock as the read would otherwise leave the time unchanged and
//! go unseen. Any process changing the folder changes its time, so processes sharing the store
//! see each other's changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cap_std::fs::Metadata;

/// How old a folder's modification time must be for its names to be kept.
const SETTLED: Duration = Duration::from_secs(2);
/// Folders with fewer names are read each time (cheap).
const MIN_NAMES: usize = 1000;
/// Folders kept at once.
const MAX_FOLDERS: usize = 16;

/// What identifies a folder's state: its modification time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    modified: SystemTime,
    len: u64,
}

impl Stamp {
    /// The stamp of a folder's metadata; `None` where the file system gives no times.
    pub(super) fn of(m: &Metadata) -> Option<Stamp> {
        Some(Stamp {
            modified: m.modified().ok()?.into_std(),
            len: m.len(),
        })
    }
}

/// A folder's sorted names, and the stamp it had when they were read.
type Kept = (Stamp, Arc<Vec<String>>);

/// Kept folder names, by folder.
#[derive(Debug, Default)]
pub(super) struct Listings {
    folders: Mutex<HashMap<PathBuf, Kept>>,
}

impl Listings {
    /// The names kept for `folder`, if it still has `stamp`.
    pub(super) fn get(&self, folder: &Path, stamp: Stamp) -> Option<Arc<Vec<String>>> {
        let folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
        match folders.get(folder) {
            Some((kept, names)) if *kept == stamp => Some(names.clone()),
            _ => None,
        }
    }

    /// Keeps `names` (sorted) of `folder`, read when it had `stamp` at `read_at`, if the folder is
    /// large and its time was settled then; else forgets what was kept of it (so that a time
    /// set back to an earlier value cannot bring back names of before).
    pub(super) fn put(
        &self,
        folder: &Path,
        stamp: Stamp,
        read_at: SystemTime,
        names: &Arc<Vec<String>>,
    ) {
        let old_enough = read_at
            .duration_since(stamp.modified)
            .is_ok_and(|age| age >= SETTLED);
        let mut folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() < MIN_NAMES || !old_enough {
            folders.remove(folder);
            return;
        }
        if folders.len() >= MAX_FOLDERS && !folders.contains_key(folder) {
            folders.clear();
        }
        folders.insert(folder.to_owned(), (stamp, names.clone()));
    }
}
