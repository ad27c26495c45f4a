//! The subcommands that work on the store beside (or without) a running server: `gc`, `scrub`,
//! `reindex`, `history`, `restore`, `usage` and `check-config`.

use registry_core::lifecycle::human_bytes;
use registry_core::{Digest, RepositoryName, Tag, TagChange};

use crate::config::{Config, Sources};
use crate::{auth, notify, registry, storage};

/// The registry a command changes the store through, as the server's own: its changes reach
/// replication's queues and raise the webhooks' events (see [`Changing::finish`]).
struct Changing {
    registry: registry_core::Registry,
    webhooks: Option<std::sync::Arc<notify::Webhooks>>,
}

impl Changing {
    fn open(config: &Config) -> Result<Changing, String> {
        let metrics = registry_http::metrics::Metrics::new();
        let webhooks = notify::Webhooks::start(&config.notifications, &metrics)?;
        let sink = webhooks
            .clone()
            .map(|w| w as std::sync::Arc<dyn registry_http::events::EventSink>);
        let registry = crate::registry_and_replication(config, None, sink)?.registry;
        Ok(Changing { registry, webhooks })
    }

    /// Sends the events still queued (30 s at most) before the command exits.
    async fn finish(self) {
        if let Some(webhooks) = self.webhooks
            && !webhooks.flush(std::time::Duration::from_secs(30)).await
        {
            eprintln!("registry: some notifications could not be sent within 30 s");
        }
    }
}

pub async fn gc(config: Config, dry_run: bool, full: bool) -> Result<(), String> {
    existing(&config)?;
    let changing = Changing::open(&config)?;
    let registry = changing.registry.clone();
    let options = registry_core::gc::GcOptions {
        full,
        ..config.gc_options(dry_run)?
    };
    let report = registry_core::gc::collect(&registry, &options)
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
    if report.full {
        println!("gc: walked the whole store");
    } else {
        println!(
            "gc: incremental: read the candidate records; examined {} repositories and {} blobs",
            report.repositories, report.blobs_examined
        );
    }
    for line in kept_because(&report, &config) {
        println!("gc: kept {line}");
    }
    changing.finish().await;
    Ok(())
}

