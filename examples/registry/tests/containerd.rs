//! containerd's `ctr` against the real binary: a multi-platform image pulled (`--all-platforms`)
//! and pushed back under another name with `--user`, over plain HTTP and over TLS with the CA in
//! a `hosts.toml`; and a stale password, which containerd retries five times per pull, does not
//! lock its user out.
#![allow(clippy::unwrap_used)]

mod support;

use support::containerd::Containerd;
use support::login::{auth_file, htpasswd_of};
use support::{Layout, Server, skopeo};

#[cfg_attr(
    not(all(has_containerd, has_skopeo)),
    ignore = "skipped: containerd and skopeo are not installed (apt-get install containerd skopeo)"
)]
#[test]
fn ctr_pulls_and_pushes_and_a_stale_password_locks_nobody_out() {
    let tmp = tempfile::tempdir().unwrap();
    let users = htpasswd_of(tmp.path(), &[("alice", "alice-pw")]);
    let file = tmp.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "htpasswd = \"{}\"\n[throttle]\nmax_failures = 3\ninitial_lockout_secs = 60\n",
            users.display()
        ),
    )
    .unwrap();
    let (certs, cert, key) = support::pki::test_pki(tmp.path());
    let server = Server::start(
        &tmp.path().join("data"),
        &[
            "--config",
            file.to_str().unwrap(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let plain = Server::start(
        &tmp.path().join("plain"),
        &["--config", file.to_str().unwrap()],
    );
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let amd = layout.image(91, 2, 30_000, "amd64");
    let arm = layout.image(92, 1, 30_000, "arm64");
    let index = layout.index(vec![amd, arm]);
    let digest = index["digest"].as_str().unwrap().to_owned();
    layout.tag("v1", index);
    let skopeo_auth = auth_file(tmp.path(), "skopeo");
    for (addr, tls) in [
        (&server.addr, "--dest-cert-dir"),
        (&plain.addr, "--dest-tls-verify=false"),
    ] {
        let mut args = vec!["copy", "-q", "--all", "--dest-creds", "alice:alice-pw"];
        let certs = certs.to_str().unwrap();
        match tls {
            "--dest-cert-dir" => args.extend([tls, certs]),
            _ => args.push(tls),
        }
        let src = format!("oci:{}:v1", layout.dir.display());
        let dest = format!("docker://{addr}/alice/app:v1");
        args.extend([src.as_str(), dest.as_str()]);
        skopeo(&skopeo_auth, &args).unwrap();
    }

    let containerd = Containerd::start(&tmp.path().join("containerd"));
    // Over TLS, the CA in a hosts.toml.
    let hosts = tmp.path().join("hosts").join(&server.addr);
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"https://{addr}\"\n[host.\"https://{addr}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = {:?}\n",
            certs.join("ca.crt").display().to_string(),
            addr = server.addr,
        ),
    )
    .unwrap();
    let hosts_dir = tmp.path().join("hosts");
    let hosts_dir = hosts_dir.to_str().unwrap();
    let image = format!("{}/alice/app:v1", server.addr);
    containerd
        .ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            hosts_dir,
            "--all-platforms",
            "--user",
            "alice:alice-pw",
            &image,
        ])
        .unwrap();
    let listed = containerd.ctr(&["images", "ls"]).unwrap();
    assert!(listed.contains(&digest), "{listed}");
    let copy = format!("{}/alice/copy:v1", server.addr);
    containerd.ctr(&["images", "tag", &image, &copy]).unwrap();
    containerd
        .ctr(&[
            "images",
            "push",
            "--hosts-dir",
            hosts_dir,
            "--user",
            "alice:alice-pw",
            &copy,
        ])
        .unwrap();
    let head = support::login::curl(&[
        "--cacert",
        certs.join("ca.crt").to_str().unwrap(),
        "-u",
        "alice:alice-pw",
        "-I",
        "-H",
        "accept: application/vnd.oci.image.index.v1+json",
        &format!("https://{}/v2/alice/copy/manifests/v1", server.addr),
    ]);
    assert!(head.1.to_lowercase().contains(&digest), "{}", head.1);

    // Plain HTTP, and a stale password: containerd retries each 401 with the same credentials,
    // three pulls make fifteen attempts, and they count as one failure.
    let image = format!("{}/alice/app:v1", plain.addr);
    let pull = |user: &str| {
        containerd.ctr(&[
            "images",
            "pull",
            "--plain-http",
            "--all-platforms",
            "--user",
            user,
            &image,
        ])
    };
    for _ in 0..3 {
        // Refused as a wrong password, never as a lockout ("429" alone may be in the port).
        let stale = pull("alice:stale-secret").unwrap_err();
        assert!(stale.contains("401 Unauthorized"), "{stale}");
        assert!(!stale.contains("429 Too Many Requests"), "{stale}");
    }
    pull("alice:alice-pw").unwrap();
}
