//! [`Root`]: the store's folder, and every operation on a key's file, resolved beneath it.
//!
//! Keys are checked as text (plain relative paths, no component starting with `.`), then every
//! path is resolved by the kernel relative to the root's open folder (`cap-std`: `openat2` with
//! `RESOLVE_BENEATH` where Linux has it, one component at a time with `O_NOFOLLOW` elsewhere), so
//! that a symbolic link planted in the store can never lead a name out of it, with no window
//! between a check and the use. Everything here blocks: callers run it on the blocking pool (or
//! inline, for the small reads [`super::FilesystemStorage::inline_reads`] allows).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::fs::{Dir, DirEntry, Metadata};

use super::listings::{Listings, Stamp};
use registry_core::ObjectMeta;
use registry_core::storage::StorageError;
use registry_core::storage::join;

/// Times a write tries again to create its folders, which concurrent deletes may keep pruning.
const FOLDER_ATTEMPTS: usize = 32;

/// The store's root folder, open.
#[derive(Debug, Clone)]
pub(super) struct Root {
    path: PathBuf,
    dir: Arc<Dir>,
    /// Sorted names of large folders, for pages.
    listings: Arc<Listings>,
}

/// A key's path relative to the root; an error for keys that are not plain relative paths.
pub(super) fn relative(key: &str) -> registry_core::storage::Result<&Path> {
    let ok = key.is_empty()
        || key
            .split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.') && !c.contains('\0'));
    if !ok {
        return Err(StorageError::backend(format!(
            "invalid storage key {key:?}"
        )));
    }
    Ok(Path::new(key))
}

