//! Distribution's `storage` section: the filesystem, S3 and in-memory drivers, deletes,
//! maintenance (upload purging, read-only), the cache and redirects.

use toml::Value;

use super::{Node, Reader, boolean, entries, go_duration, scalar};

pub(super) fn storage(r: &mut Reader, node: &Node) {
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
