//! Other registries (feature `remote`): a client of them, and what the server does with it.
//!
//! - [`client`]: [`Upstream`], a client of another registry (pull and push) that answers its
//!   authentication, a `registry_core::transfer` origin and destination.
//! - [`mirror`]: a pull-through cache of upstream registries, a `registry_core::Source` attached
//!   with `Registry::with_source` (the API's handlers know nothing of it).
//! - [`replication`]: changes copied to other registries from a durable queue in storage, a
//!   subscriber of the registry's change feed.
//! - [`sync`]: tags of other registries fetched on a schedule.
//! - [`error`]: [`MirrorError`], a remote that cannot be used as configured.
//!
//! Imports go one way: `mirror`, `replication` and `sync` → `client` → `error`.

pub mod client;
pub mod error;
pub mod mirror;
pub mod replication;
pub mod sync;

pub use client::{Redirects, RemoteTls, Upstream, UpstreamError, UpstreamManifest};
pub use error::MirrorError;
