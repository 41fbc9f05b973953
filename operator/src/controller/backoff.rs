//! Per-object exponential backoff for transient reconcile errors.

use kube::core::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const BASE: Duration = Duration::from_secs(2);
const MAX: Duration = Duration::from_secs(300);

/// Consecutive failures per object.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
}

impl Backoff {
    /// Records a failure and returns how long to wait: 2 s, 4 s, 8 s ... up to 5 min.
    pub fn next_delay(&self, key: &ObjectRef<DynamicObject>) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = map.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        delay_for(*n)
    }

    /// Forgets the failures of an object after a successful reconcile.
    pub fn reset(&self, key: &ObjectRef<DynamicObject>) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

/// Delay after `failures` consecutive failures.
pub fn delay_for(failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
    BASE.saturating_mul(factor).min(MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_five_minutes() {
        assert_eq!(delay_for(1), Duration::from_secs(2));
        assert_eq!(delay_for(2), Duration::from_secs(4));
        assert_eq!(delay_for(5), Duration::from_secs(32));
        assert_eq!(delay_for(40), MAX);
    }
}
