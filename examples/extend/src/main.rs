//! Run with: `cargo run -p registry-extend-example`; push to 127.0.0.1:5001/ci/… with the
//! credentials `ci:s3cret`. Three extension points, none tied to a web framework: who may do
//! what ([`AccessControl`]), which changes are refused ([`Admission`]), what is told ([`EventSink`]).

use std::sync::Arc;

use registry_core::access::{AccessControl, Action, AuthError, Credentials, Identity, Resource};
use registry_core::admission::{Admission, Caller, Change, Refusal};
use registry_core::events::{Event, EventSink};
use registry_core::{Registry, RegistryConfig};

/// One API key, good for everything under `ci/`; anyone may pull.
struct ApiKey(&'static str);

#[async_trait::async_trait]
impl AccessControl for ApiKey {
    async fn identify(&self, c: &Credentials) -> Result<Option<Identity>, AuthError> {
        let (user, password) = match c {
            Credentials::Anonymous => return Ok(None),
            Credentials::Basic { user, password } => (user.clone(), password),
            _ => return Err(AuthError::Unsupported),
        };
        match password == self.0 {
            true => Ok(Some(Identity::user(user))),
            false => Err(AuthError::WrongCredentials { user }),
        }
    }
    fn allows(&self, who: Option<&Identity>, r: Resource<'_>, actions: &[Action]) -> bool {
        let in_ci = matches!(r, Resource::Repository(n) if n.as_str().starts_with("ci/"));
        actions
            .iter()
            .all(|a| *a == Action::Pull || (who.is_some() && in_ci))
    }
    fn challenge(&self, who: Option<&Identity>, _: Resource<'_>, _: &[Action]) -> Option<String> {
        who.is_none().then(|| "Basic realm=\"ci\"".to_owned())
    }
}

/// `latest` is never pushed: images are tagged with their version.
struct NoLatest;

#[async_trait::async_trait]
impl Admission for NoLatest {
    async fn admit(&self, change: &Change<'_>, caller: &Caller) -> Result<(), Refusal> {
        match change {
            Change::MoveTag { tag, .. } if tag.as_str() == "latest" => Err(Refusal::new(format!(
                "{} may not push latest: tag the version",
                caller.identity.as_deref().unwrap_or("anonymous")
            ))),
            _ => Ok(()),
        }
    }
}

/// Prints what happened (a real sink queues it: `send` must not block).
struct Print;

impl EventSink for Print {
    fn send(&self, e: Event) {
        println!("{:?} {}@{}", e.action, e.target.repository, e.target.digest);
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let storage = Arc::new(registry_storage::MemoryStorage::new());
    // Pushes and deletes reach the sink through the change feed, pulls from the router.
    let events: Arc<dyn EventSink> = Arc::new(Print);
    let registry = Registry::new(storage, RegistryConfig::default())
        .with_admission(Arc::new(NoLatest))
        .with_subscriber(Arc::new(registry_http::events::FeedEvents(events.clone())));
    let options = registry_http::HttpOptions {
        access: Some(Arc::new(ApiKey("s3cret"))),
        events: Some(events),
        ..Default::default()
    };
    let router = registry_http::router_with(registry, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:5001").await?;
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    registry_http::serve(listener, router, Default::default(), stop).await;
    Ok(())
}
