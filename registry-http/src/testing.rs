//! [`TestRegistry`]: a registry served on an ephemeral loopback port, for other crates' tests.
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! let registry = registry_http::testing::TestRegistry::start().await?;
//! let url = format!("{}/v2/", registry.base_url()); // http://127.0.0.1:<port>/v2/
//! # drop(url);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use registry_core::{Registry, RegistryConfig};
use registry_storage::MemoryStorage;
use tokio::task::JoinHandle;

/// A registry listening on `127.0.0.1:<free port>` until dropped.
#[derive(Debug)]
pub struct TestRegistry {
    addr: SocketAddr,
    registry: Registry,
    task: JoinHandle<()>,
}

impl TestRegistry {
    /// Serves a fresh in-memory registry.
    pub async fn start() -> std::io::Result<TestRegistry> {
        let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
        TestRegistry::serve(registry).await
    }

    /// Serves the given registry.
    pub async fn serve(registry: Registry) -> std::io::Result<TestRegistry> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = crate::api::router(registry.clone());
        let task = tokio::spawn(crate::server::serve(
            listener,
            app,
            crate::server::ServeOptions::default(),
            std::future::pending(),
        ));
        Ok(TestRegistry {
            addr,
            registry,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>`, the registry part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry behind the server, to check or seed its content directly.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}
