//! The web UI (feature `ui`): server-rendered pages to browse repositories, tags, manifests,
//! referrers, usage and tag history, and to delete and restore tags, for whoever the access
//! control lets see them. Templates and assets are compiled into the binary; pages work without
//! JavaScript (a few lines add copy buttons).
//!
//! Everything goes through the same [`crate::AccessControl`] as the API: a visitor sees only the
//! repositories they may pull (anonymous visitors: what anonymous may pull, not even other
//! names), and the buttons that change something only where they may push or delete. A login
//! form checks credentials like the API does and keeps the identity in a server-side session
//! behind an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS); every form that changes
//! something carries the session's anti-forgery token.
//!
//! - `session`: sessions and their cookie.
//! - `pages`: the pages that only read.
//! - `actions`: login, logout, delete and restore.
//!
//! ```
//! use std::sync::Arc;
//! use registry_core::{Registry, RegistryConfig};
//! use registry_storage::MemoryStorage;
//! let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default());
//! let app = registry_http::router(registry.clone())
//!     .merge(registry_http::ui::router(registry, registry_http::ui::UiOptions::default()));
//! # drop(app);
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use minijinja::Environment;
use registry_core::Registry;
use registry_core::lifecycle::ImmutableTags;

use crate::AccessControl;
use crate::throttle::LoginThrottle;

mod actions;
mod pages;
mod session;

use session::Sessions;

/// How the UI behaves.
#[derive(Clone)]
pub struct UiOptions {
    /// Who may see and do what; `None` lets everyone do everything (as the API).
    pub access: Option<Arc<dyn AccessControl>>,
    /// Immutable-tag rules, for the badge on tags they cover.
    pub immutable: Option<Arc<ImmutableTags>>,
    /// Mark the session cookie `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// The registry refuses writes: no delete or restore buttons.
    pub read_only: bool,
    /// Throttle failed logins of the form, with the API's throttle.
    pub throttle: Option<Arc<LoginThrottle>>,
    /// The host clients pull from, for the `podman pull` commands shown (default: the request's
    /// `Host`).
    pub pull_host: Option<String>,
    /// Record logins, deletes, restores and refusals of the UI here, as the API does.
    pub audit: Option<Arc<dyn crate::audit::AuditSink>>,
}

impl Default for UiOptions {
    fn default() -> Self {
        UiOptions {
            access: None,
            immutable: None,
            secure_cookies: false,
            session_lifetime: Duration::from_secs(8 * 3600),
            read_only: false,
            throttle: None,
            pull_host: None,
            audit: None,
        }
    }
}

impl std::fmt::Debug for UiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiOptions")
            .field("access", &self.access.is_some())
            .field("secure_cookies", &self.secure_cookies)
            .field("session_lifetime", &self.session_lifetime)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// What every page handler shares.
#[derive(Clone)]
pub(crate) struct Ui {
    registry: Registry,
    options: Arc<UiOptions>,
    templates: Arc<Environment<'static>>,
    sessions: Arc<Sessions>,
}

/// The templates, compiled in.
fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, text) in [
        ("base.html", include_str!("templates/base.html")),
        (
            "repositories.html",
            include_str!("templates/repositories.html"),
        ),
        ("repository.html", include_str!("templates/repository.html")),
        ("manifest.html", include_str!("templates/manifest.html")),
        ("usage.html", include_str!("templates/usage.html")),
        ("history.html", include_str!("templates/history.html")),
        ("login.html", include_str!("templates/login.html")),
        ("confirm.html", include_str!("templates/confirm.html")),
        ("message.html", include_str!("templates/message.html")),
    ] {
        // The templates are ours and compiled in: a syntax error is a bug the tests catch.
        if let Err(e) = env.add_template(name, text) {
            tracing::error!("UI template {name}: {e}");
        }
    }
    env
}

