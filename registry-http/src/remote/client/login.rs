//! How the client logs in to another registry: the challenge of a 401 answered with Basic
//! credentials or a bearer token from the realm it names, tokens kept per scope.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::HeaderMap;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};

use super::{MAX_TOKEN_LIFETIME, Upstream, UpstreamError};

impl Upstream {
    pub(super) fn cached_auth(&self, scope: &str) -> Option<String> {
        self.tokens
            .get(scope)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t)
    }

    /// The `Authorization` value answering a 401's challenge: Basic credentials, or a bearer token
    /// from the realm it names.
    pub(super) async fn answer(
        &self,
        headers: &HeaderMap,
        scope: &str,
    ) -> Result<String, UpstreamError> {
        let refused = |why: &str| {
            UpstreamError::Refused(format!("upstream {} refused access: {why}", self.base))
        };
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refused("401 without a challenge"))?;
        let (scheme, params) = challenge_params(challenge);
        match scheme.as_str() {
            "basic" => match &self.credentials {
                Some((user, password)) => {
                    let auth = basic(user, password);
                    let until = Instant::now() + MAX_TOKEN_LIFETIME;
                    self.tokens.insert(scope.to_owned(), (auth.clone(), until));
                    Ok(auth)
                }
                None => Err(refused("it wants credentials and none are configured")),
            },
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| refused("bearer challenge without a realm"))?;
                let mut url = reqwest::Url::parse(realm).map_err(|e| refused(&e.to_string()))?;
                self.trust
                    .may_reach(&url)
                    .map_err(|why| refused(&format!("token realm refused: {why}")))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(service) = params.get("service") {
                        q.append_pair("service", service);
                    }
                    q.append_pair("scope", scope);
                }
                let send_credentials = self.trust.may_send_credentials(&url);
                let mut req = self.client.get(url);
                match &self.credentials {
                    Some((user, password)) if send_credentials => {
                        req = req.header(AUTHORIZATION, basic(user, password));
                    }
                    Some(_) => tracing::warn!(
                        upstream = %self.base,
                        "token realm {realm} is plain HTTP on another origin: asking it anonymously"
                    ),
                    None => {}
                }
                let res = req.send().await.map_err(|e| self.err("token", e))?;
                if !res.status().is_success() {
                    return Err(refused(&format!(
                        "its token server answered {}",
                        res.status()
                    )));
                }
                let body = self.read_limited(res, 1 << 20, "token").await?;
                let body: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| refused(&format!("unreadable token: {e}")))?;
                let token = body["token"]
                    .as_str()
                    .or_else(|| body["access_token"].as_str())
                    .ok_or_else(|| refused("token response without a token"))?
                    .to_owned();
                let announced = body["expires_in"].as_u64().unwrap_or(60);
                let lifetime =
                    Duration::from_secs(announced.clamp(20, MAX_TOKEN_LIFETIME.as_secs()));
                let until = Instant::now() + lifetime - Duration::from_secs(10);
                let auth = format!("Bearer {token}");
                self.tokens.insert(scope.to_owned(), (auth.clone(), until));
                Ok(auth)
            }
            other => Err(refused(&format!("unknown authentication scheme {other}"))),
        }
    }
}

/// The parameters of a `WWW-Authenticate` challenge.
fn challenge_params(value: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (val, next) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        params.insert(key, val.to_owned());
        rest = next.trim_start_matches(',').trim();
    }
    (scheme.to_ascii_lowercase(), params)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (scheme, p) = challenge_params(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/alpine:pull");
        let (scheme, p) = challenge_params(r#"Basic realm="basic-realm""#);
        assert_eq!(scheme, "basic");
        assert_eq!(p["realm"], "basic-realm");
        let (_, p) = challenge_params("Bearer realm=https://x/t, service=reg");
        assert_eq!(p["realm"], "https://x/t");
        assert_eq!(p["service"], "reg");
        assert!(challenge_params("Negotiate").1.is_empty());
    }
}
