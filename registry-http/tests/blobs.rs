//! Blob pushes in one request, pulls with ranges, deletes and cross-repository mounts. Every endpoint is called in process, with
//! `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn monolithic_push_then_pull_with_ranges_and_delete() {
    let app = app();
    let data = b"0123456789";
    let d = Digest::of(data);
    let res = post(
        &app,
        &format!("/v2/a/b/blobs/uploads/?digest={d}"),
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

    let res = head(&app, &format!("/v2/a/b/blobs/{d}")).await;
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
        let res = call(&app, Method::GET, &uri)
            .headers(&[("range", range)])
            .send(Body::empty())
            .await;
        assert_eq!(res.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(&res.body[..], want, "{range}");
        assert_eq!(res.header("content-range"), content_range);
    }
    for range in ["bytes=10-", "bytes=5-2", "bytes=x-y"] {
        let res = call(&app, Method::GET, &uri)
            .headers(&[("range", range)])
            .send(Body::empty())
            .await;
        assert_eq!(res.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(res.code(), "RANGE_INVALID");
    }
    let res = call(&app, Method::GET, &uri)
        .headers(&[("range", "bytes=10-")])
        .send(Body::empty())
        .await;
    assert_eq!(res.header("content-range"), "bytes */10");

    let res = get(&app, &format!("/v2/other/blobs/{d}")).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let res = delete(&app, &uri).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = get(&app, &uri).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let res = head(&app, &uri).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = delete(&app, &uri).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
}

#[tokio::test]
async fn monolithic_push_errors_store_nothing() {
    let app = app();
    let wrong = Digest::of(b"other");
    let res = post(
        &app,
        &format!("/v2/a/blobs/uploads/?digest={wrong}"),
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
    let res = post(
        &app,
        "/v2/a/blobs/uploads/?digest=sha256:nope",
        b"data".to_vec(),
    )
    .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
}

#[tokio::test]
async fn cross_repository_mounts() {
    let app = app();
    let d = push_blob(&app, "src", b"shared layer").await;
    let res = post(
        &app,
        &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
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
    let res = post(
        &app,
        &format!("/v2/dst2/blobs/uploads/?mount={d}&from=nothere"),
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert!(res.location().starts_with("/v2/dst2/blobs/uploads/"));
    assert_eq!(
        get(&app, &format!("/v2/dst2/blobs/{d}")).await.status,
        StatusCode::NOT_FOUND
    );
    let res = post(
        &app,
        &format!("/v2/dst3/blobs/uploads/?mount={d}"),
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let missing = Digest::of(b"missing");
    let res = post(
        &app,
        &format!("/v2/dst4/blobs/uploads/?mount={missing}"),
        Body::empty(),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = post(
        &app,
        &format!("/v2/dst5/blobs/uploads/?mount={d}&from=BAD"),
        Body::empty(),
    )
    .await;
    assert_eq!(res.code(), "NAME_INVALID");
}
