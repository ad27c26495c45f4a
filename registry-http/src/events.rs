//! Events of the requests the router answers: it hands an [`Event`] to the [`EventSink`] of
//! [`crate::HttpOptions::events`] on the request's task once the response is ready, so a sink
//! must return at once (queue the event, never wait on the network). The types live in
//! [`registry_core::events`].

use std::time::SystemTime;

pub use registry_core::events::{Actor, Event, EventSink, RequestInfo, Target};

/// What a handler puts in its response's extensions for the router to raise an event.
#[derive(Debug, Clone)]
pub(crate) struct Happened(pub Target);

/// Today's RFC 3339 timestamp, to the millisecond.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
