//! The base endpoint, unknown paths and names, tag lists, the catalog, a router nested under a
//! prefix, read-only mode, health and request ids. Every endpoint is called in process, with
//! `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn base_endpoint() {
    let app = app();
    for uri in ["/v2/", "/v2"] {
        let res = get(&app, uri).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json(), serde_json::json!({}));
    }
    let res = head(&app, "/v2/").await;
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
    let res = post(&app, "/v2/a/tags/list", Body::empty()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
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
    let res = delete(&app, "/v2/team1/app1/manifests/v1").await;
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
    let res = post(&app, "/registry/v2/a/blobs/uploads/", Body::empty()).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let loc = res.location();
    assert!(loc.starts_with("/registry/v2/a/blobs/uploads/"), "{loc}");
    let d = Digest::of(b"x");
    let res = put(&app, &format!("{loc}?digest={d}"), b"x".to_vec()).await;
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
        post(
            app,
            &format!("/registry/v2/{repo}/blobs/uploads/?digest={c}"),
            b"{}".to_vec(),
        )
        .await;
        let res = call(
            app,
            Method::PUT,
            &format!("/registry/v2/{repo}/manifests/v"),
        )
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(manifest((&c, 2), &[]))
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
        let res = call(&app, method.clone(), &uri).send(Body::empty()).await;
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
    let res = call(&app, Method::GET, "/v2/")
        .headers(&[("x-request-id", "abc-123")])
        .send(Body::empty())
        .await;
    assert_eq!(res.header("x-request-id"), "abc-123");
    let res = call(&app, Method::GET, "/v2/")
        .headers(&[("x-request-id", "bad id!")])
        .send(Body::empty())
        .await;
    let made = res.header("x-request-id");
    assert!(made.len() == 32 && made != "bad id!", "{made}");
}
