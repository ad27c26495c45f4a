use super::*;

#[test]
fn storage_specs() {
    assert_eq!(
        "memory".parse::<StorageSpec>().unwrap(),
        StorageSpec::Memory
    );
    assert_eq!(
        "fs:/var/lib/r".parse::<StorageSpec>().unwrap(),
        StorageSpec::Filesystem("/var/lib/r".into())
    );
    assert_eq!(
        "s3://bucket/a/b".parse::<StorageSpec>().unwrap(),
        StorageSpec::S3 {
            bucket: "bucket".into(),
            prefix: "a/b".into()
        }
    );
    assert_eq!(
        "s3://bucket/a/b"
            .parse::<StorageSpec>()
            .unwrap()
            .to_string(),
        "s3://bucket/a/b"
    );
    assert_eq!(
        "gs://bucket/p".parse::<StorageSpec>().unwrap(),
        StorageSpec::Gcs {
            bucket: "bucket".into(),
            prefix: "p".into()
        }
    );
    assert_eq!(
        "azure://box".parse::<StorageSpec>().unwrap().to_string(),
        "azure://box"
    );
    for bad in [
        "",
        "fs:",
        "s4://x",
        "disk",
        "s3://",
        "s3:bucket",
        "gs://",
        "azure:///p",
    ] {
        assert!(bad.parse::<StorageSpec>().is_err(), "{bad}");
    }
}

#[test]
fn config_file() {
    let c: Config =
        toml::from_str("listen = \"0.0.0.0:8080\"\nstorage = \"memory\"\nmax_manifest_size = 10")
            .unwrap();
    assert_eq!(c.listen.port(), 8080);
    assert_eq!(c.storage, StorageSpec::Memory);
    assert_eq!(c.max_manifest_size, 10);
    assert!(c.validate_references);
    let err = toml::from_str::<Config>("listn = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("listn"), "{err}");
    assert!(toml::from_str::<Config>("storage = \"disk\"").is_err());
    let c: Config = toml::from_str("[s3]\npart_size = 8388608\ntimeout_secs = 7").unwrap();
    assert_eq!(c.s3.part_size, Some(8 << 20));
    assert_eq!(c.s3.timeout, Some(std::time::Duration::from_secs(7)));
    let err = toml::from_str::<Config>("[s3]\nbucket = \"b\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bucket"),
        "the bucket comes from --storage: {err}"
    );
}

