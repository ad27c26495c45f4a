//! The audit trail: one [`AuditRecord`] per login, per write (push, tag move, delete, restore)
//! and per refused request (401, 403, admission refusals, throttled logins), handed to the
//! [`AuditSink`] of [`crate::api::HttpOptions::audit`]. A record names who, from where, what and the
//! request id; it never carries a password or a token.

use serde::Serialize;

/// Receives audit records. Must not block: queue the record and return.
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one record.
    fn record(&self, record: AuditRecord);
}

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// Credentials were accepted at `/v2/` (what `docker login` asks) or a token was issued.
    Login,
    /// Credentials were refused.
    LoginFailed,
    /// A login attempt was refused unchecked: too many recent failures.
    Throttled,
    /// Content changed: a blob or manifest pushed, a tag moved, something deleted, a tag restored.
    Write,
    /// A request was refused: unauthenticated (401), not allowed (403), or refused by an admission
    /// rule.
    Refused,
}

/// One line of the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// When, RFC 3339.
    pub time: String,
    /// What happened.
    pub kind: AuditKind,
    /// The identity: the authenticated user, or the user name a failed login gave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The request's method.
    pub method: String,
    /// The request's path (no query: it may carry nothing secret, but keeps lines short).
    pub path: String,
    /// The repository, when the request names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The tag or digest the request names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The digest of what was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The response's status.
    pub status: u16,
    /// The request id (`X-Request-Id`).
    pub request_id: String,
    /// Why, for refusals (the error message the client got).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
