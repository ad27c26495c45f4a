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

fn storage(r: &mut Reader, node: &Node) {
    // Distribution deletes nothing unless storage.delete.enabled says so.
    let mut deletes = false;
    let mut delete_line = None;
    for e in entries(node) {
        let path = format!("storage.{}", e.key);
        match e.key.as_str() {
            "filesystem" => {
                let mut root = "/var/lib/registry".to_owned();
                for f in entries(&e.value) {
                    match (f.key.as_str(), scalar(&f.value)) {
                        ("rootdirectory", Some(dir)) => root = dir.trim_end_matches('/').into(),
                        ("maxthreads", Some(_)) => r.note(
                            &format!("{path}.maxthreads"),
                            f.line,
                            "not needed: file IO runs on a bounded pool of its own",
                        ),
                        (other, _) => r.refuse(&format!("{path}.{other}"), f.line, "not supported"),
                    }
                }
                let store = format!("fs:{root}/docker/registry/v2");
                r.put(&path, e.line, "storage", Value::String(store));
            }
            "inmemory" => r.put(&path, e.line, "storage", Value::String("memory".into())),
            "s3" => s3(r, &path, e.line, &e.value),
            "delete" => {
                delete_line = e.line;
                for d in entries(&e.value) {
                    match (d.key.as_str(), boolean(&d.value)) {
                        ("enabled", Some(enabled)) => deletes = enabled,
                        (other, _) => r.refuse(&format!("{path}.{other}"), d.line, "not supported"),
                    }
                }
            }
            "maintenance" => maintenance(r, &path, &e.value),
            "cache" => {
                for c in entries(&e.value) {
                    match (c.key.as_str(), scalar(&c.value)) {
                        ("blobdescriptor", Some("inmemory")) => r.note(
                            &format!("{path}.blobdescriptor"),
                            c.line,
                            "built in: blob sizes and manifests are cached in memory",
                        ),
                        (other, _) => r.refuse(
                            &format!("{path}.{other}"),
                            c.line,
                            "not supported: only the in-memory cache (built in)",
                        ),
                    }
                }
            }
            "redirect" => match entries(&e.value).iter().find(|d| d.key == "disable") {
                Some(d) if boolean(&d.value) == Some(true) => r.note(
                    &format!("{path}.disable"),
                    d.line,
                    "blobs are streamed (blob_redirect_secs unset: the default)",
                ),
                _ => r.put(&path, e.line, "blob_redirect_secs", Value::Integer(1200)),
            },
            driver @ ("azure" | "gcs" | "swift" | "oss") => r.refuse(
                &path,
                e.line,
                &format!(
                    "the {driver} driver's keys are not read: write storage = \"azure://…\" or \
                     \"gs://…\" in a TOML configuration (swift and oss are not supported)"
                ),
            ),
            _ => r.refuse(&path, e.line, "not supported"),
        }
    }
    // Written whether or not the key is there: distribution's default differs from ours.
    r.put(
        "storage.delete.enabled",
        delete_line,
        "deletes",
        Value::Boolean(deletes),
    );
}

fn s3(r: &mut Reader, path: &str, line: Option<usize>, node: &Node) {
    let mut bucket = None;
    let mut root = String::new();
    for e in entries(node) {
        let key = format!("{path}.{}", e.key);
        let text = scalar(&e.value);
        match (e.key.as_str(), text) {
            ("bucket", Some(b)) => bucket = Some(b.to_owned()),
            ("rootdirectory", Some(d)) => root = d.trim_matches('/').to_owned(),
            ("region", Some(v)) => r.put(&key, e.line, "s3.region", Value::String(v.into())),
            ("regionendpoint", Some(v)) => {
                r.put(&key, e.line, "s3.endpoint", Value::String(v.into()));
                if v.starts_with("http://") {
                    r.put(&key, e.line, "s3.allow_http", Value::Boolean(true));
                }
            }
            ("accesskey", Some(v)) => {
                r.put(&key, e.line, "s3.access_key_id", Value::String(v.into()))
            }
            ("secretkey", Some(v)) => r.put(
                &key,
                e.line,
                "s3.secret_access_key",
                Value::String(v.into()),
            ),
            ("secure", Some(_)) => match boolean(&e.value) {
                Some(secure) => r.put(&key, e.line, "s3.allow_http", Value::Boolean(!secure)),
                None => r.refuse(&key, e.line, "not a boolean"),
            },
            ("chunksize", Some(v)) => match v.parse::<i64>() {
                Ok(n) if n >= 5 << 20 => r.put(&key, e.line, "s3.part_size", Value::Integer(n)),
                _ => r.refuse(&key, e.line, "a part size of at least 5 MiB, in bytes"),
            },
            ("v4auth", Some(_)) | ("forcepathstyle", Some(_)) => r.note(
                &key,
                e.line,
                "requests are always signed with v4 and path-style",
            ),
            (
                "multipartcopychunksize"
                | "multipartcopymaxconcurrency"
                | "multipartcopythresholdsize",
                _,
            ) => r.note(&key, e.line, "not needed: committed blobs are never copied"),
            _ => r.refuse(&key, e.line, "not supported"),
        }
    }
    let Some(bucket) = bucket else {
        r.refuse(path, line, "needs a bucket");
        return;
    };
    let prefix = match root.is_empty() {
        true => "docker/registry/v2".to_owned(),
        false => format!("{root}/docker/registry/v2"),
    };
    r.put(
        path,
        line,
        "storage",
        Value::String(format!("s3://{bucket}/{prefix}")),
    );
}

