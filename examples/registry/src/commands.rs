//! The subcommands that work on the store beside (or without) a running server: `gc`, `scrub`,
//! `reindex`, `history`, `restore`, `usage` and `check-config`.

use registry_core::lifecycle::human_bytes;
use registry_core::{Digest, RepositoryName, Tag, TagChange};

use crate::config::Config;
use crate::{auth, notify, registry, storage};

pub async fn gc(config: Config, dry_run: bool) -> Result<(), String> {
    let registry = registry(&config, None)?;
    let report = registry_core::gc::collect(&registry, &config.gc_options(dry_run)?)
        .await
        .map_err(|e| format!("gc failed: {e}"))?;
    for decision in &report.retention {
        println!(
            "retention: {}{decision}",
            if dry_run { "would " } else { "" }
        );
    }
    for removal in &report.removed {
        println!(
            "{}{removal}",
            if dry_run { "would remove " } else { "removed " }
        );
    }
    println!(
        "gc: {} repositories, {} manifests and {} blobs kept; {} {} objects, {} bytes{}; {} catalog entries reconciled",
        report.repositories,
        report.manifests_kept,
        report.blobs_kept,
        if dry_run { "would remove" } else { "removed" },
        report.removed.len(),
        report.bytes_freed(),
        if dry_run { " (dry run)" } else { "" },
        report.catalog_changes,
    );
    Ok(())
}

pub async fn reindex(config: Config) -> Result<(), String> {
    let registry = registry(&config, None)?;
    let report = registry_core::reindex::reindex(&registry)
        .await
        .map_err(|e| format!("reindex failed: {e}"))?;
    println!(
        "reindex: {} repositories hold manifests; {} tags moved to records; {} catalog entries written or removed",
        report.repositories, report.tags_moved, report.catalog_changes
    );
    Ok(())
}

pub async fn scrub(config: Config) -> Result<(), String> {
    let registry = registry(&config, None)?;
    let report = registry_core::scrub::scrub(&registry)
        .await
        .map_err(|e| format!("scrub failed: {e}"))?;
    for problem in &report.problems {
        println!("{problem:?}");
    }
    println!(
        "scrub: {} blobs ({} bytes) re-hashed, {} links checked, {} problems",
        report.blobs,
        report.bytes,
        report.links,
        report.problems.len()
    );
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} problems found", report.problems.len()))
    }
}

pub fn check_config(file: &std::path::Path, config: &Config) -> Result<(), String> {
    auth::access_control(
        config,
        "https://check.invalid/token",
        &auth::LoginWatch::default(),
    )?;
    notify::validate(&config.notifications)?;
    config.mirror.build()?;
    config.lifecycle()?;
    println!("{config:#?}");
    println!("{}: valid", file.display());
    Ok(())
}

/// `REPO` or `REPO:TAG` (repository names never hold a colon).
fn repository_and_tag(target: &str) -> Result<(RepositoryName, Option<Tag>), String> {
    let (repo, tag) = match target.split_once(':') {
        Some((repo, tag)) => (repo, Some(tag)),
        None => (target, None),
    };
    let repo = repo.parse().map_err(|e| format!("{e}"))?;
    let tag = tag
        .map(str::parse)
        .transpose()
        .map_err(|e| format!("{e}"))?;
    Ok((repo, tag))
}

fn describe(change: &TagChange) -> String {
    let at = change.at;
    let digest = |d: &Option<Digest>| d.as_ref().map_or("-".to_owned(), Digest::to_string);
    let what = match (&change.from, &change.to) {
        (None, Some(_)) => "created",
        (Some(_), Some(_)) => "moved",
        (Some(_), None) => "deleted",
        (None, None) => "changed",
    };
    format!(
        "{at} {} {what} {} -> {} by {} (request {})",
        change.tag,
        digest(&change.from),
        digest(&change.to),
        change.identity.as_deref().unwrap_or("anonymous"),
        change.request_id.as_deref().unwrap_or("-"),
    )
}

