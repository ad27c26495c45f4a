//! `GET /`, the repositories a visitor may pull, and `GET /search`, what a visitor may see that
//! matches a word or a digest.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use registry_core::{Digest, Reference, RepositoryName};
use serde::Deserialize;

use super::{CONCURRENCY, PAGE, Ui, failure, secs, when};
use crate::auth::access::Action;

/// Repositories a search looks at, at most (it says when it stopped there).
const SEARCH_REPOSITORIES: usize = 2000;
/// Tag records read per repository to find the tags of a digest, at most.
const SEARCH_TAG_RECORDS: usize = 2000;
/// Results of each kind shown.
const RESULTS: usize = 100;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    last: Option<String>,
}

/// The repositories of the catalog after `last` that `visitor` may pull and `keep` accepts, up
/// to `want`, scanning at most `budget` names: the names, the last one scanned, and whether the
/// catalog goes on.
async fn visible_repositories(
    ui: &Ui,
    visitor: &super::Visitor,
    mut last: Option<String>,
    want: usize,
    budget: usize,
    keep: impl Fn(&str) -> bool,
) -> registry_core::Result<(Vec<RepositoryName>, Option<String>, bool)> {
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let page = ui
            .registry
            .list_repositories(Some(200), last.as_deref())
            .await?;
        for name in &page.items {
            if found.len() == want || scanned == budget {
                return Ok((found, last, true));
            }
            scanned += 1;
            last = Some(name.clone());
            if let Ok(repo) = name.parse::<RepositoryName>()
                && keep(name)
                && ui.may(visitor, &repo, Action::Pull)
            {
                found.push(repo);
            }
        }
        if !page.more {
            return Ok((found, last, false));
        }
    }
}

/// `GET /?q=&last=`: the repositories the visitor may pull, filtered by name, a page at a time,
/// each with its number of tags and last push (one listing of its tags).
pub(crate) async fn repositories(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let filter = query.q.clone().unwrap_or_default().to_lowercase();
    let found = visible_repositories(&ui, &visitor, query.last.clone(), PAGE, usize::MAX, |n| {
        n.to_lowercase().contains(&filter)
    })
    .await;
    let (shown, _, more) = match found {
        Ok(f) => f,
        Err(e) => return failure(&ui, &visitor, &e),
    };
    let rows: Vec<_> = futures::stream::iter(shown)
        .map(|repo| {
            let ui = &ui;
            async move {
                let times = ui.registry.tag_times(&repo).await.unwrap_or_default();
                let last = times.iter().map(|(_, t)| secs(*t)).max().unwrap_or(0);
                context! { name => repo.as_str(), tags => times.len(), last_push => when(last) }
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let next = more
        .then(|| rows.last().and_then(|r| r.get_attr("name").ok()))
        .flatten()
        .map(|n| n.to_string());
    ui.page(
        &visitor,
        StatusCode::OK,
        "repositories.html",
        context! { rows => rows, q => query.q, next => next, store => ui.may_see_store(&visitor) },
    )
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

/// `GET /search?q=`: repositories and tags whose names hold the words, or, for a digest, the
/// repositories holding that manifest and the tags pointing at it; only what the visitor may
/// pull, and at most [`SEARCH_REPOSITORIES`] repositories looked at (the page says so).
pub(crate) async fn search(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<SearchQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let q = query.q.clone().unwrap_or_default().trim().to_owned();
    if q.is_empty() {
        return Redirect::to("/").into_response();
    }
    let found = match q.parse::<Digest>() {
        Ok(digest) => by_digest(&ui, &visitor, &digest).await,
        Err(_) => by_name(&ui, &visitor, &q.to_lowercase()).await,
    };
    match found {
        Ok(results) => ui.page(
            &visitor,
            StatusCode::OK,
            "search.html",
            context! { q => q, ..results },
        ),
        Err(e) => failure(&ui, &visitor, &e),
    }
}

/// Repositories whose names hold `q`, and tags of visible repositories whose names hold it.
async fn by_name(
    ui: &Ui,
    visitor: &super::Visitor,
    q: &str,
) -> registry_core::Result<minijinja::Value> {
    let (repos, _, cut) =
        visible_repositories(ui, visitor, None, usize::MAX, SEARCH_REPOSITORIES, |_| true).await?;
    let matching: Vec<&RepositoryName> = repos
        .iter()
        .filter(|r| r.as_str().to_lowercase().contains(q))
        .take(RESULTS)
        .collect();
    let tags: Vec<Vec<(String, String)>> = futures::stream::iter(repos.clone())
        .map(|repo| async move {
            let times = ui.registry.tag_times(&repo).await.unwrap_or_default();
            times
                .into_iter()
                .filter(|(t, _)| t.as_str().to_lowercase().contains(q))
                .map(|(t, _)| (repo.to_string(), t.to_string()))
                .collect()
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let tags: Vec<_> = tags
        .into_iter()
        .flatten()
        .take(RESULTS)
        .map(|(name, tag)| context! { name => name, tag => tag })
        .collect();
    Ok(context! {
        repositories => matching.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        tags => tags,
        cut => cut.then_some(SEARCH_REPOSITORIES),
    })
}

/// The visible repositories holding the manifest `digest`, with the tags pointing at it.
async fn by_digest(
    ui: &Ui,
    visitor: &super::Visitor,
    digest: &Digest,
) -> registry_core::Result<minijinja::Value> {
    let (repos, _, cut) =
        visible_repositories(ui, visitor, None, usize::MAX, SEARCH_REPOSITORIES, |_| true).await?;
    let holding: Vec<RepositoryName> = futures::stream::iter(repos)
        .map(|repo| async move {
            let held = ui
                .registry
                .peek_manifest(&repo, &Reference::Digest(digest.clone()))
                .await
                .is_ok();
            held.then_some(repo)
        })
        .buffered(CONCURRENCY)
        .filter_map(|r| async move { r })
        .take(RESULTS)
        .collect()
        .await;
    let mut manifests = Vec::new();
    for repo in holding {
        let times = ui.registry.tag_times(&repo).await.unwrap_or_default();
        let partial = times.len() > SEARCH_TAG_RECORDS;
        let tags: Vec<String> = futures::stream::iter(times.into_iter().take(SEARCH_TAG_RECORDS))
            .map(|(tag, _)| {
                let repo = &repo;
                async move {
                    let record = ui.registry.tag(repo, &tag).await.ok().flatten();
                    record
                        .filter(|r| r.digest == *digest)
                        .map(|_| tag.to_string())
                }
            })
            .buffered(CONCURRENCY)
            .filter_map(|t| async move { t })
            .collect()
            .await;
        manifests.push(context! { name => repo.as_str(), tags => tags, partial => partial });
    }
    Ok(context! {
        digest => digest.to_string(),
        manifests => manifests,
        cut => cut.then_some(SEARCH_REPOSITORIES),
    })
}
