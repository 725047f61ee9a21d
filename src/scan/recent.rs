//! The duplicate window: the audits of the most recently finished domains,
//! least recently used dropped first. A duplicate line whose domain is in
//! the window is reported with the stored audit at once; one whose domain is
//! still in flight waits for it; one further back than the window is
//! audited again (its MX hosts and probes usually still come from the
//! shared caches) and reported for its own line as usual.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub struct Lru<K, V> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    tick: u64,
    cap: usize,
}

impl<K: Clone + Eq + Hash, V: Clone> Lru<K, V> {
    pub fn new(cap: usize) -> Self {
        Lru {
            map: HashMap::new(),
            order: VecDeque::new(),
            tick: 0,
            cap,
        }
    }

    pub fn get(&mut self, k: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (v, stamp) = self.map.get_mut(k)?;
        *stamp = tick;
        let v = v.clone();
        self.order.push_back((k.clone(), tick));
        self.compact();
        Some(v)
    }

    pub fn put(&mut self, k: K, v: V) {
        if self.cap == 0 {
            return;
        }
        self.tick += 1;
        self.map.insert(k.clone(), (v, self.tick));
        self.order.push_back((k, self.tick));
        while self.map.len() > self.cap {
            let Some((k, stamp)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(_, s)| *s == stamp) {
                self.map.remove(&k);
            }
        }
        self.compact();
    }

    fn compact(&mut self) {
        if self.order.len() > self.cap.saturating_mul(4).max(64) {
            let map = &self.map;
            self.order
                .retain(|(k, stamp)| map.get(k).is_some_and(|(_, s)| s == stamp));
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent() {
        let mut l = Lru::new(2);
        l.put("a", 1);
        l.put("b", 2);
        assert_eq!(l.get(&"a"), Some(1));
        l.put("c", 3);
        assert_eq!(l.get(&"b"), None);
        assert_eq!(l.get(&"a"), Some(1));
        assert_eq!(l.get(&"c"), Some(3));
        for i in 0..10_000 {
            l.get(&"a");
            l.put("x", i);
        }
        assert_eq!(l.len(), 2);
        assert!(l.order.len() <= 64);
        let mut z: Lru<&str, i32> = Lru::new(0);
        z.put("a", 1);
        assert!(z.is_empty());
    }
}
