//! Distribution's configuration, as the `registry` image reads it: a `config.yml` and the
//! `REGISTRY_*` variables that spell its keys (`REGISTRY_HTTP_ADDR`, `REGISTRY_AUTH=htpasswd`,
//! `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`, …). Every setting both registries have becomes
//! a key of ours ([`Translation::table`]); a key with no effect here because this registry needs
//! none (`http.secret`, `storage.cache`) is accepted and says why; any other key is refused with
//! its name, its line and why, never ignored. [`Translation::mapping`] says what became of each
//! key, for `registry check-config`.
//!
//! Distribution keeps a filesystem store under `ROOT/docker/registry/v2` and an S3 store under
//! `ROOTDIRECTORY/docker/registry/v2`: those are the stores this registry opens, so that a
//! volume written by the `registry` image is read as it is (moved to this registry's index at
//! the first start, see `registry_core::reindex`).

use std::time::Duration;

use toml::{Table, Value};

mod http;
mod notifications;
mod storage;

use http::{auth, http, proxy};
use notifications::notifications;
use storage::storage;

/// A node of the YAML tree, with the line of each key (`None` for what a variable set).
#[derive(Debug, Clone)]
enum Node {
    Map(Vec<Entry>),
    List(Vec<Node>),
    Scalar(String),
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    line: Option<usize>,
    value: Node,
}

/// What distribution's configuration became: our keys, and what became of each of its keys.
#[derive(Debug, Default)]
pub struct Translation {
    /// Our configuration's keys, as a TOML table.
    pub table: Table,
    /// `(distribution key, line, what it became)`, in file order.
    pub mapping: Vec<(String, Option<usize>, String)>,
}

/// The drivers distribution's `REGISTRY_STORAGE` names (ours names a store: `fs:PATH`, …).
const DRIVERS: &[&str] = &[
    "filesystem",
    "s3",
    "inmemory",
    "azure",
    "gcs",
    "swift",
    "oss",
];

/// The top-level keys of distribution's configuration: variables under them are its.
const SECTIONS: &[&str] = &[
    "version",
    "storage",
    "http",
    "auth",
    "proxy",
    "health",
    "redis",
    "middleware",
    "reporting",
    "validation",
    "compatibility",
    "catalog",
];

/// Whether the variable `REGISTRY_<name>` (with its value) is distribution's rather than ours.
pub fn is_distribution_variable(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "storage" => DRIVERS.contains(&value),
        "log_level" | "log_formatter" => true,
        _ if name.starts_with("log_fields_") || name.starts_with("log_accesslog_") => true,
        // Ours, though they start like distribution's sections.
        "auth_file" | "proxy_protocol" => false,
        _ => SECTIONS
            .iter()
            .any(|s| name == *s || name.starts_with(&format!("{s}_"))),
    }
}

/// Reads distribution's YAML configuration (`text`, empty without a file) with its variables
/// over it (those `is_distribution_variable` picks from `vars`).
pub fn read(
    text: Option<&str>,
    origin: &str,
    vars: &[(String, String)],
) -> Result<Translation, String> {
    let mut tree = match text {
        Some(text) => from_yaml(
            &marked_yaml::parse_yaml(0, text).map_err(|e| format!("{origin}: not YAML: {e}"))?,
        ),
        None => Node::Map(Vec::new()),
    };
    let mut vars: Vec<(Vec<String>, &str)> = vars
        .iter()
        .map(|(name, value)| {
            let path = name
                .to_ascii_lowercase()
                .split('_')
                .map(str::to_owned)
                .collect();
            (path, value.as_str())
        })
        .collect();
    // Parents first: `REGISTRY_AUTH=htpasswd` before `REGISTRY_AUTH_HTPASSWD_PATH`.
    vars.sort_by_key(|(path, _)| path.len());
    for (path, value) in vars {
        set(&mut tree, &path, value);
    }
    let mut translation = Translation::default();
    translate(&tree, origin, &mut translation)?;
    Ok(translation)
}

