//! The storage layout, drawn once. Nothing else in the workspace builds a storage key.
//!
//! ```text
//! <root>
//! ├── blobs/<alg>/<hex[0..2]>/<hex>/
//! │   ├── data                                        bytes of a blob or manifest, once per digest
//! │   ├── location                                    or: where they are (a BlobLocation, JSON)
//! │   ├── used                                        empty; written when a push reuses the blob,
//! │                                                   its age tells garbage collection it is in use
//! │   ├── linked/<name, `/` as `!`>/<id>              empty; written before the repository links the
//! │                                                   blob (layer link or manifest revision), one
//! │                                                   per write: which repositories to ask before
//! │                                                   removing the bytes
//! │   └── collecting-<id>                             empty; a collection is removing the blob
//! ├── collection/                                     what garbage collection must look at (empty
//! │   │                                               objects, `<time>-<nonce>` each, unique per write)
//! │   ├── repositories/<name, `/` as `!`>/<time>-<nonce>  something in the repository may be garbage
//! │   └── blobs/<alg>-<hex>/<time>-<nonce>            a link to the blob went: its bytes may be garbage
//! ├── data/<id>                                       bytes an upload received, until renamed to
//! │                                                   blobs/…/data (or for good, see below)
//! ├── index/
//! │   ├── version                                     the index this store keeps (INDEX_VERSION)
//! │   ├── collection                                  the store keeps `linked/` records and candidates
//! │                                                   for every link (COLLECTION_RECORDS)
//! │   └── collection-settings                         the settings of the last full collection
//! │                                                   (COLLECTION_SETTINGS)
//! │   └── repositories/<name, `/` as `!`>             empty; the repository holds a manifest: the
//! │                                                   catalog, listed a page at a time
//! ├── repositories/<name>/                            <name> has one or more components
//! │   ├── _layers/<alg>/<hex>/link                    the blob was pushed or mounted here (holds the digest)
//! │   ├── _manifests/revisions/<alg>/<hex>/link       the manifest was pushed here (holds a ManifestLink)
//! │   ├── _tags/<tag>                                 the tag (a TagRecord, JSON: its digest, when it
//! │   │                                               moved), listed a page at a time
//! │   ├── _history/<tag>/<time>-<nonce>               one move or delete of the tag (a TagChange, JSON)
//! │   ├── _pulled/<tag>                               empty; its age is when the tag was last pulled
//! │                                                   (written at most once per interval)
//! │   └── _referrers/<alg>/<hex>/<alg>-<hex>          descriptor of a manifest whose subject is <alg>:<hex>
//! ├── replication/<target>/
//! │   ├── queue/<replica>/<time>-<nonce>              a change to copy to the target (JSON: repository,
//! │   │                                               reference, the digest expected), queued by a replica
//! │   └── status/<replica>                            what the replica last did for the target (JSON)
//! ├── replicas/<replica>                              empty; its age is the replica's last heartbeat
//! └── uploads/<id>/
//!     ├── session                                     the upload's state (an UploadSession, JSON)
//!     └── tail-<offset>-<sha256>                      received bytes too few to be a part yet, by hash
//! ```
//!
//! On backends whose rename copies bytes ([`crate::Capabilities::rename_copies`]: object stores), a
//! completed streamed upload stays at `data/<id>` and `blobs/…/location` points at it, so
//! committing a blob of any size costs one small write instead of a copy.
//!
//! Repository name components never start with `_`, so `_layers`, `_manifests`, `_tags`,
//! `_history`, `_pulled` and `_referrers` cannot collide with a deeper repository name. Names never contain
//! `!`, and `!` sorts before every character they do contain, so catalog entries list in the
//! lexical order of the names' components (`a`, `a/b`, `a-b`).
//!
//! Stores written before the index kept each tag at `_manifests/tags/<tag>/current/link` (the
//! digest alone): [`legacy_tag_link`]; `registry reindex` (or the server at start) moves them.
//! So does distribution (the `registry` image), whose store under `docker/registry/v2` is this
//! layout's elder: the same blobs and layer links, revision links holding the digest alone
//! (read as they are, and rewritten by reindexing), and besides a tag's current link the
//! digests it pointed at (`_manifests/tags/<tag>/index/…`) and upload state (`_uploads/…`),
//! which reindexing removes.

