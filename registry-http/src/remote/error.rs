//! Why a remote registry (an upstream of the pull-through cache, a replication target, a sync
//! source) cannot be used as configured.

/// What setting a pull-through cache up can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// A prefix that is no repository name.
    #[error("mirror prefix {prefix:?} is not a repository name")]
    InvalidPrefix {
        /// The prefix.
        prefix: String,
    },
    /// An upstream URL that cannot be used (credentials left out of it).
    #[error("upstream {url}: {reason}")]
    InvalidUpstream {
        /// The URL, without credentials.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An upstream redirected while `[mirror] redirects = "none"`.
    #[error("redirects are not followed ([mirror] redirects = \"none\")")]
    RedirectsOff,
    /// An upstream redirected to another origin over plain HTTP.
    #[error("a redirect to another origin must use https: {target}")]
    RedirectNotHttps {
        /// Where it redirected.
        target: String,
    },
    /// A redirect or token realm names an internal address while the upstream is not internal.
    #[error("{target} is an internal address")]
    InternalAddress {
        /// The address named.
        target: String,
    },
}
