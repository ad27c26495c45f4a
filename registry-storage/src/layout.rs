//! An OCI image layout on disk (`oci-layout`, `index.json`, `blobs/<algorithm>/<hex>`), as
//! skopeo's `oci:` and umoci read and write it: the form in which images are carried to a site
//! without a network. [`OciLayout`] is a `registry_core::transfer` origin and destination, so
//! `registry copy` exports to it and imports from it; [`pack`] and [`unpack`] turn a layout into
//! an `oci-archive` tar and back.
//!
//! A blob is written under a temporary name, hashed on the way, and renamed into place only once
//! its digest and size match, so a file under `blobs/` is always complete and verified, and an
//! interrupted export resumes where it stopped. `index.json` is replaced atomically, after the
//! manifests it names are in place. What is read is bounded before it is read (a manifest by the
//! registry's manifest size limit, `index.json` by 64 MiB), and nothing is written through a
//! symbolic link inside the layout. A layout holds one repository: the repository names the
//! transfer traits pass are ignored. Tags are the `org.opencontainers.image.ref.name`
//! annotations of `index.json`'s entries; referrers copied in are listed there without one.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use registry_core::manifest::{Descriptor, Manifest};
use registry_core::transfer::{Destination, Fetched, Origin};
use registry_core::{ByteStream, Digest, Digester, Error, Reference, RepositoryName, Result, Tag};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The annotation naming an `index.json` entry's tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI image layout directory.
#[derive(Debug)]
pub struct OciLayout {
    root: PathBuf,
    /// Updates of `index.json` within this process, one at a time.
    index: tokio::sync::Mutex<()>,
    /// Manifests larger than this are refused before they are read.
    max_manifest_size: u64,
}

/// The largest `index.json` read: about 300,000 entries.
const MAX_INDEX_SIZE: u64 = 64 * 1024 * 1024;

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::storage(format!("{what} {}: {e}", path.display()))
}

impl OciLayout {
    /// Opens the layout at `root`, creating it (and `oci-layout`, `index.json`) when absent.
    pub async fn create(root: impl Into<PathBuf>) -> Result<OciLayout> {
        let root = root.into();
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| io("cannot create", &root, e))?;
        real_dir(&root.join("blobs")).await?;
        let marker = root.join("oci-layout");
        if !marker.exists() {
            write_atomically(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        }
        let layout = OciLayout {
            root,
            index: tokio::sync::Mutex::new(()),
            max_manifest_size: registry_core::registry::DEFAULT_MAX_MANIFEST_SIZE,
        };
        if !layout.root.join("index.json").exists() {
            layout.write_index(&Vec::new()).await?;
        }
        Ok(layout)
    }

    /// Opens an existing layout at `root`: one with an `oci-layout` file.
    pub async fn open(root: impl Into<PathBuf>) -> Result<OciLayout> {
        let root = root.into();
        let marker = root.join("oci-layout");
        tokio::fs::metadata(&marker)
            .await
            .map_err(|e| io("not an OCI layout: cannot read", &marker, e))?;
        Ok(OciLayout {
            root,
            index: tokio::sync::Mutex::new(()),
            max_manifest_size: registry_core::registry::DEFAULT_MAX_MANIFEST_SIZE,
        })
    }

    /// The same layout, refusing manifests larger than `limit` bytes (before reading them).
    pub fn with_max_manifest_size(mut self, limit: u64) -> OciLayout {
        self.max_manifest_size = limit;
        self
    }