use crate::digest::Digest;
use crate::reference::{RepositoryName, Tag};
use crate::storage::join;

/// Prefix of all repositories.
pub const REPOSITORIES: &str = "repositories";
/// Prefix of all upload sessions.
pub const UPLOADS: &str = "uploads";
/// Prefix of all blob data.
pub const BLOBS: &str = "blobs";
/// Prefix of the bytes received by streamed uploads.
pub const DATA: &str = "data";
/// Prefix of the catalog: one empty object per repository holding a manifest.
pub const CATALOG: &str = "index/repositories";
/// The version of the index a store keeps, and where it is recorded.
pub const INDEX_VERSION: &str = "index/version";
/// Prefix of the candidates of garbage collection.
pub const COLLECTION: &str = "collection";
/// Present once the store records, for every link, which repositories link each blob and what a
/// collection must look at (written on a fresh store, or by reindexing an older one).
pub const COLLECTION_RECORDS: &str = "index/collection";
/// The settings (a digest of them) the last full collection marked with: an incremental
/// collection under other settings walks the whole store instead.
pub const COLLECTION_SETTINGS: &str = "index/collection-settings";
/// Prefix of replication's queues and status, by target.
pub const REPLICATION: &str = "replication";
/// Prefix of the heartbeats of the processes sharing the store.
pub const REPLICAS: &str = "replicas";
/// The component that marks a folder as a repository holding manifests.
pub const MANIFESTS_DIR: &str = "_manifests";

/// Where a blob's bytes live, shared by every repository.
pub fn blob_data(d: &Digest) -> String {
    format!(
        "{BLOBS}/{}/{}/{}/data",
        d.algorithm(),
        &d.hex()[..2],
        d.hex()
    )
}

/// Where a blob's bytes are, when they are not at [`blob_data`].
pub fn blob_location(d: &Digest) -> String {
    format!(
        "{BLOBS}/{}/{}/{}/location",
        d.algorithm(),
        &d.hex()[..2],
        d.hex()
    )
}

/// An empty object whose modification time says when a push last reused the blob.
pub fn blob_used(d: &Digest) -> String {
    format!(
        "{BLOBS}/{}/{}/{}/used",
        d.algorithm(),
        &d.hex()[..2],
        d.hex()
    )
}

/// The folder of a blob's objects: its data or location record, in-use mark and announcements.
pub fn blob_folder(d: &Digest) -> String {
    format!("{BLOBS}/{}/{}/{}", d.algorithm(), &d.hex()[..2], d.hex())
}

/// An empty object garbage collection writes before it removes the blob (or a revision of the
/// manifest it holds) and removes last, `id` (letters and digits) naming that one removal: while
/// one is there (and young), a manifest push refuses to reference the blob.
pub fn blob_collecting(d: &Digest, id: &str) -> String {
    format!("{}/collecting-{id}", blob_folder(d))
}

/// An empty object written before `name` links the blob (as a layer or a manifest revision),
/// `id` (letters and digits) unique to that write, so that a collection removing the records it
/// listed never removes one a push wrote since: garbage collection asks only the repositories
/// named so whether they still link the blob.
pub fn blob_linked(d: &Digest, name: &RepositoryName, id: &str) -> String {
    format!(
        "{}/linked/{}/{id}",
        blob_folder(d),
        name.as_str().replace('/', "!")
    )
}

/// A candidate record: something in the repository may have become garbage at `nanos` (a link
/// made that no manifest may come to use, a manifest deleted, a tag moved).
pub fn repository_candidate(name: &RepositoryName, nanos: u128, nonce: &str) -> String {
    format!(
        "{COLLECTION}/repositories/{}/{nanos}-{nonce}",
        name.as_str().replace('/', "!")
    )
}

