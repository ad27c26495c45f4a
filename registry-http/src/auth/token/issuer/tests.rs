use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::Header;
use registry_core::RepositoryName;

use super::super::*;
use super::*;
use crate::auth::htpasswd::Htpasswd;
use crate::auth::policy::{AccessRules, Rule};

fn issuer() -> TokenIssuer {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let rules = AccessRules::new(
        vec![
            Rule {
                repositories: vec!["public/*".into()],
                users: vec!["anonymous".into()],
                actions: vec!["pull".into()],
                ..Default::default()
            },
            Rule {
                repositories: vec!["{user}/*".into()],
                users: vec!["*".into()],
                actions: vec!["*".into()],
                ..Default::default()
            },
        ],
        HashMap::new(),
    );
    let users = Htpasswd::parse(&format!("alice:{hash}"), "registry").unwrap();
    let gate = crate::auth::gate::Gate::new("registry")
        .users(Arc::new(users))
        .rules(rules);
    TokenIssuer::new(
        Arc::new(gate),
        "registry.test",
        "issuer.test",
        Duration::from_secs(300),
        None,
    )
    .unwrap()
}

/// Seconds since the Unix epoch, by the system's clock.
fn now() -> u64 {
    unix_secs(std::time::SystemTime::now())
}

fn scope(s: &str) -> Grant {
    Grant::parse_scope(s).unwrap()
}

/// Access-token claims valid for a minute, from `iss` for `aud`.
fn claims(iss: &str, aud: &str, sub: &str, access: &str) -> Claims {
    Claims {
        iss: iss.into(),
        sub: sub.into(),
        aud: Audience::One(aud.into()),
        exp: now() + 60,
        nbf: Some(now()),
        iat: Some(now()),
        jti: Some("j".into()),
        access: vec![scope(access)],
        typ: None,
        stamp: None,
        src: None,
        groups: Vec::new(),
    }
}

/// A verifier for `registry.test` trusting the keys of this JWKS text, issued by `auth.test`.
fn jwks_verifier(dir: &Path, jwks: &str) -> TokenAuth {
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks).unwrap();
    TokenAuth::new("https://auth.test/token", "registry.test", "auth.test")
        .with_jwks_file(&path)
        .unwrap()
}

#[test]
fn scopes() {
    assert_eq!(scope("repository:a/b:pull,push").actions, ["pull", "push"]);
    assert_eq!(scope("registry:catalog:*").name, "catalog");
    for bad in [
        "repository:A:pull",
        "repository::pull",
        "x:y:z",
        "repository:a",
        "registry:other:*",
    ] {
        assert!(Grant::parse_scope(bad).is_none(), "{bad}");
    }
}

#[test]
fn grants_are_the_intersection_of_asked_and_allowed() {
    let i = issuer();
    let alice = Identity::user("alice");
    let asked = [
        scope("repository:alice/app:pull,push"),
        scope("repository:bob/app:pull,push"),
        scope("repository:public/x:pull,push"),
    ];
    let got = i.grant(Some(&alice), &asked);
    assert_eq!(
        got,
        [
            scope("repository:alice/app:pull,push"),
            scope("repository:public/x:pull")
        ]
    );
    let anon = i.grant(None, &asked);
    assert_eq!(anon, [scope("repository:public/x:pull")]);
    assert!(
        i.grant(Some(&alice), &[scope("registry:catalog:*")])
            .is_empty()
    );
}

