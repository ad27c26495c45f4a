//! Multipart uploads on the filesystem: every part is appended to one data file per upload, so
//! that completing an upload whose parts lie end to end (the usual case, however many chunks a
//! client sent) is a rename, not a copy.
//!
//! Appends and completion hold an exclusive lock on the data file, so processes sharing the root
//! never interleave bytes. A part's receipt is its `offset+length` in the file. A failed or
//! abandoned append is cut off again; a part sent twice, or bytes left by a crash, leave a gap
//! between receipts, and completion then copies the receipts' ranges into a new file instead.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use registry_core::PartId;

use super::io::{Incoming, drain};

/// The file an upload's parts are appended to, in the upload's folder.
const DATA: &str = "data";

/// Opens the upload's data file (creating it when `create`) and locks it, then checks that it is
/// still the upload's: a completion may have moved it away meanwhile, which reads as NotFound.
fn open_locked(dir: &Path, create: bool) -> std::io::Result<File> {
    let path = dir.join(DATA);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(&path)?;
    file.lock()?;
    let opened = file.metadata()?;
    match std::fs::metadata(&path) {
        Ok(now) if now.dev() == opened.dev() && now.ino() == opened.ino() => Ok(file),
        Ok(_) => Err(ErrorKind::NotFound.into()),
        Err(e) => Err(e),
    }
}

/// Appends what `rx` carries to the upload in `dir`, fsynced; returns the part's receipt. On
/// failure the file is cut back to where the part began.
pub(super) fn append(dir: &Path, rx: &mut Incoming) -> std::io::Result<PartId> {
    let mut file = open_locked(dir, true)?;
    let offset = file.seek(SeekFrom::End(0))?;
    let written = drain(rx, &mut file).and_then(|n| file.sync_data().map(|()| n));
    match written {
        Ok(len) => Ok(PartId(format!("{offset}+{len}"))),
        Err(e) => {
            let _ = file.set_len(offset);
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

/// Makes the completed object of the upload in `dir` and returns the file holding it, for the
/// caller to rename into place: the data file itself when the parts lie end to end from its start
/// (cut to their length), else a copy of each part's range at `scratch` (a temporary path beside
/// the store). The data file stays in `dir` until the caller removes `dir` after the rename, so a
/// crash at any point leaves either the upload or the completed object.
pub(super) fn assemble(
    dir: &Path,
    parts: &[PartId],
    scratch: &Path,
) -> std::io::Result<std::path::PathBuf> {
    let ranges = parts
        .iter()
        .map(receipt)
        .collect::<std::io::Result<Vec<_>>>()?;
    let file = match open_locked(dir, false) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound && ranges.is_empty() && dir.exists() => {
            File::create(scratch)?.sync_data()?;
            return Ok(scratch.to_owned());
        }
        Err(e) => return Err(e),
    };
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
            let mut out = File::create(scratch)?;
            for (offset, len) in ranges {
                if offset.checked_add(len).is_none_or(|end| end > size) {
                    return Err(std::io::Error::new(
                        ErrorKind::InvalidData,
                        "part beyond the data file",
                    ));
                }
                let mut input = &file;
                input.seek(SeekFrom::Start(offset))?;
                std::io::copy(&mut input.take(len), &mut out)?;
            }
            out.sync_data()?;
            Ok(scratch.to_owned())
        }
    }
}