fn from_yaml(node: &marked_yaml::Node) -> Node {
    match node {
        marked_yaml::Node::Mapping(map) => Node::Map(
            map.iter()
                .map(|(key, value)| Entry {
                    key: key.as_str().to_owned(),
                    line: key.span().start().map(|m| m.line()),
                    value: from_yaml(value),
                })
                .collect(),
        ),
        marked_yaml::Node::Sequence(list) => Node::List(list.iter().map(from_yaml).collect()),
        marked_yaml::Node::Scalar(s) => Node::Scalar(s.as_str().to_owned()),
    }
}

/// Sets `path` in `tree` to `value`, as distribution's variables do: a driver or method name
/// given to its parent (`REGISTRY_AUTH=htpasswd`) becomes an empty table of that name.
fn set(tree: &mut Node, path: &[String], value: &str) {
    let Some((key, rest)) = path.split_first() else {
        return;
    };
    if !matches!(tree, Node::Map(_)) {
        *tree = Node::Map(Vec::new());
    }
    let Node::Map(entries) = tree else {
        return;
    };
    let at = match entries.iter().position(|e| e.key == *key) {
        Some(at) => at,
        None => {
            entries.push(Entry {
                key: key.clone(),
                line: None,
                value: Node::Map(Vec::new()),
            });
            entries.len() - 1
        }
    };
    let entry = &mut entries[at];
    if rest.is_empty() {
        entry.value = match key.as_str() {
            "storage" | "auth" => Node::Map(vec![Entry {
                key: value.to_owned(),
                line: None,
                value: Node::Map(Vec::new()),
            }]),
            _ => Node::Scalar(value.to_owned()),
        };
    } else {
        set(&mut entry.value, rest, value);
    }
}

/// What reading one key needs: its path, line, value, and where to put what it becomes.
struct Reader<'a> {
    origin: &'a str,
    out: &'a mut Translation,
    errors: Vec<String>,
}

impl Reader<'_> {
    fn refuse(&mut self, path: &str, line: Option<usize>, why: &str) {
        let at = line.map_or(String::from(" (a REGISTRY_* variable)"), |l| {
            format!(" line {l}")
        });
        self.errors
            .push(format!("{}{at}: {path}: {why}", self.origin));
    }

    fn note(&mut self, path: &str, line: Option<usize>, what: impl Into<String>) {
        self.out.mapping.push((path.to_owned(), line, what.into()));
    }

    /// Sets our key `key` (`a.b` for a table's key) to `value`, noting it.
    fn put(&mut self, path: &str, line: Option<usize>, key: &str, value: Value) {
        let shown = match &value {
            Value::String(s) => format!("{key} = {s:?}"),
            other => format!("{key} = {other}"),
        };
        let mut table = &mut self.out.table;
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        for part in parts {
            let inner = table
                .entry(part.to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(inner) = inner else {
                return;
            };
            table = inner;
        }
        table.insert(last.to_owned(), value);
        self.note(path, line, shown);
    }
}

/// A `headers` map as distribution spells it (each value a string or a list of strings), as a
/// table of our `headers` keys (a list joined with `, `).
fn header_table(headers: &[Entry]) -> Table {
    headers
        .iter()
        .map(|h| {
            let value = match &h.value {
                Node::List(values) => values
                    .iter()
                    .filter_map(scalar)
                    .collect::<Vec<_>>()
                    .join(", "),
                other => scalar(other).unwrap_or_default().to_owned(),
            };
            (h.key.clone(), Value::String(value))
        })
        .collect()
}

fn scalar(node: &Node) -> Option<&str> {
    match node {
        Node::Scalar(s) => Some(s),
        _ => None,
    }
}

fn boolean(node: &Node) -> Option<bool> {
    match scalar(node)?.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn entries(node: &Node) -> &[Entry] {
    match node {
        Node::Map(entries) => entries,
        _ => &[],
    }
}

/// A Go duration (`500ms`, `10s`, `1h30m`, `168h`).
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(number * scale);
        rest = &rest[unit..];
    }
    Some(total)
}

