//! The core of an OCI distribution registry, usable without HTTP.
//!
//! - [`digest`]: content digests and a resumable streaming hash.
//! - [`reference`](mod@reference): repository names, tags and references, per the distribution-spec grammar.
//! - [`manifest`]: validation of the four manifest kinds and OCI artifacts.
//! - [`storage`]: what backends implement: the [`Storage`] core, [`Multipart`], [`Capabilities`],
//!   [`SignUrls`], and their own [`StorageError`].
//! - [`paths`]: the storage layout, drawn once.
//! - [`upload`]: the state of an upload spanning many requests, and the lock of one in a process.
//! - [`registry`]: [`Registry`], every distribution operation over any [`Storage`], a façade over
//!   parts that each own one concern:
//!   - `blobs`: where blob bytes are, which repository links them, in-use marks, installing a
//!     verified blob without replacing committed bytes ([`BlobInfo`], [`BlobContent`]);
//!   - `uploads`: the upload state machine, its parts and tail; `tap` hashes bodies on their way
//!     into storage, `parts` cuts them for object stores;
//!   - `manifests`: manifests, their revision links and the referrers index ([`ManifestInfo`]);
//!   - [`tags`]: tag records (digest, time of move), a page at a time, and their history;
//!   - `catalog`: the repositories holding a manifest, a page at a time;
//!   - `index`: whether the store keeps the listing index yet; [`reindex`] moves a store written
//!     before it;
//!   - `stored`: what is known of stored content without reading it, and `cache`, which keeps
//!     it in memory.
//! - Extension points an embedder implements, free of any web framework: [`access`]
//!   ([`access::AccessControl`]: identity and policy), [`admission`] (the hook consulted before a
//!   manifest or tag changes, and the [`Caller`]), [`events`] ([`events::EventSink`]), and
//!   [`source`] (the read-through [`Source`] a registry consults on a miss, such as a
//!   pull-through cache's upstream, and the [`source::Fill`] it stores through), and [`feed`]
//!   ([`feed::Subscriber`]: every change committed to the store, whoever made it).
//! - [`lifecycle`]: retention rules, immutable tags, quotas and usage; tag history and restore
//!   are on [`Registry`].
//! - [`gc`]: garbage collection and upload purging, safe while pushes go on, incremental from the
//!   candidate records `candidates` writes for every write that may leave garbage; `walk` reads
//!   what the store holds for it and for usage reports.
//! - [`accounting`]: usage reports' types and what bounds their cost; [`lifecycle::usage`]
//!   computes them.
//! - [`clock`]: the [`clock::Clock`] gc, retention, tag history and upload ages read, so tests
//!   advance time instead of sleeping.
//! - [`scrub`]: re-hash every blob and check every link, reporting without repairing.
//! - [`transfer`]: copying images (children, blobs, referrers) from an [`transfer::Origin`] to a
//!   [`transfer::Destination`]: this registry, another one, an OCI layout.
//! - [`error`]: the core's one [`Error`] type (storage failures inside it as [`StorageError`]).
//! - `testsuite` (feature `testsuite`): the conformance suite every backend runs.

pub mod access;
pub mod accounting;
pub mod admission;
mod blobs;
mod cache;
mod candidates;
mod catalog;
pub mod clock;
pub mod digest;
pub mod error;
pub mod events;
pub mod feed;
pub mod gc;
mod index;
pub mod lifecycle;
pub mod manifest;
mod manifests;
mod parts;
pub mod paths;
pub mod reference;
pub mod registry;
pub mod reindex;
pub mod scrub;
pub mod storage;
mod stored;
pub mod tags;
mod tap;
#[cfg(feature = "testsuite")]
pub mod testsuite;
pub mod transfer;
pub mod upload;
mod uploads;
mod walk;

pub use admission::{Admission, Caller, Change, Refusal};
pub use blobs::{BlobContent, BlobInfo};
pub use digest::{Algorithm, Digest, Digester};
pub use error::{Error, Result};
pub use manifest::{Descriptor, Manifest, ManifestKind};
pub use manifests::ManifestContent;
pub use reference::{Reference, RepositoryName, Tag};
pub use registry::source::{self, Source};
pub use registry::{Registry, RegistryConfig};
pub use storage::{
    ByteStream, Capabilities, GetRange, GetResult, ListResult, Multipart, MultipartId, ObjectMeta,
    PartId, PartSize, SignUrls, Storage, StorageError, StorageExt,
};
pub use stored::ManifestInfo;
pub use tags::{Page, TagChange, TagRecord};
pub use upload::{UploadSession, UploadStatus};