pub async fn history(config: Config, target: &str, json: bool) -> Result<(), String> {
    let registry = registry(&config, None)?;
    let (repo, tag) = repository_and_tag(target)?;
    let changes = match &tag {
        Some(tag) => registry.tag_history(&repo, tag).await,
        None => registry.repository_history(&repo).await,
    }
    .map_err(|e| format!("history failed: {e}"))?;
    if json {
        let text = serde_json::to_string_pretty(&changes).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    for change in &changes {
        println!("{}", describe(change));
    }
    println!(
        "history: {} changes of {target} (times in seconds since the Unix epoch)",
        changes.len()
    );
    Ok(())
}

pub async fn restore(config: Config, target: &str, to: Option<&str>) -> Result<(), String> {
    let registry = registry(&config, None)?;
    let (repo, tag) = repository_and_tag(target)?;
    let tag = tag.ok_or_else(|| format!("restore needs REPO:TAG, not {target:?}"))?;
    let to: Option<Digest> = to
        .map(str::parse)
        .transpose()
        .map_err(|e| format!("--to: {e}"))?;
    let caller = registry_core::Caller {
        identity: std::env::var("USER")
            .ok()
            .map(|u| format!("{u} (registry restore)")),
        request_id: None,
    };
    let record = registry
        .as_caller(caller)
        .restore_tag(&repo, &tag, to.as_ref())
        .await
        .map_err(|e| format!("restore failed: {e}"))?;
    println!("restored {repo}:{tag} -> {}", record.digest);
    Ok(())
}

pub async fn usage(config: Config, repository: Option<&str>, json: bool) -> Result<(), String> {
    let registry = registry(&config, None)?;
    let only: Option<RepositoryName> = repository
        .map(str::parse)
        .transpose()
        .map_err(|e| format!("{e}"))?;
    let report = registry_core::lifecycle::usage::usage(&registry, only.as_ref())
        .await
        .map_err(|e| format!("usage failed: {e}"))?;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<40} {:>9} {:>12} {:>12} {:>12}",
        "REPOSITORY / TAG", "MANIFESTS", "REFERENCED", "EXCLUSIVE", "SHARED"
    );
    for repo in &report.repositories {
        println!(
            "{:<40} {:>9} {:>12} {:>12} {:>12}",
            repo.name.as_str(),
            repo.manifests,
            human_bytes(repo.referenced_bytes),
            repo.exclusive_bytes.map(human_bytes).unwrap_or_default(),
            repo.shared_bytes.map(human_bytes).unwrap_or_default()
        );
        for tag in &repo.tags {
            println!(
                "  :{:<37} {:>9} {:>12} {:>12}",
                tag.tag.as_str(),
                "",
                human_bytes(tag.bytes),
                tag.frees_bytes
                    .map(|b| format!("frees {}", human_bytes(b)))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(store) = &report.store {
        println!(
            "store: {} repositories, {} digests, {} stored, {} referenced in all, deduplication ratio {:.2}",
            store.repositories,
            store.digests,
            human_bytes(store.stored_bytes),
            human_bytes(store.logical_bytes),
            store.dedup_ratio
        );
    }
    Ok(())
}

pub async fn replication_status(config: Config) -> Result<(), String> {
    if config.replication.is_empty() {
        return Err("no [[replication]] target is configured".into());
    }
    let storage = storage(&config, None)?;
    let names: Vec<String> = config.replication.iter().map(|r| r.name.clone()).collect();
    let statuses = registry_http::replication::status(storage.as_ref(), &names)
        .await
        .map_err(|e| format!("cannot read the replication status: {e}"))?;
    let when = |secs: Option<u64>| match secs {
        Some(secs) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        )
        .to_string(),
        None => "never".to_owned(),
    };
    for (target, status) in config.replication.iter().zip(statuses) {
        println!(
            "{}\t{}\tbacklog {}",
            status.name, target.url, status.backlog
        );
        for (replica, record) in &status.replicas {
            println!(
                "  replica {replica}: {} copied, last success {}, last error {}{}",
                record.copied,
                when(record.last_success),
                when(record.last_error_at),
                record
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(())
}