fn maintenance(r: &mut Reader, path: &str, node: &Node) {
    for e in entries(node) {
        let key = format!("{path}.{}", e.key);
        match e.key.as_str() {
            "uploadpurging" => {
                let mut enabled = true;
                for p in entries(&e.value) {
                    let sub = format!("{key}.{}", p.key);
                    match (p.key.as_str(), scalar(&p.value)) {
                        ("enabled", _) => enabled = boolean(&p.value).unwrap_or(true),
                        ("age" | "interval", Some(d)) => match go_duration(d) {
                            Some(d) => {
                                let ours = match p.key.as_str() {
                                    "age" => "uploads.purge_after_secs",
                                    _ => "uploads.purge_interval_secs",
                                };
                                r.put(&sub, p.line, ours, Value::Integer(d.as_secs() as i64));
                            }
                            None => r.refuse(&sub, p.line, "not a duration (such as 168h)"),
                        },
                        ("dryrun", _) if boolean(&p.value) == Some(false) => {
                            r.note(&sub, p.line, "uploads are purged for real")
                        }
                        _ => r.refuse(&sub, p.line, "not supported"),
                    }
                }
                if !enabled {
                    r.put(
                        &key,
                        e.line,
                        "uploads.purge_interval_secs",
                        Value::Integer(0),
                    );
                }
            }
            "readonly" => match entries(&e.value).iter().find(|d| d.key == "enabled") {
                Some(d) => match boolean(&d.value) {
                    Some(on) => r.put(&key, d.line, "read_only", Value::Boolean(on)),
                    None => r.refuse(&key, d.line, "not a boolean"),
                },
                None => r.refuse(&key, e.line, "needs enabled"),
            },
            _ => r.refuse(&key, e.line, "not supported"),
        }
    }
}

