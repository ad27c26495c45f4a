//! Multipart uploads on the filesystem: every part is appended to one data file per upload, so
//! that completing an upload whose parts lie end to end (the usual case, however many chunks a
//! client sent) is a rename, not a copy.
//!
//! Appends and completion hold an exclusive lock on the data file, so processes sharing the root
//! never interleave bytes; the lock is taken without a thread waiting for it, and held without
//! one. A part's receipt is its `offset+length` in the file, bytes that are never written again.
//! A failed or abandoned append is cut off again; a part sent twice, or bytes left by a crash,
//! leave a gap between receipts, and completion then copies the receipts' ranges into a new file
//! instead. Completion moves the data out of the upload's folder before it lets the lock go: an
//! append waiting for the lock then finds the file gone, so no byte ever reaches a completed
//! object.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cap_std::fs::MetadataExt as _;
use registry_core::{ByteStream, PartId};

use super::io::{blocking, write_stream};
use super::root::Root;

/// The file an upload's parts are appended to, in the upload's folder.
const DATA: &str = "data";
/// Longest pause between two attempts at a lock another process holds.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Makes the folder of a new upload (relative to the root), with its empty data file.
pub(super) fn create(root: &Root, dir: &Path) -> std::io::Result<()> {
    root.create_folder(dir)?;
    root.create_file(&dir.join(DATA))?;
    Ok(())
}

/// Opens the upload's data file and locks it, when nobody else holds it (`None` otherwise), then
/// checks that it is still the upload's: a completion may have moved it away meanwhile, which
/// reads as NotFound.
fn try_lock(root: &Root, dir: &Path) -> std::io::Result<Option<File>> {
    let path = dir.join(DATA);
    let file = root.open_for_writing(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let opened = file.metadata()?;
    match root.metadata(&path) {
        Ok(now) if now.dev() == opened.dev() && now.ino() == opened.ino() => Ok(Some(file)),
        Ok(_) => Err(ErrorKind::NotFound.into()),
        Err(e) => Err(e),
    }
}

/// The upload's data file, locked: tries again after short pauses while another process holds
/// it, without a thread waiting meanwhile.
async fn lock(root: &Root, dir: &Path) -> std::io::Result<File> {
    let mut pause = Duration::from_millis(1);
    loop {
        let (root, dir) = (root.clone(), dir.to_owned());
        if let Some(file) = blocking(move || try_lock(&root, &dir)).await? {
            return Ok(file);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

/// Appends what `data` carries to the upload in `dir`, fsynced; returns the part's receipt. On
/// failure the file is cut back to where the part began.
pub(super) async fn append(root: &Root, dir: &Path, data: ByteStream) -> std::io::Result<PartId> {
    let file = Arc::new(lock(root, dir).await?);
    let f = file.clone();
    let offset = blocking(move || (&*f).seek(SeekFrom::End(0))).await?;
    let written = match write_stream(&file, data).await {
        Ok(len) => {
            let f = file.clone();
            blocking(move || f.sync_data()).await.map(|()| len)
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(len) => Ok(PartId(format!("{offset}+{len}"))),
        Err(e) => {
            let _ = blocking(move || file.set_len(offset)).await;
            Err(e)
        }
    }
}

/// Reads a receipt.
fn receipt(part: &PartId) -> std::io::Result<(u64, u64)> {
    part.0
        .split_once('+')
        .and_then(|(o, l)| Some((o.parse().ok()?, l.parse().ok()?)))
        .ok_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidData, format!("invalid part {:?}", part.0))
        })
}

/// Completes the upload in `dir`: makes the object of its parts (see [`assemble`]) and renames it
/// to `to`, all while the data file's lock is held; then removes the upload's folder. NotFound
/// when the upload is gone (completed or aborted already). Paths are relative to the root.
pub(super) async fn complete(
    root: &Root,
    dir: &Path,
    parts: Vec<PartId>,
    scratch: PathBuf,
    to: PathBuf,
) -> std::io::Result<()> {
    let file = lock(root, dir).await?;
    let (root, dir) = (root.clone(), dir.to_owned());
    blocking(move || {
        let built = assemble(&root, &file, &dir, &parts, &scratch)?;
        if let Err(e) = root.install(&built, &to) {
            let _ = root.remove(&scratch);
            return Err(e);
        }
        let removed = root.remove_folder(&dir);
        drop(file);
        match removed {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    })
    .await
}

/// Makes the completed object of the upload in `dir`, whose locked data file is `file`, and
/// returns the file holding it, for the caller to rename into place: the data file itself when
/// the parts lie end to end from its start (cut to their length), else a copy of each part's range
/// at `scratch` (a temporary path beside the store). The data file stays in `dir` until the caller
/// moves it or removes `dir`, so a crash at any point leaves either the upload or the completed
/// object.
pub(super) fn assemble(
    root: &Root,
    file: &File,
    dir: &Path,
    parts: &[PartId],
    scratch: &Path,
) -> std::io::Result<PathBuf> {
    let ranges = parts
        .iter()
        .map(receipt)
        .collect::<std::io::Result<Vec<_>>>()?;
    let end_to_end = ranges
        .iter()
        .try_fold(0u64, |at, &(offset, len)| (offset == at).then(|| at + len));
    let size = file.metadata()?.len();
    match end_to_end {
        Some(total) if total <= size => {
            if total < size {
                file.set_len(total)?;
                file.sync_data()?;
            }
            Ok(dir.join(DATA))
        }
        _ => {
            let mut out = root.create_file(scratch)?;
            for (offset, len) in ranges {
                if offset.checked_add(len).is_none_or(|end| end > size) {
                    return Err(std::io::Error::new(
                        ErrorKind::InvalidData,
                        "part beyond the data file",
                    ));
                }
                let mut input = file;
                input.seek(SeekFrom::Start(offset))?;
                std::io::copy(&mut input.take(len), &mut out)?;
            }
            out.sync_data()?;
            Ok(scratch.to_owned())
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The upload's data file, locked as completion locks it, for tests of [`assemble`].
    pub fn locked(root: &Root, dir: &Path) -> File {
        try_lock(root, dir).unwrap().expect("lock held elsewhere")
    }
}
