//! [`serve`]: an HTTP/1.1 and HTTP/2 server loop for the registry router, plain or TLS (rustls,
//! HTTP/2 by ALPN), with the limits that keep it serving everyone when some clients misbehave:
//!
//! - a cap on connections served at once, and on those from one address;
//! - a deadline for a connection's first bytes (the TLS handshake, then enough to know the
//!   protocol), so that a socket that says nothing, or stops inside the HTTP/2 preface, goes;
//! - a timeout on each request's headers (HTTP/1.1; it also closes idle keep-alive connections);
//! - an idle timeout: a connection with no request in flight for that long is closed (HTTP/2
//!   with `GOAWAY`), whatever pings it answers;
//! - a stall timeout: a response the client stops reading for that long ends its connection;
//! - graceful shutdown;
//!
//! and, over TLS, optionally asks for client certificates ([`ClientCertificates`]): the name a
//! verified one carries identifies its client ([`ClientCertificate`]).
//!
//! Behind load balancers, [`ServeOptions::trusted_proxies`] may name the client: with the PROXY
//! protocol (`proxy_protocol`) at the start of their connections, or `X-Forwarded-For` /
//! `Forwarded` on their requests (`proxy`); every request then carries the client's address
//! ([`crate::server::ClientAddr`]), which the throttle, the audit trail and request logs use.
//!
//! `conn` holds the per-connection IO guard and request tracking.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
pub use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

mod conn;
mod proxy;

use crate::error::Error;
use conn::{Activity, Guarded, hold_until_sent};
pub use proxy::TrustedProxies;

/// Limits of [`serve`], and TLS.
#[derive(Clone)]
pub struct ServeOptions {
    /// Serve HTTPS with this acceptor (see [`tls_acceptor`]); plain HTTP when `None`.
    pub tls: Option<TlsAcceptor>,
    /// Which name of a verified client certificate identifies the client (see
    /// [`ClientCertificates`]).
    pub client_name: ClientName,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Connections served at once from one address; more are closed at once. Zero: no cap.
    pub max_connections_per_address: usize,
    /// Time a client has for its first bytes (the TLS handshake, then enough for the server to
    /// know the protocol), and for each request's headers, counted from when the connection is
    /// ready for the next request: it also closes HTTP/1.1 keep-alive connections idle that long.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/2 with `GOAWAY`), and
    /// a response the client stops reading for this long ends its connection.
    pub idle_timeout: Duration,
    /// Time connections get to finish their requests at shutdown.
    pub shutdown_grace: Duration,
    /// Peers whose PROXY protocol headers (with `proxy_protocol`) and forwarding headers name
    /// the client. Their own connections are not capped per address (each carries many
    /// clients); those a PROXY header attributes to a client are.
    pub trusted_proxies: TrustedProxies,
    /// Connections from trusted proxies begin with a PROXY protocol header (v1 or v2).
    pub proxy_protocol: bool,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tls", &self.tls.is_some())
            .field("client_name", &self.client_name)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("proxy_protocol", &self.proxy_protocol)
            .finish()
    }
}

/// Client certificates a TLS server asks for: those its CA signed identify their client.
#[derive(Debug, Clone)]
pub struct ClientCertificates {
    /// PEM files of the CA certificates that sign client certificates.
    pub ca: Vec<std::path::PathBuf>,
    /// Refuse the TLS handshake of a client without one (otherwise it may log in as usual).
    pub required: bool,
}

/// Which name of a client certificate is the client's identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientName {
    /// The subject's common name (CN).
    #[default]
    CommonName,
    /// The first subject alternative name: an e-mail address, DNS name or URI.
    SubjectAltName,
}

/// The identity a verified client certificate carries, put in each request's extensions by
/// [`serve`] and turned into [`crate::auth::access::Credentials::ClientCertificate`] by the access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(pub String);

/// The name `which` of a DER certificate.
fn certificate_name(der: &[u8], which: ClientName) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    match which {
        ClientName::CommonName => cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        ClientName::SubjectAltName => {
            let sans = cert.subject_alternative_name().ok()??;
            sans.value.general_names.iter().find_map(|name| match name {
                x509_parser::extensions::GeneralName::RFC822Name(n)
                | x509_parser::extensions::GeneralName::DNSName(n)
                | x509_parser::extensions::GeneralName::URI(n) => Some((*n).to_owned()),
                _ => None,
            })
        }
    }
    .filter(|n| !n.is_empty())
}

