//! The storage layout, drawn once. Nothing else in the workspace builds a storage key.
//!
//! ```text
//! <root>
//! ├── blobs/<alg>/<hex[0..2]>/<hex>/
//! │   ├── data                                        bytes of a blob or manifest, once per digest
//! │   └── location                                    or: where they are (a BlobLocation, JSON)
//! ├── data/<id>                                       bytes an upload received, until renamed to
//! │                                                   blobs/…/data (or for good, see below)
//! ├── repositories/<name>/                            <name> has one or more components
//! │   ├── _layers/<alg>/<hex>/link                    the blob was pushed or mounted here (holds the digest)
//! │   ├── _manifests/revisions/<alg>/<hex>/link       the manifest was pushed here (holds a ManifestLink)
//! │   ├── _manifests/tags/<tag>/current/link          the tag points at a digest (holds the digest)
//! │   └── _referrers/<alg>/<hex>/<alg>-<hex>          descriptor of a manifest whose subject is <alg>:<hex>
//! └── uploads/<id>/
//!     ├── session                                     the upload's state (an UploadSession, JSON)
//!     └── tail-<offset>                               received bytes too few to be a part yet
//! ```
//!
//! On backends whose rename copies bytes ([`crate::Storage::rename_copies`]: object stores), a
//! completed streamed upload stays at `data/<id>` and `blobs/…/location` points at it, so
//! committing a blob of any size costs one small write instead of a copy.
//!
//! Repository name components never start with `_`, so `_layers`, `_manifests` and `_referrers`
//! cannot collide with a deeper repository name.

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

/// The folder holding one folder per tag.
pub fn tags(name: &RepositoryName) -> String {
    format!("{}/{MANIFESTS_DIR}/tags", repository(name))
}

/// The link a tag is.
pub fn tag_link(name: &RepositoryName, tag: &Tag) -> String {
    format!("{}/{tag}/current/link", tags(name))
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

/// Bytes an upload received after its last part, when the stream stood at `offset`.
pub fn upload_tail(id: &str, offset: u64) -> String {
    format!("{UPLOADS}/{id}/tail-{offset}")
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
        assert_eq!(
            tag_link(&n, &t),
            "repositories/a/blobs/c/_manifests/tags/v1/current/link"
        );
        assert!(referrer(&n, &d, &d).starts_with(&referrers(&n, &d)));
    }
}