/// The UI's routes: `/` (repositories), `/repository`, `/manifest`, `/usage`, `/history`,
/// `/login`, `/logout`, `/delete`, `/restore`, and `/ui/style.css`, `/ui/ui.js`. Merge it with
/// [`crate::router`] at the same root.
pub fn router(registry: Registry, options: UiOptions) -> Router {
    let ui = Ui {
        registry,
        sessions: Arc::new(Sessions::new(
            options.session_lifetime,
            options.secure_cookies,
        )),
        options: Arc::new(options),
        templates: Arc::new(templates()),
    };
    use axum::routing::get;
    Router::new()
        .route("/", get(pages::repositories))
        .route("/repository", get(pages::repository))
        .route("/manifest", get(pages::manifest_page))
        .route("/usage", get(pages::usage))
        .route("/history", get(pages::history))
        .route("/login", get(actions::login_form).post(actions::login))
        .route("/logout", axum::routing::post(actions::logout))
        .route(
            "/delete",
            get(actions::confirm_delete).post(actions::delete),
        )
        .route("/restore", axum::routing::post(actions::restore))
        .route(
            "/ui/style.css",
            get(|| async {
                (
                    [(http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    include_str!("templates/style.css"),
                )
            }),
        )
        .route(
            "/ui/ui.js",
            get(|| async {
                (
                    [(http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    include_str!("templates/ui.js"),
                )
            }),
        )
        .with_state(ui)
}

impl Ui {
    /// Renders `template` with `context`, or a plain 500 naming the template.
    fn render(&self, status: StatusCode, template: &str, context: minijinja::Value) -> Response {
        let page = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(context));
        match page {
            Ok(html) => {
                let mut res = (status, Html(html)).into_response();
                let headers = res.headers_mut();
                headers.insert(
                    http::header::CONTENT_SECURITY_POLICY,
                    http::HeaderValue::from_static(
                        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                    ),
                );
                headers.insert(
                    http::header::X_CONTENT_TYPE_OPTIONS,
                    http::HeaderValue::from_static("nosniff"),
                );
                headers.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                res
            }
            Err(e) => {
                tracing::error!("UI template {template}: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
            }
        }
    }
}

/// Who is looking: their session, and whether it is new (its cookie must be set).
pub(crate) struct Visitor {
    session: session::Session,
    fresh: bool,
}

impl Visitor {
    fn identity(&self) -> Option<&crate::Identity> {
        self.session.identity.as_ref()
    }

    fn name(&self) -> Option<&str> {
        self.identity().map(|i| i.name.as_str())
    }
}

impl Ui {
    /// The visitor a request comes from: their session, or a new anonymous one.
    fn visitor(&self, headers: &http::HeaderMap) -> Visitor {
        match self.sessions.get(headers) {
            Some(session) => Visitor {
                session,
                fresh: false,
            },
            None => Visitor {
                session: self.sessions.start(None),
                fresh: true,
            },
        }
    }

    /// A page for `visitor`: `template` with `context` plus who is logged in and the form token.
    fn page(
        &self,
        visitor: &Visitor,
        status: StatusCode,
        template: &str,
        context: minijinja::Value,
    ) -> Response {
        let context = minijinja::context! {
            user => visitor.name(),
            csrf => &visitor.session.csrf,
            logins => self.options.access.is_some(),
            ..context
        };
        let mut res = self.render(status, template, context);
        if visitor.fresh {
            res.headers_mut().append(
                http::header::SET_COOKIE,
                self.sessions.cookie(&visitor.session),
            );
        }
        res
    }

    /// A page saying `message`.
    fn message(&self, visitor: &Visitor, status: StatusCode, message: &str) -> Response {
        self.page(
            visitor,
            status,
            "message.html",
            minijinja::context! { message => message },
        )
    }

    /// Whether `visitor` may do `action` in `repo` (always, without access control).
    fn may(
        &self,
        visitor: &Visitor,
        repo: &registry_core::RepositoryName,
        action: crate::Action,
    ) -> bool {
        self.options.access.as_ref().is_none_or(|a| {
            a.allows(
                visitor.identity(),
                crate::Resource::Repository(repo),
                &[action],
            )
        })
    }

    /// Records what the UI did or refused, when an audit sink is set.
    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        kind: crate::audit::AuditKind,
        identity: Option<&str>,
        extensions: &http::Extensions,
        path: &str,
        repository: Option<&str>,
        reference: Option<&str>,
        status: StatusCode,
        detail: Option<String>,
    ) {
        if let Some(sink) = &self.options.audit {
            sink.record(crate::audit::AuditRecord {
                time: crate::events::now(),
                kind,
                identity: identity.map(str::to_owned),
                client: crate::client_addr(extensions).map(|a| a.ip().to_string()),
                method: "POST".into(),
                path: path.to_owned(),
                repository: repository.map(str::to_owned),
                reference: reference.map(str::to_owned),
                digest: None,
                status: status.as_u16(),
                request_id: String::new(),
                detail,
            });
        }
    }

    /// Whether `visitor` may see the whole store (catalog access).
    fn may_see_store(&self, visitor: &Visitor) -> bool {
        self.options
            .access
            .as_ref()
            .is_none_or(|a| a.allows(visitor.identity(), crate::Resource::Catalog, &[]))
    }
}
