//! The distribution API's paths, parsed once into a [`Route`]. Repository names contain slashes, so
//! the path after `/v2/` is read from its end: the last components say what is asked for, the rest
//! is the name. Names whose components are `blobs`, `manifests`, `tags` or `uploads` work.

use registry_core::{Digest, Reference, RepositoryName};

use crate::error::ApiError;

/// What a request under `/v2/` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepositoryName, Reference),
    /// `/v2/<name>/manifests/<reference>` where the reference is neither a digest nor a valid
    /// tag: no manifest has it (404 to reads and deletes), and none can be pushed under it (400).
    InvalidTag(RepositoryName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepositoryName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    Uploads(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepositoryName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepositoryName, Digest),
}

impl Route {
    /// Parses the path after `/v2/` (not percent-decoded). `None` when it is no API path;
    /// an error when it is one but its name, digest or reference is invalid.
    pub fn parse(rest: &str) -> Option<Result<Route, ApiError>> {
        if rest.is_empty() {
            return Some(Ok(Route::Base));
        }
        if rest == "_catalog" {
            return Some(Ok(Route::Catalog));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let n = parts.len();
        let name = |k: usize| -> Result<RepositoryName, ApiError> {
            Ok(parts[..n - k].join("/").parse()?)
        };
        let tail = |k: usize| -> Option<&[&str]> { n.checked_sub(k).map(|i| &parts[i..]) };
        let route = if let Some(["blobs", "uploads", id]) = tail(3)
            && n > 3
        {
            name(3).map(|r| {
                if id.is_empty() {
                    Route::Uploads(r)
                } else {
                    Route::Upload(r, (*id).to_owned())
                }
            })
        } else if let Some(["tags", "list"]) = tail(2)
            && n > 2
        {
            name(2).map(Route::Tags)
        } else if let Some(["blobs", "uploads"]) = tail(2)
            && n > 2
        {
            name(2).map(Route::Uploads)
        } else if let Some(["manifests", reference]) = tail(2)
            && n > 2
        {
            name(2).and_then(|r| match reference.parse::<Reference>() {
                Ok(reference) => Ok(Route::Manifest(r, reference)),
                Err(registry_core::Error::TagInvalid { .. }) => {
                    Ok(Route::InvalidTag(r, reference.chars().take(128).collect()))
                }
                Err(e) => Err(e.into()),
            })
        } else if let Some(["blobs", digest]) = tail(2)
            && n > 2
        {
            name(2).and_then(|r| Ok(Route::Blob(r, digest.parse()?)))
        } else if let Some(["referrers", digest]) = tail(2)
            && n > 2
        {
            name(2).and_then(|r| Ok(Route::Referrers(r, digest.parse()?)))
        } else {
            return None;
        };
        Some(route)
    }

    /// A short name of the route for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags(_) => "tags",
            Route::Manifest(..) | Route::InvalidTag(..) => "manifest",
            Route::Blob(..) => "blob",
            Route::Uploads(_) => "uploads",
            Route::Upload(..) => "upload",
            Route::Referrers(..) => "referrers",
        }
    }

    /// The tag or digest the path names, for logs and the audit trail.
    pub fn reference(&self) -> Option<String> {
        match self {
            Route::Manifest(_, r) => Some(r.to_string()),
            Route::InvalidTag(_, t) => Some(t.clone()),
            Route::Blob(_, d) | Route::Referrers(_, d) => Some(d.to_string()),
            _ => None,
        }
    }

    /// The repository the route is about, if any.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(n)
            | Route::Manifest(n, _)
            | Route::InvalidTag(n, _)
            | Route::Blob(n, _)
            | Route::Uploads(n)
            | Route::Upload(n, _)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> Route {
        Route::parse(path).unwrap().unwrap()
    }

    fn name(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_every_route() {
        assert_eq!(ok(""), Route::Base);
        assert_eq!(ok("_catalog"), Route::Catalog);
        assert_eq!(ok("a/tags/list"), Route::Tags(name("a")));
        assert_eq!(ok("a/b/c/d/e/tags/list"), Route::Tags(name("a/b/c/d/e")));
        assert_eq!(
            ok("a/manifests/latest"),
            Route::Manifest(name("a"), "latest".parse().unwrap())
        );
        assert_eq!(
            ok(&format!("a/manifests/{D}")),
            Route::Manifest(name("a"), D.parse().unwrap())
        );
        assert_eq!(
            ok(&format!("a/b/blobs/{D}")),
            Route::Blob(name("a/b"), D.parse().unwrap())
        );
        assert_eq!(ok("a/blobs/uploads/"), Route::Uploads(name("a")));
        assert_eq!(ok("a/blobs/uploads"), Route::Uploads(name("a")));
        assert_eq!(
            ok("a/blobs/uploads/abc"),
            Route::Upload(name("a"), "abc".into())
        );
        assert_eq!(
            ok(&format!("a/referrers/{D}")),
            Route::Referrers(name("a"), D.parse().unwrap())
        );
        assert_eq!(
            ok("a/manifests/.INVALID_MANIFEST_NAME"),
            Route::InvalidTag(name("a"), ".INVALID_MANIFEST_NAME".into())
        );
        assert_eq!(
            ok("a/manifests/-tag"),
            Route::InvalidTag(name("a"), "-tag".into())
        );
    }

    #[test]
    fn names_made_of_route_words() {
        assert_eq!(
            ok(&format!("x/blobs/blobs/{D}")),
            Route::Blob(name("x/blobs"), D.parse().unwrap())
        );
        assert_eq!(
            ok("x/blobs/blobs/uploads/"),
            Route::Uploads(name("x/blobs"))
        );
        assert_eq!(
            ok("manifests/manifests/tags"),
            Route::Manifest(name("manifests"), "tags".parse().unwrap())
        );
        assert_eq!(ok("tags/tags/list"), Route::Tags(name("tags")));
        assert_eq!(
            ok("uploads/blobs/uploads/i"),
            Route::Upload(name("uploads"), "i".into())
        );
        assert_eq!(
            ok(&format!("blobs/uploads/blobs/{D}")),
            Route::Blob(name("blobs/uploads"), D.parse().unwrap())
        );
        assert_eq!(ok("referrers/tags/list"), Route::Tags(name("referrers")));
    }

    #[test]
    fn not_api_paths() {
        for p in [
            "a",
            "a/b",
            "tags/list",
            "blobs/uploads/",
            "manifests/x",
            "a/blobs",
            "a/unknown/x",
            "/manifests/x",
        ] {
            assert!(Route::parse(p).is_none_or(|r| r.is_err()), "{p:?} parsed");
        }
    }

    #[test]
    fn invalid_parts_are_errors() {
        for p in [
            "A/tags/list",
            "a/../b/tags/list",
            "%2e%2e/tags/list",
            "a//b/tags/list",
            "a/manifests/bad:digest",
            "a/blobs/sha256:12",
        ] {
            assert!(matches!(Route::parse(p), Some(Err(_))), "{p:?} not refused");
        }
    }
}
