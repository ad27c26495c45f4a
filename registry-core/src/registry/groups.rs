//! Locks by group name, for admission rules that must see a group's pushes one at a time
//! ([`crate::admission::Admission::serial_groups`]): pushes into different groups, or into none,
//! never wait on each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// Past this many groups, those nobody holds are forgotten when another is made.
const KEPT: usize = 1024;

/// One lock per group name, made on first use.
#[derive(Default)]
pub(crate) struct GroupLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl GroupLocks {
    /// Holds every group of `groups` (in name order, so that two pushes naming the same groups
    /// never wait on each other crosswise) until the guards are dropped.
    pub(crate) async fn hold(&self, mut groups: Vec<String>) -> Vec<OwnedMutexGuard<()>> {
        groups.sort_unstable();
        groups.dedup();
        let mut held = Vec::with_capacity(groups.len());
        for group in groups {
            let lock = {
                let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
                if locks.len() >= KEPT && !locks.contains_key(&group) {
                    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
                }
                locks.entry(group).or_default().clone()
            };
            held.push(lock.lock_owned().await);
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_group_waits_and_others_do_not() {
        let locks = Arc::new(GroupLocks::default());
        let a = locks.hold(vec!["a".into(), "b".into()]).await;
        // Another group, or none, goes through at once.
        let c = locks.hold(vec!["c".into()]).await;
        assert!(locks.hold(Vec::new()).await.is_empty());
        // A push naming a held group waits until it is released.
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { locks.hold(vec!["b".into(), "c".into()]).await.len() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        drop(c);
        assert_eq!(waiting.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn groups_nobody_holds_are_forgotten() {
        let locks = GroupLocks::default();
        let held = locks.hold(vec!["kept".into()]).await;
        for i in 0..KEPT + 10 {
            drop(locks.hold(vec![format!("group {i}")]).await);
        }
        let known = locks.locks.lock().unwrap().len();
        assert!(known <= KEPT, "{known} groups remembered");
        assert!(locks.locks.lock().unwrap().contains_key("kept"));
        drop(held);
    }
}