/// A TLS acceptor from PEM files: a certificate chain and its private key, offering HTTP/2 and
/// HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    tls_acceptor_with(cert, key, None)
}

/// [`tls_acceptor`], asking clients for certificates signed by `clients.ca` when given.
pub fn tls_acceptor_with(
    cert: &Path,
    key: &Path,
    clients: Option<&ClientCertificates>,
) -> Result<TlsAcceptor, Error> {
    let tls = |reason: String| Error::Tls { reason };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            tls(format!(
                "cannot read certificates from {}: {e}",
                cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(tls(format!("no certificate in {}", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls(format!("cannot read the key from {}: {e}", key.display())))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match clients {
        None => builder.with_no_client_auth(),
        Some(clients) => {
            let mut roots = rustls::RootCertStore::empty();
            for file in &clients.ca {
                let cas = CertificateDer::pem_file_iter(file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        tls(format!(
                            "cannot read client CA certificates from {}: {e}",
                            file.display()
                        ))
                    })?;
                if cas.is_empty() {
                    return Err(tls(format!("no certificate in {}", file.display())));
                }
                for ca in cas {
                    roots
                        .add(ca)
                        .map_err(|e| tls(format!("invalid client CA certificate: {e}")))?;
                }
            }
            if roots.is_empty() {
                return Err(tls("no client CA file given".into()));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = match clients.required {
                true => verifier,
                false => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| tls(format!("invalid client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => tls(format!(
                "the key {} does not match the certificate {}",
                key.display(),
                cert.display()
            )),
            e => tls(format!("invalid certificate or key: {e}")),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            client_name: ClientName::default(),
            max_connections: 4096,
            max_connections_per_address: 256,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            trusted_proxies: TrustedProxies::default(),
            proxy_protocol: false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish (up to
/// the grace period).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopping) = watch::channel(false);
    let total = options.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(total));
    let shared = Arc::new(Shared {
        builder: http_builder(&options),
        router,
        per_address: PerAddress::new(options.max_connections_per_address),
        options,
        stopping,
    });
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A proxy's own connections carry many clients: they are not capped per address; those
        // a PROXY header attributes to a client are, once it is read. Others are counted here,
        // in the order they came.
        let proxied = shared.options.trusted_proxies.trusts(peer.ip());
        let mut counted = None;
        if !proxied {
            counted = shared.per_address.admit(peer.ip());
            if counted.is_none() {
                tracing::debug!(%peer, "too many connections from this address: closed");
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let counted = shared.accept(stream, peer, proxied, counted).await;
            drop((counted, permit));
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(total).unwrap_or(u32::MAX);
    if tokio::time::timeout(shared.options.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

/// HTTP/1.1 and HTTP/2 with the options' header timeout, keep-alive, and HTTP/2 pings.
fn http_builder(options: &ServeOptions) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(options.header_read_timeout);
    builder
}

/// What every connection of one server shares.
struct Shared {
    builder: Builder<TokioExecutor>,
    router: Router,
    options: ServeOptions,
    per_address: PerAddress,
    stopping: watch::Receiver<bool>,
}

impl Shared {
    /// Serves one accepted connection: reads a trusted proxy's PROXY header (then counts the
    /// client it names against its address's cap), shakes hands when serving TLS, and serves
    /// requests until the connection ends. Returns the address count to release.
    async fn accept(
        &self,
        mut stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        proxied: bool,
        mut counted: Option<Counted>,
    ) -> Option<Counted> {
        let options = &self.options;
        let mut client = peer;
        if proxied && options.proxy_protocol {
            match proxy::read_header(&mut stream, options.header_read_timeout).await {
                Ok(named) => client = named.unwrap_or(peer),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "PROXY header refused");
                    return counted;
                }
            }
            if !options.trusted_proxies.trusts(client.ip()) {
                counted = self.per_address.admit(client.ip());
                if counted.is_none() {
                    tracing::debug!(%client, "too many connections from this address");
                    return counted;
                }
            }
        }
        match &options.tls {
            None => connection(self, stream, (client, None)).await,
            Some(tls) => self.over_tls(stream, client, tls).await,
        }
        counted
    }

    /// Serves a connection to the TLS port: a plain HTTP request is answered 400, a handshake
    /// that fails or stalls closes it, a client certificate names the client.
    async fn over_tls(
        &self,
        mut stream: tokio::net::TcpStream,
        client: std::net::SocketAddr,
        tls: &TlsAcceptor,
    ) {
        let deadline = self.options.header_read_timeout;
        if plain_http(&mut stream, deadline).await {
            return;
        }
        match tokio::time::timeout(deadline, tls.accept(stream)).await {
            Ok(Ok(s)) => {
                let name = s
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|der| certificate_name(der, self.options.client_name));
                connection(self, s, (client, name.map(ClientCertificate))).await
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        }
    }
}

/// Whether a connection to the TLS port speaks plain HTTP (its first byte a letter, where a TLS
/// client sends a handshake record): it is answered 400 with a sentence saying so, as Go servers
/// do, instead of a TLS alert that clients print as garbage.
async fn plain_http(stream: &mut tokio::net::TcpStream, deadline: Duration) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(deadline, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) || !first[0].is_ascii_uppercase() {
        return false;
    }
    let answer = "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
                  Client sent an HTTP request to an HTTPS server.\n";
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Drain what the client still sends for a moment, so that closing does not reset the
    // connection before it has read the answer.
    let drain = async {
        use tokio::io::AsyncReadExt;
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    true
}

/// Serves one connection until it ends: closed by the client, idle for
/// [`ServeOptions::idle_timeout`] (then shut down gracefully), or asked to stop by the server.
async fn connection<S>(
    shared: &Shared,
    stream: S,
    (peer, certificate): (std::net::SocketAddr, Option<ClientCertificate>),
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let options = &shared.options;
    let mut stopping = shared.stopping.clone();
    let io = Guarded::new(stream, options.header_read_timeout, options.idle_timeout);
    let activity = Activity::new();
    let inner = TowerToHyperService::new(shared.router.clone());
    let tracked = activity.clone();
    // A trusted proxy names the client of each request it forwards.
    let proxies = Some(options.trusted_proxies.clone()).filter(|t| t.trusts(peer.ip()));
    let service = hyper::service::service_fn(move |mut req: http::Request<_>| {
        let client = proxies
            .as_ref()
            .and_then(|t| t.forwarded_client(req.headers()))
            .map_or(peer, |ip| std::net::SocketAddr::new(ip, 0));
        req.extensions_mut()
            .insert(crate::server::ClientAddr(client));
        if let Some(c) = &certificate {
            req.extensions_mut().insert(c.clone());
        }
        let in_flight = tracked.start();
        let answer = hyper::service::Service::call(&inner, req);
        async move { answer.await.map(|res| hold_until_sent(res, in_flight)) }
    });
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = activity.idle_for(options.idle_timeout);
    tokio::pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = &mut idle, if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            changed = stopping.changed(), if !closing => {
                if changed.is_err() || *stopping.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            () = tokio::time::sleep(options.header_read_timeout), if closing => {
                // A client that ignores the shutdown: its connection goes.
                return;
            }
        }
    }
}

/// Connections open per client address.
#[derive(Clone)]
struct PerAddress {
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted against its address, until dropped.
struct Counted {
    table: PerAddress,
    ip: IpAddr,
}

impl PerAddress {
    fn new(cap: usize) -> PerAddress {
        PerAddress {
            cap,
            open: Arc::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a connection from `ip`, unless that address has as many as the cap.
    fn admit(&self, ip: IpAddr) -> Option<Counted> {
        let mut open = self.table();
        let n = open.entry(ip).or_default();
        if self.cap > 0 && *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Counted {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.table.table();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The address of the client a request came from: set by [`serve`] on every request, or read
/// from axum's `ConnectInfo` when the router is served otherwise.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

pub(crate) fn client_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    extensions.get::<ClientAddr>().map(|c| c.0).or_else(|| {
        extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0)
    })
}
