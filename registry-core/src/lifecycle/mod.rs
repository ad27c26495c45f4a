//! Content lifecycle: what stays in the store, what may change, and what takes the space.
//!
//! - [`retention`]: rules that untag old tags at every garbage collection ([`RetentionRule`]),
//!   and the decision about each tag with the clause behind it.
//! - [`immutable`]: tags that can be created once ([`ImmutableTags`], an admission rule).
//! - [`quota`]: byte limits on groups of repositories ([`Quotas`], an admission rule).
//! - [`usage`]: bytes referenced, exclusive and shared per repository, and what deleting each
//!   tag would free.
//! - `summary`: what a manifest adds up to (its own bytes and the blobs it names), cached by
//!   digest.
//!
//! Tag history and restoring a tag from it are [`crate::Registry::repository_history`] and
//! [`crate::Registry::restore_tag`]; collections keep what recent history names
//! ([`crate::gc::GcOptions::history`]).
//!
//! Repository patterns are those of access rules: a name, `prefix/*` (every repository under
//! `prefix/`), or `*`.

use regex::Regex;
use serde::Serialize;

pub mod immutable;
pub mod quota;
pub mod retention;
pub(crate) mod summary;
pub mod usage;

pub use immutable::{ImmutableRule, ImmutableTags};
pub use quota::{QuotaRule, Quotas};
pub use retention::{Clause, Decision, RetentionRule, Verdict};
pub use usage::{RepositoryUsage, TagUsage, UsageReport};

/// Whether the repository `name` matches `pattern`: a name, `prefix/*` or `*`.
///
/// ```
/// use registry_core::lifecycle::repository_matches;
/// assert!(repository_matches("ci/*", "ci/app"));
/// assert!(repository_matches("*", "anything/at/all"));
/// assert!(!repository_matches("ci/*", "cia/app"));
/// assert!(repository_matches("ci/app", "ci/app"));
/// ```
pub fn repository_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Whether any of `patterns` matches `name`.
pub(crate) fn any_matches(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| repository_matches(p, name))
}

/// A number with at most one decimal, without a trailing `.0`: `200`, `1.5`.
pub fn number(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// `bytes` for people: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_say_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(50 * 1024 * 1024 * 1024), "50.0 GiB");
    }
}

/// A regex a tag name is searched with (unanchored: write `^v[0-9]` to match from the start).
#[derive(Debug, Clone)]
pub struct TagPattern(Regex);

impl TagPattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<TagPattern, regex::Error> {
        Regex::new(pattern).map(TagPattern)
    }

    /// Whether the tag's name matches.
    pub fn matches(&self, tag: &str) -> bool {
        self.0.is_match(tag)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for TagPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TagPattern {}

impl Serialize for TagPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
