//! What the mirror trusts an upstream to point it at: the redirects it follows, the token realms
//! it sends credentials to, the addresses it connects to. An upstream on the internet must not
//! turn the mirror into a way into the network it runs in (a redirect to a cloud metadata
//! service, a realm on a private host) nor into a way to read credentials (a realm over plain
//! HTTP on another host).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::remote::error::MirrorError;

/// Which redirects an upstream may send the mirror to (`[mirror] redirects`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Redirects {
    /// To the upstream's own origin, or over HTTPS to hosts on public addresses (private ones
    /// too when the upstream itself is on a private or loopback address): what registries and
    /// their CDNs and object stores need. The default.
    #[default]
    Public,
    /// Anywhere (credentials still go to the upstream's origin only).
    Any,
    /// Nowhere: a redirect is an upstream failure.
    None,
}

/// Whether `ip` is only reachable within a host or a private network: loopback, private,
/// link-local, unique-local, shared (CGNAT), unspecified, multicast, broadcast or documentation
/// addresses, and IPv4 addresses mapped into IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [first, second, ..] = a.octets();
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || first == 0
                || (first == 100 && second & 0xc0 == 64)
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Whether a URL's host is internal, as far as can be told without resolving it: an address
/// literal, or `localhost`. `None` for a name.
fn literal_is_internal(url: &Url) -> Option<bool> {
    match url.host()? {
        url::Host::Ipv4(a) => Some(is_internal(IpAddr::V4(a))),
        url::Host::Ipv6(a) => Some(is_internal(IpAddr::V6(a))),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost")).then_some(true)
        }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// One upstream's trust: its origin, whether it is internal itself, and the redirect policy.
#[derive(Debug)]
pub struct Trust {
    upstream: Url,
    /// The upstream is on an internal address (known from its URL, or from resolving it).
    internal: AtomicBool,
    redirects: Redirects,
}

impl Trust {
    /// The trust of the upstream at `upstream`.
    pub fn new(upstream: &Url, redirects: Redirects) -> Arc<Trust> {
        Arc::new(Trust {
            upstream: upstream.clone(),
            internal: AtomicBool::new(literal_is_internal(upstream).unwrap_or(false)),
            redirects,
        })
    }

    fn upstream_internal(&self) -> bool {
        self.internal.load(Ordering::Relaxed)
    }

    /// Whether the mirror may follow a redirect to `target`; why not, when it may not.
    pub fn may_follow(&self, target: &Url) -> Result<(), MirrorError> {
        match self.redirects {
            Redirects::Any => Ok(()),
            Redirects::None => Err(MirrorError::RedirectsOff),
            Redirects::Public if same_origin(target, &self.upstream) => Ok(()),
            Redirects::Public if target.scheme() != "https" => Err(MirrorError::RedirectNotHttps {
                target: target.to_string(),
            }),
            Redirects::Public => self.may_reach(target),
        }
    }

    /// Whether the mirror may connect to `target` (a redirect's or a token realm's), as far as
    /// its URL tells: an internal address only when the upstream is internal too. Names are
    /// checked again when resolved ([`Trust::resolver`]).
    pub fn may_reach(&self, target: &Url) -> Result<(), MirrorError> {
        if self.redirects != Redirects::Any
            && !same_origin(target, &self.upstream)
            && literal_is_internal(target) == Some(true)
            && !self.upstream_internal()
        {
            return Err(MirrorError::InternalAddress {
                target: target.to_string(),
            });
        }
        Ok(())
    }

    /// Whether credentials may go to a token realm the upstream names: over HTTPS, or to the
    /// upstream's own origin.
    pub fn may_send_credentials(&self, realm: &Url) -> bool {
        realm.scheme() == "https" || same_origin(realm, &self.upstream)
    }

    /// A DNS resolver for the upstream's client that resolves names only to addresses the mirror
    /// may reach: any for the upstream's own host (which tells whether the upstream is
    /// internal), public ones for other hosts unless the upstream is internal.
    pub fn resolver(self: &Arc<Self>) -> Arc<TrustedResolver> {
        Arc::new(TrustedResolver {
            trust: self.clone(),
        })
    }
}

/// See [`Trust::resolver`].
#[derive(Debug)]
pub struct TrustedResolver {
    trust: Arc<Trust>,
}

impl Resolve for TrustedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let trust = self.trust.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let own = trust.upstream.host_str() == Some(host.as_str());
            if own {
                if found.iter().any(|a| is_internal(a.ip())) {
                    trust.internal.store(true, Ordering::Relaxed);
                }
                return Ok(Box::new(found.into_iter()) as Addrs);
            }
            let open = trust.redirects == Redirects::Any || trust.upstream_internal();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| open || !is_internal(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to internal addresses only").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn internal_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "100.128.0.1", "2a00:1450::1", "::ffff:1.1.1.1"] {
            assert!(!is_internal(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn a_public_upstream_is_followed_to_public_https_hosts_only() {
        let t = Trust::new(&url("https://registry-1.docker.io/"), Redirects::Public);
        assert!(
            t.may_follow(&url("https://production.cloudflare.docker.com/x"))
                .is_ok()
        );
        assert!(
            t.may_follow(&url("https://registry-1.docker.io/v2/x"))
                .is_ok()
        );
        assert!(
            t.may_follow(&url("http://cdn.example.com/x")).is_err(),
            "plain http"
        );
        for internal in [
            "https://169.254.169.254/latest/meta-data/iam",
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://[::1]/x",
            "https://10.0.0.5/x",
        ] {
            assert!(t.may_follow(&url(internal)).is_err(), "{internal}");
            assert!(t.may_reach(&url(internal)).is_err(), "{internal}");
        }
        assert!(t.may_send_credentials(&url("https://auth.docker.io/token")));
        assert!(!t.may_send_credentials(&url("http://auth.docker.io/token")));
    }

    #[test]
    fn an_internal_upstream_may_point_at_internal_https_hosts() {
        let t = Trust::new(&url("http://127.0.0.1:5000/"), Redirects::Public);
        assert!(t.may_follow(&url("https://10.0.0.5/bucket/x")).is_ok());
        assert!(
            t.may_follow(&url("http://127.0.0.1:5000/v2/x")).is_ok(),
            "same origin"
        );
        assert!(
            t.may_follow(&url("http://localhost:9999/latest/meta-data/iam"))
                .is_err(),
            "plain http to another origin"
        );
        assert!(t.may_send_credentials(&url("http://127.0.0.1:5000/token")));
        assert!(
            !t.may_send_credentials(&url("http://127.0.0.1:6000/token")),
            "plain http to another port is another origin"
        );
    }

    #[test]
    fn redirect_policies() {
        let any = Trust::new(&url("https://r.example.com/"), Redirects::Any);
        assert!(any.may_follow(&url("http://10.0.0.1/x")).is_ok());
        let none = Trust::new(&url("https://r.example.com/"), Redirects::None);
        assert!(none.may_follow(&url("https://r.example.com/v2/x")).is_err());
    }
}
