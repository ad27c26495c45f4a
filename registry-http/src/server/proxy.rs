//! Clients behind load balancers and proxies: only peers in [`TrustedProxies`] may name the
//! client, with a PROXY protocol header (v1 or v2, as HAProxy's `send-proxy` and
//! `send-proxy-v2` write) at the start of their connections, or with `X-Forwarded-For` /
//! `Forwarded` headers on their requests. Anyone else's headers are ignored: a client cannot
//! pose as another address to escape the login throttle or a connection cap.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::HeaderMap;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Error;

/// The peers (CIDRs) trusted to name the clients they forward.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

/// The longest PROXY protocol v1 header, `\r\n` included.
const V1_MAX: usize = 107;
/// What a v2 header starts with.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`) and single addresses (`127.0.0.1`).
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, Error> {
        let nets = entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| Error::Proxy {
                        reason: format!("trusted_proxies: {e:?} is neither a CIDR nor an address"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies(nets))
    }

    /// Whether `ip` is a trusted proxy (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client a request from a trusted proxy names: walking `X-Forwarded-For` (or else
    /// `Forwarded: for=`) from the right, the first address that is not itself a trusted proxy.
    /// `None` when the headers name none (the peer is then the client).
    pub fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let values = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .collect::<Vec<_>>()
        };
        let mut hops: Vec<IpAddr> = values("x-forwarded-for")
            .into_iter()
            .filter_map(parse_hop)
            .collect();
        if hops.is_empty() {
            hops = values("forwarded")
                .into_iter()
                .flat_map(|element| element.split(';'))
                .filter_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.eq_ignore_ascii_case("for").then_some(value)
                })
                .filter_map(parse_hop)
                .collect();
        }
        hops.into_iter().rev().find(|ip| !self.trusts(*ip))
    }
}

/// One hop of a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// Reads a PROXY protocol header (v1 or v2) at the start of `stream`, exactly its bytes and
/// nothing after them, within `deadline`: the client it names, or `None` for a header that names
/// none (a health check's `LOCAL`, v1's `UNKNOWN`). An error for anything else: a trusted proxy
/// that speaks the PROXY protocol always sends one.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    deadline: Duration,
) -> std::io::Result<Option<SocketAddr>> {
    tokio::time::timeout(deadline, read(stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no PROXY header in time"))?
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<SocketAddr>> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let mut buf = vec![0u8; 6];
    stream.read_exact(&mut buf).await?;
    if buf == b"PROXY " {
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(invalid("PROXY v1 header too long".into()));
            }
            buf.push(stream.read_u8().await?);
        }
    } else if V2_SIGNATURE.starts_with(&buf) {
        buf.resize(16, 0);
        stream.read_exact(&mut buf[6..]).await?;
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        buf.resize(16 + len, 0);
        stream.read_exact(&mut buf[16..]).await?;
    } else {
        return Err(invalid("no PROXY protocol header".into()));
    }
    match ppp::HeaderResult::parse(&buf) {
        ppp::HeaderResult::V1(Ok(header)) => Ok(match header.addresses {
            ppp::v1::Addresses::Tcp4(a) => {
                Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            ppp::v1::Addresses::Tcp6(a) => {
                Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            ppp::v1::Addresses::Unknown => None,
        }),
        ppp::HeaderResult::V2(Ok(header)) => Ok(match (header.command, header.addresses) {
            (ppp::v2::Command::Local, _) => None,
            (_, ppp::v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            (_, ppp::v2::Addresses::IPv6(a)) => {
                Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            _ => None,
        }),
        ppp::HeaderResult::V1(Err(e)) => Err(invalid(format!("PROXY v1 header: {e}"))),
        ppp::HeaderResult::V2(Err(e)) => Err(invalid(format!("PROXY v2 header: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn forwarded_headers_name_the_first_untrusted_hop_from_the_right() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
        assert!(trusted.trusts("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!trusted.trusts("192.0.2.1".parse().unwrap()));
        let mut h = HeaderMap::new();
        // A client may prepend anything; only what the trusted proxies appended counts.
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 192.0.2.7, 10.0.0.2".parse().unwrap(),
        );
        assert_eq!(
            trusted.forwarded_client(&h),
            Some("192.0.2.7".parse().unwrap())
        );
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8::7]:4711";proto=https"#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trusted.forwarded_client(&h),
            Some("2001:db8::7".parse().unwrap())
        );
        assert_eq!(trusted.forwarded_client(&HeaderMap::new()), None);
        assert!(TrustedProxies::parse(&["not a net".into()]).is_err());
    }

    #[tokio::test]
    async fn proxy_headers_are_read_to_their_last_byte() {
        let v1 = b"PROXY TCP4 192.0.2.9 10.0.0.1 4711 5000\r\nGET / HTTP/1.1\r\n";
        let mut stream = &v1[..];
        let client = read_header(&mut stream, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(client, Some("192.0.2.9:4711".parse().unwrap()));
        assert_eq!(
            stream, b"GET / HTTP/1.1\r\n",
            "bytes after the header were taken"
        );
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend([
            0x21, 0x11, 0, 12, 198, 51, 100, 4, 10, 0, 0, 1, 0x12, 0x67, 0x13, 0x88,
        ]);
        v2.extend(b"\x16\x03\x01");
        let mut stream = &v2[..];
        let client = read_header(&mut stream, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(client, Some("198.51.100.4:4711".parse().unwrap()));
        assert_eq!(stream, b"\x16\x03\x01");
        let mut stream = &b"PROXY UNKNOWN\r\n"[..];
        assert_eq!(
            read_header(&mut stream, Duration::from_secs(1))
                .await
                .unwrap(),
            None
        );
        for bad in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"PROXY TCP4 nonsense\r\n"] {
            let mut stream = bad;
            assert!(
                read_header(&mut stream, Duration::from_secs(1))
                    .await
                    .is_err()
            );
        }
    }
}
