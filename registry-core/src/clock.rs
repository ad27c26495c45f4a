//! The time the lifecycle reads: garbage collection's grace period and cache expiry, retention's
//! ages, tag history times, upload ages, and (in registry-http) tokens and login throttling. They
//! all ask one [`Clock`], so that a test advances time with an [`OffsetClock`] instead of sleeping
//! through a grace period.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use registry_core::clock::{Clock, OffsetClock};
//!
//! let clock = OffsetClock::default();
//! clock.advance(Duration::from_secs(3600));
//! let ahead = clock.now().duration_since(SystemTime::now()).unwrap();
//! assert!(ahead > Duration::from_secs(3599));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Where the time comes from: the wall clock for ages compared with storage times and token
/// claims, and a monotonic one for intervals measured in-process.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The wall-clock time now.
    fn now(&self) -> SystemTime;

    /// The monotonic time now, for intervals (lockouts, cache lifetimes).
    fn instant(&self) -> Instant;
}

/// A clock shared by the parts that read it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks: what a server runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// Time added by hand, shared by clones: what the two test clocks move by.
#[derive(Debug, Default, Clone)]
struct Added(Arc<AtomicU64>);

impl Added {
    fn add(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }

    fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

/// The system's clocks moved forward by what [`OffsetClock::advance`] added: time still flows, so
/// storage times (which the backend sets) and this clock's stay comparable, and a test jumps
/// past a grace period or a token's lifetime instead of waiting. Clones share the offset.
#[derive(Debug, Default, Clone)]
pub struct OffsetClock {
    ahead: Added,
}

impl OffsetClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.ahead.add(by);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + self.ahead.get()
    }

    fn instant(&self) -> Instant {
        Instant::now() + self.ahead.get()
    }
}

/// A clock that moves only when [`ManualClock::advance`] moves it: what a deterministic simulation
/// runs on (give the same clock to the storage, such as `MemoryStorage::with_clock`, so that
/// object times are its times too). Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: (SystemTime, Instant),
    elapsed: Added,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: SystemTime) -> ManualClock {
        ManualClock {
            start: (at, Instant::now()),
            elapsed: Added::default(),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.elapsed.add(by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.start.0 + self.elapsed.get()
    }

    fn instant(&self) -> Instant {
        self.start.1 + self.elapsed.get()
    }
}

/// Seconds since the Unix epoch at `at` (0 before it).
pub fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset_and_both_clocks_move() {
        let clock = OffsetClock::default();
        let other = clock.clone();
        let (wall, mono) = (SystemTime::now(), Instant::now());
        other.advance(Duration::from_secs(60));
        assert!(clock.now() >= wall + Duration::from_secs(60));
        assert!(clock.instant() >= mono + Duration::from_secs(60));
        assert!(SystemClock.now() < clock.now());
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = ManualClock::new(at);
        let mono = clock.instant();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((clock.now(), clock.instant()), (at, mono));
        clock.clone().advance(Duration::from_secs(7));
        assert_eq!(clock.now(), at + Duration::from_secs(7));
        assert_eq!(clock.instant(), mono + Duration::from_secs(7));
    }
}
