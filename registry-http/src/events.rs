//! Events in distribution's notification shape, handed to an [`EventSink`]: pulls by the router
//! (on the request's task once the response is ready, when [`crate::api::HttpOptions::events`] is
//! set), pushes and deletes by [`FeedEvents`], a subscriber of the registry's change feed, so
//! that a delete from the web UI, a restore from the admin API or a command, and what garbage
//! collection and retention remove raise theirs too. A sink must return at once (queue the
//! event, never wait on the network). The types live in [`registry_core::events`].

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use registry_core::access::Action;
use registry_core::feed::{Committed, Origin, Record, Subscriber};

pub use registry_core::events::{Actor, Event, EventSink, RequestInfo, Target};

/// What a handler puts in its response's extensions for the router to raise an event (and the
/// audit log to name what was written).
#[derive(Debug, Clone)]
pub(crate) struct Happened(pub Target);

/// Today's RFC 3339 timestamp, to the millisecond.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Raises the push and delete events of every committed change: a blob stored or mounted, a
/// manifest stored (with its tag), a tag restored (a push of its tag), a tag, manifest or blob
/// deleted. Blob bytes that garbage collection frees, and repositories appearing or emptying,
/// have no event in distribution's vocabulary and raise none; nor does what a pull-through cache
/// stores as it serves a pull (that pull raises its own event).
pub struct FeedEvents(pub Arc<dyn EventSink>);

#[async_trait]
impl Subscriber for FeedEvents {
    async fn committed(&self, record: &Record) {
        if record.caller.origin == Origin::Mirror {
            return;
        }
        let Some((action, target)) = event_of(&record.change) else {
            return;
        };
        let caller = &record.caller;
        let request = RequestInfo {
            id: caller.request_id.clone().unwrap_or_default(),
            ..caller.request.clone().unwrap_or_default()
        };
        self.0.send(Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: humantime::format_rfc3339_millis(record.at).to_string(),
            action,
            target,
            request,
            actor: Actor {
                name: caller.identity.clone(),
            },
        });
    }
}

/// The action and target of a change's event, if it has one.
fn event_of(change: &Committed) -> Option<(Action, Target)> {
    let target = |repository: &dyn ToString, digest: &dyn ToString| Target {
        digest: digest.to_string(),
        repository: repository.to_string(),
        ..Target::default()
    };
    Some(match change {
        Committed::BlobStored {
            repository,
            digest,
            size,
        } => (
            Action::Push,
            Target {
                media_type: Some("application/octet-stream".into()),
                size: Some(*size),
                ..target(repository, digest)
            },
        ),
        Committed::ManifestStored {
            repository,
            digest,
            media_type,
            size,
            tag,
            ..
        } => (
            Action::Push,
            Target {
                media_type: Some(media_type.clone()),
                size: Some(*size),
                tag: tag.as_ref().map(|t| t.to_string()),
                ..target(repository, digest)
            },
        ),
        Committed::TagMoved {
            repository,
            tag,
            to,
            restored: true,
            ..
        } => (
            Action::Push,
            Target {
                tag: Some(tag.to_string()),
                ..target(repository, to)
            },
        ),
        Committed::TagDeleted {
            repository,
            tag,
            digest,
        } => (
            Action::Delete,
            Target {
                tag: Some(tag.to_string()),
                ..target(repository, digest)
            },
        ),
        Committed::ManifestDeleted {
            repository,
            digest,
            media_type,
        } => (
            Action::Delete,
            Target {
                media_type: media_type.clone(),
                ..target(repository, digest)
            },
        ),
        Committed::BlobUnlinked { repository, digest } => (
            Action::Delete,
            Target {
                media_type: Some("application/octet-stream".into()),
                ..target(repository, digest)
            },
        ),
        _ => return None,
    })
}