/// A candidate record: a link to the blob went at `nanos`, so its bytes may be garbage.
pub fn blob_candidate(d: &Digest, nanos: u128, nonce: &str) -> String {
    format!(
        "{COLLECTION}/blobs/{}-{}/{nanos}-{nonce}",
        d.algorithm(),
        d.hex()
    )
}

/// What a key under [`COLLECTION`] asks a collection to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// [`repository_candidate`]
    Repository(RepositoryName),
    /// [`blob_candidate`]
    Blob(Digest),
}

/// The candidate a key under [`COLLECTION`] records; `None` for a key this layout never builds.
pub fn parse_candidate_key(key: &str) -> Option<Candidate> {
    let rest = key.strip_prefix(COLLECTION)?.strip_prefix('/')?;
    let [kind, what, record] = rest.split('/').collect::<Vec<_>>()[..] else {
        return None;
    };
    let (nanos, nonce) = record.split_once('-')?;
    if nanos.parse::<u128>().is_err() || nonce.is_empty() {
        return None;
    }
    match kind {
        "repositories" => Some(Candidate::Repository(parse_catalog_entry(what)?)),
        "blobs" => {
            let (alg, hex) = what.split_once('-')?;
            Some(Candidate::Blob(format!("{alg}:{hex}").parse().ok()?))
        }
        _ => None,
    }
}

/// The folder of one repository.
pub fn repository(name: &RepositoryName) -> String {
    join(REPOSITORIES, name.as_str())
}

/// The link that makes a blob part of a repository.
pub fn layer_link(name: &RepositoryName, d: &Digest) -> String {
    format!(
        "{}/_layers/{}/{}/link",
        repository(name),
        d.algorithm(),
        d.hex()
    )
}

/// The link that makes a manifest part of a repository.
pub fn manifest_link(name: &RepositoryName, d: &Digest) -> String {
    format!(
        "{}/{MANIFESTS_DIR}/revisions/{}/{}/link",
        repository(name),
        d.algorithm(),
        d.hex()
    )
}

/// Whether a folder directly under a repository's is the repository's own (`_manifests`,
/// `_layers`, `_referrers`) rather than a deeper repository's name.
pub fn is_repository_entry(folder: &str) -> bool {
    folder.starts_with('_')
}

/// The folder holding one record per tag.
pub fn tags(name: &RepositoryName) -> String {
    format!("{}/_tags", repository(name))
}

/// A tag's record.
pub fn tag(name: &RepositoryName, tag: &Tag) -> String {
    format!("{}/{tag}", tags(name))
}

/// The folder of a tag's history.
pub fn tag_history(name: &RepositoryName, tag: &Tag) -> String {
    format!("{}/_history/{tag}", repository(name))
}

/// The history of every tag of a repository, one folder per tag.
pub fn history(name: &RepositoryName) -> String {
    format!("{}/_history", repository(name))
}

/// The empty object whose age says when a tag was last pulled.
pub fn tag_pulled(name: &RepositoryName, tag: &Tag) -> String {
    format!("{}/_pulled/{tag}", repository(name))
}

/// One change of a tag, at `nanos` since the Unix epoch (`nonce` tells apart changes of the same
/// instant); they list in the order they happened.
pub fn tag_change(name: &RepositoryName, tag: &Tag, nanos: u128, nonce: &str) -> String {
    format!("{}/{nanos:020}-{nonce}", tag_history(name, tag))
}

/// The folder of the tags of stores written before the index.
pub fn legacy_tags(name: &RepositoryName) -> String {
    format!("{}/{MANIFESTS_DIR}/tags", repository(name))
}

/// Where stores written before the index kept a tag (the digest alone).
pub fn legacy_tag_link(name: &RepositoryName, tag: &Tag) -> String {
    format!("{}/{tag}/current/link", legacy_tags(name))
}

