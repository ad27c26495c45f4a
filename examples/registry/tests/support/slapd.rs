//! A small OpenLDAP directory (Debian's `slapd`) on a free port, loaded offline with `slapadd`,
//! stopped when dropped.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The suffix of the test directory.
pub const BASE: &str = "dc=example,dc=com";
/// The service account's DN and password.
pub const SERVICE_DN: &str = "cn=registry,dc=example,dc=com";
pub const SERVICE_PASSWORD: &str = "service-secret";

const DATA: &str = "dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: cn=registry,dc=example,dc=com
objectClass: person
cn: registry
sn: registry
userPassword: service-secret

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Carol
userPassword: carol-pw

dn: uid=dave,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: Dave
userPassword: dave-pw

dn: cn=readers,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: readers
member: uid=dave,ou=people,dc=example,dc=com
";

/// A running slapd: users `carol` (`carol-pw`) and `dave` (`dave-pw`, in group `readers`).
pub struct Slapd {
    child: Child,
    /// `ldap://127.0.0.1:PORT` (StartTLS offered when started with TLS).
    pub url: String,
    /// `ldaps://127.0.0.1:PORT`, when started with TLS.
    pub ldaps: Option<String>,
}

/// A free port of 127.0.0.1: bound then released (slapd cannot be told to pick one).
impl Slapd {
    /// Loads the directory under `dir` and starts slapd on a free port of 127.0.0.1.
    pub fn start(dir: &Path) -> Slapd {
        Slapd::start_with(dir, None)
    }

    /// [`Slapd::start`], also serving TLS (StartTLS on the plain port, and an `ldaps://` port)
    /// with the certificate and key files `tls`.
    pub fn start_with(dir: &Path, tls: Option<(&str, &str)>) -> Slapd {
        let db = dir.join("db");
        std::fs::create_dir_all(&db).unwrap();
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {pid}
database mdb
maxsize 10485760
suffix \"{BASE}\"
rootdn \"cn=admin,{BASE}\"
directory {db}
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
{tls}",
                pid = dir.join("slapd.pid").display(),
                db = db.display(),
                tls = tls
                    .map(|(cert, key)| format!(
                        "TLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n"
                    ))
                    .unwrap_or_default()
            ),
        )
        .unwrap();
        let ldif = dir.join("data.ldif");
        std::fs::write(&ldif, DATA).unwrap();
        let loaded = Command::new("slapadd")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif)
            .output()
            .expect("run slapadd (apt-get install slapd)");
        assert!(
            loaded.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        let port = super::free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let ldaps = tls.map(|_| format!("ldaps://127.0.0.1:{}", super::free_port()));
        let listen = match &ldaps {
            Some(ldaps) => format!("{url}/ {ldaps}/"),
            None => format!("{url}/"),
        };
        let child = Command::new("slapd")
            .arg("-f")
            .arg(&conf)
            .args(["-h", &listen, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slapd (apt-get install slapd)");
        let mut slapd = Slapd { child, url, ldaps };
        let ports = [
            Some(port),
            slapd
                .ldaps
                .as_ref()
                .map(|u| u.rsplit(':').next().unwrap().parse().unwrap()),
        ];
        let ports: Vec<u16> = ports.into_iter().flatten().collect();
        super::wait::until_blocking("slapd listening", Duration::from_secs(20), || {
            if let Ok(Some(status)) = slapd.child.try_wait() {
                panic!("slapd exited: {status}");
            }
            ports
                .iter()
                .all(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok())
        });
        slapd
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
