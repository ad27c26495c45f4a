//! `registry copy SRC DST`: an image (every platform of an index, and its referrers) or, with
//! `--all-tags`, a repository, between registries (`docker://`), OCI layouts (`oci:`) and OCI
//! archives (`oci-archive:`), as skopeo spells them. What the destination has is skipped, so a
//! copy that was interrupted is finished by running it again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use registry_core::transfer::{self, CopyOptions, Destination, Origin};
use registry_core::{Reference, RepositoryName, Tag};
use registry_http::remote::client::RemoteTls;
use registry_http::remote::mirror::{Redirects, Upstream, UpstreamError};
use registry_storage::{OciLayout, layout};

/// Where the command reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`: a registry.
    Docker {
        host: String,
        repo: RepositoryName,
        reference: Option<Reference>,
    },
    /// `oci:DIR[:TAG]`: an OCI image layout directory.
    Layout { dir: PathBuf, tag: Option<Tag> },
    /// `oci-archive:FILE[:TAG]`: an OCI layout as a tar.
    Archive { file: PathBuf, tag: Option<Tag> },
}

/// The repository name a layout's images are copied under (a layout holds one repository).
const LAYOUT_REPO: &str = "layout";
/// How long a registry request may wait to connect and between reads.
const TIMEOUT: Duration = Duration::from_secs(60);

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Endpoint, String> {
        let bad = |why: &str| format!("{s:?}: {why}");
        if let Some(rest) = s.strip_prefix("docker://") {
            let (host, path) = docker_host(rest);
            let (repo, reference) = match path.rsplit_once('@') {
                Some((repo, digest)) => (repo, Some(digest.to_owned())),
                None => match path.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                    Some((repo, tag)) => (repo, Some(tag.to_owned())),
                    None => (path.as_str(), None),
                },
            };
            let repo = repo.parse().map_err(|e| bad(&format!("{e}")))?;
            let reference = reference
                .map(|r| r.parse())
                .transpose()
                .map_err(|e| bad(&format!("{e}")))?;
            return Ok(Endpoint::Docker {
                host,
                repo,
                reference,
            });
        }
        let (archive, rest) = match (s.strip_prefix("oci-archive:"), s.strip_prefix("oci:")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err(bad("use docker://, oci: or oci-archive:")),
        };
        let (path, tag) = match rest.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((path, tag)) => (path, Some(tag.parse().map_err(|e| bad(&format!("{e}")))?)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(bad("name a path"));
        }
        let path = PathBuf::from(path);
        Ok(match archive {
            true => Endpoint::Archive { file: path, tag },
            false => Endpoint::Layout { dir: path, tag },
        })
    }
}

/// Splits `HOST/PATH` as Docker does: a first component with a dot or a colon, or `localhost`,
/// is a host; otherwise the name is Docker Hub's (`alpine` is `library/alpine`).
fn docker_host(rest: &str) -> (String, String) {
    match rest.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => {
            (host.to_owned(), path.to_owned())
        }
        _ if rest.contains('/') => ("docker.io".to_owned(), rest.to_owned()),
        _ => ("docker.io".to_owned(), format!("library/{rest}")),
    }
}

/// `registry copy`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CopyArgs {
    /// Where from.
    pub src: String,
    /// Where to.
    pub dst: String,
    /// Copy every tag of the source repository.
    #[arg(long)]
    pub all_tags: bool,
    /// Check the source registry's certificate (false: also allow plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub src_tls_verify: bool,
    /// Check the destination registry's certificate (false: also allow plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub dest_tls_verify: bool,
    /// A folder of the source registry's CA certificates (`*.crt`) and client certificate
    /// (`client.cert`, `client.key`) [default: /etc/containers/certs.d/HOST, then
    /// /etc/docker/certs.d/HOST]
    #[arg(long)]
    pub src_cert_dir: Option<PathBuf>,
    /// The same for the destination registry.
    #[arg(long)]
    pub dest_cert_dir: Option<PathBuf>,
    /// `USER:PASSWORD` for the source registry (else from the auth file).
    #[arg(long)]
    pub src_creds: Option<String>,
    /// `USER:PASSWORD` for the destination registry (else from the auth file).
    #[arg(long)]
    pub dest_creds: Option<String>,
    /// The auth file to read credentials from [default: $REGISTRY_AUTH_FILE, podman's
    /// ${XDG_RUNTIME_DIR}/containers/auth.json (root's /run/containers/0/auth.json),
    /// ~/.config/containers/auth.json, docker's ~/.docker/config.json]
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Only these platforms of an index (`os/arch[/variant]`, repeatable); all by default.
    #[arg(long = "platform")]
    pub platforms: Vec<String>,
}

