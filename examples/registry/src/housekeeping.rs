//! What the server does on its own: moving an old store to the listing index at start, and
//! garbage collection and upload purging on their schedules.

use std::sync::Arc;
use std::time::Duration;

use registry_core::Registry;
use registry_http::metrics::Metrics;

use crate::config::Config;

/// Moves a store written before the listing index to it, before serving; one that lacks only
/// the collection records (written by the previous version) gains them in the background, since
/// it serves as it is meanwhile (collections walk it whole until then). A storage that cannot be
/// read now is reported, not fatal: the server starts and answers 503 until it is back (and reads
/// an old store as it is until `registry reindex` runs).
pub async fn reindex_if_needed(registry: &Registry) {
    let needed = async {
        let listing = registry_core::reindex::listing_needed(registry).await?;
        let records = registry_core::reindex::needed(registry).await?;
        Ok::<_, registry_core::Error>((listing, records))
    };
    match needed.await {
        Ok((true, _)) => {
            tracing::info!("the store predates the listing index: reindexing (registry reindex)");
            reindex(registry).await;
        }
        Ok((false, true)) => {
            tracing::info!(
                "the store predates the collection records: recording its links in the background \
                 (registry reindex); garbage collection walks the store until then"
            );
            let registry = registry.clone();
            tokio::spawn(async move { reindex(&registry).await });
        }
        Ok((false, false)) => {}
        Err(e) => tracing::warn!(
            "cannot tell whether the store needs reindexing ({e}); if it predates the listing \
             index, run `registry reindex` once the storage answers"
        ),
    }
}

async fn reindex(registry: &Registry) {
    match registry_core::reindex::reindex(registry).await {
        Ok(report) => tracing::info!(
            repositories = report.repositories,
            tags_moved = report.tags_moved,
            catalog_changes = report.catalog_changes,
            links_recorded = report.links_recorded,
            "reindexed"
        ),
        Err(e) => tracing::warn!("reindex failed: {e}; run `registry reindex` later"),
    }
}

/// Runs garbage collection and upload purging on their schedules (`[gc] interval_secs`,
/// `[uploads] purge_interval_secs`; 0 turns either off). A collection is incremental, but one
/// due at least `[gc] full_interval_secs` after the last full one (or the start) walks the store.
pub async fn run(
    registry: Registry,
    config: Config,
    options: registry_core::gc::GcOptions,
    metrics: Arc<Metrics>,
) {
    let runs = prometheus_client::metrics::family::Family::<
        Vec<(&'static str, &'static str)>,
        prometheus_client::metrics::counter::Counter,
    >::default();
    let freed = prometheus_client::metrics::counter::Counter::<u64>::default();
    metrics.register(
        "gc_runs",
        "Garbage collections and upload purges, by kind and result",
        runs.clone(),
    );
    metrics.register(
        "gc_freed_bytes",
        "Bytes freed by garbage collection and upload purging",
        freed.clone(),
    );
    let every = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
    let (gc_every, purge_every) = (
        every(config.gc.interval_secs),
        every(config.uploads.purge_interval_secs),
    );
    let full_every = every(config.gc.full_interval_secs);
    let start = tokio::time::Instant::now();
    let mut last_full = start;
    let (mut next_gc, mut next_purge) =
        (gc_every.map(|d| start + d), purge_every.map(|d| start + d));
    loop {
        let Some(at) = [next_gc, next_purge].into_iter().flatten().min() else {
            return;
        };
        tokio::time::sleep_until(at).await;
        let now = tokio::time::Instant::now();
        let full = next_gc.is_some_and(|t| t <= now);
        let walk = full_every.is_some_and(|d| now >= last_full + d);
        let (kind, result) = if full && walk {
            last_full = now;
            let options = registry_core::gc::GcOptions {
                full: true,
                ..options.clone()
            };
            (
                "gc_full",
                registry_core::gc::collect(&registry, &options).await,
            )
        } else if full {
            ("gc", registry_core::gc::collect(&registry, &options).await)
        } else {
            (
                "purge",
                registry_core::gc::purge_uploads(&registry, &options).await,
            )
        };
        match result {
            Ok(report) => {
                runs.get_or_create(&vec![("kind", kind), ("result", "ok")])
                    .inc();
                freed.inc_by(report.bytes_freed());
                for decision in report.retention.iter().filter(|d| d.removed()) {
                    tracing::info!(%decision, "retention");
                }
                for removal in &report.removed {
                    tracing::debug!(%removal, "{kind} removed");
                }
                tracing::info!(
                    walked_store = report.full,
                    repositories = report.repositories,
                    manifests_kept = report.manifests_kept,
                    blobs_kept = report.blobs_kept,
                    removed = report.removed.len(),
                    bytes_freed = report.bytes_freed(),
                    "{kind} done"
                );
            }
            Err(e) => {
                runs.get_or_create(&vec![("kind", kind), ("result", "error")])
                    .inc();
                tracing::warn!("{kind} failed: {e}");
            }
        }
        let now = tokio::time::Instant::now();
        if full {
            next_gc = gc_every.map(|d| now + d);
        }
        // A collection purges uploads too.
        next_purge = purge_every.map(|d| now + d);
    }
}