fn http(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("http.{}", e.key);
        match (e.key.as_str(), scalar(&e.value)) {
            ("addr", Some(addr)) => match listen_address(addr) {
                Some(listen) => r.put(&path, e.line, "listen", Value::String(listen)),
                None => r.refuse(&path, e.line, "not HOST:PORT"),
            },
            ("net", Some("tcp")) => r.note(&path, e.line, "TCP"),
            ("net", _) => r.refuse(&path, e.line, "only tcp: Unix sockets are not served"),
            ("prefix", Some("" | "/")) => r.note(&path, e.line, "served at /"),
            ("prefix", _) => r.refuse(
                &path,
                e.line,
                "not supported: mount the router under a prefix in an embedding instead",
            ),
            ("host" | "relativeurls", _) => r.note(
                &path,
                e.line,
                "not needed: Location headers are relative to the request",
            ),
            ("secret", _) => r.note(
                &path,
                e.line,
                "not needed: an upload's state is kept in the store, not signed into its URL",
            ),
            ("draintimeout", Some(_)) => {
                r.note(&path, e.line, "connections get 30 s to finish at shutdown")
            }
            ("headers", None) => {
                let mut headers = Table::new();
                for h in entries(&e.value) {
                    let value = match &h.value {
                        Node::List(values) => values
                            .iter()
                            .filter_map(scalar)
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => scalar(other).unwrap_or_default().to_owned(),
                    };
                    headers.insert(h.key.clone(), Value::String(value));
                }
                r.put(&path, e.line, "headers", Value::Table(headers));
            }
            ("tls", None) => tls(r, &path, &e.value),
            ("debug", None) => {
                for d in entries(&e.value) {
                    let sub = format!("{path}.{}", d.key);
                    match d.key.as_str() {
                        "addr" => r.note(
                            &sub,
                            d.line,
                            "metrics are served at /metrics on the main address",
                        ),
                        "prometheus" => {
                            for p in entries(&d.value) {
                                let key = format!("{sub}.{}", p.key);
                                match (p.key.as_str(), scalar(&p.value)) {
                                    ("enabled", _) => match boolean(&p.value) {
                                        Some(on) => r.put(
                                            &key,
                                            p.line,
                                            "metrics.enabled",
                                            Value::Boolean(on),
                                        ),
                                        None => r.refuse(&key, p.line, "not a boolean"),
                                    },
                                    ("path", Some("/metrics")) => r.note(&key, p.line, "/metrics"),
                                    _ => r.refuse(&key, p.line, "only /metrics"),
                                }
                            }
                        }
                        _ => r.refuse(&sub, d.line, "not supported"),
                    }
                }
            }
            ("http2", None) => r.note(&path, e.line, "HTTP/2 is offered over TLS by ALPN"),
            _ => r.refuse(&path, e.line, "not supported"),
        }
    }
}

fn tls(r: &mut Reader, path: &str, node: &Node) {
    for e in entries(node) {
        let key = format!("{path}.{}", e.key);
        match (e.key.as_str(), &e.value) {
            ("certificate", Node::Scalar(v)) => {
                r.put(&key, e.line, "tls_cert", Value::String(v.clone()))
            }
            ("key", Node::Scalar(v)) => r.put(&key, e.line, "tls_key", Value::String(v.clone())),
            ("clientcas", Node::List(cas)) => {
                let cas: Vec<Value> = cas
                    .iter()
                    .filter_map(scalar)
                    .map(|c| Value::String(c.into()))
                    .collect();
                r.put(&key, e.line, "tls.client_ca", Value::Array(cas));
            }
            ("clientauth", Node::Scalar(mode)) => {
                let ours = match mode.as_str() {
                    "require-and-verify-client-cert" => "required",
                    "verify-client-cert-if-given" => "optional",
                    _ => {
                        r.refuse(
                            &key,
                            e.line,
                            "only require-and-verify-client-cert or verify-client-cert-if-given",
                        );
                        continue;
                    }
                };
                r.put(&key, e.line, "tls.client_auth", Value::String(ours.into()));
            }
            ("minimumtls", Node::Scalar(v)) if v == "tls1.2" || v == "tls1.3" => {
                r.note(&key, e.line, "TLS 1.2 and 1.3 are served (rustls)")
            }
            _ => r.refuse(
                &key,
                e.line,
                "not supported (Let's Encrypt, cipher suites, TLS below 1.2)",
            ),
        }
    }
}

fn auth(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("auth.{}", e.key);
        match e.key.as_str() {
            "htpasswd" => {
                for h in entries(&e.value) {
                    let key = format!("{path}.{}", h.key);
                    match (h.key.as_str(), scalar(&h.value)) {
                        ("path", Some(p)) => {
                            r.put(&key, h.line, "htpasswd", Value::String(p.into()))
                        }
                        ("realm", Some(realm)) => {
                            r.put(&key, h.line, "realm", Value::String(realm.into()))
                        }
                        _ => r.refuse(&key, h.line, "not supported"),
                    }
                }
            }
            "token" => {
                for t in entries(&e.value) {
                    let key = format!("{path}.{}", t.key);
                    match (t.key.as_str(), scalar(&t.value)) {
                        ("realm" | "service" | "issuer" | "jwks", Some(v)) => r.put(
                            &key,
                            t.line,
                            &format!("token.{}", t.key),
                            Value::String(v.into()),
                        ),
                        ("rootcertbundle", Some(v)) => {
                            r.put(&key, t.line, "token.certificates", Value::String(v.into()))
                        }
                        ("autoredirect", _) if boolean(&t.value) == Some(false) => {
                            r.note(&key, t.line, "the realm is used as given")
                        }
                        _ => r.refuse(&key, t.line, "not supported"),
                    }
                }
            }
            "none" => r.note(&path, e.line, "no authentication"),
            _ => r.refuse(&path, e.line, "not supported: htpasswd or token"),
        }
    }
}