/// One side of a copy, opened.
struct Side {
    end: Box<dyn End>,
    repo: RepositoryName,
    reference: Option<Reference>,
    /// For an archive written to: the layout to pack, and the file.
    pack: Option<(PathBuf, PathBuf)>,
    /// A folder to remove when done (an archive unpacked to read).
    scratch: Option<PathBuf>,
    /// An OCI layout (or archive): what it holds is found by tag.
    layout: bool,
}

/// An origin that is also a destination.
trait End: Origin + Destination {
    fn origin(&self) -> &dyn Origin;
    fn destination(&self) -> &dyn Destination;
}

impl<T: Origin + Destination> End for T {
    fn origin(&self) -> &dyn Origin {
        self
    }
    fn destination(&self) -> &dyn Destination {
        self
    }
}

pub async fn copy(flags: &CopyArgs) -> Result<(), String> {
    let src: Endpoint = flags.src.parse()?;
    let dst: Endpoint = flags.dst.parse()?;
    let from = open(&src, false, flags).await?;
    let to = open(&dst, true, flags).await?;
    let outcome = run(&from, &to, flags).await;
    if let Some(scratch) = &from.scratch {
        let _ = tokio::fs::remove_dir_all(scratch).await;
    }
    outcome?;
    if let Some((dir, file)) = &to.pack {
        layout::pack(dir, file).await.map_err(|e| e.to_string())?;
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    Ok(())
}

async fn run(from: &Side, to: &Side, flags: &CopyArgs) -> Result<(), String> {
    let options = CopyOptions {
        platforms: flags.platforms.clone(),
        referrers: true,
    };
    let pairs: Vec<(Reference, Reference)> = if flags.all_tags {
        if from.reference.is_some() || to.reference.is_some() {
            return Err("--all-tags copies a repository: name no tag or digest".into());
        }
        let tags = from
            .end
            .origin()
            .tags(&from.repo)
            .await
            .map_err(|e| format!("cannot list the source's tags: {e}"))?;
        if tags.is_empty() {
            return Err("the source has no tags".into());
        }
        tags.into_iter()
            .map(|t| (Reference::Tag(t.clone()), Reference::Tag(t)))
            .collect()
    } else {
        let source = from
            .reference
            .clone()
            .unwrap_or_else(|| Reference::Tag(latest()));
        let target = match (&to.reference, &source) {
            (Some(target), _) => target.clone(),
            (None, Reference::Digest(_)) if to.layout => {
                return Err("copying by digest to a layout: name the tag it gets".into());
            }
            (None, source) => source.clone(),
        };
        vec![(source, target)]
    };
    for (source, target) in pairs {
        let copied = transfer::copy(
            from.end.origin(),
            &from.repo,
            &source,
            to.end.destination(),
            &to.repo,
            &target,
            &options,
        )
        .await
        .map_err(|e| format!("copying {source}: {e}"))?;
        println!(
            "copied {source} as {target} ({}): {} manifests and {} blobs ({} bytes) written, {} manifests and {} blobs already there",
            copied.digest.map(|d| d.to_string()).unwrap_or_default(),
            copied.manifests,
            copied.blobs,
            copied.bytes,
            copied.manifests_present,
            copied.blobs_present,
        );
    }
    Ok(())
}

fn latest() -> Tag {
    "latest"
        .parse()
        .unwrap_or_else(|_| unreachable!("latest is a tag"))
}

async fn open(end: &Endpoint, write: bool, flags: &CopyArgs) -> Result<Side, String> {
    let layout_repo: RepositoryName = LAYOUT_REPO
        .parse()
        .map_err(|e| format!("layout repository name: {e}"))?;
    let tagged = |tag: &Option<Tag>| tag.clone().map(Reference::Tag);
    match end {
        Endpoint::Docker {
            host,
            repo,
            reference,
        } => {
            let (verify, creds, certs) = match write {
                true => (
                    flags.dest_tls_verify,
                    &flags.dest_creds,
                    &flags.dest_cert_dir,
                ),
                false => (flags.src_tls_verify, &flags.src_creds, &flags.src_cert_dir),
            };
            let credentials = match creds {
                Some(c) => Some(split_creds(c)?),
                None => crate::authfile::credentials(host, flags.authfile.as_deref())?,
            };
            let tls = cert_dir(host, certs.as_deref(), verify)?;
            let upstream = remote(host, credentials, &tls).await?;
            Ok(Side {
                end: Box::new(upstream),
                repo: repo.clone(),
                reference: reference.clone(),
                pack: None,
                scratch: None,
                layout: false,
            })
        }
        Endpoint::Layout { dir, tag } => {
            let layout = match write {
                true => OciLayout::create(dir).await,
                false => OciLayout::open(dir).await,
            }
            .map_err(|e| e.to_string())?;
            Ok(Side {
                end: Box::new(layout),
                repo: layout_repo,
                reference: tagged(tag),
                pack: None,
                scratch: None,
                layout: true,
            })
        }
        Endpoint::Archive { file, tag } if write => {
            // Assembled beside the file, and kept when interrupted: the next run resumes.
            let dir = sibling(file, "partial");
            if !dir.exists() && file.exists() {
                unpack_to(file, &dir).await?;
            }
            let layout = OciLayout::create(&dir).await.map_err(|e| e.to_string())?;
            Ok(Side {
                end: Box::new(layout),
                repo: layout_repo,
                reference: tagged(tag),
                pack: Some((dir, file.clone())),
                scratch: None,
                layout: true,
            })
        }
        Endpoint::Archive { file, tag } => {
            let dir = sibling(file, &format!("unpacked-{}", uuid_like()));
            unpack_to(file, &dir).await?;
            let layout = match OciLayout::open(&dir).await {
                Ok(layout) => layout,
                Err(e) => {
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                    return Err(e.to_string());
                }
            };
            Ok(Side {
                end: Box::new(layout),
                repo: layout_repo,
                reference: tagged(tag),
                pack: None,
                scratch: Some(dir),
                layout: true,
            })
        }
    }
}

/// Unpacks the archive `file` into a new folder `dir`, removed again when that fails.
async fn unpack_to(file: &Path, dir: &Path) -> Result<(), String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Err(e) = layout::unpack(file, dir).await {
        let _ = tokio::fs::remove_dir_all(dir).await;
        return Err(e.to_string());
    }
    Ok(())
}

