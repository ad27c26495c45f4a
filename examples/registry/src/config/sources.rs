//! Where the configuration comes from, in order: defaults (the `registry` image's with
//! `REGISTRY_DEFAULTS=image`), a TOML file or distribution's `config.yml`, distribution's
//! variables, then ours.

use std::path::Path;

use super::{Config, distribution};

/// Tables whose keys `REGISTRY_<TABLE>_<KEY>` variables set.
const TABLES: &[&str] = &[
    "s3",
    "gcs",
    "azure",
    "token",
    "gc",
    "uploads",
    "log",
    "metrics",
    "notifications",
    "groups",
    "identities",
    "mirror",
    "throttle",
    "audit",
    "tls",
    "ldap",
    "ui",
    "tracing",
];

/// `REGISTRY_*` variables that are flags only, not configuration keys.
const FLAG_ONLY: &[&str] = &["config", "mirror", "auth_file", "defaults"];

/// What `REGISTRY_DEFAULTS=image` (set in the container image) makes the defaults: those of the
/// `registry` image.
pub const IMAGE_LISTEN: &str = "0.0.0.0:5000";
/// The store of the image: where the `registry` image keeps its store inside its volume.
pub const IMAGE_STORAGE: &str = "fs:/var/lib/registry/docker/registry/v2";
/// The configuration file the image reads when it exists (the `registry` image's).
pub const IMAGE_CONFIG: &str = "/etc/docker/registry/config.yml";

/// What the sources of the configuration gave: the configuration, warnings about variables that
/// name no key, and what became of each key of a distribution configuration (when one was read).
#[derive(Debug)]
pub struct Sources {
    /// The configuration in force.
    pub config: Config,
    /// Variables that name no key (ignored).
    pub warnings: Vec<String>,
    /// Distribution's keys, their lines, and what each became.
    pub mapping: Vec<(String, Option<usize>, String)>,
}

impl Config {
    /// The file (if any; TOML, or distribution's YAML when it ends in `.yml` or `.yaml`), with
    /// distribution's `REGISTRY_*` variables over it, then ours; warnings about `REGISTRY_*`
    /// variables that name no key (they are ignored). Every error of a TOML file is reported at
    /// once, in file order, each with its line; every unsupported key of a YAML one likewise.
    ///
    /// Ours: a variable sets the key its name spells in lower case: `REGISTRY_MAX_CONNECTIONS`
    /// sets `max_connections`, `REGISTRY_GC_GRACE_SECS` sets `grace_secs` in `[gc]`. Values are
    /// read as TOML when they are numbers, booleans, arrays or inline tables, else as strings
    /// (quote a string that looks like a number: `REGISTRY_TOKEN_SERVICE='"1234"'`).
    /// Distribution's (`REGISTRY_HTTP_ADDR`, `REGISTRY_AUTH=htpasswd`, …): see
    /// [`distribution`]. `REGISTRY_DEFAULTS=image` makes the defaults those of the `registry`
    /// image ([`IMAGE_LISTEN`], [`IMAGE_STORAGE`], and [`IMAGE_CONFIG`] read when present).
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Sources, String> {
        Config::from_sources_with(file, env, Path::new(IMAGE_CONFIG))
    }