/// `:5000` (every interface, as Go reads it), `localhost:5000`, `0.0.0.0:5000`, `[::]:5000`.
fn listen_address(addr: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.trim_start_matches('[').trim_end_matches(']') {
        "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        other => other,
    };
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    address.parse::<std::net::SocketAddr>().ok()?;
    Some(address)
}

fn translate(tree: &Node, origin: &str, out: &mut Translation) -> Result<(), String> {
    let mut r = Reader {
        origin,
        out,
        errors: Vec::new(),
    };
    for entry in entries(tree) {
        let (key, line, value) = (entry.key.as_str(), entry.line, &entry.value);
        match key {
            "version" => match scalar(value) {
                Some("0.1") => r.note("version", line, "the format's version (0.1)"),
                _ => r.refuse("version", line, "only version 0.1 of the format is read"),
            },
            "log" => log(&mut r, value),
            "storage" => storage(&mut r, value),
            "http" => http(&mut r, value),
            "auth" => auth(&mut r, value),
            "proxy" => proxy(&mut r, value),
            "notifications" => notifications(&mut r, value),
            "health" => health(&mut r, value),
            "redis" => r.refuse(
                "redis",
                line,
                "not supported: no Redis is needed (caches are in memory, replicas share the store)",
            ),
            "compatibility" => r.note(
                "compatibility",
                line,
                "not needed: Docker schema1 manifests are refused, every other kind is taken",
            ),
            "validation" => validation(&mut r, line, value),
            other => r.refuse(
                other,
                line,
                "not supported here (see docs/deployment.md: a drop-in for the registry image)",
            ),
        }
    }
    if r.errors.is_empty() {
        Ok(())
    } else {
        Err(r.errors.join("\n"))
    }
}

fn log(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("log.{}", e.key);
        match (e.key.as_str(), scalar(&e.value)) {
            ("level", Some(level)) => {
                let level = match level {
                    "panic" | "fatal" => "error",
                    "warning" => "warn",
                    other => other,
                };
                r.put(&path, e.line, "log.level", Value::String(level.into()));
            }
            ("formatter", Some("text")) => {
                r.put(&path, e.line, "log.format", Value::String("text".into()))
            }
            ("formatter", Some("json" | "logstash")) => {
                r.put(&path, e.line, "log.format", Value::String("json".into()))
            }
            ("fields", None) => {
                let fields: Table = entries(&e.value)
                    .iter()
                    .filter_map(|f| Some((f.key.clone(), Value::String(scalar(&f.value)?.into()))))
                    .collect();
                r.put(&path, e.line, "log.fields", Value::Table(fields));
            }
            ("accesslog", None) => {
                for a in entries(&e.value) {
                    match (a.key.as_str(), boolean(&a.value)) {
                        ("disabled", Some(disabled)) => r.put(
                            &format!("{path}.disabled"),
                            a.line,
                            "log.requests",
                            Value::Boolean(!disabled),
                        ),
                        (other, _) => r.refuse(&format!("{path}.{other}"), a.line, "not supported"),
                    }
                }
            }
            ("hooks", _) => r.refuse(&path, e.line, "not supported: log hooks (e-mail)"),
            _ => r.refuse(&path, e.line, "not supported, or not a value of its kind"),
        }
    }
}

fn health(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("health.{}", e.key);
        match e.key.as_str() {
            "storagedriver" => r.note(
                &path,
                e.line,
                "GET /readyz checks the storage at every call (and /healthz the process)",
            ),
            _ => r.refuse(&path, e.line, "not supported: only the storage check"),
        }
    }
}

fn validation(r: &mut Reader, line: Option<usize>, node: &Node) {
    for e in entries(node) {
        let path = format!("validation.{}", e.key);
        match e.key.as_str() {
            "disabled" if boolean(&e.value) == Some(false) => {
                r.note(&path, e.line, "manifests are validated")
            }
            "manifests" => r.refuse(
                &path,
                e.line,
                "not supported: foreign layer URLs are accepted and never fetched",
            ),
            _ => r.refuse(&path, e.line.or(line), "not supported"),
        }
    }
}

#[cfg(test)]
mod tests;