/// A name no other run uses.
fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )
}

/// A folder beside `file`, named after it: `FILE.<suffix>` (on the same disk, which may be larger
/// than the temporary folder).
fn sibling(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    file.with_file_name(name)
}

fn split_creds(creds: &str) -> Result<(String, String), String> {
    creds
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .ok_or_else(|| "credentials are USER:PASSWORD".to_owned())
}

/// The TLS settings for `host`: the CAs and client certificate of `dir`, else of
/// `/etc/containers/certs.d/HOST`, else of `/etc/docker/certs.d/HOST` (as podman and docker
/// read them), when one exists.
fn cert_dir(host: &str, dir: Option<&Path>, verify: bool) -> Result<RemoteTls, String> {
    let mut tls = RemoteTls {
        verify,
        ..RemoteTls::default()
    };
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => {
            let found = ["/etc/containers/certs.d", "/etc/docker/certs.d"]
                .iter()
                .map(|root| Path::new(root).join(host))
                .find(|d| d.is_dir());
            match found {
                Some(dir) => dir,
                None => return Ok(tls),
            }
        }
    };
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "crt") {
            tls.roots.push(read(&path)?);
        }
    }
    let (cert, key) = (dir.join("client.cert"), dir.join("client.key"));
    if cert.is_file() && key.is_file() {
        let mut pem = read(&cert)?;
        pem.extend(read(&key)?);
        tls.identity = Some(pem);
    }
    Ok(tls)
}

