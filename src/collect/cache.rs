//! A bounded cache of work shared between domains, with coalescing of work
//! in flight: the first caller of a key does the work, callers that come
//! while it runs wait for the same result, later callers get the stored one
//! until it expires or is evicted (least recently used first).
//!
//! The bound counts entries, finished or in flight. An entry evicted while
//! in flight still completes for everyone already waiting on it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

struct Slot<V> {
    cell: OnceCell<(V, Instant)>,
    /// LRU stamp of the latest use; `order` entries with an older stamp are stale.
    stamp: AtomicU64,
}

struct State<K, V> {
    map: HashMap<K, Arc<Slot<V>>>,
    /// (key, stamp) in order of use; stale pairs are skipped on eviction.
    order: VecDeque<(K, u64)>,
    tick: u64,
}

/// Counters, for the summary.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CacheStats {
    /// Uses answered from a finished entry.
    pub hits: u64,
    /// Uses that joined work already in flight.
    pub coalesced: u64,
    /// Uses that did the work.
    pub misses: u64,
    /// Entries held at the end.
    pub entries: u64,
    pub capacity: u64,
}

pub struct SharedCache<K, V> {
    state: Mutex<State<K, V>>,
    cap: usize,
    hits: AtomicU64,
    coalesced: AtomicU64,
    misses: AtomicU64,
}

impl<K: Clone + Eq + Hash, V: Clone> SharedCache<K, V> {
    pub fn new(cap: usize) -> Self {
        SharedCache {
            state: Mutex::new(State {
                map: HashMap::new(),
                order: VecDeque::new(),
                tick: 0,
            }),
            cap: cap.max(1),
            hits: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The value for `key`, computed by `work` unless it is stored or in
    /// flight; it is kept for `ttl(&value)`.
    pub async fn get_or_compute<F, Fut>(&self, key: K, ttl: impl Fn(&V) -> Duration, work: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let slot = self.slot(&key);
        if let Some((v, _)) = slot.cell.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return v.clone();
        }
        let mut ran = false;
        let (v, _) = slot
            .cell
            .get_or_init(|| {
                ran = true;
                async {
                    let v = work().await;
                    let expires = Instant::now() + ttl(&v);
                    (v, expires)
                }
            })
            .await;
        let counter = if ran { &self.misses } else { &self.coalesced };
        counter.fetch_add(1, Ordering::Relaxed);
        v.clone()
    }

    /// The slot for `key` (a fresh one if absent or expired), marked as just used.
    fn slot(&self, key: &K) -> Arc<Slot<V>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.tick += 1;
        let tick = st.tick;
        let live = st.map.get(key).filter(|s| match s.cell.get() {
            Some((_, expires)) => Instant::now() < *expires,
            None => true,
        });
        let slot = match live {
            Some(s) => Arc::clone(s),
            None => {
                let s = Arc::new(Slot {
                    cell: OnceCell::new(),
                    stamp: AtomicU64::new(tick),
                });
                st.map.insert(key.clone(), Arc::clone(&s));
                s
            }
        };
        slot.stamp.store(tick, Ordering::Relaxed);
        st.order.push_back((key.clone(), tick));
        while st.map.len() > self.cap {
            let Some((k, stamp)) = st.order.pop_front() else {
                break;
            };
            if st
                .map
                .get(&k)
                .is_some_and(|s| s.stamp.load(Ordering::Relaxed) == stamp)
            {
                st.map.remove(&k);
            }
        }
        // Uses of a few hot keys leave stale pairs behind: keep `order` bounded.
        if st.order.len() > self.cap.saturating_mul(4).max(64) {
            let State { map, order, .. } = &mut *st;
            order.retain(|(k, stamp)| {
                map.get(k)
                    .is_some_and(|s| s.stamp.load(Ordering::Relaxed) == *stamp)
            });
        }
        slot
    }

    /// Forgets every entry: later uses compute again. Work in flight still
    /// completes for those already waiting on it.
    pub fn clear(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.map.clear();
        st.order.clear();
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len() as u64;
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            capacity: self.cap as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn concurrent_uses_share_one_computation() {
        let cache: Arc<SharedCache<String, u32>> = Arc::new(SharedCache::new(8));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (c, r) = (Arc::clone(&cache), Arc::clone(&runs));
            tasks.push(tokio::spawn(async move {
                c.get_or_compute(
                    "mx.example".to_string(),
                    |_| LONG,
                    || async move {
                        r.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        7
                    },
                )
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let s = cache.stats();
        assert_eq!(s.misses, 1);
        assert_eq!(s.hits + s.coalesced, 19);
    }

    #[tokio::test]
    async fn bounded_least_recently_used_go_first() {
        let cache: SharedCache<u32, u32> = SharedCache::new(3);
        for k in 0..3 {
            cache.get_or_compute(k, |_| LONG, || async move { k }).await;
        }
        // Use 0 again, then add 3: 1 is the least recently used and goes.
        cache.get_or_compute(0, |_| LONG, || async { 99 }).await;
        cache.get_or_compute(3, |_| LONG, || async { 3 }).await;
        assert_eq!(cache.stats().entries, 3);
        assert_eq!(cache.get_or_compute(0, |_| LONG, || async { 99 }).await, 0);
        assert_eq!(cache.get_or_compute(1, |_| LONG, || async { 11 }).await, 11);
        // Many uses of one key never grow the bookkeeping without bound.
        for _ in 0..10_000 {
            cache.get_or_compute(1, |_| LONG, || async { 0 }).await;
        }
        assert!(cache.state.lock().unwrap().order.len() <= 64);
        assert!(cache.stats().entries <= 3);
    }

    #[tokio::test]
    async fn expired_entries_are_computed_again() {
        let cache: SharedCache<u32, u32> = SharedCache::new(4);
        let v = cache
            .get_or_compute(1, |_| Duration::ZERO, || async { 1 })
            .await;
        assert_eq!(v, 1);
        let v = cache.get_or_compute(1, |_| LONG, || async { 2 }).await;
        assert_eq!(v, 2);
        assert_eq!(cache.stats().misses, 2);
    }

    #[tokio::test]
    async fn cleared_entries_are_computed_again() {
        let cache: SharedCache<u32, u32> = SharedCache::new(4);
        cache.get_or_compute(1, |_| LONG, || async { 1 }).await;
        cache.clear();
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.get_or_compute(1, |_| LONG, || async { 2 }).await, 2);
    }

    #[tokio::test]
    async fn a_cancelled_computation_is_taken_over() {
        let cache: Arc<SharedCache<u32, u32>> = Arc::new(SharedCache::new(4));
        let c = Arc::clone(&cache);
        let first = tokio::spawn(async move {
            c.get_or_compute(
                1,
                |_| LONG,
                || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    1
                },
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let _ = first.await;
        let v = tokio::time::timeout(
            Duration::from_secs(2),
            cache.get_or_compute(1, |_| LONG, || async { 2 }),
        )
        .await
        .expect("not stuck behind the cancelled computation");
        assert_eq!(v, 2);
    }
}
