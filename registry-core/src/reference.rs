//! Repository names, tags and references (tag or digest), validated against the
//! distribution-spec grammar so that they are safe to use as storage key components.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Longest repository name accepted, as distribution does.
pub const MAX_NAME_LEN: usize = 255;

/// A repository name such as `library/alpine` or `a/b/c/d/e`.
///
/// Grammar: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most
/// [`MAX_NAME_LEN`] characters. Components named `blobs`, `manifests`, `tags` or `uploads` are valid.
///
/// ```
/// use registry_core::RepositoryName;
/// assert!("pilasguru/test".parse::<RepositoryName>().is_ok());
/// assert!("a/../b".parse::<RepositoryName>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepositoryName(String);

impl RepositoryName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for RepositoryName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() <= MAX_NAME_LEN && s.split('/').all(is_valid_component) {
            Ok(RepositoryName(s.to_owned()))
        } else {
            Err(Error::NameInvalid {
                name: s.chars().take(300).collect(),
            })
        }
    }
}

impl TryFrom<String> for RepositoryName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<RepositoryName> for String {
    fn from(n: RepositoryName) -> String {
        n.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
///
/// ```
/// use registry_core::Tag;
/// assert!("v1.0_rc-2".parse::<Tag>().is_ok());
/// assert!(".hidden".parse::<Tag>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let b = s.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let ok = !b.is_empty()
            && b.len() <= 128
            && word(b[0])
            && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-');
        if ok {
            Ok(Tag(s.to_owned()))
        } else {
            Err(Error::TagInvalid {
                tag: s.chars().take(200).collect(),
            })
        }
    }
}

impl TryFrom<String> for Tag {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Tag> for String {
    fn from(t: Tag) -> String {
        t.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What a manifest request names: a tag or a digest.
///
/// Text with a colon is read as a digest (tags cannot hold colons), anything else as a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A mutable name pointing at a manifest.
    Tag(Tag),
    /// The manifest's own digest.
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.contains(':') {
            Ok(Reference::Digest(s.parse()?))
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

impl From<Tag> for Reference {
    fn from(t: Tag) -> Self {
        Reference::Tag(t)
    }
}

impl From<Digest> for Reference {
    fn from(d: Digest) -> Self {
        Reference::Digest(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_any_depth_are_valid() {
        for good in [
            "a",
            "pilasguru/test",
            "a/b/c/d/e",
            "library/alpine",
            "foo/blobs",
            "manifests/tags/uploads/blobs",
            "a.b_c__d---e/f-g",
            "0",
            &"a".repeat(MAX_NAME_LEN),
        ] {
            assert!(good.parse::<RepositoryName>().is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a//b",
            "A",
            "a/B",
            "..",
            "a/../b",
            "%2e%2e",
            "a/.",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "a_",
            ".a",
            "a b",
            "a/b\0",
            "é",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(bad.parse::<RepositoryName>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tags_follow_the_grammar() {
        for good in ["latest", "v1.0", "_x", "A-b.c_d", &"t".repeat(128)] {
            assert!(good.parse::<Tag>().is_ok(), "{good:?} refused");
        }
        for bad in ["", ".a", "-a", "a/b", "a:b", "a b", &"t".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert!(matches!(
            "latest".parse::<Reference>().unwrap(),
            Reference::Tag(_)
        ));
        let d = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            d.parse::<Reference>().unwrap(),
            Reference::Digest(_)
        ));
        assert!("sha256:zz".parse::<Reference>().is_err());
    }
}
