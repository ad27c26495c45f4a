//! The pages that only read: repositories, a repository's tags, a manifest, usage, a tag's
//! history. A repository the visitor may not pull answers exactly as one that does not exist.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Query, State};
use axum::response::Response;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, StatusCode};
use minijinja::context;
use registry_core::{Digest, Manifest, Reference, RepositoryName, Tag};
use serde::{Deserialize, Serialize};

use super::{Ui, Visitor};
use crate::Action;

/// Repositories on one page of the list.
const PAGE: usize = 50;
/// Tags, manifests or repositories read at once.
const CONCURRENCY: usize = 16;
/// Tags shown on a repository's page, the most recently pushed.
const TAGS_SHOWN: usize = 100;
/// Bytes of an image config read at most.
const MAX_CONFIG: u64 = 1 << 20;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    last: Option<String>,
}

#[derive(Serialize)]
struct RepoRow {
    name: String,
    tags: usize,
    last_push: Option<String>,
    size: u64,
}

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

/// The tags of `repo` with their records, most recently moved first.
async fn tag_records(
    ui: &Ui,
    repo: &RepositoryName,
) -> registry_core::Result<Vec<(Tag, registry_core::TagRecord)>> {
    let names = ui.registry.list_tags(repo, None, None).await?.items;
    let mut records: Vec<(Tag, registry_core::TagRecord)> = futures::stream::iter(names)
        .filter_map(|n| async move { n.parse::<Tag>().ok() })
        .map(|tag| async move {
            Ok::<_, registry_core::Error>(ui.registry.tag(repo, &tag).await?.map(|r| (tag, r)))
        })
        .buffered(CONCURRENCY)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    records.sort_by(|a, b| {
        (b.1.moved, b.1.moved_nanos)
            .cmp(&(a.1.moved, a.1.moved_nanos))
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(records)
}

/// A manifest of `repo`, parsed.
async fn manifest(
    ui: &Ui,
    repo: &RepositoryName,
    digest: &Digest,
) -> registry_core::Result<(registry_core::ManifestContent, Manifest)> {
    let content = ui
        .registry
        .get_manifest(repo, &Reference::Digest(digest.clone()))
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

/// `GET /`: the repositories the visitor may pull, filtered by name, a page at a time.
pub(crate) async fn repositories(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let filter = query.q.clone().unwrap_or_default().to_lowercase();
    let mut shown = Vec::new();
    let mut after = query.last.clone();
    let mut more = false;
    'pages: loop {
        let page = match ui
            .registry
            .list_repositories(Some(200), after.as_deref())
            .await
        {
            Ok(p) => p,
            Err(e) => return failure(&ui, &visitor, &e),
        };
        for name in &page.items {
            after = Some(name.clone());
            let Ok(repo) = name.parse::<RepositoryName>() else {
                continue;
            };
            if name.to_lowercase().contains(&filter) && ui.may(&visitor, &repo, Action::Pull) {
                if shown.len() == PAGE {
                    more = true;
                    break 'pages;
                }
                shown.push(repo);
            }
        }
        if !page.more {
            break;
        }
    }
    let rows: Vec<RepoRow> = futures::stream::iter(shown)
        .map(|repo| {
            let ui = &ui;
            async move {
                let records = tag_records(ui, &repo).await.unwrap_or_default();
                let mut seen = HashMap::new();
                for (_, record) in &records {
                    reach(ui, &repo, &record.digest, &mut seen).await;
                }
                RepoRow {
                    name: repo.to_string(),
                    tags: records.len(),
                    last_push: records.first().and_then(|(_, r)| when(r.moved)),
                    size: seen.values().sum(),
                }
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let next = more.then(|| rows.last().map(|r| r.name.clone())).flatten();
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| context! { name => r.name, tags => r.tags, last_push => r.last_push, size => human(r.size) })
        .collect();
    ui.page(
        &visitor,
        StatusCode::OK,
        "repositories.html",
        context! { rows => rows, q => query.q, next => next, store => ui.may_see_store(&visitor) },
    )
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

#[derive(Deserialize)]
pub(crate) struct RepoQuery {
    name: String,
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

/// `GET /repository?name=`: its tags, most recently pushed first.
pub(crate) async fn repository(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<RepoQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let repo = match visible(&ui, &visitor, &query.name) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let records = match tag_records(&ui, &repo).await {
        Ok(r) => r,
        Err(registry_core::Error::NameUnknown { .. }) => {
            return ui.message(&visitor, StatusCode::NOT_FOUND, "No such repository.");
        }
        Err(e) => return failure(&ui, &visitor, &e),
    };
    let host = ui
        .options
        .pull_host
        .clone()
        .or_else(|| {
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "registry".into());
    let mut tags = Vec::new();
    for (tag, record) in records.iter().take(TAGS_SHOWN) {
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
        let size: u64 = seen.values().sum();
        let pulled = ui.registry.last_pulled(&repo, tag).await.ok().flatten();
        let immutable = ui
            .options
            .immutable
            .as_ref()
            .is_some_and(|i| i.rules().iter().any(|r| r.covers(&repo, tag)));
        tags.push(context! {
            tag => tag.as_str(),
            digest => record.digest.to_string(),
            short => record.digest.hex()[..12].to_owned(),
            pushed => when(record.moved),
            pulled => pulled.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).and_then(|d| when(d.as_secs())),
            media_type => media_type,
            platforms => platforms,
            size => human(size),
            immutable => immutable,
            pull => format!("podman pull {host}/{repo}:{tag}"),
        });
    }
    let writable = !ui.options.read_only && ui.options.deletes;
    ui.page(
        &visitor,
        StatusCode::OK,
        "repository.html",
        context! {
            name => repo.as_str(),
            tags => tags,
            total => records.len(),
            may_delete => writable && ui.may(&visitor, &repo, Action::Delete),
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct ManifestQuery {
    name: String,
    reference: String,
}

/// The parts of an image config the page shows.
fn config_context(config: &serde_json::Value) -> minijinja::Value {
    let c = &config["config"];
    let list = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels: Vec<(String, String)> = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let history: Vec<String> = config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|e| e["created_by"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    context! {
        created => config["created"].as_str(),
        platform => format!(
            "{}/{}",
            config["os"].as_str().unwrap_or("?"),
            config["architecture"].as_str().unwrap_or("?")
        ),
        entrypoint => list(&c["Entrypoint"]).join(" "),
        cmd => list(&c["Cmd"]).join(" "),
        env => list(&c["Env"]),
        labels => labels,
        history => history,
    }
}

/// `GET /manifest?name=&reference=`: layers, config, children and referrers of a manifest.
pub(crate) async fn manifest_page(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(query): Query<ManifestQuery>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let repo = match visible(&ui, &visitor, &query.name) {
        Ok(r) => r,
        Err(res) => return *res,
    };
    let unknown = || ui.message(&visitor, StatusCode::NOT_FOUND, "No such manifest.");
    let Ok(reference) = query.reference.parse::<Reference>() else {
        return unknown();
    };
    let content = match ui.registry.get_manifest(&repo, &reference).await {
        Ok(c) => c,
        Err(
            registry_core::Error::ManifestUnknown { .. } | registry_core::Error::NameUnknown { .. },
        ) => {
            return unknown();
        }
        Err(e) => return failure(&ui, &visitor, &e),
    };
    let Ok(parsed) = Manifest::parse(&content.bytes, Some(&content.info.media_type)) else {
        return unknown();
    };
    let digest = content.info.digest.clone();
    let children: Vec<_> = parsed
        .manifests
        .iter()
        .map(|m| {
            context! {
                digest => m.digest.to_string(),
                platform => platform(&m.platform).unwrap_or_else(|| "-".into()),
                media_type => &m.media_type,
                size => human(m.size),
            }
        })
        .collect();
    let layers: Vec<_> = parsed
        .layers
        .iter()
        .map(|l| context! { digest => l.digest.to_string(), media_type => &l.media_type, size => human(l.size) })
        .collect();
    let config = match &parsed.config {
        Some(c) if c.size <= MAX_CONFIG && c.media_type.contains("config") => {
            read_json(&ui, &repo, &c.digest)
                .await
                .map(|v| config_context(&v))
        }
        _ => None,
    };
    let referrers: Vec<_> = ui
        .registry
        .list_referrers(&repo, &digest, None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            context! {
                digest => d.digest.to_string(),
                artifact_type => d.artifact_type.unwrap_or_else(|| d.media_type.clone()),
                size => human(d.size),
            }
        })
        .collect();
    let annotations: Vec<(String, String)> =
        serde_json::from_slice::<serde_json::Value>(&content.bytes)
            .ok()
            .and_then(|v| v["annotations"].as_object().cloned())
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
    ui.page(
        &visitor,
        StatusCode::OK,
        "manifest.html",
        context! {
            name => repo.as_str(),
            reference => query.reference,
            digest => digest.to_string(),
            media_type => content.info.media_type,
            size => human(content.info.size),
            children => children,
            layers => layers,
            config => config,
            referrers => referrers,
            annotations => annotations,
            subject => parsed.subject.map(|s| s.digest.to_string()),
            may_delete => !ui.options.read_only
                && ui.options.deletes
                && ui.may(&visitor, &repo, Action::Delete),
        },
    )
}

/// A small JSON blob of `repo` (an image config), read whole up to [`MAX_CONFIG`].
async fn read_json(ui: &Ui, repo: &RepositoryName, digest: &Digest) -> Option<serde_json::Value> {
    let blob = ui.registry.get_blob(repo, digest, None).await.ok()?;
    if blob.size > MAX_CONFIG {
        return None;
    }
    let bytes: Vec<u8> = blob
        .stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `GET /usage`: bytes per repository and the store's totals, for those who may see the whole
/// store (the same report the admin API serves, computed once for all callers at a time).
pub(crate) async fn usage(State(ui): State<Ui>, headers: HeaderMap) -> Response {
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
    let rows: Vec<_> = report
        .repositories
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
    ui.page(
        &visitor,
        StatusCode::OK,
        "usage.html",
        context! { rows => rows, store => store },
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
