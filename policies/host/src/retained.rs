//! Which compiled components the host keeps: each one's size and last use, against a memory budget. Each tenant
//! may name a component of its own, so without a bound the compiled code of every digest ever named would stay for
//! the life of the process. Past the budget the least recently used go first (a later load compiles again); a
//! component no tenant holds and none has used for a while goes as well. Pure bookkeeping: the host does the
//! forgetting.

use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug)]
struct Entry {
    bytes: usize,
    used: Instant,
}

/// Sizes and last uses of the compiled components kept, by digest.
#[derive(Debug)]
pub(crate) struct Retained {
    entries: HashMap<String, Entry>,
    max_bytes: usize,
}

impl Retained {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { entries: HashMap::new(), max_bytes }
    }

    /// Compiled bytes kept now.
    pub(crate) fn bytes(&self) -> usize {
        self.entries.values().map(|e| e.bytes).sum()
    }

    /// `sha256` was used at `now`.
    pub(crate) fn touch(&mut self, sha256: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(sha256) {
            e.used = now;
        }
    }

    /// Keeps `sha256` (`bytes` of compiled code) and returns the digests to forget so that the rest fits the budget,
    /// least recently used first. The new one is never among them, even when it alone is over the budget.
    pub(crate) fn insert(&mut self, sha256: &str, bytes: usize, now: Instant) -> Vec<String> {
        self.entries.insert(sha256.to_string(), Entry { bytes, used: now });
        let mut by_age: Vec<(&String, &Entry)> = self.entries.iter().filter(|(d, _)| d.as_str() != sha256).collect();
        by_age.sort_by_key(|(_, e)| e.used);
        let mut total = self.bytes();
        let mut evicted = Vec::new();
        for (digest, entry) in by_age {
            if total <= self.max_bytes {
                break;
            }
            total -= entry.bytes;
            evicted.push(digest.clone());
        }
        for digest in &evicted {
            self.entries.remove(digest);
        }
        evicted
    }

    /// Digests last used before `before` that `held` says no tenant holds.
    pub(crate) fn unused_since(&self, before: Instant, held: impl Fn(&str) -> bool) -> Vec<String> {
        self.entries.iter().filter(|(d, e)| e.used < before && !held(d)).map(|(d, _)| d.clone()).collect()
    }

    pub(crate) fn remove(&mut self, sha256: &str) {
        self.entries.remove(sha256);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn past_the_budget_the_least_recently_used_go_first_and_never_the_new_one() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut kept = Retained::new(100);
        assert!(kept.insert("a", 40, at(0)).is_empty());
        assert!(kept.insert("b", 40, at(1)).is_empty());
        kept.touch("a", at(2)); // a is now more recent than b
        assert_eq!(kept.insert("c", 40, at(3)), ["b"], "120 > 100: the least recently used goes");
        assert_eq!(kept.bytes(), 80);
        // One larger than the whole budget: everything else goes, it stays.
        let mut gone = kept.insert("huge", 500, at(4));
        gone.sort();
        assert_eq!(gone, ["a", "c"]);
        assert_eq!(kept.bytes(), 500);
        kept.remove("huge");
        assert_eq!(kept.bytes(), 0);
    }

    #[test]
    fn unused_and_unheld_components_are_named_for_forgetting() {
        let t0 = Instant::now();
        let mut kept = Retained::new(1000);
        kept.insert("old-held", 1, t0);
        kept.insert("old-free", 1, t0);
        kept.insert("recent", 1, t0 + Duration::from_secs(100));
        let stale = kept.unused_since(t0 + Duration::from_secs(50), |d| d == "old-held");
        assert_eq!(stale, ["old-free"]);
    }
}
