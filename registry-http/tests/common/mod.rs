//! What the endpoint tests share: the router over a memory store, requests and their responses,
//! and pushes of blobs and images.
#![allow(clippy::unwrap_used, dead_code, unused_imports)]

pub use std::sync::Arc;

pub use axum::Router;
pub use axum::body::Body;
pub use bytes::Bytes;
pub use http::{HeaderMap, Method, Request, StatusCode};
pub use registry_core::manifest::{DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
pub use registry_core::{Digest, Registry, RegistryConfig};
pub use registry_storage::{FilesystemStorage, MemoryStorage};
pub use tower::ServiceExt;

pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Res {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The OCI error code of an error response, checking the spec's shape on the way.
    pub fn code(&self) -> String {
        let v = self.json();
        let e = &v["errors"][0];
        assert!(
            e["message"].is_string() && e.get("detail").is_some(),
            "bad error shape: {v}"
        );
        e["code"].as_str().unwrap().to_owned()
    }

    pub fn location(&self) -> String {
        self.header("location").to_owned()
    }
}

pub fn app() -> Router {
    registry_http::router(Registry::new(
        Arc::new(MemoryStorage::new()),
        RegistryConfig::default(),
    ))
}

/// A request to the router under test, built up then sent.
pub struct Call<'a> {
    app: &'a Router,
    req: http::request::Builder,
}

pub fn call<'a>(app: &'a Router, method: Method, uri: &str) -> Call<'a> {
    Call {
        app,
        req: Request::builder().method(method).uri(uri),
    }
}

impl Call<'_> {
    pub fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        for (k, v) in headers {
            self.req = self.req.header(*k, *v);
        }
        self
    }

    /// Sends the request with `body`, and reads the whole response; every response must carry
    /// the API version header.
    pub async fn send(self, body: impl Into<Body>) -> Res {
        let res = self
            .app
            .clone()
            .oneshot(self.req.body(body.into()).unwrap())
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
}

pub async fn get(app: &Router, uri: &str) -> Res {
    call(app, Method::GET, uri).send(Body::empty()).await
}

pub async fn head(app: &Router, uri: &str) -> Res {
    call(app, Method::HEAD, uri).send(Body::empty()).await
}

pub async fn delete(app: &Router, uri: &str) -> Res {
    call(app, Method::DELETE, uri).send(Body::empty()).await
}

pub async fn post(app: &Router, uri: &str, body: impl Into<Body>) -> Res {
    call(app, Method::POST, uri).send(body).await
}

pub async fn put(app: &Router, uri: &str, body: impl Into<Body>) -> Res {
    call(app, Method::PUT, uri).send(body).await
}

pub async fn patch(app: &Router, uri: &str, body: impl Into<Body>) -> Res {
    call(app, Method::PATCH, uri).send(body).await
}

pub async fn head_status(app: &Router, uri: &str) -> StatusCode {
    head(app, uri).await.status
}

pub async fn push_blob(app: &Router, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    let len = data.len().to_string();
    let res = call(
        app,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
    )
    .headers(&[("content-length", &len)])
    .send(data.to_vec())
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    d
}

/// An image manifest of a config and layers, each a digest and the size its descriptor declares.
pub fn manifest((config, size): (&Digest, usize), layers: &[(&Digest, usize)]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{size}}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

pub async fn push_image(app: &Router, repo: &str, tag: &str) -> (Digest, String) {
    let config = format!("{{\"tag\":\"{tag}\"}}");
    let c = push_blob(app, repo, config.as_bytes()).await;
    let l = push_blob(app, repo, b"layer").await;
    let m = manifest((&c, config.len()), &[(&l, 5)]);
    let res = call(app, Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
        .headers(&[("content-type", OCI_MANIFEST)])
        .send(m.clone())
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    (Digest::of(m.as_bytes()), m)
}