fn proxy(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("proxy.{}", e.key);
        match (e.key.as_str(), scalar(&e.value)) {
            ("remoteurl", Some(v)) => r.put(&path, e.line, "mirror.url", Value::String(v.into())),
            ("username", Some(v)) => {
                r.put(&path, e.line, "mirror.username", Value::String(v.into()))
            }
            ("password", Some(v)) => {
                r.put(&path, e.line, "mirror.password", Value::String(v.into()))
            }
            ("ttl", Some(v)) => match go_duration(v) {
                Some(d) => r.put(
                    &path,
                    e.line,
                    "mirror.retention_days",
                    Value::Integer((d.as_secs().div_ceil(86400)) as i64),
                ),
                None => r.refuse(&path, e.line, "not a duration (such as 168h)"),
            },
            _ => r.refuse(&path, e.line, "not supported"),
        }
    }
}

fn notifications(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("notifications.{}", e.key);
        match (e.key.as_str(), &e.value) {
            ("endpoints", Node::List(list)) => {
                let mut endpoints = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    if let Some(endpoint) = endpoint(r, &format!("{path}[{i}]"), item) {
                        endpoints.push(Value::Table(endpoint));
                    }
                }
                r.put(
                    &path,
                    e.line,
                    "notifications.endpoints",
                    Value::Array(endpoints),
                );
            }
            ("events", _) => r.note(&path, e.line, "events carry no references"),
            _ => r.refuse(&path, e.line, "not supported"),
        }
    }
}

/// One of distribution's notification endpoints as one of ours (`None` when disabled).
fn endpoint(r: &mut Reader, path: &str, node: &Node) -> Option<Table> {
    let mut out = Table::new();
    let mut disabled = false;
    for e in entries(node) {
        let key = format!("{path}.{}", e.key);
        match (e.key.as_str(), &e.value) {
            ("name" | "url", Node::Scalar(v)) => {
                out.insert(e.key.clone(), Value::String(v.clone()));
            }
            ("disabled", _) => disabled = boolean(&e.value) == Some(true),
            ("headers", Node::Map(headers)) => {
                let headers: Table = headers
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
                    .collect();
                out.insert("headers".into(), Value::Table(headers));
            }
            ("timeout" | "backoff", Node::Scalar(d)) => match go_duration(d) {
                Some(d) => {
                    let (name, value) = match e.key.as_str() {
                        "timeout" => ("timeout_secs", d.as_secs().max(1) as i64),
                        _ => ("backoff_ms", d.as_millis() as i64),
                    };
                    out.insert(name.into(), Value::Integer(value));
                }
                None => r.refuse(&key, e.line, "not a duration (such as 500ms)"),
            },
            ("threshold", _) => r.note(&key, e.line, "failed posts are retried max_retries times"),
            ("ignoredmediatypes", Node::List(types)) => {
                out.insert("ignore_media_types".into(), strings(types));
            }
            ("ignore", Node::Map(ignore)) => {
                for i in ignore {
                    match (i.key.as_str(), &i.value) {
                        ("mediatypes", Node::List(types)) => {
                            out.insert("ignore_media_types".into(), strings(types));
                        }
                        ("actions", Node::List(actions)) => {
                            out.insert("ignore_actions".into(), strings(actions));
                        }
                        _ => r.refuse(&format!("{key}.{}", i.key), i.line, "not supported"),
                    }
                }
            }
            _ => r.refuse(&key, e.line, "not supported"),
        }
    }
    (!disabled).then_some(out)
}

