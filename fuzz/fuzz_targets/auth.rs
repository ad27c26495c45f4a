//! Authentication input: any `Authorization` header, any requested scope, any bearer token is
//! read or refused without a panic, and a token not signed by the trusted key is never accepted.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use registry_http::auth::token::{TokenAuth, TokenIssuer};
use registry_http::AccessControl;
use registry_http::Credentials;
use registry_http::Grant;
use registry_http::Htpasswd;

fn verifier() -> &'static TokenAuth {
    static AUTH: OnceLock<TokenAuth> = OnceLock::new();
    AUTH.get_or_init(|| {
        let users = Arc::new(Htpasswd::parse("", "fuzz").expect("empty htpasswd"));
        let issuer = TokenIssuer::new(users, "svc", "iss", Duration::from_secs(60), None).expect("issuer");
        issuer.verifier("https://fuzz.invalid/token")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(g) = Grant::parse_scope(text) {
            assert!(g.kind == "repository" || (g.kind == "registry" && g.name == "catalog"));
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let who = rt.block_on(verifier().identify(&Credentials::Bearer(text.to_owned())));
        assert!(who.is_err(), "an unsigned token was accepted");
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value);
        let _ = registry_http::auth::access::credentials(&h);
    }
});
