//! Events: what happened to which manifest or blob, handed to an [`EventSink`] after each
//! successful push, pull or delete, in the shape of distribution's notification events. The
//! sink is framework-free: `registry_http` raises the events of its requests, and the standalone
//! server posts them to webhooks.
//!
//! ```
//! use registry_core::events::{Event, EventSink};
//!
//! /// Hands events to a task through a bounded channel, dropping them when it is full.
//! struct Queue(tokio::sync::mpsc::Sender<Event>);
//!
//! impl EventSink for Queue {
//!     fn send(&self, event: Event) {
//!         let _ = self.0.try_send(event);
//!     }
//! }
//! ```

use serde::Serialize;

use crate::access::Action;

/// Receives events; see the module documentation.
pub trait EventSink: Send + Sync + 'static {
    /// Takes one event. Must not block.
    fn send(&self, event: Event);
}

/// One push, pull or delete of a manifest or blob.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// A unique id.
    pub id: String,
    /// When it happened, RFC 3339.
    pub timestamp: String,
    /// `push`, `pull` or `delete`.
    pub action: Action,
    /// What it happened to.
    pub target: Target,
    /// The request that did it.
    pub request: RequestInfo,
    /// Who did it.
    pub actor: Actor,
}

/// The manifest or blob an event is about.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Its media type (`application/octet-stream` for blobs, unknown for deletes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Its size in bytes, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Its digest.
    pub digest: String,
    /// The repository.
    pub repository: String,
    /// The tag, when the request named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// The request behind an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    /// Its `X-Request-Id`.
    pub id: String,
    /// `Host` it was sent to.
    pub host: String,
    /// Its method.
    pub method: String,
    /// Its `User-Agent`.
    pub useragent: String,
}

/// Who made the request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Actor {
    /// The authenticated user; absent for anonymous callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
