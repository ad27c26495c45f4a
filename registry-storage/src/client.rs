//! What the cloud backends' HTTP clients share: retries, timeouts in configuration tables, and
//! `scheme://NAME[/PREFIX]` URLs.

use std::time::Duration;

use object_store::RetryConfig;
use registry_core::{Error, Result};
use serde::Deserialize;

/// Retries of a failed request (3 when `None`), within `timeout` in all.
pub(crate) fn retry(max_retries: Option<usize>, timeout: Duration) -> RetryConfig {
    RetryConfig {
        max_retries: max_retries.unwrap_or(3),
        retry_timeout: timeout,
        ..RetryConfig::default()
    }
}

/// A number of seconds in a configuration table, as a duration.
pub(crate) fn seconds<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
}

/// A duration as a number of seconds in a configuration table.
pub(crate) fn as_seconds<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
}

/// Splits `scheme://NAME[/PREFIX]` into the name and the prefix.
pub(crate) fn split_url<'a>(url: &'a str, scheme: &str, what: &str) -> Result<(&'a str, String)> {
    let rest = url.strip_prefix(scheme).ok_or_else(|| {
        Error::storage(format!("{url} is not of the form {scheme}{what}[/PREFIX]"))
    })?;
    let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(Error::storage(format!(
            "{url} names no {}",
            what.to_lowercase()
        )));
    }
    Ok((name, prefix.trim_matches('/').to_owned()))
}
