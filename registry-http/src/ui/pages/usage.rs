//! `GET /usage`, the store's usage (every repository, sorted and paged) and each quota's use
//! against its limit, for those who may see the whole store; `GET /history`, a tag's changes.

use std::collections::BTreeSet;

use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use registry_core::Tag;
use serde::Deserialize;

use super::{Ui, failure, human, page_of, visible, when};
use crate::auth::access::Action;

#[derive(Deserialize)]
pub(crate) struct UsageQuery {
    /// `size` (the default: largest first) or `name`.
    sort: Option<String>,
    /// The page, from 0.
    page: Option<usize>,
}

/// `GET /usage?sort=size|name&page=`: bytes per repository and the store's totals, for those who
/// may see the whole store (the same report the admin API serves, computed once for all callers
/// at a time), and each quota's use.
pub(crate) async fn usage(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<UsageQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    if !ui.may_see_store(&visitor) {
        return ui.message(
            &visitor,
            StatusCode::FORBIDDEN,
            "Usage is for those who may see the whole registry.",
        );
    }
    let report = match registry_core::lifecycle::usage::store_usage(&ui.registry).await {
        Ok(r) => r,
        Err(e) => return failure(&ui, &visitor, &e),
    };
    let mut repositories: Vec<_> = report.repositories.iter().collect();
    let by_name = query.sort.as_deref() == Some("name");
    match by_name {
        true => repositories.sort_by(|a, b| a.name.cmp(&b.name)),
        false => repositories.sort_by(|a, b| {
            b.referenced_bytes
                .cmp(&a.referenced_bytes)
                .then_with(|| a.name.cmp(&b.name))
        }),
    }
    let (page, rows) = page_of(query.page, repositories.len());
    let pages = repositories.len().div_ceil(super::PAGE).max(1);
    let rows: Vec<_> = repositories[rows]
        .iter()
        .map(|r| {
            context! {
                name => r.name.as_str(),
                manifests => r.manifests,
                referenced => human(r.referenced_bytes),
                exclusive => human(r.exclusive_bytes.unwrap_or_default()),
                shared => human(r.shared_bytes.unwrap_or_default()),
            }
        })
        .collect();
    let store = report.store.as_ref().map(|s| {
        context! {
            repositories => s.repositories,
            stored => human(s.stored_bytes),
            logical => human(s.logical_bytes),
            ratio => format!("{:.2}", s.dedup_ratio),
        }
    });
    let mut quotas = Vec::new();
    if let Some(q) = &ui.options.quotas {
        for (i, rule) in q.rules().iter().enumerate() {
            let used = match q.used(i).await {
                Ok(used) => used,
                Err(e) => return failure(&ui, &visitor, &e),
            };
            let percent = (used as f64 * 100.0 / rule.max_bytes.max(1) as f64).min(999.0);
            quotas.push(context! {
                repositories => rule.repositories.join(", "),
                used => rule.shown(used),
                limit => rule.shown(rule.max_bytes),
                percent => format!("{percent:.0}"),
                over => used > rule.max_bytes,
            });
        }
    }
    ui.page(
        &visitor,
        StatusCode::OK,
        "usage.html",
        context! {
            rows => rows,
            store => store,
            quotas => quotas,
            sort => if by_name { "name" } else { "size" },
            page => page,
            pages => pages,
            prev => page.checked_sub(1),
            next => (page + 1 < pages).then_some(page + 1),
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    name: String,
    tag: String,
}

/// `GET /history?name=&tag=`: a tag's changes, newest first, with restore buttons.
pub(crate) async fn history(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let repo = match visible(&ui, &visitor, &query.name) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let Ok(tag) = query.tag.parse::<Tag>() else {
        return ui.message(&visitor, StatusCode::NOT_FOUND, "No such tag.");
    };
    let changes = match ui.registry.tag_history(&repo, &tag).await {
        Ok(c) => c,
        Err(e) => return failure(&ui, &visitor, &e),
    };
    let current = ui
        .registry
        .tag(&repo, &tag)
        .await
        .ok()
        .flatten()
        .map(|r| r.digest);
    let rows: Vec<_> = changes
        .iter()
        .rev()
        .map(|c| {
            context! {
                at => when(c.at),
                from => c.from.as_ref().map(|d| d.to_string()),
                to => c.to.as_ref().map(|d| d.to_string()),
                who => c.identity.clone().unwrap_or_else(|| "anonymous".into()),
            }
        })
        .collect();
    let mut restorable: BTreeSet<String> = BTreeSet::new();
    for c in &changes {
        restorable.extend(c.from.iter().chain(c.to.iter()).map(|d| d.to_string()));
    }
    if let Some(current) = &current {
        restorable.remove(&current.to_string());
    }
    ui.page(
        &visitor,
        StatusCode::OK,
        "history.html",
        context! {
            name => repo.as_str(),
            tag => tag.as_str(),
            rows => rows,
            current => current.map(|d| d.to_string()),
            restorable => restorable.into_iter().collect::<Vec<_>>(),
            may_restore => !ui.options.read_only && ui.may(&visitor, &repo, Action::Push),
        },
    )
}
