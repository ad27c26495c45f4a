//! Manifests: put, get, head, delete, their errors and size limit, invalid tags, subjects and
//! referrers. Every endpoint is called in process, with
//! `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

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
    let res = head(&app, &format!("/v2/lib/app/manifests/{d}")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.is_empty());
    assert_eq!(res.header("content-length"), m.len().to_string());
    assert_eq!(res.header("docker-content-digest"), d.to_string());

    let res = call(&app, Method::PUT, &format!("/v2/lib/app/manifests/{d}"))
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(m.clone())
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.location(), format!("/v2/lib/app/manifests/{d}"));

    let res = delete(&app, "/v2/lib/app/manifests/v1").await;
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
    let res = delete(&app, &format!("/v2/lib/app/manifests/{d}")).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = get(&app, &format!("/v2/lib/app/manifests/{d}")).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let res = delete(&app, &format!("/v2/lib/app/manifests/{d}")).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = head(&app, "/v2/lib/app/manifests/nope").await;
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
            call(&app, Method::PUT, "/v2/a/manifests/t")
                .headers(&[("content-type", ct)])
                .send(m)
                .await
        }
    };
    let res = put(manifest((&c, 2), &[(&missing, 7)]), OCI_MANIFEST).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    let res = put("{not json".into(), OCI_MANIFEST).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let res = put(manifest((&c, 2), &[]), DOCKER_MANIFEST).await;
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
    let res = call(&app, Method::PUT, &format!("/v2/a/manifests/{missing}"))
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(manifest((&c, 2), &[]))
        .await;
    assert_eq!(res.code(), "DIGEST_INVALID");
    let res = call(&app, Method::PUT, "/v2/a/manifests/bad%20tag")
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(manifest((&c, 2), &[]))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&app, "/v2/a/tags/list").await.json()["tags"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn descriptors_must_declare_the_stored_sizes() {
    let app = app();
    let c = push_blob(&app, "a", b"{}").await;
    let layer = vec![7u8; 200_000];
    let l = push_blob(&app, "a", &layer).await;
    let put = |reference: String, m: String, ct: &'static str| {
        let app = app.clone();
        async move {
            call(&app, Method::PUT, &format!("/v2/a/manifests/{reference}"))
                .headers(&[("content-type", ct)])
                .send(m)
                .await
        }
    };
    let refused = |res: &Res, digest: &Digest| {
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            "{:?}",
            res.body
        );
        let detail = res.json()["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains(&digest.to_string()), "{detail}");
    };
    // A layer declared smaller than it is (a quota would count 1 byte), and a config.
    let res = put("t".into(), manifest((&c, 2), &[(&l, 1)]), OCI_MANIFEST).await;
    refused(&res, &l);
    let res = put(
        "t".into(),
        manifest((&c, 3), &[(&l, 200_000)]),
        OCI_MANIFEST,
    )
    .await;
    refused(&res, &c);
    // A child of an index, and a subject held here.
    let image = manifest((&c, 2), &[(&l, 200_000)]);
    let child = Digest::of(image.as_bytes());
    let res = put(child.to_string(), image.clone(), OCI_MANIFEST).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let index = |size: usize| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":{size}}}]}}"#
        )
    };
    let res = put("i".into(), index(image.len() + 1), OCI_INDEX).await;
    refused(&res, &child);
    let res = put("i".into(), index(image.len()), OCI_INDEX).await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    let referrer = |size: usize| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{c}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":{size}}}}}"#
        )
    };
    let lie = referrer(1);
    let res = put(Digest::of(lie.as_bytes()).to_string(), lie, OCI_MANIFEST).await;
    refused(&res, &child);
    // Nothing of the refused pushes was stored: only the image and the index are tagged.
    assert_eq!(
        get(&app, "/v2/a/tags/list").await.json()["tags"],
        serde_json::json!(["i"])
    );
    let res = get(&app, &format!("/v2/a/referrers/{child}")).await;
    assert_eq!(res.json()["manifests"], serde_json::json!([]));
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
    let res = call(&app, Method::PUT, "/v2/a/manifests/t")
        .headers(&[
            ("content-type", OCI_MANIFEST),
            ("content-length", "5000000"),
        ])
        .send(Body::empty())
        .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    let chunks = futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 100]))),
    );
    let res = call(&app, Method::PUT, "/v2/a/manifests/t")
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(Body::from_stream(chunks))
        .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
}

/// A syntactically invalid tag names no manifest: 404 `MANIFEST_UNKNOWN` to reads and deletes (as
/// the conformance suite expects), 400 `MANIFEST_INVALID` to a push.
#[tokio::test]
async fn invalid_tags_name_no_manifest() {
    let app = app();
    push_image(&app, "a", "v1").await;
    for method in [Method::GET, Method::HEAD, Method::DELETE] {
        let res = call(
            &app,
            method.clone(),
            "/v2/a/manifests/.INVALID_MANIFEST_NAME",
        )
        .send(Body::empty())
        .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{method}");
        if method != Method::HEAD {
            assert_eq!(res.code(), "MANIFEST_UNKNOWN", "{method}");
        }
    }
    let res = call(&app, Method::PUT, "/v2/a/manifests/.INVALID_MANIFEST_NAME")
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(b"{}".to_vec())
        .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
}

#[tokio::test]
async fn subject_header_and_referrers() {
    let app = app();
    let (subject, subject_bytes) = push_image(&app, "r", "v1").await;
    let c = push_blob(&app, "r", b"{}").await;
    let subject_size = subject_bytes.len();
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sbom","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{c}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{subject_size}}},"annotations":{{"org.example":"x"}}}}"#
    );
    let ad = Digest::of(artifact.as_bytes());
    let res = call(&app, Method::PUT, &format!("/v2/r/manifests/{ad}"))
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(artifact)
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

/// A push racing garbage collection's removal of what it names is refused, never acknowledged:
/// a layer being removed is `MANIFEST_BLOB_UNKNOWN` (upload it again), the manifest's own bytes
/// being removed 503 `UNAVAILABLE` (push again).
#[tokio::test]
async fn pushes_racing_a_collection_are_refused() {
    use registry_core::{Storage, paths};
    let store = MemoryStorage::new();
    let app = registry_http::router(Registry::new(
        Arc::new(store.clone()),
        RegistryConfig::default(),
    ));
    let (d, m) = push_image(&app, "lib/app", "v1").await;
    let layer = Digest::of(b"layer");
    let put_again = || {
        call(&app, Method::PUT, "/v2/lib/app/manifests/v2")
            .headers(&[("content-type", OCI_MANIFEST)])
            .send(m.clone())
    };
    let announced = paths::blob_collecting(&layer, "c0");
    store.put(&announced, Bytes::new()).await.unwrap();
    let res = put_again().await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    store.delete(&announced).await.unwrap();
    store
        .put(&paths::blob_collecting(&d, "c1"), Bytes::new())
        .await
        .unwrap();
    let res = put_again().await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
    );
    assert!(
        res.body_text().contains("garbage collection"),
        "{}",
        res.body_text()
    );
}
