//! Waiting for a condition with a deadline, never for a fixed time: the one helper the tests wait
//! with. Each names what it waits for, so that a timeout says what never happened.

use std::time::{Duration, Instant};

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(100);

/// Waits until `probe` gives a value, failing with `what` after `limit`; the value.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `done` holds, failing with `what` after `limit`.
pub async fn until(what: &str, limit: Duration, done: impl AsyncFnMut() -> bool) {
    assert!(
        within(limit, done).await,
        "timed out after {limit:?} waiting for {what}"
    );
}

/// Whether `done` comes to hold within `limit`, for callers that say more than [`until`] when
/// it does not.
pub async fn within(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// [`until`] for a condition checked without waiting on anything.
pub async fn until_sync(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    eventually(what, limit, async || done().then_some(())).await
}

/// [`until`] for code outside an async runtime: the thread sleeps between checks.
pub fn until_blocking(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    assert!(
        holds_within(limit, done),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// Whether `done` comes to hold within `limit` (checked outside an async runtime), for callers
/// that say more than [`until_blocking`] when it does not.
pub fn holds_within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}