fn strings(list: &[Node]) -> Value {
    Value::Array(
        list.iter()
            .filter_map(scalar)
            .map(|s| Value::String(s.into()))
            .collect(),
    )
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
mod tests {
    use super::*;

    /// The `config.yml` the `registry` image ships.
    const IMAGE_DEFAULT: &str = "version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
";

    #[test]
    fn the_image_default_config_is_read_whole() {
        let t = read(Some(IMAGE_DEFAULT), "config.yml", &[]).unwrap();
        assert_eq!(t.table["listen"].as_str(), Some("0.0.0.0:5000"));
        assert_eq!(
            t.table["storage"].as_str(),
            Some("fs:/var/lib/registry/docker/registry/v2")
        );
        assert_eq!(t.table["deletes"].as_bool(), Some(false));
        assert_eq!(
            t.table["headers"]["X-Content-Type-Options"].as_str(),
            Some("nosniff")
        );
        assert_eq!(
            t.table["log"]["fields"]["service"].as_str(),
            Some("registry")
        );
        let keys: Vec<&str> = t.mapping.iter().map(|(k, _, _)| k.as_str()).collect();
        assert!(keys.contains(&"storage.cache.blobdescriptor"), "{keys:?}");
        assert!(keys.contains(&"health.storagedriver"), "{keys:?}");
    }

    #[test]
    fn variables_spell_keys_and_drivers() {
        let vars: Vec<(String, String)> = [
            ("AUTH", "htpasswd"),
            ("AUTH_HTPASSWD_REALM", "Registry Realm"),
            ("AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
            ("HTTP_ADDR", "0.0.0.0:443"),
            ("HTTP_TLS_CERTIFICATE", "/certs/domain.crt"),
            ("HTTP_TLS_KEY", "/certs/domain.key"),
            ("STORAGE_DELETE_ENABLED", "true"),
            ("PROXY_REMOTEURL", "https://registry-1.docker.io"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in &vars {
            assert!(is_distribution_variable(k, v), "{k}");
        }
        assert!(!is_distribution_variable("STORAGE", "fs:/data"));
        assert!(is_distribution_variable("STORAGE", "s3"));
        assert!(!is_distribution_variable("LOG_FORMAT", "json"));
        assert!(!is_distribution_variable("MAX_CONNECTIONS", "10"));
        let t = read(Some(IMAGE_DEFAULT), "config.yml", &vars).unwrap();
        assert_eq!(t.table["htpasswd"].as_str(), Some("/auth/htpasswd"));
        assert_eq!(t.table["realm"].as_str(), Some("Registry Realm"));
        assert_eq!(t.table["listen"].as_str(), Some("0.0.0.0:443"));
        assert_eq!(t.table["tls_cert"].as_str(), Some("/certs/domain.crt"));
        assert_eq!(t.table["deletes"].as_bool(), Some(true));
        assert_eq!(
            t.table["mirror"]["url"].as_str(),
            Some("https://registry-1.docker.io")
        );
    }

    #[test]
    fn unsupported_keys_are_refused_with_their_lines() {
        let text = "version: 0.1\nredis:\n  addr: localhost:6379\nstorage:\n  swift:\n    container: x\nhttp:\n  addr: :5000\n  prefix: /registry\n";
        let err = read(Some(text), "config.yml", &[]).unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(lines[0].starts_with("config.yml line 2: redis"), "{err}");
        assert!(lines[1].contains("line 5: storage.swift"), "{err}");
        assert!(lines[2].contains("line 9: http.prefix"), "{err}");
    }

    #[test]
    fn go_durations_and_addresses() {
        assert_eq!(go_duration("168h"), Some(Duration::from_secs(168 * 3600)));
        assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("10 parsecs"), None);
        assert_eq!(listen_address(":5000").as_deref(), Some("0.0.0.0:5000"));
        assert_eq!(
            listen_address("localhost:80").as_deref(),
            Some("127.0.0.1:80")
        );
        assert_eq!(listen_address("[::]:5000").as_deref(), Some("[::]:5000"));
        assert_eq!(listen_address("nonsense"), None);
    }

    #[test]
    fn s3_stores_and_upload_purging() {
        let text = "version: 0.1\nstorage:\n  s3:\n    bucket: images\n    region: us-east-1\n    regionendpoint: http://minio:9000\n    accesskey: AK\n    secretkey: SK\n    rootdirectory: /reg\n    secure: false\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n      interval: 24h\n      dryrun: false\n";
        let t = read(Some(text), "config.yml", &[]).unwrap();
        assert_eq!(
            t.table["storage"].as_str(),
            Some("s3://images/reg/docker/registry/v2")
        );
        assert_eq!(
            t.table["s3"]["endpoint"].as_str(),
            Some("http://minio:9000")
        );
        assert_eq!(t.table["s3"]["allow_http"].as_bool(), Some(true));
        assert_eq!(
            t.table["uploads"]["purge_after_secs"].as_integer(),
            Some(168 * 3600)
        );
        assert_eq!(
            t.table["uploads"]["purge_interval_secs"].as_integer(),
            Some(86400)
        );
    }
}
