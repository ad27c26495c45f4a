//! Login throttling: failed logins are counted per client address and per user; once either has
//! [`ThrottleConfig::max_failures`] recent failures, further attempts from that address or for
//! that user are answered 429 `TOOMANYREQUESTS` with `Retry-After`, without checking the password,
//! for an interval that doubles with every further failure (up to [`ThrottleConfig::max_lockout`]).
//! Other addresses and other users are never slowed. Counters live in memory (bounded), per
//! process.
//!
//! So that it cannot be turned against users:
//! - a user is counted under their canonical name (surrounding space dropped, lower case), so
//!   `CAROL`, `Carol` and ` carol`, which a directory takes for `carol`, share one counter;
//! - the same failed credential (user and password) counts once however often it is repeated:
//!   a client retrying a stale password (containerd tries five times) is one failure;
//! - a success clears that user's counter only, never the address's: logging in to one's own
//!   account does not reset a spray of guesses at others.
//!
//! ```
//! use std::net::IpAddr;
//! use registry_http::auth::throttle::{LoginThrottle, ThrottleConfig};
//! let throttle = LoginThrottle::new(ThrottleConfig { max_failures: 2, ..Default::default() });
//! let ip: IpAddr = "192.0.2.1".parse().unwrap();
//! throttle.failed(Some(ip), Some("alice"), "guess 1");
//! throttle.failed(Some(ip), Some("alice"), "guess 1");
//! assert!(throttle.check(Some(ip), Some("alice")).is_ok(), "a repeat counts once");
//! throttle.failed(Some(ip), Some("Alice "), "guess 2");
//! assert!(throttle.check(Some(ip), Some("alice")).is_err());
//! assert!(throttle.check(Some("192.0.2.2".parse().unwrap()), Some("bob")).is_ok());
//! ```

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use registry_core::clock::{SharedClock, SystemClock};

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
    /// Failed credentials already counted (a salted hash of user and password), with when.
    counted: Cache<[u8; 32], Instant>,
    salt: [u8; 16],
    clock: SharedClock,
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
        let mut salt = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut salt);
        LoginThrottle {
            config,
            strikes: Cache::new(CAPACITY),
            counted: Cache::new(CAPACITY),
            salt,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same throttle, timing lockouts and forgetting failures by `clock` (tests advance it).
    pub fn with_clock(mut self, clock: SharedClock) -> LoginThrottle {
        self.clock = clock;
        self
    }

    fn keys(addr: Option<IpAddr>, user: Option<&str>) -> impl Iterator<Item = Key> {
        let user = user.map(canonical).filter(|u| !u.is_empty()).map(Key::User);
        addr.map(Key::Address).into_iter().chain(user)
    }

    /// Whether this failed credential was counted within the forget window; remembers it.
    fn seen(&self, user: Option<&str>, credential: &str) -> bool {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(self.salt);
        h.update(user.map(canonical).unwrap_or_default().as_bytes());
        h.update([0]);
        h.update(credential.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let now = self.clock.instant();
        let seen = self
            .counted
            .get(&key)
            .is_some_and(|at| now.duration_since(at) < self.config.forget_after);
        self.counted.insert(key, now);
        seen
    }

    /// `Ok` when a login from `addr` for `user` may be tried now; otherwise how long to wait.
    pub fn check(&self, addr: Option<IpAddr>, user: Option<&str>) -> Result<(), Duration> {
        let now = self.clock.instant();
        let wait = Self::keys(addr, user)
            .filter_map(|k| self.strikes.get(&k)?.locked_until)
            .filter_map(|until| until.checked_duration_since(now))
            .max();
        match wait {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `addr` for `user` with `credential` (the password or token
    /// given), unless that same credential failed for that user within the forget window.
    pub fn failed(&self, addr: Option<IpAddr>, user: Option<&str>, credential: &str) {
        if self.seen(user, credential) {
            return;
        }
        let now = self.clock.instant();
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

    /// A successful login of `user`: their failures are forgotten (not their address's).
    pub fn succeeded(&self, user: &str) {
        let key = Key::User(canonical(user));
        if self.strikes.get(&key).is_some() {
            self.strikes.remove(&key);
        }
    }
}

/// A user name as the throttle counts it: surrounding space dropped, lower case.
pub fn canonical(user: &str) -> String {
    user.trim().to_lowercase()
}

/// The answer to a login refused unchecked for `wait` (429 `TOOMANYREQUESTS` with
/// `Retry-After`), and the whole seconds it tells the client to wait.
pub(crate) fn refusal(wait: Duration) -> (axum::response::Response, u64) {
    use axum::response::IntoResponse;
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let response = crate::error::ApiError::new(
        crate::error::ErrorCode::TooManyRequests,
        format!("too many failed logins: retry after {secs} s"),
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
    fn the_lockout_grows_with_failures_and_a_success_clears_only_the_user() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 3,
            initial_lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(35),
            ..Default::default()
        });
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..2 {
            t.failed(Some(ip), Some("eve"), &format!("guess {i}"));
            assert!(t.check(Some(ip), Some("eve")).is_ok());
        }
        let mut waits = Vec::new();
        for i in 2..6 {
            t.failed(Some(ip), Some("eve"), &format!("guess {i}"));
            waits.push(t.check(Some(ip), None).unwrap_err().as_secs_f64().round() as u64);
        }
        assert_eq!(waits, [10, 20, 35, 35]);
        // The user is locked from any address, under any spelling; another user from another
        // address is not.
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert!(t.check(Some(other), Some(" EVE")).is_err());
        assert!(t.check(Some(other), Some("bob")).is_ok());
        // Eve logging in clears her counter, not her address's.
        t.succeeded("Eve");
        assert!(t.check(Some(other), Some("eve")).is_ok());
        assert!(t.check(Some(ip), Some("eve")).is_err());
    }

    #[test]
    fn lockouts_end_and_failures_are_forgotten_as_the_clock_moves() {
        let clock = registry_core::clock::OffsetClock::default();
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 2,
            initial_lockout: Duration::from_secs(10),
            forget_after: Duration::from_secs(900),
            ..Default::default()
        })
        .with_clock(Arc::new(clock.clone()));
        let ip: IpAddr = "198.51.100.10".parse().unwrap();
        t.failed(Some(ip), Some("dave"), "guess 1");
        t.failed(Some(ip), Some("dave"), "guess 2");
        assert!(t.check(Some(ip), Some("dave")).is_err());
        clock.advance(Duration::from_secs(11));
        assert!(t.check(Some(ip), Some("dave")).is_ok(), "the lockout ended");
        // Within the forget window the next failure locks again, for twice as long.
        t.failed(Some(ip), Some("dave"), "guess 3");
        let wait = t.check(Some(ip), None).unwrap_err();
        assert_eq!(wait.as_secs_f64().round() as u64, 20);
        // Past it, the count starts over: one failure locks nothing.
        clock.advance(Duration::from_secs(901));
        t.failed(Some(ip), Some("dave"), "guess 4");
        assert!(t.check(Some(ip), Some("dave")).is_ok());
    }

    #[test]
    fn a_repeated_credential_counts_once() {
        let t = LoginThrottle::new(ThrottleConfig {
            max_failures: 2,
            ..Default::default()
        });
        let ip: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..10 {
            t.failed(Some(ip), Some("carol"), "stale secret");
        }
        assert!(t.check(Some(ip), Some("carol")).is_ok());
        t.failed(Some(ip), Some("CAROL"), "stale secret");
        assert!(
            t.check(Some(ip), Some("carol")).is_ok(),
            "the same, spelt otherwise"
        );
        t.failed(Some(ip), Some("carol"), "another guess");
        assert!(t.check(Some(ip), Some("carol")).is_err());
    }
}