    /// Where the blob `digest` is stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The entries of `index.json`.
    pub async fn entries(&self) -> Result<Vec<Descriptor>> {
        let path = self.root.join("index.json");
        let bytes = read_bounded(&path, MAX_INDEX_SIZE)
            .await
            .map_err(|e| io("cannot read", &path, e))?
            .ok_or_else(|| Error::storage(format!("{} is missing", path.display())))?;
        let index: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::storage(format!("{} is not JSON: {e}", path.display())))?;
        match index.get("manifests") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(list) => serde_json::from_value(list.clone())
                .map_err(|e| Error::storage(format!("{}: bad manifests: {e}", path.display()))),
        }
    }

    async fn write_index(&self, entries: &[Descriptor]) -> Result<()> {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": entries,
        });
        let bytes = serde_json::to_vec(&index).map_err(Error::storage)?;
        write_atomically(&self.root.join("index.json"), &bytes).await
    }

    /// The entry of `index.json` tagged `tag`.
    async fn tagged(&self, tag: &Tag) -> Result<Option<Descriptor>> {
        Ok(self
            .entries()
            .await?
            .into_iter()
            .find(|d| ref_name(d) == Some(tag.as_str())))
    }

    /// Adds `entry` to `index.json`, replacing the entry of the same tag (or, untagged, the same
    /// digest).
    async fn add_entry(&self, entry: Descriptor) -> Result<()> {
        let _one = self.index.lock().await;
        let mut entries = self.entries().await?;
        let name = ref_name(&entry).map(str::to_owned);
        entries.retain(|d| match &name {
            Some(name) => ref_name(d) != Some(name),
            None => ref_name(d).is_some() || d.digest != entry.digest,
        });
        entries.push(entry);
        self.write_index(&entries).await
    }

    /// Writes `data` as the blob `digest` of `size` bytes, verified before it becomes visible.
    async fn write_blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
        mut data: ByteStream,
    ) -> Result<()> {
        let path = self.blob_path(digest);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        real_dir(&self.root.join("blobs")).await?;
        real_dir(&dir).await?;
        let partial = dir.join(format!(".partial-{}", uuid::Uuid::new_v4().simple()));
        let written = async {
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)
                .await
                .map_err(|e| io("cannot create", &partial, e))?;
            let mut hash = Digester::new(digest.algorithm());
            let mut len = 0u64;
            while let Some(chunk) = data.next().await {
                let chunk = chunk.map_err(|e| Error::storage(format!("reading {digest}: {e}")))?;
                hash.update(&chunk);
                len += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io("cannot write", &partial, e))?;
            }
            file.sync_all()
                .await
                .map_err(|e| io("cannot sync", &partial, e))?;
            let actual = hash.finish();
            if actual != *digest {
                return Err(Error::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            if let Some(size) = size.filter(|s| *s != len) {
                return Err(Error::BlobUploadInvalid {
                    reason: format!("{digest} is {len} bytes, not {size}"),
                });
            }
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(|e| io("cannot rename into", &path, e))
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        written
    }

    async fn read_manifest(
        &self,
        digest: &Digest,
        media_type: Option<String>,
    ) -> Result<Option<Fetched>> {
        let path = self.blob_path(digest);
        match read_bounded(&path, self.max_manifest_size).await {
            Ok(Some(bytes)) => Fetched::new(Bytes::from(bytes), media_type, Some(digest)).map(Some),
            Ok(None) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                Err(Error::ManifestTooLarge {
                    size: tokio::fs::metadata(&path).await.map_or(0, |m| m.len()),
                    limit: self.max_manifest_size,
                })
            }
            Err(e) => Err(io("cannot read", &path, e)),
        }
    }
}

/// The bytes of the file at `path` (`None` when there is none), refused with `FileTooLarge`
/// before anything is read when it holds more than `limit`, and read no further than that.
async fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let too_large = || std::io::Error::new(std::io::ErrorKind::FileTooLarge, "too large");
    if file.metadata().await?.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).await?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// Makes sure `path` is a directory of its own, creating it when missing: an export never writes
/// through a symbolic link planted inside the layout (`blobs/sha256` pointing elsewhere).
async fn real_dir(path: &Path) -> Result<()> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::storage(format!(
            "{} is a symbolic link: refusing to write through it",
            path.display()
        ))),
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::storage(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match tokio::fs::create_dir(path).await {
                Ok(()) => Ok(()),
                // Another writer made it meanwhile: look again.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Box::pin(real_dir(path)).await
                }
                Err(e) => Err(io("cannot create", path, e)),
            }
        }
        Err(e) => Err(io("cannot read", path, e)),
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(|e| io("cannot write", &tmp, e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| io("cannot rename into", path, e))
}

#[async_trait]
impl Origin for OciLayout {
    async fn manifest(&self, _: &RepositoryName, reference: &Reference) -> Result<Option<Fetched>> {
        match reference {
            Reference::Tag(tag) => match self.tagged(tag).await? {
                Some(d) => self.read_manifest(&d.digest, Some(d.media_type)).await,
                None => Ok(None),
            },
            Reference::Digest(digest) => {
                let listed = self
                    .entries()
                    .await?
                    .into_iter()
                    .find(|d| d.digest == *digest);
                self.read_manifest(digest, listed.map(|d| d.media_type))
                    .await
            }
        }
    }