#[tokio::test]
async fn tokens_are_verified() {
    let i = issuer();
    let auth = i.verifier("https://r.test/token");
    let repo: RepositoryName = "alice/app".parse().unwrap();
    let good = i
        .sign(
            Some(&Identity::user("alice")),
            vec![scope("repository:alice/app:pull")],
            Duration::from_secs(60),
            false,
        )
        .unwrap();
    let who = auth.identify(&Credentials::Bearer(good)).await.unwrap();
    assert!(auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Pull]));
    assert!(
        !auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Push]),
        "wrong scope accepted"
    );
    let challenge = auth
        .challenge(who.as_ref(), Resource::Repository(&repo), &[Action::Push])
        .unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"repository:alice/app:push\""),
        "{challenge}"
    );

    let mut expired = claims(
        "issuer.test",
        "registry.test",
        "alice",
        "repository:alice/app:pull",
    );
    (expired.exp, expired.nbf, expired.iat) = (now() - 120, Some(now() - 300), Some(now() - 300));
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(i.kid.clone());
    let sign = |c: &Claims| jsonwebtoken::encode(&header, c, &i.key).unwrap();
    let refused = |t: String| {
        let auth = &auth;
        async move { auth.identify(&Credentials::Bearer(t)).await.is_err() }
    };
    assert!(refused(sign(&expired)).await, "expired token accepted");
    expired.exp = now() + 60;
    expired.nbf = Some(now() + 120);
    assert!(
        refused(sign(&expired)).await,
        "token not yet valid accepted"
    );
    expired.nbf = Some(now());
    assert!(!refused(sign(&expired)).await, "valid token refused");
    expired.aud = Audience::One("other.service".into());
    assert!(refused(sign(&expired)).await, "wrong audience accepted");
    expired.aud = Audience::Many(vec!["other.service".into()]);
    assert!(refused(sign(&expired)).await, "wrong audiences accepted");
    // RFC 7519: nbf, iat and jti are optional, and aud may be an array.
    (expired.nbf, expired.iat, expired.jti) = (None, None, None);
    expired.aud = Audience::Many(vec!["other.service".into(), "registry.test".into()]);
    assert!(
        !refused(sign(&expired)).await,
        "a token with an audience array and without nbf, iat and jti refused"
    );
    expired.aud = Audience::One("registry.test".into());
    expired.iss = "someone.else".into();
    assert!(refused(sign(&expired)).await, "wrong issuer accepted");
    let forger = issuer();
    let forged = forger
        .sign(
            Some(&Identity::user("alice")),
            vec![scope("repository:alice/app:pull")],
            Duration::from_secs(60),
            false,
        )
        .unwrap();
    assert!(refused(forged).await, "forged token accepted");
    let refresh = i
        .sign(
            Some(&Identity::user("alice")),
            vec![scope("repository:alice/app:pull")],
            Duration::from_secs(60),
            true,
        )
        .unwrap();
    assert!(
        refused(refresh).await,
        "refresh token accepted as access token"
    );
    assert!(refused("not.a.token".into()).await);
    assert!(
        auth.identify(&Credentials::Basic {
            user: "alice".into(),
            password: "pw".into()
        })
        .await
        .is_err()
    );
    assert_eq!(auth.identify(&Credentials::Anonymous).await.unwrap(), None);
}

/// Tokens are dated and checked by the issuer's clock: an access token of a minute is accepted
/// until a minute and the leeway have passed, then refused; a refresh token likewise at its end.
#[tokio::test]
async fn tokens_end_when_the_clock_passes_their_lifetime() {
    let clock = registry_core::clock::OffsetClock::default();
    let i = issuer().with_clock(Arc::new(clock.clone()));
    let auth = i.verifier("https://r.test/token");
    let alice = Identity {
        stamp: Some("s".into()),
        ..Identity::user("alice")
    };
    let grant = || vec![scope("repository:alice/app:pull")];
    let token = i
        .sign(Some(&alice), grant(), Duration::from_secs(60), false)
        .unwrap();
    let refresh = i
        .sign(Some(&alice), grant(), REFRESH_LIFETIME, true)
        .unwrap();
    let accepted = |t: &str| {
        let auth = &auth;
        let t = t.to_owned();
        async move { auth.identify(&Credentials::Bearer(t)).await.is_ok() }
    };
    clock.advance(Duration::from_secs(60));
    assert!(accepted(&token).await, "refused within the leeway");
    clock.advance(Duration::from_secs(LEEWAY_SECS + 1));
    assert!(!accepted(&token).await, "accepted past its end");
    assert_eq!(
        i.refreshed(&refresh).await.unwrap_err(),
        "the user is gone or their password changed",
        "a live refresh token is checked by its source"
    );
    clock.advance(REFRESH_LIFETIME);
    assert_eq!(
        i.refreshed(&refresh).await.unwrap_err(),
        "the token has expired"
    );
    // A token the issuer signs now is dated by its clock, and accepted.
    let fresh = i
        .sign(Some(&alice), grant(), Duration::from_secs(60), false)
        .unwrap();
    assert!(accepted(&fresh).await);
}

