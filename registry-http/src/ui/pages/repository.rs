//! `GET /repository`: one repository's tags, filtered by name, sorted by push or by name, a page
//! at a time: every tag can be reached, and a page reads only its own tags' records.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use serde::Deserialize;

use super::{Ui, failure, human, page_of, platform, pull_host, reach, secs, visible, when};
use crate::auth::access::Action;

#[derive(Deserialize)]
pub(crate) struct TagsQuery {
    name: String,
    /// Only tags whose names hold this.
    q: Option<String>,
    /// `pushed` (the default: most recent first) or `name`.
    sort: Option<String>,
    /// The page, from 0.
    page: Option<usize>,
}

/// `GET /repository?name=&q=&sort=pushed|name&page=`.
pub(crate) async fn repository(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<TagsQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let repo = match visible(&ui, &visitor, &query.name) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let mut times = match ui.registry.tag_times(&repo).await {
        Ok(t) if !t.is_empty() => t,
        // A repository without tags is one without manifests, or without any name at all.
        Ok(_) => match ui.registry.list_tags(&repo, Some(1), None).await {
            Ok(_) => Vec::new(),
            Err(registry_core::Error::NameUnknown { .. }) => {
                return ui.message(&visitor, StatusCode::NOT_FOUND, "No such repository.");
            }
            Err(e) => return failure(&ui, &visitor, &e),
        },
        Err(e) => return failure(&ui, &visitor, &e),
    };
    let total = times.len();
    let filter = query.q.clone().unwrap_or_default().to_lowercase();
    times.retain(|(tag, _)| tag.as_str().to_lowercase().contains(&filter));
    let by_name = query.sort.as_deref() == Some("name");
    match by_name {
        true => times.sort_by(|a, b| a.0.cmp(&b.0)),
        false => times.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))),
    }
    let (page, rows) = page_of(query.page, times.len());
    let host = pull_host(&ui, &headers);
    let may_delete =
        !ui.options.read_only && ui.options.deletes && ui.may(&visitor, &repo, Action::Delete);
    let mut tags = Vec::new();
    for (tag, pushed) in &times[rows.clone()] {
        let record = match ui.registry.tag(&repo, tag).await {
            Ok(Some(record)) => record,
            // Deleted since the listing.
            Ok(None) => continue,
            Err(e) => return failure(&ui, &visitor, &e),
        };
        let mut seen = HashMap::new();
        let (media_type, platforms) = match reach(&ui, &repo, &record.digest, &mut seen).await {
            Some((content, parsed)) => {
                let platforms: BTreeSet<String> = parsed
                    .manifests
                    .iter()
                    .filter_map(|m| platform(&m.platform))
                    .collect();
                (content.info.media_type, platforms.into_iter().collect())
            }
            None => (String::new(), Vec::new()),
        };
        let pulled = ui.registry.last_pulled(&repo, tag).await.ok().flatten();
        let immutable = ui
            .options
            .immutable
            .as_ref()
            .is_some_and(|i| i.covers(&repo, tag));
        tags.push(context! {
            tag => tag.as_str(),
            digest => record.digest.to_string(),
            short => record.digest.hex()[..12].to_owned(),
            pushed => when(secs(*pushed)),
            pulled => pulled.and_then(|t| when(secs(t))),
            media_type => media_type,
            platforms => platforms,
            size => human(seen.values().sum()),
            immutable => immutable,
            deletable => may_delete && !immutable,
            pull => format!("podman pull {host}/{repo}:{tag}"),
            pull_digest => format!("podman pull {host}/{repo}@{}", record.digest),
        });
    }
    let pages = times.len().div_ceil(super::PAGE).max(1);
    ui.page(
        &visitor,
        StatusCode::OK,
        "repository.html",
        context! {
            name => repo.as_str(),
            tags => tags,
            total => total,
            matching => times.len(),
            first => rows.start + 1,
            last => rows.end,
            q => query.q,
            sort => if by_name { "name" } else { "pushed" },
            page => page,
            pages => pages,
            prev => page.checked_sub(1),
            next => (page + 1 < pages).then_some(page + 1),
        },
    )
}