    async fn blob(&self, _: &RepositoryName, digest: &Digest) -> Result<ByteStream> {
        let path = self.blob_path(digest);
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(tokio_util::io::ReaderStream::new(file).boxed()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BlobUnknown {
                digest: digest.clone(),
            }),
            Err(e) => Err(io("cannot open", &path, e)),
        }
    }

    async fn referrers(&self, _: &RepositoryName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let mut found = Vec::new();
        for entry in self.entries().await? {
            let Some(fetched) = self.read_manifest(&entry.digest, None).await? else {
                continue;
            };
            let Ok(parsed) = Manifest::parse(&fetched.bytes, Some(&entry.media_type)) else {
                continue;
            };
            if parsed
                .subject
                .as_ref()
                .is_some_and(|s| s.digest == *subject)
            {
                found.push(entry);
            }
        }
        Ok(found)
    }

    async fn tags(&self, _: &RepositoryName) -> Result<Vec<Tag>> {
        self.entries()
            .await?
            .iter()
            .filter_map(ref_name)
            .map(str::parse)
            .collect()
    }
}

#[async_trait]
impl Destination for OciLayout {
    async fn manifest_digest(
        &self,
        _: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Digest>> {
        match reference {
            Reference::Tag(tag) => Ok(self.tagged(tag).await?.map(|d| d.digest)),
            Reference::Digest(d) => Ok(self.blob_path(d).exists().then(|| d.clone())),
        }
    }

    async fn has_blob(&self, _: &RepositoryName, descriptor: &Descriptor) -> Result<bool> {
        Ok(tokio::fs::metadata(self.blob_path(&descriptor.digest))
            .await
            .is_ok_and(|m| m.len() == descriptor.size))
    }

    async fn put_blob(
        &self,
        _: &RepositoryName,
        descriptor: &Descriptor,
        data: ByteStream,
    ) -> Result<()> {
        self.write_blob(&descriptor.digest, Some(descriptor.size), data)
            .await
    }

    async fn put_manifest(
        &self,
        _: &RepositoryName,
        reference: &Reference,
        manifest: &Fetched,
        _partial: bool,
    ) -> Result<()> {
        let parsed = Manifest::parse(&manifest.bytes, manifest.media_type.as_deref())?;
        let bytes = manifest.bytes.clone();
        let body = futures::stream::once(async move { Ok(bytes) }).boxed();
        self.write_blob(&manifest.digest, Some(manifest.bytes.len() as u64), body)
            .await?;
        let annotations = match reference {
            Reference::Tag(tag) => Some([(REF_NAME.to_owned(), tag.to_string())].into()),
            Reference::Digest(_) if parsed.subject.is_some() => None,
            Reference::Digest(_) => return Ok(()),
        };
        self.add_entry(Descriptor {
            media_type: parsed.media_type,
            digest: manifest.digest.clone(),
            size: manifest.bytes.len() as u64,
            artifact_type: parsed.artifact_type,
            annotations,
            urls: None,
            platform: None,
        })
        .await
    }
}

/// Writes the layout at `dir` as a tar archive at `file` (written beside it, then renamed).
pub async fn pack(dir: &Path, file: &Path) -> Result<()> {
    let (dir, file) = (dir.to_owned(), file.to_owned());
    tokio::task::spawn_blocking(move || {
        let tmp = file.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let out = std::fs::File::create(&tmp)?;
            let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
            tar.follow_symlinks(false);
            for name in ["oci-layout", "index.json"] {
                tar.append_path_with_name(dir.join(name), name)?;
            }
            tar.append_dir_all("blobs", dir.join("blobs"))?;
            let out = tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
            out.sync_all()?;
            std::fs::rename(&tmp, &file)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(|e| io("cannot write the archive", &file, e))
    })
    .await
    .map_err(Error::storage)?
}

/// Unpacks the `oci-archive` tar at `file` into the directory `dir`. Entries that would land
/// outside `dir` (absolute paths, `..`, links) are refused by the `tar` crate's `unpack_in`.
pub async fn unpack(file: &Path, dir: &Path) -> Result<()> {
    let (dir, file) = (dir.to_owned(), file.to_owned());
    tokio::task::spawn_blocking(move || {
        let read = (|| {
            let mut tar = tar::Archive::new(std::io::BufReader::new(std::fs::File::open(&file)?));
            for entry in tar.entries()? {
                let mut entry = entry?;
                let kind = entry.header().entry_type();
                if !(kind.is_file() || kind.is_dir()) {
                    continue;
                }
                entry.unpack_in(&dir)?;
            }
            Ok(())
        })();
        read.map_err(|e: std::io::Error| io("cannot unpack", &file, e))
    })
    .await
    .map_err(Error::storage)?
}
