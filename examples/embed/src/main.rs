//! Run with: `cargo run -p registry-embed-example`, then `curl http://127.0.0.1:3000/registry/v2/`.
//!
//! An existing axum application with its own routes, and the registry mounted beside them under
//! `/registry`.

use std::sync::Arc;

use registry_core::{Registry, RegistryConfig};
use registry_storage::MemoryStorage;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my application" }))
        .nest("/registry", registry_http::router(registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await
}