    /// [`Config::from_sources`], with the image's configuration file at `image_config`.
    pub(super) fn from_sources_with(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        image_config: &Path,
    ) -> Result<Sources, String> {
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("REGISTRY_"))
            .collect();
        vars.sort();
        let image = vars
            .iter()
            .any(|(k, v)| k == "REGISTRY_DEFAULTS" && v == "image");
        let mut table = toml::Table::new();
        if image {
            table.insert("listen".into(), toml::Value::String(IMAGE_LISTEN.into()));
            table.insert("storage".into(), toml::Value::String(IMAGE_STORAGE.into()));
        }
        let file = file.or_else(|| (image && image_config.exists()).then_some(image_config));
        let yaml = file.is_some_and(|f| {
            f.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
        });
        let (theirs, ours): (Vec<_>, Vec<_>) = vars
            .into_iter()
            .partition(|(k, v)| distribution::is_distribution_variable(&k["REGISTRY_".len()..], v));
        let mut mapping = Vec::new();
        if let Some(path) = file.filter(|_| !yaml) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            merge(&mut table, read_toml(&text, path)?);
        }
        if yaml || !theirs.is_empty() {
            let text = match file.filter(|_| yaml) {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let origin = file.map_or("REGISTRY_* variables".into(), |f| f.display().to_string());
            let theirs: Vec<(String, String)> = theirs
                .into_iter()
                .map(|(k, v)| (k["REGISTRY_".len()..].to_owned(), v))
                .collect();
            let translation = distribution::read(text.as_deref(), &origin, &theirs)?;
            merge(&mut table, translation.table);
            mapping = translation.mapping;
        }
        let mut warnings = Vec::new();
        for (var, raw) in ours {
            let name = var["REGISTRY_".len()..].to_ascii_lowercase();
            if FLAG_ONLY.contains(&name.as_str()) {
                continue;
            }
            let value = env_value(&raw);
            // A key of a table (`REGISTRY_TLS_CLIENT_CA`), else a top-level key
            // (`REGISTRY_TLS_CERT` is `tls_cert`, not `cert` in `[tls]`).
            let mut candidates = Vec::new();
            if let Some((t, key)) = TABLES
                .iter()
                .find_map(|t| Some((*t, name.strip_prefix(t)?.strip_prefix('_')?)))
                .filter(|(_, key)| !key.is_empty())
            {
                let mut inner = toml::Table::new();
                inner.insert(key.to_owned(), value.clone());
                let mut alone = toml::Table::new();
                alone.insert(t.to_owned(), toml::Value::Table(inner));
                candidates.push(alone);
            }
            let mut alone = toml::Table::new();
            alone.insert(name.clone(), value);
            candidates.push(alone);
            let mut chosen = None;
            for alone in candidates {
                match toml::Value::Table(alone.clone()).try_into::<Config>() {
                    Ok(_) => {
                        chosen = Some(alone);
                        break;
                    }
                    Err(e) if e.to_string().contains("unknown field") => {}
                    Err(e) => return Err(format!("invalid {var}: {}", e.to_string().trim())),
                }
            }
            let Some(alone) = chosen else {
                warnings.push(format!("{var} is not a configuration key; ignored"));
                continue;
            };
            merge(&mut table, alone);
        }
        let config = toml::Value::Table(table)
            .try_into::<Config>()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        Ok(Sources {
            config,
            warnings,
            mapping,
        })
    }
}

/// A TOML configuration file's table, checked: every error it holds, in file order, each with
/// its line (each top-level key and table is checked alone, at its own lines).
fn read_toml(text: &str, path: &Path) -> Result<toml::Table, String> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| format!("invalid config {}: {e}", path.display()))?;
    if toml::from_str::<Config>(text).is_ok() {
        return Ok(table);
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut errors = Vec::new();
    for (start, end) in items(&lines) {
        // The item alone, at its own lines: the others blanked.
        let alone: String = lines
            .iter()
            .enumerate()
            .map(|(i, line)| if (start..end).contains(&i) { *line } else { "" })
            .collect::<Vec<_>>()
            .join("\n");
        if let Err(e) = toml::from_str::<Config>(&alone) {
            errors.push(e.to_string().trim().to_owned());
        }
    }
    if errors.is_empty() {
        errors.push("invalid configuration".into());
    }
    Err(format!(
        "invalid config {}:\n{}",
        path.display(),
        errors.join("\n")
    ))
}

/// The line ranges of a TOML document's items: each top-level `key = value` (with the lines
/// its value continues on), and each `[table]` or `[[array]]` with its body.
fn items(lines: &[&str]) -> Vec<(usize, usize)> {
    let is_header = |l: &str| {
        let l = l.trim();
        l.starts_with('[') && (l.ends_with(']') || l.contains("] #") || l.contains("]#"))
    };
    let is_key = |l: &str| {
        let l = l.trim_start();
        l.split_once('=').is_some_and(|(k, _)| {
            !k.trim().is_empty()
                && k.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.\"' ".contains(c))
        })
    };
    let mut starts = Vec::new();
    let mut in_tables = false;
    for (i, line) in lines.iter().enumerate() {
        if is_header(line) {
            in_tables = true;
            starts.push(i);
        } else if !in_tables && is_key(line) {
            starts.push(i);
        }
    }
    let mut ranges = Vec::new();
    for (n, start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(lines.len());
        ranges.push((*start, end));
    }
    ranges
}

/// A variable's value as TOML: numbers, booleans, arrays and inline tables as such, the rest as
/// a string.
fn env_value(raw: &str) -> toml::Value {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    match parsed {
        Some(v) if !v.is_str() || raw.starts_with('"') => v,
        _ => toml::Value::String(raw.to_owned()),
    }
}

/// Puts every key of `from` into `into`, merging tables.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => merge(inner, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}
