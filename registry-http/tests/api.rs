//! Every endpoint through HTTP (in process, with `tower::ServiceExt::oneshot`): success and errors.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use registry_core::manifest::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use registry_core::{Digest, Registry, RegistryConfig};
use registry_storage::{FilesystemStorage, MemoryStorage};
use tower::ServiceExt;

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Res {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The OCI error code of an error response, checking the spec's shape on the way.
    fn code(&self) -> String {
        let v = self.json();
        let e = &v["errors"][0];
        assert!(
            e["message"].is_string() && e.get("detail").is_some(),
            "bad error shape: {v}"
        );
        e["code"].as_str().unwrap().to_owned()
    }

    fn location(&self) -> String {
        self.header("location").to_owned()
    }
}

fn app() -> Router {
    registry_http::router(Registry::new(
        Arc::new(MemoryStorage::new()),
        RegistryConfig::default(),
    ))
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Res {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        headers.get("docker-distribution-api-version").unwrap(),
        "registry/2.0"
    );
    Res {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str) -> Res {
    send(app, Method::GET, uri, &[], Body::empty()).await
}

async fn head_status(app: &Router, uri: &str) -> StatusCode {
    send(app, Method::HEAD, uri, &[], Body::empty())
        .await
        .status
}

async fn push_blob(app: &Router, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let len = data.len().to_string();
    let res = send(
        app,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[("content-length", &len)],
        data.to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    d
}

fn manifest(config: &Digest, layers: &[&Digest]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|d| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":1}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

async fn push_image(app: &Router, repo: &str, tag: &str) -> (Digest, String) {
    let c = push_blob(app, repo, format!("{{\"tag\":\"{tag}\"}}").as_bytes()).await;
    let l = push_blob(app, repo, b"layer").await;
    let m = manifest(&c, &[&l]);
    let res = send(
        app,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("content-type", OCI_MANIFEST)],
        m.clone(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    (Digest::of(m.as_bytes()), m)
}

#[tokio::test]
async fn base_endpoint() {
    let app = app();
    for uri in ["/v2/", "/v2"] {
        let res = get(&app, uri).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json(), serde_json::json!({}));
    }
    let res = send(&app, Method::HEAD, "/v2/", &[], Body::empty()).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_and_bad_names() {
    let app = app();
    let res = get(&app, "/v2/a/unknown/x").await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "UNSUPPORTED")
    );
    for bad in [
        "/v2/UPPER/tags/list",
        "/v2/a/../b/tags/list",
        "/v2/%2e%2e/tags/list",
        "/v2/a//b/tags/list",
        &format!("/v2/{}/tags/list", "a".repeat(256)),
    ] {
        let res = get(&app, bad).await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            "{bad}"
        );
    }
    let res = get(&app, "/v2/a/blobs/sha256:123").await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let res = send(&app, Method::POST, "/v2/a/tags/list", &[], Body::empty()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
}

#[tokio::test]
async fn monolithic_push_then_pull_with_ranges_and_delete() {
    let app = app();
    let data = b"0123456789";
    let d = Digest::of(data);
    let res = send(
        &app,
        Method::POST,
        &format!("/v2/a/b/blobs/uploads/?digest={d}"),
        &[],
        data.to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.location(), format!("/v2/a/b/blobs/{d}"));
    assert_eq!(res.header("docker-content-digest"), d.to_string());

    let res = get(&app, &format!("/v2/a/b/blobs/{d}")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(&res.body[..], data);
    assert_eq!(res.header("content-length"), "10");
    assert_eq!(res.header("docker-content-digest"), d.to_string());
    assert_eq!(res.header("accept-ranges"), "bytes");

    let res = send(
        &app,
        Method::HEAD,
        &format!("/v2/a/b/blobs/{d}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-length"), "10");
    assert!(res.body.is_empty());

    let uri = format!("/v2/a/b/blobs/{d}");
    for (range, want, content_range) in [
        ("bytes=2-4", &b"234"[..], "bytes 2-4/10"),
        ("bytes=7-", b"789", "bytes 7-9/10"),
        ("bytes=-2", b"89", "bytes 8-9/10"),
        ("bytes=8-100", b"89", "bytes 8-9/10"),
    ] {
        let res = send(&app, Method::GET, &uri, &[("range", range)], Body::empty()).await;
        assert_eq!(res.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(&res.body[..], want, "{range}");
        assert_eq!(res.header("content-range"), content_range);
    }
    for range in ["bytes=10-", "bytes=5-2", "bytes=x-y"] {
        let res = send(&app, Method::GET, &uri, &[("range", range)], Body::empty()).await;
        assert_eq!(res.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(res.code(), "RANGE_INVALID");
    }
    let res = send(
        &app,
        Method::GET,
        &uri,
        &[("range", "bytes=10-")],
        Body::empty(),
    )
    .await;
    assert_eq!(res.header("content-range"), "bytes */10");

    let res = get(&app, &format!("/v2/other/blobs/{d}")).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let res = send(&app, Method::DELETE, &uri, &[], Body::empty()).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = get(&app, &uri).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let res = send(&app, Method::HEAD, &uri, &[], Body::empty()).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = send(&app, Method::DELETE, &uri, &[], Body::empty()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
}

#[tokio::test]
async fn monolithic_push_errors_store_nothing() {
    let app = app();
    let wrong = Digest::of(b"other");
    let res = send(
        &app,
        Method::POST,
        &format!("/v2/a/blobs/uploads/?digest={wrong}"),
        &[],
        b"data".to_vec(),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    assert_eq!(
        head_status(&app, &format!("/v2/a/blobs/{wrong}")).await,
        StatusCode::NOT_FOUND
    );
    let res = send(
        &app,
        Method::POST,
        "/v2/a/blobs/uploads/?digest=sha256:nope",
        &[],
        b"data".to_vec(),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
}

#[tokio::test]
async fn chunked_upload_flow() {
    let app = app();
    let res = send(
        &app,
        Method::POST,
        "/v2/a/blobs/uploads/",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert_eq!(res.header("range"), "0-0");
    let loc = res.location();
    let uuid = res.header("docker-upload-uuid").to_owned();
    assert_eq!(loc, format!("/v2/a/blobs/uploads/{uuid}"));

    let res = send(
        &app,
        Method::PATCH,
        &loc,
        &[("content-range", "0-4"), ("content-length", "5")],
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert_eq!(res.header("range"), "0-4");
    assert_eq!(res.location(), loc);

    for (bad_range, body) in [("2-3", &b"ll"[..]), ("9-10", b"xx"), ("0-4", b"hello")] {
        let res = send(
            &app,
            Method::PATCH,
            &loc,
            &[("content-range", bad_range)],
            body.to_vec(),
        )
        .await;
        assert_eq!(res.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad_range}");
        assert_eq!(res.code(), "BLOB_UPLOAD_INVALID");
        assert_eq!(res.header("range"), "0-4");
        assert_eq!(res.location(), loc);
    }
    let res = send(
        &app,
        Method::PATCH,
        &loc,
        &[("content-range", "5-9")],
        b"xx".to_vec(),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
    );

    let res = send(&app, Method::PATCH, &loc, &[], b" wor".to_vec()).await;
    assert_eq!(res.header("range"), "0-8");
    let res = get(&app, &loc).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(res.header("range"), "0-8");
    assert_eq!(res.header("docker-upload-uuid"), uuid);

    let d = Digest::of(b"hello world");
    let res = send(
        &app,
        Method::PUT,
        &format!("{loc}?digest={d}"),
        &[("content-length", "2"), ("content-range", "9-10")],
        b"ld".to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    assert_eq!(res.location(), format!("/v2/a/blobs/{d}"));
    assert_eq!(res.header("docker-content-digest"), d.to_string());
    assert_eq!(
        &get(&app, &format!("/v2/a/blobs/{d}")).await.body[..],
        b"hello world"
    );
    let res = get(&app, &loc).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
}

#[tokio::test]
async fn streamed_upload_then_empty_put() {
    let app = app();
    let loc = send(
        &app,
        Method::POST,
        "/v2/s/blobs/uploads/",
        &[],
        Body::empty(),
    )
    .await
    .location();
    let stream = futures::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 1000]))),
    );
    let res = send(&app, Method::PATCH, &loc, &[], Body::from_stream(stream)).await;
    assert_eq!(res.header("range"), "0-63999");
    let d = Digest::of(&vec![7u8; 64_000]);
    let res = send(
        &app,
        Method::PUT,
        &format!("{loc}?digest={d}"),
        &[("content-length", "0")],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(
        get(&app, &format!("/v2/s/blobs/{d}")).await.body.len(),
        64_000
    );
}

#[tokio::test]
async fn upload_completion_errors() {
    let app = app();
    let loc = send(
        &app,
        Method::POST,
        "/v2/a/blobs/uploads/",
        &[],
        Body::empty(),
    )
    .await
    .location();
    send(&app, Method::PATCH, &loc, &[], b"data".to_vec()).await;
    let res = send(&app, Method::PUT, &loc, &[], Body::empty()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let wrong = Digest::of(b"not data");
    let res = send(
        &app,
        Method::PUT,
        &format!("{loc}?digest={wrong}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    assert_eq!(
        head_status(&app, &format!("/v2/a/blobs/{wrong}")).await,
        StatusCode::NOT_FOUND
    );
    let d = Digest::of(b"data");
    assert_eq!(
        head_status(&app, &format!("/v2/a/blobs/{d}")).await,
        StatusCode::NOT_FOUND
    );
    let unknown = "/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef";
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let res = send(&app, method.clone(), unknown, &[], Body::empty()).await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            "{method}"
        );
    }
    let res = send(
        &app,
        Method::PUT,
        &format!("{unknown}?digest={d}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.code(), "BLOB_UPLOAD_UNKNOWN");
    let res = send(
        &app,
        Method::GET,
        "/v2/a/blobs/uploads/..%2f..%2fetc",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cancel_upload() {
    let app = app();
    let loc = send(
        &app,
        Method::POST,
        "/v2/a/blobs/uploads/",
        &[],
        Body::empty(),
    )
    .await
    .location();
    let res = send(&app, Method::DELETE, &loc, &[], Body::empty()).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = send(&app, Method::DELETE, &loc, &[], Body::empty()).await;
    assert_eq!(res.code(), "BLOB_UPLOAD_UNKNOWN");
    let other = loc.replace("/v2/a/", "/v2/b/");
    let loc = send(
        &app,
        Method::POST,
        "/v2/a/blobs/uploads/",
        &[],
        Body::empty(),
    )
    .await
    .location();
    let res = get(&app, &loc.replace("/v2/a/", "/v2/b/")).await;
    assert_eq!(res.code(), "BLOB_UPLOAD_UNKNOWN", "{other}");
}

#[tokio::test]
async fn cross_repository_mounts() {
    let app = app();
    let d = push_blob(&app, "src", b"shared layer").await;
    let res = send(
        &app,
        Method::POST,
        &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.location(), format!("/v2/dst/blobs/{d}"));
    assert_eq!(res.header("docker-content-digest"), d.to_string());
    assert_eq!(
        &get(&app, &format!("/v2/dst/blobs/{d}")).await.body[..],
        b"shared layer"
    );
    let res = send(
        &app,
        Method::POST,
        &format!("/v2/dst2/blobs/uploads/?mount={d}&from=nothere"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert!(res.location().starts_with("/v2/dst2/blobs/uploads/"));
    assert_eq!(
        get(&app, &format!("/v2/dst2/blobs/{d}")).await.status,
        StatusCode::NOT_FOUND
    );
    let res = send(
        &app,
        Method::POST,
        &format!("/v2/dst3/blobs/uploads/?mount={d}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let missing = Digest::of(b"missing");
    let res = send(
        &app,
        Method::POST,
        &format!("/v2/dst4/blobs/uploads/?mount={missing}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = send(
        &app,
        Method::POST,
        &format!("/v2/dst5/blobs/uploads/?mount={d}&from=BAD"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.code(), "NAME_INVALID");
}

#[tokio::test]
async fn manifests_put_get_head_delete() {
    let app = app();
    let (d, m) = push_image(&app, "lib/app", "v1").await;
    let res = get(&app, "/v2/lib/app/manifests/v1").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, m.as_bytes());
    assert_eq!(res.header("content-type"), OCI_MANIFEST);
    assert_eq!(res.header("docker-content-digest"), d.to_string());
    assert_eq!(res.header("content-length"), m.len().to_string());
    let res = send(
        &app,
        Method::HEAD,
        &format!("/v2/lib/app/manifests/{d}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.is_empty());
    assert_eq!(res.header("content-length"), m.len().to_string());
    assert_eq!(res.header("docker-content-digest"), d.to_string());

    let res = send(
        &app,
        Method::PUT,
        &format!("/v2/lib/app/manifests/{d}"),
        &[("content-type", OCI_MANIFEST)],
        m.clone(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.location(), format!("/v2/lib/app/manifests/{d}"));

    let res = send(
        &app,
        Method::DELETE,
        "/v2/lib/app/manifests/v1",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert_eq!(
        get(&app, "/v2/lib/app/manifests/v1").await.code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        get(&app, &format!("/v2/lib/app/manifests/{d}"))
            .await
            .status,
        StatusCode::OK
    );
    let res = send(
        &app,
        Method::DELETE,
        &format!("/v2/lib/app/manifests/{d}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = get(&app, &format!("/v2/lib/app/manifests/{d}")).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let res = send(
        &app,
        Method::DELETE,
        &format!("/v2/lib/app/manifests/{d}"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = send(
        &app,
        Method::HEAD,
        "/v2/lib/app/manifests/nope",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manifest_put_errors() {
    let app = app();
    let c = push_blob(&app, "a", b"{}").await;
    let missing = Digest::of(b"missing");
    let put = |m: String, ct: &'static str| {
        let app = app.clone();
        async move {
            send(
                &app,
                Method::PUT,
                "/v2/a/manifests/t",
                &[("content-type", ct)],
                m,
            )
            .await
        }
    };
    let res = put(manifest(&c, &[&missing]), OCI_MANIFEST).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    let res = put("{not json".into(), OCI_MANIFEST).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let res = put(manifest(&c, &[]), DOCKER_MANIFEST).await;
    assert_eq!(res.code(), "MANIFEST_INVALID");
    let res = put(
        r#"{"schemaVersion":1,"name":"a","tag":"t","fsLayers":[]}"#.into(),
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    )
    .await;
    assert_eq!(res.code(), "MANIFEST_INVALID");
    assert!(
        res.json()["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("schema1")
    );
    let res = send(
        &app,
        Method::PUT,
        &format!("/v2/a/manifests/{missing}"),
        &[("content-type", OCI_MANIFEST)],
        manifest(&c, &[]),
    )
    .await;
    assert_eq!(res.code(), "DIGEST_INVALID");
    let res = send(
        &app,
        Method::PUT,
        "/v2/a/manifests/bad%20tag",
        &[("content-type", OCI_MANIFEST)],
        manifest(&c, &[]),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&app, "/v2/a/tags/list").await.json()["tags"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn oversized_manifests_are_refused_early() {
    let app = registry_http::router(Registry::new(
        Arc::new(MemoryStorage::new()),
        RegistryConfig {
            max_manifest_size: 1000,
            ..Default::default()
        },
    ));
    let res = send(
        &app,
        Method::PUT,
        "/v2/a/manifests/t",
        &[
            ("content-type", OCI_MANIFEST),
            ("content-length", "5000000"),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    let chunks = futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 100]))),
    );
    let res = send(
        &app,
        Method::PUT,
        "/v2/a/manifests/t",
        &[("content-type", OCI_MANIFEST)],
        Body::from_stream(chunks),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
}

#[tokio::test]
async fn subject_header_and_referrers() {
    let app = app();
    let (subject, _) = push_image(&app, "r", "v1").await;
    let c = push_blob(&app, "r", b"{}").await;
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sbom","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{c}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":10}},"annotations":{{"org.example":"x"}}}}"#
    );
    let ad = Digest::of(artifact.as_bytes());
    let res = send(
        &app,
        Method::PUT,
        &format!("/v2/r/manifests/{ad}"),
        &[("content-type", OCI_MANIFEST)],
        artifact,
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.header("oci-subject"), subject.to_string());

    let res = get(&app, &format!("/v2/r/referrers/{subject}")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), OCI_INDEX);
    assert_eq!(res.header("oci-filters-applied"), "");
    let index = res.json();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["manifests"][0]["digest"], ad.to_string());
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );
    assert_eq!(index["manifests"][0]["annotations"]["org.example"], "x");

    let res = get(
        &app,
        &format!("/v2/r/referrers/{subject}?artifactType=application/vnd.example.sbom"),
    )
    .await;
    assert_eq!(res.header("oci-filters-applied"), "artifactType");
    assert_eq!(res.json()["manifests"].as_array().unwrap().len(), 1);
    let res = get(
        &app,
        &format!("/v2/r/referrers/{subject}?artifactType=other"),
    )
    .await;
    assert_eq!(res.json()["manifests"], serde_json::json!([]));
    let res = get(&app, &format!("/v2/r/referrers/{}", Digest::of(b"unknown"))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["manifests"], serde_json::json!([]));
    let res = get(&app, "/v2/r/referrers/sha256:bad").await;
    assert_eq!(res.code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn tag_list_pagination() {
    let app = app();
    for t in ["c", "a", "b"] {
        push_image(&app, "t", t).await;
    }
    let res = get(&app, "/v2/t/tags/list").await;
    assert_eq!(
        res.json(),
        serde_json::json!({"name": "t", "tags": ["a", "b", "c"]})
    );
    assert_eq!(res.header("link"), "");
    let res = get(&app, "/v2/t/tags/list?n=2").await;
    assert_eq!(res.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        res.header("link"),
        r#"</v2/t/tags/list?n=2&last=b>; rel="next""#
    );
    let res = get(&app, "/v2/t/tags/list?n=2&last=b").await;
    assert_eq!(res.json()["tags"], serde_json::json!(["c"]));
    assert_eq!(res.header("link"), "");
    let res = get(&app, "/v2/t/tags/list?n=x").await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID")
    );
    let res = get(&app, "/v2/nobody/tags/list").await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
}

/// A syntactically invalid tag names no manifest: 404 `MANIFEST_UNKNOWN` to reads and deletes (as
/// the conformance suite expects), 400 `MANIFEST_INVALID` to a push.
#[tokio::test]
async fn invalid_tags_name_no_manifest() {
    let app = app();
    push_image(&app, "a", "v1").await;
    for method in [Method::GET, Method::HEAD, Method::DELETE] {
        let res = send(
            &app,
            method.clone(),
            "/v2/a/manifests/.INVALID_MANIFEST_NAME",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{method}");
        if method != Method::HEAD {
            assert_eq!(res.code(), "MANIFEST_UNKNOWN", "{method}");
        }
    }
    let res = send(
        &app,
        Method::PUT,
        "/v2/a/manifests/.INVALID_MANIFEST_NAME",
        &[("content-type", OCI_MANIFEST)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
}

/// A name is known to `tags/list` once it holds manifests or blobs of its own: a name that is only
/// the namespace of other repositories is `NAME_UNKNOWN`; a repository whose manifests were
/// deleted lists, empty (as distribution, and as `skopeo list-tags` expects).
#[tokio::test]
async fn tag_lists_of_names_without_manifests() {
    let app = app();
    push_image(&app, "team1/app1", "v1").await;
    push_blob(&app, "blobs-only", b"layer").await;
    let res = get(&app, "/v2/blobs-only/tags/list").await;
    assert_eq!(res.json()["tags"], serde_json::json!([]));
    for name in ["team1", "team1/app1/deeper", "nobody"] {
        let res = get(&app, &format!("/v2/{name}/tags/list")).await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            "{name}"
        );
    }
    let res = send(
        &app,
        Method::DELETE,
        "/v2/team1/app1/manifests/v1",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = get(&app, "/v2/team1/app1/tags/list").await;
    assert_eq!(res.status, StatusCode::OK, "a repository stays listed");
    assert_eq!(res.json()["tags"], serde_json::json!([]));
}

#[tokio::test]
async fn catalog_pagination() {
    let app = app();
    for r in ["b", "a/x", "c/blobs"] {
        push_image(&app, r, "v").await;
    }
    let res = get(&app, "/v2/_catalog").await;
    assert_eq!(
        res.json(),
        serde_json::json!({"repositories": ["a/x", "b", "c/blobs"]})
    );
    let res = get(&app, "/v2/_catalog?n=1").await;
    assert_eq!(res.json()["repositories"], serde_json::json!(["a/x"]));
    assert_eq!(
        res.header("link"),
        r#"</v2/_catalog?n=1&last=a%2Fx>; rel="next""#
    );
    let res = get(&app, "/v2/_catalog?n=5&last=a%2Fx").await;
    assert_eq!(
        res.json()["repositories"],
        serde_json::json!(["b", "c/blobs"])
    );
}

#[tokio::test]
async fn nested_under_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(
        Arc::new(FilesystemStorage::new(dir.path()).unwrap()),
        RegistryConfig::default(),
    );
    let app = Router::new().nest("/registry", registry_http::router(registry));
    let res = send(
        &app,
        Method::POST,
        "/registry/v2/a/blobs/uploads/",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let loc = res.location();
    assert!(loc.starts_with("/registry/v2/a/blobs/uploads/"), "{loc}");
    let d = Digest::of(b"x");
    let res = send(
        &app,
        Method::PUT,
        &format!("{loc}?digest={d}"),
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.location(), format!("/registry/v2/a/blobs/{d}"));
    push_blob_at(&app).await;
    let res = get(&app, "/registry/v2/_catalog?n=1").await;
    assert_eq!(
        res.header("link"),
        r#"</registry/v2/_catalog?n=1&last=p>; rel="next""#
    );
}

async fn push_blob_at(app: &Router) {
    for repo in ["p", "q"] {
        let c = Digest::of(b"{}");
        send(
            app,
            Method::POST,
            &format!("/registry/v2/{repo}/blobs/uploads/?digest={c}"),
            &[],
            b"{}".to_vec(),
        )
        .await;
        let res = send(
            app,
            Method::PUT,
            &format!("/registry/v2/{repo}/manifests/v"),
            &[("content-type", OCI_MANIFEST)],
            manifest(&c, &[]),
        )
        .await;
        assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    }
}

#[tokio::test]
async fn read_only_health_and_request_ids() {
    let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
    let writable = registry_http::router(registry.clone());
    let (d, _) = push_image(&writable, "ro", "v1").await;
    let options = registry_http::HttpOptions {
        read_only: true,
        ..Default::default()
    };
    let app = registry_http::router_with(registry, options);
    assert_eq!(
        get(&app, "/v2/ro/manifests/v1").await.status,
        StatusCode::OK
    );
    assert_eq!(get(&app, "/v2/ro/tags/list").await.status, StatusCode::OK);
    for (method, uri) in [
        (Method::POST, "/v2/ro/blobs/uploads/".to_owned()),
        (Method::PUT, "/v2/ro/manifests/v2".to_owned()),
        (Method::DELETE, format!("/v2/ro/manifests/{d}")),
        (Method::DELETE, "/v2/ro/manifests/v1".to_owned()),
    ] {
        let res = send(&app, method.clone(), &uri, &[], Body::empty()).await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            "{method} {uri}"
        );
    }
    assert_eq!(
        get(&app, "/v2/ro/manifests/v1").await.status,
        StatusCode::OK,
        "a write went through"
    );

    for path in ["/healthz", "/readyz"] {
        let res = get(&app, path).await;
        assert_eq!((res.status, &res.body[..]), (StatusCode::OK, &b"ok"[..]));
    }
    let res = send(
        &app,
        Method::GET,
        "/v2/",
        &[("x-request-id", "abc-123")],
        Body::empty(),
    )
    .await;
    assert_eq!(res.header("x-request-id"), "abc-123");
    let res = send(
        &app,
        Method::GET,
        "/v2/",
        &[("x-request-id", "bad id!")],
        Body::empty(),
    )
    .await;
    let made = res.header("x-request-id");
    assert!(made.len() == 32 && made != "bad id!", "{made}");
}