/// The queues of a replication target, one folder per replica that queued changes.
pub fn replication_queues(target: &str) -> String {
    format!("{REPLICATION}/{target}/queue")
}

/// The changes one replica queued for a target.
pub fn replication_queue(target: &str, replica: &str) -> String {
    format!("{}/{replica}", replication_queues(target))
}

/// One queued change, at `nanos` since the Unix epoch; they list in the order they were queued.
pub fn replication_item(target: &str, replica: &str, nanos: u128, nonce: &str) -> String {
    format!("{}/{nanos:020}-{nonce}", replication_queue(target, replica))
}

/// The status records of a target, one per replica.
pub fn replication_statuses(target: &str) -> String {
    format!("{REPLICATION}/{target}/status")
}

/// What one replica last did for a target.
pub fn replication_status(target: &str, replica: &str) -> String {
    format!("{}/{replica}", replication_statuses(target))
}

/// A replica's heartbeat.
pub fn replica(replica: &str) -> String {
    format!("{REPLICAS}/{replica}")
}

/// A repository's catalog entry.
pub fn catalog_entry(name: &RepositoryName) -> String {
    format!("{CATALOG}/{}", name.as_str().replace('/', "!"))
}

/// The repository a catalog entry's name (the last component of its key) stands for.
pub fn parse_catalog_entry(entry: &str) -> Option<RepositoryName> {
    entry.replace('!', "/").parse().ok()
}

/// The folder listing the referrers of a subject digest.
pub fn referrers(name: &RepositoryName, subject: &Digest) -> String {
    format!(
        "{}/_referrers/{}/{}",
        repository(name),
        subject.algorithm(),
        subject.hex()
    )
}

/// The entry for one referrer of a subject.
pub fn referrer(name: &RepositoryName, subject: &Digest, referrer: &Digest) -> String {
    format!(
        "{}/{}-{}",
        referrers(name, subject),
        referrer.algorithm(),
        referrer.hex()
    )
}

/// The folder holding the repository's manifest revisions.
pub fn revisions(name: &RepositoryName) -> String {
    format!("{}/{MANIFESTS_DIR}/revisions", repository(name))
}

/// An upload session's state.
pub fn upload_session(id: &str) -> String {
    format!("{UPLOADS}/{id}/session")
}

/// The folder of an upload's session and tails.
pub fn upload(id: &str) -> String {
    format!("{UPLOADS}/{id}")
}

/// The object a streamed upload's multipart builds.
pub fn upload_data(id: &str) -> String {
    format!("{DATA}/{id}")
}

/// Bytes an upload received after its last part, when the stream stood at `offset`, named by
/// their SHA-256 so that two requests racing on one upload never write the same key with other
/// bytes (`None`: a tail written before tails were named so).
pub fn upload_tail(id: &str, offset: u64, digest: Option<&Digest>) -> String {
    match digest {
        Some(d) => format!("{UPLOADS}/{id}/tail-{offset}-{}", d.hex()),
        None => format!("{UPLOADS}/{id}/tail-{offset}"),
    }
}

/// The kind of object found under [`BLOBS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobObject {
    /// [`blob_data`]
    Data,
    /// [`blob_location`]
    Location,
    /// [`blob_used`]
    Used,
    /// [`blob_collecting`]
    Collecting,
    /// [`blob_linked`]
    Linked(RepositoryName),
}

/// The digest and kind of a key under [`BLOBS`]; `None` for a key this layout never builds.
pub fn parse_blob_key(key: &str) -> Option<(Digest, BlobObject)> {
    let parts: Vec<&str> = key.split('/').collect();
    if let [BLOBS, alg, _, hex, "linked", name, id] = parts[..] {
        let d: Digest = format!("{alg}:{hex}").parse().ok()?;
        let repo = parse_catalog_entry(name)?;
        let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
        return (id_ok && blob_linked(&d, &repo, id) == key)
            .then_some((d, BlobObject::Linked(repo)));
    }
    let [BLOBS, alg, _, hex, name] = parts[..] else {
        return None;
    };
    let d: Digest = format!("{alg}:{hex}").parse().ok()?;
    let (kind, expected) = match name {
        "data" => (BlobObject::Data, blob_data(&d)),
        "location" => (BlobObject::Location, blob_location(&d)),
        "used" => (BlobObject::Used, blob_used(&d)),
        _ => match name.strip_prefix("collecting-") {
            Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                (BlobObject::Collecting, blob_collecting(&d, id))
            }
            _ => return None,
        },
    };
    (expected == key).then_some((d, kind))
}

