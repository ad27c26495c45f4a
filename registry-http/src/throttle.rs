//! Login throttling: failed logins are counted per client address and per user name; once either
//! has [`ThrottleConfig::max_failures`] recent failures, further attempts from that address or for
//! that user are answered 429 `TOOMANYREQUESTS` with `Retry-After`, without checking the password,
//! for an interval that doubles with every further failure (up to
//! [`ThrottleConfig::max_lockout`]). A successful login clears its address and user. Other
//! addresses and other users are never slowed. Counters live in memory (bounded), per process.
//!
//! ```
//! use std::net::IpAddr;
//! use registry_http::throttle::{LoginThrottle, ThrottleConfig};
//! let throttle = LoginThrottle::new(ThrottleConfig { max_failures: 2, ..Default::default() });
//! let ip: IpAddr = "192.0.2.1".parse().unwrap();
//! throttle.failed(Some(ip), Some("alice"));
//! assert!(throttle.check(Some(ip), Some("alice")).is_ok());
//! throttle.failed(Some(ip), Some("alice"));
//! assert!(throttle.check(Some(ip), Some("alice")).is_err());
//! assert!(throttle.check(Some("192.0.2.2".parse().unwrap()), Some("bob")).is_ok());
//! ```

use std::net::IpAddr;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

/// When logins are throttled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures an address or a user may have before attempts are refused. Default: 5.
    pub max_failures: u32,
    /// The first refusal interval; each further failure doubles it. Default: 1 s.
    pub initial_lockout: Duration,
    /// The longest refusal interval. Default: 5 minutes.
    pub max_lockout: Duration,
    /// Failures older than this are forgotten. Default: 15 minutes.
    pub forget_after: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            initial_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(300),
            forget_after: Duration::from_secs(900),
        }
    }
}

/// Recent failures of one address or user.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(String),
}

/// The throttle; see the module documentation.
pub struct LoginThrottle {
    config: ThrottleConfig,
    strikes: Cache<Key, Strikes>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Entries kept at most (addresses and users together): a spray of addresses cannot grow memory.
const CAPACITY: usize = 100_000;

impl LoginThrottle {
    /// A throttle with `config`.
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            config,
            strikes: Cache::new(CAPACITY),
        }
    }

    fn keys(addr: Option<IpAddr>, user: Option<&str>) -> impl Iterator<Item = Key> {
        let user = user
            .filter(|u| !u.is_empty())
            .map(|u| Key::User(u.to_owned()));
        addr.map(Key::Address).into_iter().chain(user)
    }

    /// `Ok` when a login from `addr` for `user` may be tried now; otherwise how long to wait.
    pub fn check(&self, addr: Option<IpAddr>, user: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let wait = Self::keys(addr, user)
            .filter_map(|k| self.strikes.get(&k)?.locked_until)
            .filter_map(|until| until.checked_duration_since(now))
            .max();
        match wait {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `addr` for `user`.
    pub fn failed(&self, addr: Option<IpAddr>, user: Option<&str>) {
        let now = Instant::now();
        for key in Self::keys(addr, user) {
            let mut s = match self.strikes.get(&key) {
                Some(s) if now.duration_since(s.last) < self.config.forget_after => s,
                _ => Strikes {
                    failures: 0,
                    last: now,
                    locked_until: None,
                },
            };
            s.failures += 1;
            s.last = now;
            if let Some(over) = s.failures.checked_sub(self.config.max_failures) {
                let lockout = self
                    .config
                    .initial_lockout
                    .saturating_mul(2u32.saturating_pow(over.min(30)))
                    .min(self.config.max_lockout);
                s.locked_until = Some(now + lockout);
            }
            self.strikes.insert(key, s);
        }
    }

    /// A successful login from `addr` for `user`: their failures are forgotten.
    pub fn succeeded(&self, addr: Option<IpAddr>, user: Option<&str>) {
        for key in Self::keys(addr, user) {
            if self.strikes.get(&key).is_some() {
                self.strikes.remove(&key);
            }
        }
    }
}

/// The answer to a login refused unchecked for `wait` (429 `TOOMANYREQUESTS` with
/// `Retry-After`), and the whole seconds it tells the client to wait.
pub(crate) fn refusal(wait: Duration) -> (axum::response::Response, u64) {
    use axum::response::IntoResponse;
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let response = crate::ApiError::new(
        crate::ErrorCode::TooManyRequests,
        "too many failed logins: retry later",
    )
    .with_header(
        http::header::RETRY_AFTER,
        crate::headers::value(secs.to_string()),
    )
    .into_response();
    (response, secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_lockout_grows_with_failures_and_a_success_clears_it() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 3,
            initial_lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(35),
            ..Default::default()
        });
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..2 {
            t.failed(Some(ip), Some("eve"));
            assert!(t.check(Some(ip), Some("eve")).is_ok());
        }
        let mut waits = Vec::new();
        for _ in 0..4 {
            t.failed(Some(ip), Some("eve"));
            waits.push(t.check(Some(ip), None).unwrap_err().as_secs_f64().round() as u64);
        }
        assert_eq!(waits, [10, 20, 35, 35]);
        // The user is locked from any address; another user from another address is not.
        assert!(
            t.check(Some("198.51.100.8".parse().unwrap()), Some("eve"))
                .is_err()
        );
        assert!(
            t.check(Some("198.51.100.8".parse().unwrap()), Some("bob"))
                .is_ok()
        );
        t.succeeded(Some(ip), Some("eve"));
        assert!(t.check(Some(ip), Some("eve")).is_ok());
    }
}
