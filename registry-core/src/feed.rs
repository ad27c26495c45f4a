//! The change feed: every change committed to the store, whoever made it (a client through the
//! API, the web UI, the admin API, a command, garbage collection, retention, a sync, a mirror, or
//! an embedder calling [`Registry`](crate::Registry) directly), handed to each [`Subscriber`]
//! registered with [`Registry::with_subscriber`](crate::Registry::with_subscriber) once it is
//! made. Notifications, replication's outbox and metrics are subscribers; nothing that reacts to
//! a change has to sit in the HTTP layer.
//!
//! A subscriber is awaited before the call that made the change returns, so what it writes
//! (a queue item) is written before the client hears of the change; it must return soon, and
//! queue anything slow. A change whose subscriber failed is still made: subscribers report their
//! own failures (a log line, a metric) and catch up by other means (replication reconciles).
//!
//! ```
//! use registry_core::feed::{Committed, Record, Subscriber};
//!
//! /// Counts manifest pushes, whoever made them.
//! #[derive(Default)]
//! struct Pushes(std::sync::atomic::AtomicU64);
//!
//! #[async_trait::async_trait]
//! impl Subscriber for Pushes {
//!     async fn committed(&self, record: &Record) {
//!         if let Committed::ManifestStored { .. } = record.change {
//!             self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!         }
//!     }
//! }
//! ```

use std::time::SystemTime;

use async_trait::async_trait;
use serde::Serialize;

use crate::digest::Digest;
use crate::events::RequestInfo;
use crate::reference::{RepositoryName, Tag};

/// Who asks for a change, through which request and from where: what admission rules, tag
/// history and the change feed see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated user; `None` for an anonymous caller (or a call from the library).
    pub identity: Option<String>,
    /// The request's id (`X-Request-Id`), when it came through HTTP.
    pub request_id: Option<String>,
    /// What made the change: the API, the UI, a command, garbage collection, …
    pub origin: Origin,
    /// The HTTP request, when one made the change (for notifications).
    pub request: Option<RequestInfo>,
}

/// Where a change came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Origin {
    /// A call of the library with no origin given.
    #[default]
    Library,
    /// A client of the distribution API.
    Api,
    /// The web UI.
    Ui,
    /// The admin API.
    Admin,
    /// A command of the standalone server (`registry restore`, …).
    Cli,
    /// Garbage collection.
    Gc,
    /// A retention rule, applied by a collection.
    Retention,
    /// Pull sync from another registry.
    Sync,
    /// A pull-through cache filling itself from its upstream.
    Mirror,
}

impl Origin {
    /// Its name, as metrics label it (`api`, `gc`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Library => "library",
            Origin::Api => "api",
            Origin::Ui => "ui",
            Origin::Admin => "admin",
            Origin::Cli => "cli",
            Origin::Gc => "gc",
            Origin::Retention => "retention",
            Origin::Sync => "sync",
            Origin::Mirror => "mirror",
        }
    }
}

/// A change committed to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Committed {
    /// A blob was stored in, or mounted into, a repository (complete and digest-verified).
    BlobStored {
        /// The repository.
        repository: RepositoryName,
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// A blob was unlinked from a repository (its bytes stay while another links them).
    BlobUnlinked {
        /// The repository.
        repository: RepositoryName,
        /// The blob.
        digest: Digest,
    },
    /// A blob's bytes were removed from the store (by garbage collection).
    BlobRemoved {
        /// The blob.
        digest: Digest,
        /// The bytes freed.
        size: u64,
    },
    /// A manifest was stored (then tagged, when `tag` is given: a [`Committed::TagMoved`]
    /// follows).
    ManifestStored {
        /// The repository.
        repository: RepositoryName,
        /// The manifest.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// Its size in bytes.
        size: u64,
        /// The tag it was pushed under.
        tag: Option<Tag>,
        /// The manifest it refers to, for a signature, an SBOM or another referrer.
        subject: Option<Digest>,
    },
    /// A manifest was deleted from a repository (the tags that pointed at it first, each a
    /// [`Committed::TagDeleted`]).
    ManifestDeleted {
        /// The repository.
        repository: RepositoryName,
        /// The manifest.
        digest: Digest,
        /// Its media type, when the deleter read it (garbage collection does not).
        media_type: Option<String>,
    },
    /// A tag was pointed at `to` (`from`: where it pointed before; `None` for a new tag).
    TagMoved {
        /// The repository.
        repository: RepositoryName,
        /// The tag.
        tag: Tag,
        /// Its manifest before.
        from: Option<Digest>,
        /// Its manifest now.
        to: Digest,
        /// The move restored the tag from its history.
        restored: bool,
    },
    /// A tag was deleted; its manifest stays.
    TagDeleted {
        /// The repository.
        repository: RepositoryName,
        /// The tag.
        tag: Tag,
        /// What it pointed at.
        digest: Digest,
    },
    /// A repository got its first manifest, and with it a catalog entry.
    RepositoryCreated {
        /// The repository.
        repository: RepositoryName,
    },
    /// A repository lost its last manifest, and with it its catalog entry.
    RepositoryEmptied {
        /// The repository.
        repository: RepositoryName,
    },
}

impl Committed {
    /// Its kind, as metrics label it (`manifest_stored`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Committed::BlobStored { .. } => "blob_stored",
            Committed::BlobUnlinked { .. } => "blob_unlinked",
            Committed::BlobRemoved { .. } => "blob_removed",
            Committed::ManifestStored { .. } => "manifest_stored",
            Committed::ManifestDeleted { .. } => "manifest_deleted",
            Committed::TagMoved { .. } => "tag_moved",
            Committed::TagDeleted { .. } => "tag_deleted",
            Committed::RepositoryCreated { .. } => "repository_created",
            Committed::RepositoryEmptied { .. } => "repository_emptied",
        }
    }

    /// The repository it happened in (none for a blob's bytes, which the store shares).
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Committed::BlobRemoved { .. } => None,
            Committed::BlobStored { repository, .. }
            | Committed::BlobUnlinked { repository, .. }
            | Committed::ManifestStored { repository, .. }
            | Committed::ManifestDeleted { repository, .. }
            | Committed::TagMoved { repository, .. }
            | Committed::TagDeleted { repository, .. }
            | Committed::RepositoryCreated { repository }
            | Committed::RepositoryEmptied { repository } => Some(repository),
        }
    }
}

/// A committed change, who made it and when.
#[derive(Debug, Clone)]
pub struct Record {
    /// What changed.
    pub change: Committed,
    /// Who made it, through which request, from where ([`Caller::origin`]).
    pub caller: Caller,
    /// When it was committed.
    pub at: SystemTime,
}

/// Takes every committed change of a registry; see the module documentation.
#[async_trait]
pub trait Subscriber: Send + Sync + 'static {
    /// Takes one committed change, awaited before the call that made it returns.
    async fn committed(&self, record: &Record);
}