/// The folder a relative path is in (`""` for the root's own entries).
fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// `path` itself, or `.` for the root.
fn or_root(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// What the store says about a key's file.
pub(super) fn meta(key: String, m: &Metadata) -> ObjectMeta {
    ObjectMeta {
        key,
        size: m.len(),
        last_modified: m
            .modified()
            .map(|t| t.into_std())
            .unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

impl Root {
    /// Opens (creating it if missing) the folder at `path`.
    pub fn open(path: PathBuf) -> std::io::Result<Root> {
        std::fs::create_dir_all(&path)?;
        let dir = Dir::open_ambient_dir(&path, cap_std::ambient_authority())?;
        Ok(Root {
            path,
            dir: Arc::new(dir),
            listings: Arc::default(),
        })
    }

    /// The folder's path, for the store's own scratch folders and messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a file for reading.
    pub fn open_file(&self, path: &Path) -> std::io::Result<std::fs::File> {
        self.dir.open(path).map(|f| f.into_std())
    }

    /// Opens a file for reading and writing.
    pub fn open_for_writing(&self, path: &Path) -> std::io::Result<std::fs::File> {
        let mut options = cap_std::fs::OpenOptions::new();
        options.read(true).write(true);
        self.dir.open_with(path, &options).map(|f| f.into_std())
    }

    /// Creates (or empties) a file, for writing.
    pub fn create_file(&self, path: &Path) -> std::io::Result<std::fs::File> {
        self.dir.create(path).map(|f| f.into_std())
    }

    /// Creates a folder, whose parent must exist.
    pub fn create_folder(&self, path: &Path) -> std::io::Result<()> {
        self.dir.create_dir(path)
    }

    /// Removes a folder and everything in it; nothing when it is gone already.
    pub fn remove_folder(&self, path: &Path) -> std::io::Result<()> {
        match self.dir.remove_dir_all(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// A file's or folder's metadata (a link within the store is followed).
    pub fn metadata(&self, path: &Path) -> std::io::Result<Metadata> {
        self.dir.metadata(path)
    }

    /// Creates a folder and its parents. A concurrent delete may prune a folder between the
    /// `mkdir` that found it and the check that it is one, where creating reports it as
    /// existing: that is one more attempt for the caller, not an error.
    pub fn make_folders(&self, dir: &Path) -> std::io::Result<()> {
        if dir.as_os_str().is_empty() {
            return Ok(());
        }
        match self.dir.create_dir_all(dir) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    /// Flushes a folder's entries to disk.
    fn sync_folder(&self, dir: &Path) -> std::io::Result<()> {
        // `open_dir` may give a handle that can only name the folder; fsync needs a read one.
        self.dir.open(or_root(dir))?.into_std().sync_all()
    }

    /// Renames `from` onto `to`, creating its folders (again, if a concurrent delete pruned them
    /// meanwhile), then makes the rename durable.
    pub fn install(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut attempts = 0;
        loop {
            match self.dir.rename(from, &self.dir, to) {
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < FOLDER_ATTEMPTS => {
                    self.dir.symlink_metadata(from)?;
                    self.make_folders(parent(to))?;
                    attempts += 1;
                }
                other => break other?,
            }
        }
        self.sync_folder(parent(to))
    }

    /// Links `from` at `to` unless something is there (atomically: `link` refuses an existing
    /// name), then removes `from`; false when `to` existed. Where links are not supported,
    /// checks and renames.
    pub fn install_if_absent(&self, from: &Path, to: &Path) -> std::io::Result<bool> {
        let mut attempts = 0;
        loop {
            match self.dir.hard_link(from, &self.dir, to) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < FOLDER_ATTEMPTS => {
                    self.dir.symlink_metadata(from)?;
                    self.make_folders(parent(to))?;
                    attempts += 1;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(e),
                Err(_) => {
                    // No hard links here (some FUSE and network filesystems).
                    if self.dir.symlink_metadata(to).is_ok() {
                        return Ok(false);
                    }
                    self.install(from, to)?;
                    return Ok(true);
                }
            }
        }
        self.sync_folder(parent(to))?;
        self.dir.remove_file(from)?;
        self.sync_folder(parent(from))?;
        Ok(true)
    }

    /// Removes a file; false when there was none.
    pub fn remove(&self, path: &Path) -> std::io::Result<bool> {
        match self.dir.remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the now-empty folders above a removed file, up to the layout's top-level folders
    /// (`blobs`, `data`, `repositories`…), which stay: removing them would only make every write
    /// beside them create them again.
    pub fn prune(&self, file: &Path) {
        let mut dir = parent(file);
        while dir.components().count() > 1 && self.dir.remove_dir(dir).is_ok() {
            dir = parent(dir);
        }
    }

    /// Files and folders directly in `dir` (a key prefix), without following links and skipping
    /// names starting with `.`; nothing when there is no such folder.
    pub fn list(
        &self,
        dir: &Path,
        prefix: &str,
    ) -> std::io::Result<(Vec<ObjectMeta>, Vec<String>)> {
        let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
        let entries = match self.dir.read_dir(or_root(dir)) {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok((objects, prefixes));
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let Some((name, m)) = visible(&entry?)? else {
                continue;
            };
            if m.is_dir() {
                prefixes.push(name);
            } else if m.is_file() {
                objects.push(meta(join(prefix, &name), &m));
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        prefixes.sort();
        Ok((objects, prefixes))
    }

    /// Up to `limit` files directly in `dir` named after `after`, sorted by name, as keys under
    /// `prefix`: one `readdir`, and a stat of the page's files only.
    pub fn page(
        &self,
        dir: &Path,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> std::io::Result<Vec<ObjectMeta>> {
        let folder = match self.dir.open_dir(or_root(dir)) {
            Ok(d) => d,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let names = self.names(dir, &folder)?;
        let from = after.map_or(0, |a| names.partition_point(|n| n.as_str() <= a));
        let names = &names[from..];
        let mut page = Vec::with_capacity(limit.min(names.len()));
        for name in names.iter().take(limit) {
            match folder.metadata(name) {
                Ok(m) => page.push(meta(join(prefix, name), &m)),
                // Removed meanwhile.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(page)
    }

    /// The sorted names of the files in `folder` (at `dir`), kept between calls for large folders
    /// that have not changed (see [`super::listings`]).
    fn names(&self, dir: &Path, folder: &Dir) -> std::io::Result<Arc<Vec<String>>> {
        let stamp = Stamp::of(&folder.dir_metadata()?);
        if let Some(names) = stamp.and_then(|s| self.listings.get(dir, s)) {
            return Ok(names);
        }
        let read_at = SystemTime::now();
        let mut names = Vec::new();
        for entry in folder.entries()? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort_unstable();
        let names = Arc::new(names);
        if let Some(stamp) = stamp {
            self.listings.put(dir, stamp, read_at, &names);
        }
        Ok(names)
    }

    /// Sends every file under `dir` (as keys under `prefix`), skipping what [`Root::list`]
    /// skips; false once the receiver is gone or an error was sent.
    pub fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        tx: &tokio::sync::mpsc::Sender<registry_core::storage::Result<ObjectMeta>>,
    ) -> bool {
        match self.dir.open_dir(or_root(dir)) {
            Ok(folder) => walk(&folder, prefix, tx),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => true,
            Err(e) => {
                let _ = tx.blocking_send(Err(StorageError::backend(e)));
                false
            }
        }
    }
}

/// A folder entry that is a key's or a prefix's: its name (UTF-8, not starting with `.`) and its
/// metadata, links not followed; `None` for others, and for an entry removed meanwhile.
fn visible(entry: &DirEntry) -> std::io::Result<Option<(String, Metadata)>> {
    let Ok(name) = entry.file_name().into_string() else {
        return Ok(None);
    };
    if name.starts_with('.') {
        return Ok(None);
    }
    match entry.metadata() {
        Ok(m) => Ok(Some((name, m))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn walk(
    folder: &Dir,
    prefix: &str,
    tx: &tokio::sync::mpsc::Sender<registry_core::storage::Result<ObjectMeta>>,
) -> bool {
    let failed = |e: std::io::Error| {
        let _ = tx.blocking_send(Err(StorageError::backend(e)));
        false
    };
    let entries = match folder.entries() {
        Ok(e) => e,
        Err(e) => return failed(e),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return failed(e),
        };
        let (name, m) = match visible(&entry) {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => return failed(e),
        };
        let key = join(prefix, &name);
        let going_on = if m.is_dir() {
            match entry.open_dir() {
                Ok(sub) => walk(&sub, &key, tx),
                Err(e) if e.kind() == ErrorKind::NotFound => true,
                Err(e) => failed(e),
            }
        } else if m.is_file() {
            tx.blocking_send(Ok(meta(key, &m))).is_ok()
        } else {
            true
        };
        if !going_on {
            return false;
        }
    }
    true
}
