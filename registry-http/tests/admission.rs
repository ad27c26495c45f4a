//! The admission hook through HTTP: a rule's refusal reaches the client as `DENIED` (403) with
//! its message and changes nothing; the rule sees who asks and through which request, and so does
//! the tag's history.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;

use common::*;
use registry_core::admission::{Admission, Caller, Change, Refusal};

/// Tags `v…` are set once; the rule remembers every caller it saw.
#[derive(Default)]
struct Frozen {
    seen: Mutex<Vec<Caller>>,
}

#[async_trait::async_trait]
impl Admission for Frozen {
    async fn admit(&self, change: &Change<'_>, caller: &Caller) -> Result<(), Refusal> {
        self.seen.lock().unwrap().push(caller.clone());
        match change {
            Change::MoveTag {
                tag,
                from: Some(from),
                to,
                ..
            } if tag.as_str().starts_with('v') && from != to => {
                Err(Refusal::new(format!("{tag} is frozen")))
            }
            Change::DeleteTag { tag, .. } if tag.as_str().starts_with('v') => {
                Err(Refusal::new(format!("{tag} is frozen")))
            }
            Change::DeleteManifest { tags, .. }
                if tags.iter().any(|t| t.as_str().starts_with('v')) =>
            {
                Err(Refusal::new("a frozen tag points at it"))
            }
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn admission_rules_refuse_with_denied_and_change_nothing() {
    let rule = Arc::new(Frozen::default());
    let registry = Registry::new(Arc::new(MemoryStorage::new()), RegistryConfig::default())
        .with_admission(rule.clone());
    let app = registry_http::router(registry.clone());
    let (first, _) = push_image(&app, "r", "v1").await;
    // Pushing the same digest again passes (a retry); another digest is refused.
    let (same, _) = push_image(&app, "r", "v1").await;
    assert_eq!(same, first);
    let c = push_blob(&app, "r", b"{\"other\":1}").await;
    let other = manifest((&c, 11), &[]);
    let res = call(&app, Method::PUT, "/v2/r/manifests/v1")
        .headers(&[("content-type", OCI_MANIFEST), ("x-request-id", "req-42")])
        .send(other.clone())
        .await;
    assert_eq!(
        (res.status, res.code().as_str()),
        (StatusCode::FORBIDDEN, "DENIED")
    );
    assert!(
        res.body_text().contains("v1 is frozen"),
        "{}",
        res.body_text()
    );
    let res = head(
        &app,
        &format!("/v2/r/manifests/{}", Digest::of(other.as_bytes())),
    )
    .await;
    assert_eq!(
        res.status,
        StatusCode::NOT_FOUND,
        "a refused manifest was stored"
    );
    let res = get(&app, "/v2/r/manifests/v1").await;
    assert_eq!(res.header("docker-content-digest"), first.to_string());
    // Deletes of the tag, or of its manifest, are refused too.
    let res = delete(&app, "/v2/r/manifests/v1").await;
    assert_eq!(res.code(), "DENIED");
    let res = delete(&app, &format!("/v2/r/manifests/{first}")).await;
    assert_eq!(res.code(), "DENIED");
    assert!(res.body_text().contains("a frozen tag points at it"));
    assert_eq!(get(&app, "/v2/r/manifests/v1").await.status, StatusCode::OK);
    // Other tags are free.
    push_image(&app, "r", "latest").await;
    assert_eq!(
        delete(&app, "/v2/r/manifests/latest").await.status,
        StatusCode::ACCEPTED
    );
    let seen = rule.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|c| c.request_id.as_deref() == Some("req-42")),
        "the rule never saw the request's id: {seen:?}"
    );
    // The tag's history: created, then the move and the delete of `latest`.
    let v1 = registry
        .tag_history(&"r".parse().unwrap(), &"v1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(v1.len(), 1, "{v1:?}");
    assert_eq!(
        (v1[0].from.as_ref(), v1[0].to.as_ref()),
        (None, Some(&first))
    );
    let latest = registry
        .tag_history(&"r".parse().unwrap(), &"latest".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(latest.len(), 2, "{latest:?}");
    assert!(latest[1].to.is_none(), "the delete was not kept");
}