#[tokio::test]
async fn refresh_tokens_die_with_the_password_or_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    let entry = |user: &str| format!("{user}:{}\n", bcrypt::hash("pw", 4).unwrap());
    std::fs::write(&file, entry("alice") + &entry("bob")).unwrap();
    let users = Arc::new(Htpasswd::load(&file, "r").unwrap());
    let i = TokenIssuer::new(users.clone(), "svc", "iss", Duration::from_secs(60), None).unwrap();
    let login = async |user: &str| {
        let creds = Credentials::Basic {
            user: user.into(),
            password: "pw".into(),
        };
        users.identify(&creds).await.unwrap().unwrap()
    };
    let refresh = |who: &Identity| i.sign(Some(who), Vec::new(), REFRESH_LIFETIME, true);
    let (alice, bob) = (
        refresh(&login("alice").await).unwrap(),
        refresh(&login("bob").await).unwrap(),
    );
    assert_eq!(i.refreshed(&alice).await.unwrap().name, "alice");
    assert_eq!(i.refreshed(&bob).await.unwrap().name, "bob");
    // Alice sets the same password again (a new salt), Bob is removed.
    std::fs::write(&file, entry("alice")).unwrap();
    assert!(users.reload().await.unwrap());
    assert!(
        i.refreshed(&alice).await.is_err(),
        "survived a password change"
    );
    assert!(
        i.refreshed(&bob).await.is_err(),
        "survived the user's removal"
    );
    let fresh = refresh(&login("alice").await).unwrap();
    assert_eq!(i.refreshed(&fresh).await.unwrap().name, "alice");
    // An identity without a stamp (a provider's, a certificate's) gets none that works, and
    // one whose credentials end gets nothing past them.
    let stampless = refresh(&Identity::user("alice")).unwrap();
    assert!(i.refreshed(&stampless).await.is_err());
    let soon = std::time::SystemTime::now() + Duration::from_secs(20);
    let provider = Identity {
        expires: Some(soon),
        ..Identity::from_source("gitlab:alice", "oidc:gitlab")
    };
    let res = respond(&i, Some(&provider), Vec::new(), true);
    let body: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["expires_in"].as_u64().unwrap() <= 20, "{body}");
}

#[tokio::test]
async fn outside_tokens_verified_with_a_jwks_file() {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let dir = tempfile::tempdir().unwrap();
    let auth = jwks_verifier(
        dir.path(),
        &format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"k1","alg":"EdDSA"}}]}}"#
        ),
    );
    let claims = claims(
        "auth.test",
        "registry.test",
        "bob",
        "repository:bob/app:pull,push",
    );
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let token =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(pkcs8.as_ref())).unwrap();
    let who = auth.identify(&Credentials::Bearer(token)).await.unwrap();
    let repo: RepositoryName = "bob/app".parse().unwrap();
    assert!(auth.allows(
        who.as_ref(),
        Resource::Repository(&repo),
        &[Action::Pull, Action::Push]
    ));
    assert!(!auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Delete]));
}

#[tokio::test]
async fn a_loaded_key_signs_what_its_pem_public_key_verifies() {
    let pair = rcgen::KeyPair::generate().unwrap();
    let users = Arc::new(Htpasswd::parse("", "r").unwrap());
    let issuer = TokenIssuer::new(
        users,
        "svc",
        "iss",
        Duration::from_secs(60),
        Some(pair.serialize_pem().as_bytes()),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("token.pub.pem");
    std::fs::write(&public, pair.public_key_pem()).unwrap();
    let auth = TokenAuth::new("https://r.test/token", "svc", "iss")
        .with_pem_file(&public)
        .unwrap();
    let token = issuer
        .sign(
            Some(&Identity::user("carol")),
            vec![scope("repository:carol/x:pull")],
            Duration::from_secs(60),
            false,
        )
        .unwrap();
    let who = auth
        .identify(&Credentials::Bearer(token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(who.name, "carol");
    assert!(
        TokenIssuer::new(
            Arc::new(Htpasswd::parse("", "r").unwrap()),
            "s",
            "i",
            Duration::from_secs(1),
            Some(b"not a key")
        )
        .is_err()
    );
    assert!(
        TokenAuth::new("r", "s", "i")
            .with_pem_file(&dir.path().join("missing.pem"))
            .is_err()
    );
}

#[tokio::test]
async fn outside_rs256_tokens_verified_with_a_jwks_file() {
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
    let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let public = pair.public_key();
    let n = b64.encode(public.modulus().big_endian_without_leading_zero());
    let e = b64.encode(public.exponent().big_endian_without_leading_zero());
    let dir = tempfile::tempdir().unwrap();
    let auth = jwks_verifier(
        dir.path(),
        &format!(r#"{{"keys":[{{"kty":"RSA","n":"{n}","e":"{e}","kid":"r1","alg":"RS256"}}]}}"#),
    );
    let claims = claims(
        "auth.test",
        "registry.test",
        "erin",
        "repository:erin/app:pull",
    );
    let signing_input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"RS256","typ":"JWT","kid":"r1"}"#),
        b64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let token = format!("{signing_input}.{}", b64.encode(&sig));
    let who = auth
        .identify(&Credentials::Bearer(token.clone()))
        .await
        .unwrap();
    let repo: RepositoryName = "erin/app".parse().unwrap();
    assert!(auth.allows(who.as_ref(), Resource::Repository(&repo), &[Action::Pull]));
    let mut tampered = token.into_bytes();
    let last = tampered.len() - 5;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert!(
        auth.identify(&Credentials::Bearer(String::from_utf8(tampered).unwrap()))
            .await
            .is_err()
    );
}