/// A client of the registry at `host`: HTTPS, or with verification off, HTTPS without checking
/// the certificate and, when that does not connect, plain HTTP (as skopeo does). A registry that
/// cannot be used is told apart: its certificate is not trusted, it speaks plain HTTP, or it is
/// unreachable.
async fn remote(
    host: &str,
    credentials: Option<(String, String)>,
    tls: &RemoteTls,
) -> Result<Upstream, String> {
    let url = match host {
        "docker.io" => "https://registry-1.docker.io".to_owned(),
        host => format!("https://{host}"),
    };
    let client = |url: &str| {
        Upstream::with_tls(url, credentials.clone(), TIMEOUT, Redirects::Any, tls)
            .map_err(|e| e.to_string())
    };
    let secure = client(&url)?;
    match secure.ping().await {
        Err(UpstreamError::Unreachable(why)) if !tls.verify => match why_unusable(&why) {
            Unusable::Unreachable => Err(format!("{host} is unreachable: {why}")),
            _ => client(&format!("http://{host}")),
        },
        Err(UpstreamError::Unreachable(why)) => Err(match why_unusable(&why) {
            Unusable::Untrusted => format!(
                "{host}: certificate not trusted (put its CA in /etc/containers/certs.d/{host}/ca.crt \
                 or a --src-cert-dir/--dest-cert-dir; --src-tls-verify=false or \
                 --dest-tls-verify=false skips the check): {why}"
            ),
            Unusable::PlainHttp => format!(
                "{host}: the server speaks plain HTTP, not HTTPS (pass --src-tls-verify=false or \
                 --dest-tls-verify=false to use it)"
            ),
            Unusable::Unreachable => format!("{host} is unreachable: {why}"),
        }),
        _ => Ok(secure),
    }
}

/// Why a registry could not be used, as an error's text tells it.
enum Unusable {
    Untrusted,
    PlainHttp,
    Unreachable,
}

fn why_unusable(error: &str) -> Unusable {
    let error = error.to_ascii_lowercase();
    if [
        "invalid peer certificate",
        "unknownissuer",
        "certificate",
        "notvalidforname",
    ]
    .iter()
    .any(|m| error.contains(m))
    {
        Unusable::Untrusted
    } else if [
        "invalidcontenttype",
        "corrupt message",
        "wrong version number",
    ]
    .iter()
    .any(|m| error.contains(m))
    {
        Unusable::PlainHttp
    } else {
        Unusable::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_skopeo_spells_them() {
        let e: Endpoint = "docker://127.0.0.1:5000/team/app:v1".parse().unwrap();
        assert_eq!(
            e,
            Endpoint::Docker {
                host: "127.0.0.1:5000".into(),
                repo: "team/app".parse().unwrap(),
                reference: Some("v1".parse().unwrap()),
            }
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let e: Endpoint = format!("docker://localhost/app@{digest}").parse().unwrap();
        assert!(matches!(
            e,
            Endpoint::Docker {
                reference: Some(Reference::Digest(_)),
                ..
            }
        ));
        let e: Endpoint = "docker://alpine".parse().unwrap();
        assert!(
            matches!(e, Endpoint::Docker { host, repo, reference: None } if host == "docker.io" && repo.as_str() == "library/alpine")
        );
        assert_eq!(
            "oci:/tmp/x:v2".parse::<Endpoint>().unwrap(),
            Endpoint::Layout {
                dir: "/tmp/x".into(),
                tag: Some("v2".parse().unwrap())
            }
        );
        assert_eq!(
            "oci-archive:out.tar".parse::<Endpoint>().unwrap(),
            Endpoint::Archive {
                file: "out.tar".into(),
                tag: None
            }
        );
        assert!("file:/x".parse::<Endpoint>().is_err());
        assert!("docker://Bad Name".parse::<Endpoint>().is_err());
    }
}
