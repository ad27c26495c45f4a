//! Uploads in chunks and streams, their completion, errors and cancellation. Every endpoint is called in process, with
//! `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[tokio::test]
async fn chunked_upload_flow() {
    let app = app();
    let res = post(&app, "/v2/a/blobs/uploads/", Body::empty()).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert_eq!(res.header("range"), "0-0");
    let loc = res.location();
    let uuid = res.header("docker-upload-uuid").to_owned();
    assert_eq!(loc, format!("/v2/a/blobs/uploads/{uuid}"));

    let res = call(&app, Method::PATCH, &loc)
        .headers(&[("content-range", "0-4"), ("content-length", "5")])
        .send(b"hello".to_vec())
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    assert_eq!(res.header("range"), "0-4");
    assert_eq!(res.location(), loc);

    for (bad_range, body) in [("2-3", &b"ll"[..]), ("9-10", b"xx"), ("0-4", b"hello")] {
        let res = call(&app, Method::PATCH, &loc)
            .headers(&[("content-range", bad_range)])
            .send(body.to_vec())
            .await;
        assert_eq!(res.status, StatusCode::RANGE_NOT_SATISFIABLE, "{bad_range}");
        assert_eq!(res.code(), "BLOB_UPLOAD_INVALID");
        assert_eq!(res.header("range"), "0-4");
        assert_eq!(res.location(), loc);
    }
    let res = call(&app, Method::PATCH, &loc)
        .headers(&[("content-range", "5-9")])
        .send(b"xx".to_vec())
        .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
    );

    let res = patch(&app, &loc, b" wor".to_vec()).await;
    assert_eq!(res.header("range"), "0-8");
    let res = get(&app, &loc).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(res.header("range"), "0-8");
    assert_eq!(res.header("docker-upload-uuid"), uuid);

    let d = Digest::of(b"hello world");
    let res = call(&app, Method::PUT, &format!("{loc}?digest={d}"))
        .headers(&[("content-length", "2"), ("content-range", "9-10")])
        .send(b"ld".to_vec())
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
    let loc = post(&app, "/v2/s/blobs/uploads/", Body::empty())
        .await
        .location();
    let stream = futures::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 1000]))),
    );
    let res = patch(&app, &loc, Body::from_stream(stream)).await;
    assert_eq!(res.header("range"), "0-63999");
    let d = Digest::of(&vec![7u8; 64_000]);
    let res = call(&app, Method::PUT, &format!("{loc}?digest={d}"))
        .headers(&[("content-length", "0")])
        .send(Body::empty())
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
    let loc = post(&app, "/v2/a/blobs/uploads/", Body::empty())
        .await
        .location();
    patch(&app, &loc, b"data".to_vec()).await;
    let res = put(&app, &loc, Body::empty()).await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let wrong = Digest::of(b"not data");
    let res = put(&app, &format!("{loc}?digest={wrong}"), Body::empty()).await;
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
        let res = call(&app, method.clone(), unknown)
            .send(Body::empty())
            .await;
        assert_eq!(
            (res.status, res.code().as_str()),
            (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            "{method}"
        );
    }
    let res = put(&app, &format!("{unknown}?digest={d}"), Body::empty()).await;
    assert_eq!(res.code(), "BLOB_UPLOAD_UNKNOWN");
    let res = get(&app, "/v2/a/blobs/uploads/..%2f..%2fetc").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cancel_upload() {
    let app = app();
    let loc = post(&app, "/v2/a/blobs/uploads/", Body::empty())
        .await
        .location();
    let res = delete(&app, &loc).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = delete(&app, &loc).await;
    assert_eq!(res.code(), "BLOB_UPLOAD_UNKNOWN");
    let other = loc.replace("/v2/a/", "/v2/b/");
    let loc = post(&app, "/v2/a/blobs/uploads/", Body::empty())
        .await
        .location();
    let res = get(&app, &loc.replace("/v2/a/", "/v2/b/")).await;
    assert_eq!(res.code(), "BLOB_UPLOAD_UNKNOWN", "{other}");
}
