//! The `[[replication]]` and `[[sync]]` tables: registries changes are pushed to, and upstreams
//! tags are fetched from on a schedule.

use std::path::PathBuf;
use std::time::Duration;

use registry_core::lifecycle::TagPattern;
use serde::{Deserialize, Serialize};

/// One `[[replication]]` table: a registry every change of the covered repositories is copied to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationConfig {
    /// The target's name (in metrics, logs and `registry replication status`).
    pub name: String,
    /// Its URL.
    pub url: String,
    /// The user to log in as.
    pub username: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Repositories copied: names, `prefix/*` or `*`.
    pub repositories: Vec<String>,
    /// Tags copied: regexes; every tag when absent.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Copy deletes too.
    #[serde(default)]
    pub delete: bool,
    /// Seconds between reconciles (the target's tags compared, differences queued); 0 never.
    #[serde(default = "default_reconcile")]
    pub reconcile_secs: u64,
    /// Seconds a request to the target may wait to connect and between reads.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// One `[[sync]]` table: tags of an upstream fetched into local repositories on a schedule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// The upstream's URL.
    pub upstream: String,
    /// The user to log in as.
    pub username: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Repositories on the upstream.
    pub repositories: Vec<String>,
    /// Store them as `<prefix>/<repository>`; under their own name when absent.
    #[serde(default)]
    pub prefix: String,
    /// Tags fetched: regexes; every tag when absent.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Children of an index kept, `os/architecture[/variant]`; all when absent.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Seconds between rounds (the first runs at start).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Seconds a request to the upstream may wait to connect and between reads.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_reconcile() -> u64 {
    3600
}

fn default_interval() -> u64 {
    3600
}

fn default_timeout() -> u64 {
    60
}

fn credentials(
    what: &str,
    username: &Option<String>,
    password_file: &Option<PathBuf>,
) -> Result<Option<(String, String)>, String> {
    let Some(user) = username else {
        return Ok(None);
    };
    let password = match password_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        None => String::new(),
    };
    Ok(Some((user.clone(), password)))
}

fn patterns(what: &str, tags: &[String]) -> Result<Vec<TagPattern>, String> {
    tags.iter()
        .map(|t| TagPattern::new(t).map_err(|e| format!("{what}: tag pattern {t:?}: {e}")))
        .collect()
}

impl ReplicationConfig {
    /// The library's configuration, with the password read from its file.
    pub fn core(&self) -> Result<registry_http::remote::replication::TargetConfig, String> {
        let what = format!("replication {}", self.name);
        if self.repositories.is_empty() {
            return Err(format!("{what}: name the repositories to copy"));
        }
        Ok(registry_http::remote::replication::TargetConfig {
            name: self.name.clone(),
            url: self.url.clone(),
            credentials: credentials(&what, &self.username, &self.password_file)?,
            repositories: self.repositories.clone(),
            tags: patterns(&what, &self.tags)?,
            delete: self.delete,
            reconcile_interval: (self.reconcile_secs > 0)
                .then(|| Duration::from_secs(self.reconcile_secs)),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
        })
    }
}

impl SyncSettings {
    /// The library's configuration, with the password read from its file.
    pub fn core(&self) -> Result<registry_http::remote::sync::SyncConfig, String> {
        let what = format!("sync from {}", self.upstream);
        if self.repositories.is_empty() {
            return Err(format!("{what}: name the repositories to fetch"));
        }
        let repositories = self
            .repositories
            .iter()
            .map(|r| r.parse().map_err(|e| format!("{what}: {e}")))
            .collect::<Result<_, String>>()?;
        for platform in &self.platforms {
            let parts = platform.split('/').count();
            if !(2..=3).contains(&parts) || platform.split('/').any(str::is_empty) {
                return Err(format!(
                    "{what}: platform {platform:?} is not os/architecture[/variant]"
                ));
            }
        }
        Ok(registry_http::remote::sync::SyncConfig {
            upstream: self.upstream.clone(),
            credentials: credentials(&what, &self.username, &self.password_file)?,
            repositories,
            prefix: self.prefix.clone(),
            tags: patterns(&what, &self.tags)?,
            platforms: self.platforms.clone(),
            interval: Duration::from_secs(self.interval_secs.max(1)),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
        })
    }
}
