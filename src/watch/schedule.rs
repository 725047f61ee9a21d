//! When each domain is audited: spread over the interval, not in bursts.
//!
//! Every domain has a fixed phase within the interval, from a hash of its
//! name, and is audited at `k × interval + phase` (Unix time): a thousand
//! domains with a one-hour interval are audited about one every 3.6 s, the
//! same moments every hour, across restarts and on every machine. A domain
//! never audited before starts within [`RAMP`] (spread over it the same
//! way), so a new watch shows results in minutes, not an interval later.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::core::evidence::Timestamp;

/// Domains never audited start within this time (or the interval, if shorter).
pub const RAMP: Duration = Duration::from_secs(60);

/// The domain's phase: a stable fraction of the interval.
pub fn phase(domain: &str) -> f64 {
    let h = Sha256::digest(domain.as_bytes());
    let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    n as f64 / (u64::MAX as f64 + 1.0)
}

/// Milliseconds since the epoch of the next audit of `domain`.
///
/// The next slot at or after `now`, and at least half an interval after
/// the last audit (an audit made off its slot, e.g. by `--once`, does not
/// get a second one moments later). Never audited: within [`RAMP`].
pub fn next_due(domain: &str, interval: Duration, last: Option<Timestamp>, now_ms: i64) -> i64 {
    let i = interval.as_millis().max(1) as i64;
    let p = phase(domain);
    let Some(last) = last else {
        let ramp = RAMP.min(interval).as_millis() as f64;
        return now_ms + (p * ramp) as i64;
    };
    let offset = (p * i as f64) as i64;
    let not_before = now_ms.max(last.0 * 1000 + i / 2);
    let k = (not_before - offset).div_euclid(i);
    let mut t = k * i + offset;
    if t < not_before {
        t += i;
    }
    t
}

/// The queue of due times, earliest first; one entry per domain.
#[derive(Debug, Default)]
pub struct Schedule {
    order: BTreeSet<(i64, String)>,
    due: HashMap<String, i64>,
}

impl Schedule {
    /// Sets (or moves) a domain's next audit.
    pub fn set(&mut self, domain: &str, at_ms: i64) {
        self.remove(domain);
        self.order.insert((at_ms, domain.to_string()));
        self.due.insert(domain.to_string(), at_ms);
    }

    pub fn remove(&mut self, domain: &str) {
        if let Some(t) = self.due.remove(domain) {
            self.order.remove(&(t, domain.to_string()));
        }
    }

    pub fn contains(&self, domain: &str) -> bool {
        self.due.contains_key(domain)
    }

    /// The earliest due time.
    pub fn next(&self) -> Option<i64> {
        self.order.first().map(|(t, _)| *t)
    }

    /// Takes the earliest domain if it is due at `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Option<String> {
        let (t, d) = self.order.first()?.clone();
        if t > now_ms {
            return None;
        }
        self.order.remove(&(t, d.clone()));
        self.due.remove(&d);
        Some(d)
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn phases_spread_domains_over_the_interval() {
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let p = phase(&format!("d{i}.example"));
            assert!((0.0..1.0).contains(&p));
            buckets[(p * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((850..1150).contains(&b), "uneven: {buckets:?}");
        }
        assert_eq!(phase("a.example"), phase("a.example"));
    }

    #[test]
    fn next_due_keeps_the_phase_and_the_spacing() {
        let now = 1_800_000_000_000i64;
        let d = "example.org";
        let first = next_due(d, H, None, now);
        assert!(first >= now && first < now + 60_000, "ramp");
        let last = Timestamp(now / 1000);
        let t1 = next_due(d, H, Some(last), now);
        assert!(
            t1 >= now + 1_800_000,
            "at least half an interval after the last audit"
        );
        assert!(t1 < now + 3_600_000 + 1_800_000);
        let t2 = next_due(d, H, Some(Timestamp(t1 / 1000)), t1);
        assert_eq!(t2 - t1, 3_600_000, "one interval later, same phase");
        // Overdue after a long stop: the next slot from now, not a backlog.
        let t3 = next_due(d, H, Some(Timestamp(now / 1000 - 86_400)), now);
        assert!(t3 >= now && t3 < now + 3_600_000);
        assert_eq!(t3.rem_euclid(3_600_000), t2.rem_euclid(3_600_000));
    }

    #[test]
    fn schedule_pops_in_time_order() {
        let mut s = Schedule::default();
        s.set("b", 20);
        s.set("a", 10);
        s.set("c", 30);
        s.set("b", 5);
        assert_eq!(s.next(), Some(5));
        assert_eq!(s.pop_due(4), None);
        assert_eq!(s.pop_due(25).as_deref(), Some("b"));
        assert_eq!(s.pop_due(25).as_deref(), Some("a"));
        assert_eq!(s.pop_due(25), None);
        s.remove("c");
        assert!(s.is_empty());
    }
}
