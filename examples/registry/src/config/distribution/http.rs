//! Distribution's `http` (address, headers, TLS, debug metrics), `auth` (htpasswd, token) and
//! `proxy` (a pull-through cache) sections.

use toml::Value;

use super::{Node, Reader, boolean, entries, go_duration, header_table, listen_address, scalar};

pub(super) fn http(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("http.{}", e.key);
        match (e.key.as_str(), scalar(&e.value)) {
            ("addr", Some(addr)) => match listen_address(addr) {
                Some(listen) => r.put(&path, e.line, "listen", Value::String(listen)),
                None => r.refuse(&path, e.line, "not HOST:PORT"),
            },
            ("net", Some("tcp")) => r.note(&path, e.line, "TCP"),
            ("net", _) => r.refuse(&path, e.line, "only tcp: Unix sockets are not served"),
            ("prefix", Some("" | "/")) => r.note(&path, e.line, "served at /"),
            ("prefix", _) => r.refuse(
                &path,
                e.line,
                "not supported: mount the router under a prefix in an embedding instead",
            ),
            ("host" | "relativeurls", _) => r.note(
                &path,
                e.line,
                "not needed: Location headers are relative to the request",
            ),
            ("secret", _) => r.note(
                &path,
                e.line,
                "not needed: an upload's state is kept in the store, not signed into its URL",
            ),
            ("draintimeout", Some(_)) => {
                r.note(&path, e.line, "connections get 30 s to finish at shutdown")
            }
            ("headers", None) => {
                let headers = header_table(entries(&e.value));
                r.put(&path, e.line, "headers", Value::Table(headers));
            }
            ("tls", None) => tls(r, &path, &e.value),
            ("debug", None) => {
                for d in entries(&e.value) {
                    let sub = format!("{path}.{}", d.key);
                    match d.key.as_str() {
                        "addr" => r.note(
                            &sub,
                            d.line,
                            "metrics are served at /metrics on the main address",
                        ),
                        "prometheus" => {
                            for p in entries(&d.value) {
                                let key = format!("{sub}.{}", p.key);
                                match (p.key.as_str(), scalar(&p.value)) {
                                    ("enabled", _) => match boolean(&p.value) {
                                        Some(on) => r.put(
                                            &key,
                                            p.line,
                                            "metrics.enabled",
                                            Value::Boolean(on),
                                        ),
                                        None => r.refuse(&key, p.line, "not a boolean"),
                                    },
                                    ("path", Some("/metrics")) => r.note(&key, p.line, "/metrics"),
                                    _ => r.refuse(&key, p.line, "only /metrics"),
                                }
                            }
                        }
                        _ => r.refuse(&sub, d.line, "not supported"),
                    }
                }
            }
            ("http2", None) => r.note(&path, e.line, "HTTP/2 is offered over TLS by ALPN"),
            _ => r.refuse(&path, e.line, "not supported"),
        }
    }
}

fn tls(r: &mut Reader, path: &str, node: &Node) {
    for e in entries(node) {
        let key = format!("{path}.{}", e.key);
        match (e.key.as_str(), &e.value) {
            ("certificate", Node::Scalar(v)) => {
                r.put(&key, e.line, "tls_cert", Value::String(v.clone()))
            }
            ("key", Node::Scalar(v)) => r.put(&key, e.line, "tls_key", Value::String(v.clone())),
            ("clientcas", Node::List(cas)) => {
                let cas: Vec<Value> = cas
                    .iter()
                    .filter_map(scalar)
                    .map(|c| Value::String(c.into()))
                    .collect();
                r.put(&key, e.line, "tls.client_ca", Value::Array(cas));
            }
            ("clientauth", Node::Scalar(mode)) => {
                let ours = match mode.as_str() {
                    "require-and-verify-client-cert" => "required",
                    "verify-client-cert-if-given" => "optional",
                    _ => {
                        r.refuse(
                            &key,
                            e.line,
                            "only require-and-verify-client-cert or verify-client-cert-if-given",
                        );
                        continue;
                    }
                };
                r.put(&key, e.line, "tls.client_auth", Value::String(ours.into()));
            }
            ("minimumtls", Node::Scalar(v)) if v == "tls1.2" || v == "tls1.3" => {
                r.note(&key, e.line, "TLS 1.2 and 1.3 are served (rustls)")
            }
            _ => r.refuse(
                &key,
                e.line,
                "not supported (Let's Encrypt, cipher suites, TLS below 1.2)",
            ),
        }
    }
}

pub(super) fn auth(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("auth.{}", e.key);
        match e.key.as_str() {
            "htpasswd" => {
                for h in entries(&e.value) {
                    let key = format!("{path}.{}", h.key);
                    match (h.key.as_str(), scalar(&h.value)) {
                        ("path", Some(p)) => {
                            r.put(&key, h.line, "htpasswd", Value::String(p.into()))
                        }
                        ("realm", Some(realm)) => {
                            r.put(&key, h.line, "realm", Value::String(realm.into()))
                        }
                        _ => r.refuse(&key, h.line, "not supported"),
                    }
                }
            }
            "token" => {
                for t in entries(&e.value) {
                    let key = format!("{path}.{}", t.key);
                    match (t.key.as_str(), scalar(&t.value)) {
                        ("realm" | "service" | "issuer" | "jwks", Some(v)) => r.put(
                            &key,
                            t.line,
                            &format!("token.{}", t.key),
                            Value::String(v.into()),
                        ),
                        ("rootcertbundle", Some(v)) => {
                            r.put(&key, t.line, "token.certificates", Value::String(v.into()))
                        }
                        ("autoredirect", _) if boolean(&t.value) == Some(false) => {
                            r.note(&key, t.line, "the realm is used as given")
                        }
                        _ => r.refuse(&key, t.line, "not supported"),
                    }
                }
            }
            "none" => r.note(&path, e.line, "no authentication"),
            _ => r.refuse(&path, e.line, "not supported: htpasswd or token"),
        }
    }
}

pub(super) fn proxy(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("proxy.{}", e.key);
        match (e.key.as_str(), scalar(&e.value)) {
            ("remoteurl", Some(v)) => r.put(&path, e.line, "mirror.url", Value::String(v.into())),
            ("username", Some(v)) => {
                r.put(&path, e.line, "mirror.username", Value::String(v.into()))
            }
            ("password", Some(v)) => {
                r.put(&path, e.line, "mirror.password", Value::String(v.into()))
            }
            ("ttl", Some(v)) => match go_duration(v) {
                Some(d) => r.put(
                    &path,
                    e.line,
                    "mirror.retention_days",
                    Value::Integer((d.as_secs().div_ceil(86400)) as i64),
                ),
                None => r.refuse(&path, e.line, "not a duration (such as 168h)"),
            },
            _ => r.refuse(&path, e.line, "not supported"),
        }
    }
}
