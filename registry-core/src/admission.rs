//! The admission hook: consulted before a manifest is stored, a tag moved or deleted, a manifest
//! deleted or a blob unlinked, it may refuse the change with a reason, which the client gets as `DENIED`
//! (403). Immutable tags, quotas, or a rule that only signed images may be pushed are admission
//! rules.
//!
//! ```
//! use registry_core::admission::{Admission, Caller, Change, Refusal};
//!
//! /// Tags named `latest` may not be deleted.
//! struct KeepLatest;
//!
//! #[async_trait::async_trait]
//! impl Admission for KeepLatest {
//!     async fn admit(&self, change: &Change<'_>, _caller: &Caller) -> Result<(), Refusal> {
//!         match change {
//!             Change::DeleteTag { tag, .. } if tag.as_str() == "latest" => {
//!                 Err(Refusal::new("latest is never deleted"))
//!             }
//!             _ => Ok(()),
//!         }
//!     }
//! }
//! ```

use async_trait::async_trait;

use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::reference::{RepositoryName, Tag};

pub use crate::feed::Caller;

/// A change about to be made to a repository.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Change<'a> {
    /// A manifest is about to be stored (then tagged, when `tag` is given).
    PutManifest {
        /// The repository.
        repository: &'a RepositoryName,
        /// The manifest's digest.
        digest: &'a Digest,
        /// The manifest, parsed (its blobs, children, subject and annotations).
        manifest: &'a Manifest,
        /// Its size in bytes.
        size: u64,
        /// The tag it is pushed under, if any.
        tag: Option<&'a Tag>,
    },
    /// A tag is about to point at `to`; `from` is what it points at now (`None`: a new tag).
    MoveTag {
        /// The repository.
        repository: &'a RepositoryName,
        /// The tag.
        tag: &'a Tag,
        /// Its manifest now.
        from: Option<&'a Digest>,
        /// Its manifest after the change.
        to: &'a Digest,
    },
    /// A tag is about to be deleted; its manifest stays.
    DeleteTag {
        /// The repository.
        repository: &'a RepositoryName,
        /// The tag.
        tag: &'a Tag,
        /// What it points at.
        digest: &'a Digest,
    },
    /// A blob is about to be unlinked from a repository (its bytes stay for other repositories).
    DeleteBlob {
        /// The repository.
        repository: &'a RepositoryName,
        /// The blob.
        digest: &'a Digest,
    },
    /// A manifest is about to be deleted, with every tag pointing at it.
    DeleteManifest {
        /// The repository.
        repository: &'a RepositoryName,
        /// The manifest.
        digest: &'a Digest,
        /// The tags that point at it, and go with it.
        tags: &'a [Tag],
    },
}

/// Why a change was refused: the message the client gets with `DENIED` (403), or, when the rule
/// could not be checked (its storage failed), with `UNAVAILABLE` (503) so that the client retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// What the client is told.
    pub message: String,
    /// The rule could not be checked now; the change may pass later.
    pub unavailable: bool,
}

impl Refusal {
    /// A refusal telling the client `message`.
    pub fn new(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            unavailable: false,
        }
    }

    /// The rule could not be checked (say why); the client is told to retry.
    pub fn unavailable(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            unavailable: true,
        }
    }
}

/// Every rule of a list must admit a change; the first refusal wins.
#[derive(Default, Clone)]
pub struct AllOf(pub Vec<std::sync::Arc<dyn Admission>>);

#[async_trait]
impl Admission for AllOf {
    async fn admit(&self, change: &Change<'_>, caller: &Caller) -> Result<(), Refusal> {
        for rule in &self.0 {
            rule.admit(change, caller).await?;
        }
        Ok(())
    }

    fn serial_groups(&self, repository: &RepositoryName) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|rule| rule.serial_groups(repository))
            .collect()
    }
}

/// Rules a change must pass before it is made. Consulted after the request is validated and
/// before anything is written; a refusal changes nothing.
#[async_trait]
pub trait Admission: Send + Sync + 'static {
    /// Allows `change`, or refuses it with the reason the client is told.
    async fn admit(&self, change: &Change<'_>, caller: &Caller) -> Result<(), Refusal>;

    /// The groups within which manifest pushes to `repository` must be admitted and made one at
    /// a time in this process, each named by a key of this rule's own: a rule that counts what a
    /// group of repositories holds (a quota) names its group, so that it sees every push it
    /// admitted before. A rule that judges each change on its own (immutable tags, a signature
    /// check) names none, the default: pushes it admits run side by side.
    fn serial_groups(&self, repository: &RepositoryName) -> Vec<String> {
        let _ = repository;
        Vec::new()
    }
}