#[test]
fn variables_set_any_key() {
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let Sources {
        config: c,
        warnings,
        ..
    } = Config::from_sources(
        None,
        env(&[
            ("REGISTRY_MAX_CONNECTIONS", "7"),
            ("REGISTRY_READ_ONLY", "true"),
            ("REGISTRY_S3_REGION", "eu-west-1"),
            ("REGISTRY_TOKEN_SERVICE", "\"1234\""),
            (
                "REGISTRY_NOTIFICATIONS_ENDPOINTS",
                "[{url = \"http://127.0.0.1:1/e\"}]",
            ),
            ("REGISTRY_CONFIG", "/ignored.toml"),
            ("REGISTRY_TEST_SOMETHING", "x"),
            ("OTHER", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(c.max_connections, 7);
    assert!(c.read_only);
    assert_eq!(c.s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.token.unwrap().service, "1234");
    assert_eq!(c.notifications.endpoints[0].url, "http://127.0.0.1:1/e");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("REGISTRY_TEST_SOMETHING"));
    let err = Config::from_sources(None, env(&[("REGISTRY_TOKEN_SERVICE", "1234")])).unwrap_err();
    assert!(err.contains("REGISTRY_TOKEN_SERVICE"), "{err}");
    let err = Config::from_sources(None, env(&[("REGISTRY_LOG_FORMAT", "xml")])).unwrap_err();
    assert!(err.contains("REGISTRY_LOG_FORMAT"), "{err}");
}

#[test]
fn the_example_file_is_valid() {
    let c: Config = toml::from_str(include_str!("../../registry.example.toml")).unwrap();
    assert!(c.token.as_ref().unwrap().issue);
    assert_eq!(c.access.len(), 3);
    assert_eq!(c.groups["admins"], ["alice"]);
    let lifecycle = c.lifecycle().unwrap();
    assert_eq!(
        (lifecycle.retention.len(), lifecycle.immutable.len()),
        (1, 1)
    );
    assert!(c.throttle.build().is_some());
}

#[test]
fn variables_reach_table_keys_and_top_level_keys_that_share_a_prefix() {
    let env = [
        ("REGISTRY_TLS_CERT", "/etc/registry/server.crt"),
        ("REGISTRY_TLS_CLIENT_CA", "/etc/registry/clients.pem"),
        ("REGISTRY_TLS_CLIENT_AUTH", "required"),
        ("REGISTRY_TLS_NONSENSE", "1"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let Sources {
        config: c,
        warnings,
        ..
    } = Config::from_sources(None, env).unwrap();
    assert_eq!(c.tls_cert, Some("/etc/registry/server.crt".into()));
    assert_eq!(
        c.tls.client_ca,
        vec![std::path::PathBuf::from("/etc/registry/clients.pem")]
    );
    assert_eq!(c.tls.client_auth, ClientAuth::Required);
    assert_eq!(
        warnings,
        ["REGISTRY_TLS_NONSENSE is not a configuration key; ignored"]
    );
    let bad =
        [("REGISTRY_TLS_CLIENT_AUTH", "sometimes")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    let e = Config::from_sources(None, bad).unwrap_err();
    assert!(e.contains("REGISTRY_TLS_CLIENT_AUTH"), "{e}");
}

#[test]
fn replication_and_sync_tables_read_as_the_issue_writes_them() {
    let dir = std::env::temp_dir().join(format!("registry-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let password = dir.join("dr.pass");
    std::fs::write(&password, "s3cret\n").unwrap();
    let text = format!(
        r#"
[[replication]]
name = "dr"
url = "https://dr.example.com:5000"
username = "replicator"
password_file = "{}"
repositories = ["prod/*"]
tags = [".*"]
delete = false

[[sync]]
upstream = "https://registry-1.docker.io"
repositories = ["library/alpine", "library/debian"]
tags = ["^3\\.", "^bookworm"]
platforms = ["linux/amd64", "linux/arm64"]
interval_secs = 3600
"#,
        password.display()
    );
    let c: Config = toml::from_str(&text).unwrap();
    let target = c.replication[0].core().unwrap();
    assert_eq!(
        target.credentials,
        Some(("replicator".into(), "s3cret".into()))
    );
    assert_eq!(
        target.reconcile_interval,
        Some(std::time::Duration::from_secs(3600))
    );
    let sync = c.sync[0].core().unwrap();
    assert_eq!(sync.repositories.len(), 2);
    assert!(sync.tags[0].matches("3.19") && !sync.tags[0].matches("edge"));
    assert_eq!(sync.interval, std::time::Duration::from_secs(3600));
    let bad: Config = toml::from_str(
        "[[sync]]\nupstream = \"https://x\"\nrepositories = [\"a\"]\nplatforms = [\"linux\"]\n",
    )
    .unwrap();
    assert!(bad.sync[0].core().unwrap_err().contains("os/architecture"));
    let bad: Config =
        toml::from_str("[[replication]]\nname = \"x\"\nurl = \"https://x\"\nrepositories = []\n")
            .unwrap();
    assert!(
        bad.replication[0]
            .core()
            .unwrap_err()
            .contains("repositories")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_error_of_a_file_is_reported_with_its_line() {
    let dir = std::env::temp_dir().join(format!("registry-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:5000\"\nmax_conections = 3\n\n[gc]\ngrace_secs = \"an hour\"\n\n[[access]]\nrepositories = [\"*\"]\nverbs = [\"pull\"]\n",
    )
    .unwrap();
    let err = Config::from_sources(Some(&file), Vec::<(String, String)>::new()).unwrap_err();
    let at = |needle: &str| {
        err.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {err}"))
    };
    // In file order, each with its line.
    assert!(
        at("line 2") < at("line 5") && at("line 5") < at("line 9"),
        "{err}"
    );
    assert!(
        err.contains("max_conections") && err.contains("verbs"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_image_defaults_are_the_registry_image_s() {
    let env = [
        ("REGISTRY_DEFAULTS", "image"),
        ("REGISTRY_HTTP_ADDR", ":5001"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let dir = std::env::temp_dir().join(format!("registry-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_yml = dir.join("config.yml");
    let s = Config::from_sources_with(None, env.clone(), &config_yml).unwrap();
    assert_eq!(s.config.listen.to_string(), "0.0.0.0:5001");
    assert_eq!(s.config.storage.to_string(), IMAGE_STORAGE);
    assert!(s.config.deletes, "no config.yml: our default");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // With the image's config.yml, it is read: distribution's keys, then its variables.
    std::fs::write(
        &config_yml,
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /data\nhttp:\n  addr: :5000\n",
    )
    .unwrap();
    let s = Config::from_sources_with(None, env, &config_yml).unwrap();
    assert_eq!(s.config.listen.to_string(), "0.0.0.0:5001");
    assert_eq!(s.config.storage.to_string(), "fs:/data/docker/registry/v2");
    assert!(
        !s.config.deletes,
        "distribution deletes nothing unless told"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