/// What a key under [`REPOSITORIES`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryEntry {
    /// [`tag`]
    Tag(Tag),
    /// [`legacy_tag_link`]
    LegacyTag(Tag),
    /// [`tag_change`]
    TagChange {
        /// The tag.
        tag: Tag,
        /// When it changed, in nanoseconds since the Unix epoch.
        nanos: u128,
    },
    /// [`tag_pulled`]
    Pulled(Tag),
    /// [`manifest_link`]
    Revision(Digest),
    /// [`layer_link`]
    Layer(Digest),
    /// [`referrer`]
    Referrer {
        /// The manifest referred to.
        subject: Digest,
        /// The manifest referring to it.
        referrer: Digest,
    },
    /// What distribution keeps besides a tag's current link (its past digests,
    /// `_manifests/tags/<tag>/index/<alg>/<hex>/link`) and its upload state (`_uploads/…`):
    /// stores it wrote hold them; reindexing removes them.
    Distribution,
}

/// The repository and entry a key under [`REPOSITORIES`] is; `None` for a key this layout never
/// builds.
pub fn parse_repository_key(key: &str) -> Option<(RepositoryName, RepositoryEntry)> {
    let rest = key.strip_prefix(REPOSITORIES)?.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    let at = parts.iter().position(|p| p.starts_with('_'))?;
    let name: RepositoryName = parts[..at].join("/").parse().ok()?;
    let digest = |alg: &str, hex: &str| format!("{alg}:{hex}").parse::<Digest>().ok();
    let entry = match parts[at..] {
        ["_layers", alg, hex, "link"] => RepositoryEntry::Layer(digest(alg, hex)?),
        [MANIFESTS_DIR, "revisions", alg, hex, "link"] => {
            RepositoryEntry::Revision(digest(alg, hex)?)
        }
        ["_tags", tag] => RepositoryEntry::Tag(tag.parse().ok()?),
        ["_history", tag, change] => RepositoryEntry::TagChange {
            tag: tag.parse().ok()?,
            nanos: change.split_once('-')?.0.parse().ok()?,
        },
        ["_pulled", tag] => RepositoryEntry::Pulled(tag.parse().ok()?),
        [MANIFESTS_DIR, "tags", tag, "current", "link"] => {
            RepositoryEntry::LegacyTag(tag.parse().ok()?)
        }
        [MANIFESTS_DIR, "tags", _, "index", ..] | ["_uploads", ..] => RepositoryEntry::Distribution,
        ["_referrers", alg, hex, entry] => {
            let (ralg, rhex) = entry.split_once('-')?;
            RepositoryEntry::Referrer {
                subject: digest(alg, hex)?,
                referrer: digest(ralg, rhex)?,
            }
        }
        _ => return None,
    };
    Some((name, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let d = Digest::of(b"");
        let n: RepositoryName = "a/blobs/c".parse().unwrap();
        let t: Tag = "v1".parse().unwrap();
        assert_eq!(blob_data(&d), format!("blobs/sha256/e3/{}/data", d.hex()));
        assert_eq!(
            layer_link(&n, &d),
            format!("repositories/a/blobs/c/_layers/sha256/{}/link", d.hex())
        );
        assert_eq!(tag(&n, &t), "repositories/a/blobs/c/_tags/v1");
        assert_eq!(catalog_entry(&n), "index/repositories/a!blobs!c");
        assert_eq!(parse_catalog_entry("a!blobs!c"), Some(n.clone()));
        assert!(parse_catalog_entry("A").is_none());
        assert!(referrer(&n, &d, &d).starts_with(&referrers(&n, &d)));
    }

    #[test]
    fn keys_parse_back() {
        let d = Digest::of(b"x");
        let e = Digest::of(b"y");
        let n: RepositoryName = "a/b".parse().unwrap();
        let t: Tag = "v1".parse().unwrap();
        assert_eq!(
            parse_blob_key(&blob_data(&d)),
            Some((d.clone(), BlobObject::Data))
        );
        assert_eq!(
            parse_blob_key(&blob_location(&d)),
            Some((d.clone(), BlobObject::Location))
        );
        assert_eq!(
            parse_blob_key(&blob_used(&d)),
            Some((d.clone(), BlobObject::Used))
        );
        assert_eq!(
            parse_blob_key(&blob_collecting(&d, "c0ffee")),
            Some((d.clone(), BlobObject::Collecting))
        );
        assert_eq!(parse_blob_key(&blob_collecting(&d, "../x")), None);
        assert_eq!(
            parse_blob_key(&blob_linked(&d, &n, "c0ffee")),
            Some((d.clone(), BlobObject::Linked(n.clone())))
        );
        assert_eq!(parse_blob_key(&blob_linked(&d, &n, "../x")), None);
        assert!(blob_linked(&d, &n, "c0ffee").starts_with(&blob_folder(&d)));
        assert_eq!(
            parse_candidate_key(&repository_candidate(&n, 7, "ab")),
            Some(Candidate::Repository(n.clone()))
        );
        assert_eq!(
            parse_candidate_key(&blob_candidate(&d, 7, "ab")),
            Some(Candidate::Blob(d.clone()))
        );
        for bad in [
            "collection/repositories/a!b/x-ab",
            "collection/repositories/A/7-ab",
            "collection/blobs/sha256-00/7-ab",
            "collection/other/a/7-ab",
        ] {
            assert_eq!(parse_candidate_key(bad), None, "{bad}");
        }
        let misplaced = blob_data(&d).replace(&format!("/{}/", &d.hex()[..2]), "/00/");
        for bad in [
            misplaced.as_str(),
            "blobs/sha256/x",
            "blobs/sha256/ab/cd/data",
        ] {
            assert_eq!(parse_blob_key(bad), None, "{bad}");
        }
        let parse = |k: String| parse_repository_key(&k).map(|(name, e)| (name.to_string(), e));
        assert_eq!(
            parse(tag(&n, &t)),
            Some(("a/b".into(), RepositoryEntry::Tag(t.clone())))
        );
        assert_eq!(
            parse(legacy_tag_link(&n, &t)),
            Some(("a/b".into(), RepositoryEntry::LegacyTag(t.clone())))
        );
        assert_eq!(
            parse(tag_change(&n, &t, 5, "x")),
            Some((
                "a/b".into(),
                RepositoryEntry::TagChange {
                    tag: t.clone(),
                    nanos: 5
                }
            ))
        );
        assert!(tag_change(&n, &t, 5, "x").starts_with(&history(&n)));
        assert_eq!(
            parse(tag_pulled(&n, &t)),
            Some(("a/b".into(), RepositoryEntry::Pulled(t.clone())))
        );
        assert_eq!(
            parse(manifest_link(&n, &d)),
            Some(("a/b".into(), RepositoryEntry::Revision(d.clone())))
        );
        assert_eq!(
            parse(layer_link(&n, &d)),
            Some(("a/b".into(), RepositoryEntry::Layer(d.clone())))
        );
        assert_eq!(
            parse(referrer(&n, &d, &e)),
            Some((
                "a/b".into(),
                RepositoryEntry::Referrer {
                    subject: d.clone(),
                    referrer: e
                }
            ))
        );
        assert_eq!(parse("repositories/a/_layers/x".into()), None);
        assert_eq!(parse("repositories/_layers/sha256/x/link".into()), None);
    }
}
