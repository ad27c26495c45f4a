//! The web UI (feature `ui`): server-rendered pages to browse repositories, tags, manifests,
//! referrers, usage and tag history, and to delete and restore tags, for whoever the access
//! control lets see them. Templates and assets are compiled into the binary; pages work without
//! JavaScript (a few lines add copy buttons).
//!
//! Everything goes through the same [`crate::auth::access::AccessControl`] as the API: a visitor sees only the
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

use crate::auth::access::AccessControl;
use crate::auth::throttle::LoginThrottle;

mod actions;
mod pages;
mod session;

use session::Sessions;

/// How the UI behaves.
#[derive(Clone)]
pub struct UiOptions {
    /// Who may see and do what; `None` lets everyone do everything (as the API).
    pub access: Option<Arc<dyn AccessControl>>,
    /// Immutable-tag rules, for the badge on tags they cover (and no delete button there).
    pub immutable: Option<Arc<ImmutableTags>>,
    /// Quotas, whose use the usage page shows against their limits.
    pub quotas: Option<Arc<registry_core::lifecycle::Quotas>>,
    /// Mark the session cookie `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// The registry refuses writes: no delete or restore buttons.
    pub read_only: bool,
    /// Deletes are allowed at all (distribution's `storage.delete.enabled`): without, no delete
    /// buttons.
    pub deletes: bool,
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
            quotas: None,
            secure_cookies: false,
            session_lifetime: Duration::from_secs(8 * 3600),
            read_only: false,
            deletes: true,
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
        ("search.html", include_str!("templates/search.html")),
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

/// The UI's routes: `/` (repositories), `/repository`, `/manifest`, `/search`, `/usage`, `/history`,
/// `/login`, `/logout`, `/delete`, `/restore`, and `/ui/style.css`, `/ui/ui.js`. Merge it with
/// [`crate::api::router`] at the same root.
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
        .route("/search", get(pages::search))
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

/// Who is looking: a logged-in visitor's session (checked again with the identity's source at
/// every request), or an anonymous visitor's form token.
pub(crate) struct Visitor {
    session: Option<session::Session>,
    /// The token this visitor's forms carry.
    csrf: String,
    /// A cookie the response must set (an anonymous visitor's new form token).
    set_cookie: Option<http::HeaderValue>,
}

impl Visitor {
    fn identity(&self) -> Option<&crate::auth::access::Identity> {
        self.session.as_ref().map(|s| &s.identity)
    }

    fn name(&self) -> Option<&str> {
        self.identity().map(|i| i.name.as_str())
    }

    /// Whether a form carries this visitor's token.
    fn sent(&self, token: &str) -> bool {
        session::same_token(token, &self.csrf)
    }
}

impl Ui {
    /// The visitor a request comes from. A session whose user is gone, whose password changed
    /// or whose credentials expired ends here; one whose source cannot be asked now counts as
    /// anonymous for this request.
    async fn visitor(&self, headers: &http::HeaderMap) -> Visitor {
        if let Some(mut session) = self.sessions.get(headers) {
            let current = match &self.options.access {
                Some(access) => access.recheck(&session.identity).await,
                None => Ok(Some(session.identity.clone())),
            };
            match current {
                Ok(Some(identity)) => {
                    if identity != session.identity {
                        session.identity = identity;
                        self.sessions.update(&session);
                    }
                    return Visitor {
                        csrf: session.csrf.clone(),
                        session: Some(session),
                        set_cookie: None,
                    };
                }
                Ok(None) => self.sessions.end(&session.id),
                Err(e) => tracing::warn!("UI session of {}: {e}", session.identity.name),
            }
        }
        let (csrf, set_cookie) = self.sessions.form_token(headers);
        Visitor {
            session: None,
            csrf,
            set_cookie,
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
            csrf => &visitor.csrf,
            logins => self.options.access.is_some(),
            ..context
        };
        let mut res = self.render(status, template, context);
        if let Some(cookie) = &visitor.set_cookie {
            res.headers_mut()
                .append(http::header::SET_COOKIE, cookie.clone());
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
        action: crate::auth::access::Action,
    ) -> bool {
        self.options.access.as_ref().is_none_or(|a| {
            a.allows(
                visitor.identity(),
                crate::auth::access::Resource::Repository(repo),
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
                client: crate::server::client_addr(extensions).map(|a| a.ip().to_string()),
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

    /// Whether `visitor` may see the whole store (its totals, every repository's usage).
    fn may_see_store(&self, visitor: &Visitor) -> bool {
        self.options.access.as_ref().is_none_or(|a| {
            a.allows(
                visitor.identity(),
                crate::auth::access::Resource::Store,
                &[],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_storage::MemoryStorage;

    #[tokio::test]
    async fn anonymous_visits_store_nothing_and_logins_end_with_their_user() {
        let registry = Registry::new(
            Arc::new(MemoryStorage::new()),
            registry_core::RegistryConfig::default(),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, format!("bob:{}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
        let users = Arc::new(crate::auth::htpasswd::Htpasswd::load(&file, "r").unwrap());
        let gate = crate::auth::gate::Gate::new("r").users(users.clone());
        let ui = Ui {
            registry,
            sessions: Arc::new(Sessions::new(Duration::from_secs(3600), false)),
            options: Arc::new(UiOptions {
                access: Some(Arc::new(gate)),
                ..UiOptions::default()
            }),
            templates: Arc::new(templates()),
        };
        // Page views without a cookie, and with forged ones, create no session.
        for i in 0..1000 {
            let mut headers = http::HeaderMap::new();
            if i % 2 == 0 {
                let cookie = format!("registry_session={i}; registry_form=x.{i}");
                headers.insert(http::header::COOKIE, cookie.parse().unwrap());
            }
            let visitor = ui.visitor(&headers).await;
            assert!(visitor.identity().is_none());
            assert!(
                visitor.set_cookie.is_some(),
                "a form token for the login form"
            );
        }
        assert_eq!(ui.sessions.len(), 0);
        // A login's session lasts while bob's entry is unchanged.
        let bob = ui
            .options
            .access
            .as_ref()
            .unwrap()
            .identify(&crate::auth::access::Credentials::Basic {
                user: "bob".into(),
                password: "pw".into(),
            })
            .await
            .unwrap()
            .unwrap();
        let session = ui.sessions.start(bob);
        let mut headers = http::HeaderMap::new();
        let cookie = format!("registry_session={}", session.id);
        headers.insert(http::header::COOKIE, cookie.parse().unwrap());
        assert_eq!(ui.visitor(&headers).await.name(), Some("bob"));
        std::fs::write(&file, "").unwrap();
        assert!(users.reload().await.unwrap());
        assert_eq!(ui.visitor(&headers).await.name(), None, "bob was removed");
        assert_eq!(ui.sessions.len(), 0, "his session ended");
    }
}
