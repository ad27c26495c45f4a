//! Scrub: re-hash every blob and check every link and tag, reporting what is inconsistent without
//! repairing anything.

use futures::TryStreamExt;

use crate::digest::{Digest, Digester};
use crate::error::{Error, Result};
use crate::paths;
use crate::reference::RepositoryName;
use crate::registry::{BlobLocation, Registry};
use crate::storage::StorageExt;

/// One inconsistency found by [`scrub`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob's bytes do not hash to the digest it is stored under.
    CorruptBlob {
        /// The key of the blob's data.
        key: String,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// An object under `blobs/` whose key is not a blob's data key.
    StrayObject {
        /// The object's key.
        key: String,
    },
    /// A link (layer, manifest revision or tag) whose target is missing or unreadable.
    DanglingLink {
        /// The link's key.
        key: String,
        /// What it should point at.
        target: String,
    },
}

/// What a scrub saw and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Blobs re-hashed.
    pub blobs: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Links and tags checked.
    pub links: u64,
    /// Everything inconsistent.
    pub problems: Vec<Problem>,
}

/// Re-hashes every blob and checks that every layer link, manifest revision and tag of every
/// repository points at stored data.
pub async fn scrub(registry: &Registry) -> Result<ScrubReport> {
    let storage = registry.storage();
    let mut report = ScrubReport::default();
    let mut blobs = storage.list_all(paths::BLOBS);
    while let Some(meta) = blobs.try_next().await? {
        let Some((expected, kind)) = paths::parse_blob_key(&meta.key) else {
            report.problems.push(Problem::StrayObject { key: meta.key });
            continue;
        };
        let mut key = meta.key;
        if kind == paths::BlobObject::Used {
            continue;
        }
        if kind == paths::BlobObject::Location {
            let record = storage.get_bytes(&key).await?;
            match serde_json::from_slice::<BlobLocation>(&record) {
                Ok(l) if storage.exists(&l.key).await? => key = l.key,
                Ok(l) => {
                    report
                        .problems
                        .push(Problem::DanglingLink { key, target: l.key });
                    continue;
                }
                Err(_) => {
                    report.problems.push(Problem::DanglingLink {
                        key,
                        target: "an unreadable location".into(),
                    });
                    continue;
                }
            }
        }
        let mut digester = Digester::new(expected.algorithm());
        let mut stream = storage.get(&key, None).await?.stream;
        while let Some(chunk) = stream.try_next().await.map_err(Error::storage)? {
            report.bytes += chunk.len() as u64;
            digester.update(&chunk);
        }
        report.blobs += 1;
        let actual = digester.finish();
        if actual != expected {
            report.problems.push(Problem::CorruptBlob { key, actual });
        }
    }
    drop(blobs);
    let mut objects = storage.list_all(paths::REPOSITORIES);
    while let Some(meta) = objects.try_next().await? {
        let key = meta.key;
        let (target, found) = if key.ends_with("/link") && key.contains("/_manifests/tags/") {
            let bytes = storage.get_bytes(&key).await?;
            let digest = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse::<Digest>().ok());
            let repo = key
                .strip_prefix(paths::REPOSITORIES)
                .and_then(|k| k.strip_prefix('/'))
                .and_then(|k| k.split("/_manifests/").next())
                .and_then(|n| n.parse::<RepositoryName>().ok());
            match (repo, digest) {
                (Some(repo), Some(d)) => {
                    let target = paths::manifest_link(&repo, &d);
                    let found = storage.exists(&target).await?;
                    (target, found)
                }
                _ => {
                    report.problems.push(Problem::DanglingLink {
                        key,
                        target: "an unreadable digest".into(),
                    });
                    continue;
                }
            }
        } else if let Some((d, layer)) = link_digest(&key) {
            let target = paths::blob_data(&d);
            // A layer's bytes may be where its upload left them (object stores): locate them.
            let found = if layer {
                match registry.locate_blob(&d).await {
                    Ok(_) => true,
                    Err(Error::BlobUnknown { .. }) => false,
                    Err(e) => return Err(e),
                }
            } else {
                storage.exists(&target).await?
            };
            (target, found)
        } else {
            continue;
        };
        report.links += 1;
        if !found {
            report.problems.push(Problem::DanglingLink { key, target });
        }
    }
    Ok(report)
}

/// The digest a layer or manifest-revision link is named after, and whether it is a layer's.
fn link_digest(key: &str) -> Option<(Digest, bool)> {
    let rest = key.strip_suffix("/link")?;
    let mut parts = rest.rsplit('/');
    let hex = parts.next()?;
    let alg = parts.next()?;
    let kind = parts.next()?;
    if kind != "_layers" && kind != "revisions" {
        return None;
    }
    Some((format!("{alg}:{hex}").parse().ok()?, kind == "_layers"))
}
