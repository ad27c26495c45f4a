//! A webhook receiver on loopback, for the notification tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a receiver got: each post's path name and JSON body.
pub type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A webhook receiver on loopback: its base URL, and what it got, per path; `/fail` answers
/// 500, `/slow` takes ten seconds.
pub async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/{name}",
        axum::routing::post(
            move |axum::extract::Path(name): axum::extract::Path<String>, body: String| {
                let sink = sink.clone();
                async move {
                    match name.as_str() {
                        "fail" => return axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "slow" => tokio::time::sleep(Duration::from_secs(10)).await,
                        _ => {}
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    sink.lock().unwrap().push((name, v));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

/// Every event received so far at path `name`.
pub fn events(got: &Received, name: &str) -> Vec<serde_json::Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v["events"].as_array().cloned().unwrap_or_default())
        .collect()
}
