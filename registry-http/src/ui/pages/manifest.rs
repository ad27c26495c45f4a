//! `GET /manifest`: a manifest (read without counting as a pull), its image config (OCI or
//! Docker), its children, layers, annotations and referrers, with pull commands by tag and by
//! digest.

use axum::extract::{Query, State};
use axum::response::Response;
use futures::TryStreamExt;
use http::{HeaderMap, StatusCode};
use minijinja::context;
use registry_core::{Digest, Manifest, Reference, RepositoryName};
use serde::Deserialize;

use super::{Ui, failure, human, platform, pull_host, visible};
use crate::auth::access::Action;

/// Bytes of an image config read at most.
const MAX_CONFIG: u64 = 1 << 20;

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
    let content = match ui.registry.peek_manifest(&repo, &reference).await {
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
        // OCI's image config, and Docker's (`…docker.container.image.v1+json`).
        Some(c)
            if c.size <= MAX_CONFIG
                && (c.media_type.contains("config")
                    || c.media_type.contains("container.image")) =>
        {
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
    let host = pull_host(&ui, &headers);
    let pull = match &reference {
        Reference::Tag(tag) => Some(format!("podman pull {host}/{repo}:{tag}")),
        Reference::Digest(_) => None,
    };
    // Never offered for what an immutable tag holds (the registry would refuse it).
    let protected = match &ui.options.immutable {
        Some(rules) => rules
            .reaching(&repo, &digest)
            .await
            .map_or(true, |t| t.is_some()),
        None => false,
    };
    let may_delete = !ui.options.read_only
        && ui.options.deletes
        && !protected
        && ui.may(&visitor, &repo, Action::Delete);
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
            may_delete => may_delete,
            pull => pull,
            pull_digest => format!("podman pull {host}/{repo}@{digest}"),
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
