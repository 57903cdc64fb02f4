//! Which compiled modules the on-disk cache keeps: a size-bounded LRU index.
//! Pure bookkeeping; the cache deletes the files it is told to evict.

use grid_core::ModuleHash;
use std::collections::HashMap;

/// The cache's index: each module's size on disk and when it was last used.
#[derive(Debug, Default)]
pub struct LruIndex {
    capacity: u64,
    total: u64,
    clock: u64,
    entries: HashMap<ModuleHash, (u64, u64)>,
    added: Vec<ModuleHash>,
    removed: Vec<ModuleHash>,
}

impl LruIndex {
    /// An empty index holding at most `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        Self { capacity, ..Self::default() }
    }

    /// Marks `hash` as just used.
    pub fn touch(&mut self, hash: &ModuleHash) {
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(hash) {
            e.1 = self.clock;
        }
    }

    /// Adds a module of `bytes` and returns the modules to evict (least
    /// recently used first) to get back under the capacity. The module just
    /// added is never evicted.
    pub fn insert(&mut self, hash: ModuleHash, bytes: u64) -> Vec<ModuleHash> {
        self.clock += 1;
        if let Some((old, _)) = self.entries.insert(hash.clone(), (bytes, self.clock)) {
            self.total -= old;
        } else {
            self.added.push(hash.clone());
        }
        self.total += bytes;
        let mut evicted = Vec::new();
        while self.total > self.capacity {
            let victim = self
                .entries
                .iter()
                .filter(|(h, _)| **h != hash)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(h, _)| h.clone());
            let Some(victim) = victim else { break };
            let (size, _) = self.entries.remove(&victim).expect("victim is indexed");
            self.total -= size;
            self.added.retain(|h| *h != victim);
            self.removed.push(victim.clone());
            evicted.push(victim);
        }
        evicted
    }

    /// Bytes indexed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Modules added and removed since the last call.
    pub fn take_changes(&mut self) -> (Vec<ModuleHash>, Vec<ModuleHash>) {
        (std::mem::take(&mut self.added), std::mem::take(&mut self.removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> ModuleHash {
        ModuleHash::of(&[n])
    }

    #[test]
    fn evicts_least_recently_used_past_capacity() {
        let mut lru = LruIndex::new(100);
        assert!(lru.insert(h(1), 40).is_empty());
        assert!(lru.insert(h(2), 40).is_empty());
        lru.touch(&h(1));
        assert_eq!(lru.insert(h(3), 40), vec![h(2)]);
        assert_eq!(lru.total(), 80);
        let (added, removed) = lru.take_changes();
        assert_eq!((added.len(), removed), (2, vec![h(2)]));
        assert_eq!(lru.take_changes(), (vec![], vec![]));
    }

    #[test]
    fn a_module_larger_than_the_cache_stays_alone() {
        let mut lru = LruIndex::new(10);
        lru.insert(h(1), 5);
        assert_eq!(lru.insert(h(2), 50), vec![h(1)]);
        assert_eq!(lru.total(), 50);
    }
}
