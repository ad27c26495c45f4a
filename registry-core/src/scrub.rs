//! Scrub: re-hash every blob and check every link and tag, reporting what is inconsistent without
//! repairing anything.

use std::collections::HashSet;

use futures::TryStreamExt;

use crate::digest::{Digest, Digester};
use crate::error::{Error, Result};
use crate::paths::{self, RepositoryEntry};
use crate::reference::RepositoryName;
use crate::registry::Registry;
use crate::storage::StorageExt;
use crate::stored::BlobLocation;

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
    /// A link (layer, manifest revision, tag or referrer) whose target is missing or unreadable.
    DanglingLink {
        /// The link's key.
        key: String,
        /// What it should point at.
        target: String,
    },
    /// A repository holding a manifest that the catalog does not list (`registry gc` puts the
    /// entry back).
    Unlisted {
        /// The repository.
        repository: RepositoryName,
    },
    /// A catalog entry of a repository that holds no manifest (`registry gc` removes it).
    StaleListing {
        /// The repository.
        repository: RepositoryName,
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

/// Re-hashes every blob, checks that every layer link, manifest revision, tag and referrer of
/// every repository points at stored data, that no object under `repositories/` is of a shape
/// the layout never builds, and that the catalog lists exactly the repositories holding a
/// manifest.
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
        if matches!(
            kind,
            paths::BlobObject::Used | paths::BlobObject::Collecting | paths::BlobObject::Linked(_)
        ) {
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
    let mut holding: HashSet<RepositoryName> = HashSet::new();
    let mut objects = storage.list_all(paths::REPOSITORIES);
    while let Some(meta) = objects.try_next().await? {
        let key = meta.key;
        let Some((repo, entry)) = paths::parse_repository_key(&key) else {
            report.problems.push(Problem::StrayObject { key });
            continue;
        };
        let (target, found) = match entry {
            RepositoryEntry::Tag(tag) | RepositoryEntry::LegacyTag(tag) => {
                match registry.tags.get(&repo, &tag).await {
                    Ok(Some(record)) => {
                        let target = paths::manifest_link(&repo, &record.digest);
                        let found = storage.exists(&target).await?;
                        (target, found)
                    }
                    // Deleted since the listing.
                    Ok(None) => continue,
                    Err(Error::Storage { .. }) => ("an unreadable digest".into(), false),
                    Err(e) => return Err(e),
                }
            }
            RepositoryEntry::Revision(d) => {
                holding.insert(repo.clone());
                let target = paths::blob_data(&d);
                let found = storage.exists(&target).await?;
                (target, found)
            }
            // A layer's bytes may be where its upload left them (object stores): locate them.
            RepositoryEntry::Layer(d) => match registry.blobs.locate_in_storage(&d).await {
                Ok(found) => (found.key, true),
                Err(Error::BlobUnknown { .. }) => (paths::blob_data(&d), false),
                Err(e) => return Err(e),
            },
            RepositoryEntry::Referrer { referrer, .. } => {
                let target = paths::manifest_link(&repo, &referrer);
                let found = storage.exists(&target).await?;
                (target, found)
            }
            RepositoryEntry::TagChange { .. }
            | RepositoryEntry::Pulled(_)
            | RepositoryEntry::Distribution => continue,
        };
        report.links += 1;
        if !found {
            report.problems.push(Problem::DanglingLink { key, target });
        }
    }
    drop(objects);
    if !registry.index.legacy(&**storage).await? {
        let listed: HashSet<RepositoryName> =
            registry.catalog.entries().await?.into_iter().collect();
        for repository in holding.difference(&listed) {
            report.problems.push(Problem::Unlisted {
                repository: repository.clone(),
            });
        }
        for repository in listed.difference(&holding) {
            report.problems.push(Problem::StaleListing {
                repository: repository.clone(),
            });
        }
    }
    Ok(report)
}
