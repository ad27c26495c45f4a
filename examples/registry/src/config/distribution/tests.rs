//! Reading distribution's configuration: the image's own file, variables over it, refusals.

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
