//! A test certificate authority, and a server certificate it signs.

use std::path::Path;

/// A CA and a certificate for 127.0.0.1 and localhost signed by it: (cert-dir with ca.crt,
/// server certificate file, server key file).
pub fn test_pki(dir: &Path) -> (std::path::PathBuf, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "registry test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), ca_cert.pem()).unwrap();
    let (cert_file, key_file) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (
        certs,
        cert_file.to_str().unwrap().to_owned(),
        key_file.to_str().unwrap().to_owned(),
    )
}

/// A CA key pair and its certificate.
fn ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    (rcgen::Issuer::new(params, key), cert.pem())
}

/// Writes a client certificate for `common_name` (and `email` as its subject alternative name)
/// signed by `issuer` into `dir` as skopeo's `--cert-dir` wants it (`client.cert`, `client.key`,
/// with `ca.crt` the server's CA); returns `dir`.
fn client(
    dir: &Path,
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    server_ca: &str,
    common_name: &str,
    email: &str,
) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(email.try_into().unwrap())];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.crt"), server_ca).unwrap();
    std::fs::write(dir.join("client.cert"), cert.pem()).unwrap();
    std::fs::write(dir.join("client.key"), key.serialize_pem()).unwrap();
    dir.to_owned()
}

/// What [`client_pki`] made.
pub struct ClientPki {
    /// The server's certificate and key files.
    pub server_cert: String,
    pub server_key: String,
    /// The CA that signs client certificates (PEM file), for `--tls-client-ca`.
    pub client_ca: String,
    /// A cert-dir for skopeo (and curl) holding `machine1`'s certificate (SAN
    /// `machine1@example.com`) from that CA, and the server CA.
    pub machine1: std::path::PathBuf,
    /// The same for `intruder`, whose certificate another CA signed.
    pub intruder: std::path::PathBuf,
    /// A certificate of the trusted CA whose common name is `alice` (as an htpasswd user).
    pub alice: std::path::PathBuf,
    /// A cert-dir holding only the server CA.
    pub no_client: std::path::PathBuf,
}

/// A server certificate for 127.0.0.1 from one CA, client certificates from another, and one
/// from a CA the server does not trust.
pub fn client_pki(dir: &Path) -> ClientPki {
    let (certs, server_cert, server_key) = test_pki(dir);
    let server_ca = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    let (clients, clients_pem) = ca("registry clients CA");
    let (stranger, _) = ca("somebody else's CA");
    let client_ca = dir.join("clients-ca.pem");
    std::fs::write(&client_ca, clients_pem).unwrap();
    let no_client = dir.join("no-client");
    std::fs::create_dir_all(&no_client).unwrap();
    std::fs::write(no_client.join("ca.crt"), &server_ca).unwrap();
    ClientPki {
        server_cert,
        server_key,
        client_ca: client_ca.to_str().unwrap().to_owned(),
        machine1: client(
            &dir.join("machine1"),
            &clients,
            &server_ca,
            "machine1",
            "machine1@example.com",
        ),
        intruder: client(
            &dir.join("intruder"),
            &stranger,
            &server_ca,
            "machine1",
            "machine1@example.com",
        ),
        alice: client(
            &dir.join("alice-cert"),
            &clients,
            &server_ca,
            "alice",
            "alice@example.com",
        ),
        no_client,
    }
}
