//! What changes something: logging in and out, deleting a tag or manifest (after a confirmation
//! page), restoring a tag. Every form carries the session's anti-forgery token; the session
//! cookie is `SameSite=Strict` besides.

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, StatusCode};
use minijinja::context;
use registry_core::{Caller, Digest, RepositoryName, Tag};
use serde::Deserialize;

use super::{Ui, Visitor};
use crate::audit::AuditKind;
use crate::auth::access::{Action, Credentials};

/// A redirect (303) to `to`.
fn go(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `to` as a query parameter value.
fn q(to: &str) -> String {
    form_urlencoded::byte_serialize(to.as_bytes()).collect()
}

/// The refusal for a form without the session's token.
fn forged(ui: &Ui, visitor: &Visitor) -> Response {
    ui.message(
        visitor,
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this site. Reload the page and try again.",
    )
}

/// `GET /login`.
pub(crate) async fn login_form(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    let visitor = ui.visitor(&headers).await;
    ui.page(&visitor, StatusCode::OK, "login.html", context! {})
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    csrf: String,
}

/// `POST /login`: checks the credentials as the API would, then starts a new session.
pub(crate) async fn login(
    State(ui): State<Ui>,
    headers: HeaderMap,
    extensions: http::Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    if !visitor.sent(&form.csrf) {
        return forged(&ui, &visitor);
    }
    let Some(access) = &ui.options.access else {
        return ui.message(&visitor, StatusCode::OK, "This registry needs no login.");
    };
    let ip = crate::server::client_addr(&extensions).map(|a| a.ip());
    let user =
        Some(form.user.as_str()).filter(|_| !crate::auth::access::looks_like_jwt(&form.password));
    let throttle = ui.options.throttle.as_ref();
    if throttle.is_some_and(|t| t.check(ip, user).is_err()) {
        ui.audit(
            AuditKind::Throttled,
            Some(&form.user),
            &extensions,
            "/login",
            None,
            None,
            StatusCode::TOO_MANY_REQUESTS,
            None,
        );
        return ui.page(
            &visitor,
            StatusCode::TOO_MANY_REQUESTS,
            "login.html",
            context! { error => "Too many failed logins: wait a little and try again." },
        );
    }
    let credentials = Credentials::Basic {
        user: form.user.clone(),
        password: form.password.clone(),
    };
    match access.identify(&credentials).await {
        Ok(Some(identity)) => {
            if let Some(t) = throttle {
                t.succeeded(&identity.name);
            }
            ui.audit(
                AuditKind::Login,
                Some(&identity.name),
                &extensions,
                "/login",
                None,
                None,
                StatusCode::SEE_OTHER,
                None,
            );
            if let Some(old) = &visitor.session {
                ui.sessions.end(&old.id);
            }
            let session = ui.sessions.start(identity);
            let mut res = Redirect::to("/").into_response();
            res.headers_mut()
                .append(http::header::SET_COOKIE, ui.sessions.cookie(&session));
            res
        }
        Ok(None) | Err(_) => {
            if let Some(t) = throttle {
                t.failed(ip, user, &form.password);
            }
            ui.audit(
                AuditKind::LoginFailed,
                Some(&form.user),
                &extensions,
                "/login",
                None,
                None,
                StatusCode::UNAUTHORIZED,
                None,
            );
            ui.page(
                &visitor,
                StatusCode::UNAUTHORIZED,
                "login.html",
                context! { error => "Wrong user name or password.", last_user => form.user },
            )
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    csrf: String,
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    if !visitor.sent(&form.csrf) {
        return forged(&ui, &visitor);
    }
    if let Some(session) = &visitor.session {
        ui.sessions.end(&session.id);
    }
    let mut res = Redirect::to("/").into_response();
    res.headers_mut()
        .append(http::header::SET_COOKIE, ui.sessions.clear());
    res
}

#[derive(Deserialize)]
pub(crate) struct Target {
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// What a delete is about, checked: the repository (which the visitor may delete in), and a tag
/// or a manifest digest.
enum Doomed {
    Tag(RepositoryName, Tag),
    Manifest(RepositoryName, Digest),
}

fn doomed(ui: &Ui, visitor: &Visitor, t: &Target) -> Result<Doomed, Box<Response>> {
    let repo = match t.name.parse::<RepositoryName>() {
        Ok(r) if ui.may(visitor, &r, Action::Pull) => r,
        _ => {
            return Err(Box::new(ui.message(
                visitor,
                StatusCode::NOT_FOUND,
                "No such repository.",
            )));
        }
    };
    if ui.options.read_only || !ui.options.deletes {
        let why = match ui.options.read_only {
            true => "The registry is read-only.",
            false => "Deletes are disabled on this registry.",
        };
        return Err(Box::new(ui.message(
            visitor,
            StatusCode::METHOD_NOT_ALLOWED,
            why,
        )));
    }
    if !ui.may(visitor, &repo, Action::Delete) {
        return Err(Box::new(ui.message(
            visitor,
            StatusCode::FORBIDDEN,
            &format!("You may not delete in {repo}."),
        )));
    }
    match (&t.tag, &t.digest) {
        (Some(tag), None) => match tag.parse() {
            Ok(tag) => Ok(Doomed::Tag(repo, tag)),
            Err(_) => Err(Box::new(ui.message(
                visitor,
                StatusCode::NOT_FOUND,
                "No such tag.",
            ))),
        },
        (None, Some(digest)) => match digest.parse() {
            Ok(d) => Ok(Doomed::Manifest(repo, d)),
            Err(_) => Err(Box::new(ui.message(
                visitor,
                StatusCode::NOT_FOUND,
                "No such manifest.",
            ))),
        },
        _ => Err(Box::new(ui.message(
            visitor,
            StatusCode::BAD_REQUEST,
            "Name a tag or a digest.",
        ))),
    }
}

/// `GET /delete?name=&tag=|digest=`: the confirmation page.
pub(crate) async fn confirm_delete(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Query(target): Query<Target>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    let what = match doomed(&ui, &visitor, &target) {
        Ok(Doomed::Tag(repo, tag)) => format!("the tag {repo}:{tag}"),
        Ok(Doomed::Manifest(repo, d)) => {
            format!("the manifest {repo}@{d} and every tag pointing at it")
        }
        Err(res) => return *res,
    };
    ui.page(
        &visitor,
        StatusCode::OK,
        "confirm.html",
        context! { what => what, name => target.name, tag => target.tag, digest => target.digest },
    )
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    name: String,
    tag: Option<String>,
    digest: Option<String>,
    csrf: String,
}

/// The caller a UI change is made for.
fn caller(visitor: &Visitor) -> Caller {
    Caller {
        identity: visitor.name().map(|n| format!("{n} (web UI)")),
        origin: registry_core::feed::Origin::Ui,
        ..Caller::default()
    }
}

/// `POST /delete`: deletes, then back to the repository.
pub(crate) async fn delete(
    State(ui): State<Ui>,
    headers: HeaderMap,
    extensions: http::Extensions,
    Form(form): Form<DeleteForm>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    if !visitor.sent(&form.csrf) {
        return forged(&ui, &visitor);
    }
    let target = Target {
        name: form.name.clone(),
        tag: form.tag.filter(|t| !t.is_empty()),
        digest: form.digest.filter(|d| !d.is_empty()),
    };
    let registry = ui.registry.as_caller(caller(&visitor));
    let done = match doomed(&ui, &visitor, &target) {
        Ok(Doomed::Tag(repo, tag)) => registry.delete_tag(&repo, &tag).await,
        Ok(Doomed::Manifest(repo, d)) => registry.delete_manifest(&repo, &d).await,
        Err(res) => return *res,
    };
    let reference = target.tag.as_deref().or(target.digest.as_deref());
    let change = Change {
        path: "/delete",
        repository: &form.name,
        reference,
        next: format!("/repository?name={}", q(&form.name)),
    };
    change.outcome(&ui, &visitor, &extensions, done)
}

/// A change made through the UI: what the audit trail records, and the page to go to after.
struct Change<'a> {
    path: &'static str,
    repository: &'a str,
    reference: Option<&'a str>,
    next: String,
}

impl Change<'_> {
    /// Audits the change's outcome and answers: on to `next`, or the registry's refusal told as
    /// the API would tell it (the trail records the status the visitor gets).
    fn outcome(
        &self,
        ui: &Ui,
        visitor: &Visitor,
        extensions: &http::Extensions,
        done: registry_core::Result<()>,
    ) -> Response {
        let record = |kind, status, detail| {
            ui.audit(
                kind,
                visitor.name(),
                extensions,
                self.path,
                Some(self.repository),
                self.reference,
                status,
                detail,
            )
        };
        match done {
            Ok(()) => {
                record(AuditKind::Write, StatusCode::SEE_OTHER, None);
                go(&self.next)
            }
            Err(e) => {
                let message = e.to_string();
                let status = crate::error::ApiError::from(e).status();
                record(AuditKind::Refused, status, Some(message.clone()));
                ui.message(visitor, status, &message)
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct RestoreForm {
    name: String,
    tag: String,
    to: Option<String>,
    csrf: String,
}

/// `POST /restore`: points a tag back at a digest from its history.
pub(crate) async fn restore(
    State(ui): State<Ui>,
    headers: HeaderMap,
    extensions: http::Extensions,
    Form(form): Form<RestoreForm>,
) -> Response {
    let visitor = ui.visitor(&headers).await;
    if !visitor.sent(&form.csrf) {
        return forged(&ui, &visitor);
    }
    let repo = match form.name.parse::<RepositoryName>() {
        Ok(r) if ui.may(&visitor, &r, Action::Pull) => r,
        _ => return ui.message(&visitor, StatusCode::NOT_FOUND, "No such repository."),
    };
    if ui.options.read_only || !ui.may(&visitor, &repo, Action::Push) {
        return ui.message(
            &visitor,
            StatusCode::FORBIDDEN,
            &format!("You may not push to {repo}."),
        );
    }
    let (Ok(tag), to) = (
        form.tag.parse::<Tag>(),
        form.to.as_deref().filter(|t| !t.is_empty()),
    ) else {
        return ui.message(&visitor, StatusCode::NOT_FOUND, "No such tag.");
    };
    let to = match to.map(str::parse::<Digest>).transpose() {
        Ok(to) => to,
        Err(_) => return ui.message(&visitor, StatusCode::NOT_FOUND, "No such manifest."),
    };
    let registry = ui.registry.as_caller(caller(&visitor));
    let done = registry
        .restore_tag(&repo, &tag, to.as_ref())
        .await
        .map(drop);
    let change = Change {
        path: "/restore",
        repository: &form.name,
        reference: Some(&form.tag),
        next: format!("/history?name={}&tag={}", q(&form.name), q(&form.tag)),
    };
    change.outcome(&ui, &visitor, &extensions, done)
}