/// What a collection kept besides what tags reach, and the setting that keeps it: what to look
/// at when a collection frees less than expected.
fn kept_because(report: &registry_core::gc::GcReport, config: &Config) -> Vec<String> {
    let k = &report.kept_because;
    let gc = &config.gc;
    [
        (k.tagged, "manifests reached by tags".to_owned()),
        (
            k.history,
            format!(
                "manifests named by tag history of the last {} days, to restore ([gc] history_days)",
                gc.history_days
            ),
        ),
        (
            k.untagged,
            "manifests no tag reaches ([gc] delete_untagged = false keeps them)".to_owned(),
        ),
        (
            k.young,
            format!(
                "manifests pushed within the grace period of {} s ([gc] grace_secs)",
                gc.grace_secs
            ),
        ),
        (
            k.referrers,
            "referrers (signatures, SBOMs) of kept manifests ([gc] keep_referrers)".to_owned(),
        ),
        (
            report.blobs_young,
            format!(
                "blobs no kept manifest names, written or used within the grace period of {} s \
                 ([gc] grace_secs: pushes in progress)",
                gc.grace_secs
            ),
        ),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect()
}

pub async fn reindex(config: Config) -> Result<(), String> {
    existing(&config)?;
    let registry = registry(&config, None)?;
    let report = registry_core::reindex::reindex(&registry)
        .await
        .map_err(|e| format!("reindex failed: {e}"))?;
    println!(
        "reindex: {} repositories hold manifests; {} tags moved to records; {} revision links of distribution rewritten; {} catalog entries written or removed; {} links recorded for garbage collection",
        report.repositories,
        report.tags_moved,
        report.links_adopted,
        report.catalog_changes,
        report.links_recorded
    );
    Ok(())
}

pub async fn scrub(config: Config) -> Result<(), String> {
    existing(&config)?;
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

/// `registry check-config FILE`: every problem at once, what each of a distribution
/// configuration's keys became, and the configuration in force as TOML (secrets hidden).
pub fn check_config(file: &std::path::Path, sources: &Sources) -> Result<(), String> {
    let config = &sources.config;
    let mut problems = Vec::new();
    let checks: [Result<(), String>; 4] = [
        auth::access_control(
            config,
            "https://check.invalid/token",
            &auth::LoginWatch::default(),
        )
        .map(drop),
        notify::validate(&config.notifications),
        config.mirror.build().map(drop),
        config.lifecycle().map(drop),
    ];
    for check in checks {
        if let Err(e) = check {
            problems.push(e);
        }
    }
    for (key, line, became) in &sources.mapping {
        let at = line.map_or(String::from("a variable, or implied"), |l| {
            format!("line {l}")
        });
        println!("# {key} ({at}): {became}");
    }
    let mut table = toml::Value::try_from(config).map_err(|e| e.to_string())?;
    redact(&mut table);
    let text = toml::to_string_pretty(&table).map_err(|e| e.to_string())?;
    println!("{text}");
    if !problems.is_empty() {
        return Err(format!("{}: {}", file.display(), problems.join("; ")));
    }
    println!("# {}: valid", file.display());
    Ok(())
}

/// Hides what must not be printed: the values of keys that name a password, a secret, a key,
/// a token or credentials (`secret_access_key`, an `Authorization` header).
fn redact(value: &mut toml::Value) {
    const SECRET: [&str; 6] = [
        "password",
        "secret",
        "access_key",
        "authorization",
        "token",
        "cookie",
    ];
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if value.is_str() && SECRET.iter().any(|s| lower.contains(s)) {
                    *value = toml::Value::String("<hidden>".into());
                } else {
                    redact(value);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `registry healthcheck`: whether the server answers `GET /healthz` (at `url`, else on the
/// configured address: its loopback side for an address of every interface).
pub async fn healthcheck(config: &Config, url: Option<&str>) -> Result<(), String> {
    let url = match url {
        Some(url) => url.to_owned(),
        None => {
            let mut addr = config.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let scheme = if config.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{addr}/healthz")
        }
    };
    // Its own certificate, whatever its name: the check asks whether it serves, not who it is.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .tls_danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| e.to_string())?;
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{url}: {}", r.status())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// A filesystem store must exist before a command reads or changes it: a command pointed
/// nowhere would otherwise create an empty store and report on it.
fn existing(config: &Config) -> Result<(), String> {
    match &config.storage {
        crate::config::StorageSpec::Filesystem(path) if !path.is_dir() => Err(format!(
            "no store at {}: name one with --storage or --config (this is where the store \
             would be by default)",
            config.storage
        )),
        _ => Ok(()),
    }
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

/// When a change happened, as RFC 3339 (`2026-12-06T20:14:03Z`).
fn time_of(change: &TagChange) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(change.at);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn describe(change: &TagChange) -> String {
    let digest = |d: &Option<Digest>| d.as_ref().map_or("-".to_owned(), Digest::to_string);
    let what = match (&change.from, &change.to) {
        _ if change.restored => "restored",
        (None, Some(_)) => "created",
        (Some(_), Some(_)) => "moved",
        (Some(_), None) => "deleted",
        (None, None) => "changed",
    };
    format!(
        "{} {} {what} {} -> {} by {} (request {})",
        time_of(change),
        change.tag,
        digest(&change.from),
        digest(&change.to),
        change.identity.as_deref().unwrap_or("anonymous"),
        change.request_id.as_deref().unwrap_or("-"),
    )
}

pub async fn history(config: Config, target: &str, json: bool) -> Result<(), String> {
    existing(&config)?;
    let registry = registry(&config, None)?;
    let (repo, tag) = repository_and_tag(target)?;
    let changes = match &tag {
        Some(tag) => registry.tag_history(&repo, tag).await,
        None => registry.repository_history(&repo).await,
    }
    .map_err(|e| format!("history failed: {e}"))?;
    if json {
        // The seconds stay (`at`), beside the same time in RFC 3339 (`time`).
        let changes: Vec<serde_json::Value> = changes
            .iter()
            .map(|c| {
                let mut value = serde_json::to_value(c).unwrap_or_default();
                value["time"] = serde_json::Value::String(time_of(c));
                value
            })
            .collect();
        let text = serde_json::to_string_pretty(&changes).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    for change in &changes {
        println!("{}", describe(change));
    }
    println!("history: {} changes of {target}", changes.len());
    Ok(())
}

pub async fn restore(config: Config, target: &str, to: Option<&str>) -> Result<(), String> {
    existing(&config)?;
    let changing = Changing::open(&config)?;
    let registry = changing.registry.clone();
    let (repo, tag) = repository_and_tag(target)?;
    let tag = tag.ok_or_else(|| format!("restore needs REPO:TAG, not {target:?}"))?;
    let to: Option<Digest> = to
        .map(str::parse)
        .transpose()
        .map_err(|e| format!("--to: {e}"))?;
    // Who restored, as the tag's history and the restore's event name them.
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .unwrap_or_else(|| "an unnamed user".into());
    let caller = registry_core::Caller {
        identity: Some(format!("{user} (registry restore)")),
        origin: registry_core::feed::Origin::Cli,
        ..registry_core::Caller::default()
    };
    let record = registry
        .as_caller(caller)
        .restore_tag(&repo, &tag, to.as_ref())
        .await
        .map_err(|e| format!("restore failed: {e}"))?;
    println!("restored {repo}:{tag} -> {}", record.digest);
    changing.finish().await;
    Ok(())
}

pub async fn usage(config: Config, repository: Option<&str>, json: bool) -> Result<(), String> {
    existing(&config)?;
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
    let statuses = registry_http::remote::replication::status(storage.as_ref(), &names)
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
