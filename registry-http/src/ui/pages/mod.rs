//! The pages that only read: repositories, a repository's tags, a manifest, search, usage, a
//! tag's history. A repository the visitor may not pull answers exactly as one that does not
//! exist. Every page reads what it shows, whatever the store's size: tags are listed with their
//! times in one listing and read a page at a time, searches scan a bounded part of the store and
//! say so, and a look at a manifest is not recorded as a pull.
//!
//! - `listing`: the repository list, and search.
//! - `repository`: one repository's tags, filtered, sorted and paged.
//! - `manifest`: a manifest, its config, children, layers and referrers.
//! - `usage`: the store's usage and quotas; a tag's history.

use std::collections::HashMap;

use axum::response::Response;
use http::StatusCode;
use registry_core::{Digest, Manifest, Reference, RepositoryName};

use super::{Ui, Visitor};
use crate::auth::access::Action;

mod listing;
mod manifest;
mod repository;
mod usage;

pub(crate) use listing::{repositories, search};
pub(crate) use manifest::manifest_page;
pub(crate) use repository::repository;
pub(crate) use usage::{history, usage};

/// Rows on one page of a list (repositories, tags, usage, results).
const PAGE: usize = 50;
/// Tags, manifests or repositories read at once.
const CONCURRENCY: usize = 16;

/// `1.5 MiB`, for templates.
fn human(bytes: u64) -> String {
    registry_core::lifecycle::human_bytes(bytes)
}

/// A time for people, UTC.
fn when(secs: u64) -> Option<String> {
    (secs > 0).then(|| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
    })
}

/// Seconds since the Unix epoch of `time`.
fn secs(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A manifest of `repo`, parsed, read without counting as a pull.
async fn manifest(
    ui: &Ui,
    repo: &RepositoryName,
    digest: &Digest,
) -> registry_core::Result<(registry_core::ManifestContent, Manifest)> {
    let content = ui
        .registry
        .peek_manifest(repo, &Reference::Digest(digest.clone()))
        .await?;
    let parsed = Manifest::parse(&content.bytes, Some(&content.info.media_type))?;
    Ok((content, parsed))
}

/// Bytes a manifest reaches (itself, its blobs, an index's children in `repo`), each digest once,
/// added to `seen`; the manifest itself, read and parsed on the way (`None` when unreadable).
async fn reach(
    ui: &Ui,
    repo: &RepositoryName,
    digest: &Digest,
    seen: &mut HashMap<Digest, u64>,
) -> Option<(registry_core::ManifestContent, Manifest)> {
    let mut top = None;
    let mut pending = vec![digest.clone()];
    while let Some(d) = pending.pop() {
        if seen.contains_key(&d) {
            continue;
        }
        let Ok((content, parsed)) = manifest(ui, repo, &d).await else {
            continue;
        };
        seen.insert(d.clone(), content.info.size);
        for blob in parsed.blob_references() {
            seen.insert(blob.digest.clone(), blob.size);
        }
        pending.extend(parsed.manifests.iter().map(|m| m.digest.clone()));
        if d == *digest {
            top = Some((content, parsed));
        }
    }
    top
}

/// `os/arch[/variant]` of an index entry's platform.
fn platform(value: &Option<serde_json::Value>) -> Option<String> {
    let p = value.as_ref()?;
    let part = |k: &str| p.get(k).and_then(|v| v.as_str());
    let mut text = format!("{}/{}", part("os")?, part("architecture")?);
    if let Some(v) = part("variant") {
        text = format!("{text}/{v}");
    }
    Some(text)
}

/// A storage failure, shown without detail (it is logged).
fn failure(ui: &Ui, visitor: &Visitor, e: &registry_core::Error) -> Response {
    tracing::warn!("UI: {e}");
    ui.message(
        visitor,
        StatusCode::SERVICE_UNAVAILABLE,
        "The registry's storage did not answer. Try again.",
    )
}

/// The repository named in a query, if the visitor may pull it; otherwise the 404 page that a
/// repository nobody has gets.
fn visible(ui: &Ui, visitor: &Visitor, name: &str) -> Result<RepositoryName, Box<Response>> {
    match name.parse::<RepositoryName>() {
        Ok(repo) if ui.may(visitor, &repo, Action::Pull) => Ok(repo),
        _ => Err(Box::new(ui.message(
            visitor,
            StatusCode::NOT_FOUND,
            "No such repository.",
        ))),
    }
}

/// The host clients pull from, for the commands the pages show.
fn pull_host(ui: &Ui, headers: &http::HeaderMap) -> String {
    ui.options
        .pull_host
        .clone()
        .or_else(|| {
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "registry".into())
}

/// Which page of `total` rows `page` is (0-based, clamped), and the range of rows it shows.
fn page_of(page: Option<usize>, total: usize) -> (usize, std::ops::Range<usize>) {
    let last = total.saturating_sub(1) / PAGE;
    let page = page.unwrap_or(0).min(last);
    let start = page * PAGE;
    (page, start..(start + PAGE).min(total))
}
