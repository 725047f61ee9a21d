//! Politeness: rate limits (global, per destination address) and the skip
//! list of domains and addresses that are never contacted.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Evenly spaced permits: at most `rate` per second, no bursts (each caller
/// gets the next free slot and sleeps until it).
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `None` for a rate of 0 (unlimited).
    pub fn per_second(rate: f64) -> Option<RateLimiter> {
        (rate > 0.0).then(|| RateLimiter {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(Instant::now()),
        })
    }

    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// A rate limit per destination address. Entries whose next slot has passed
/// carry no information and are dropped, so the map holds only addresses
/// contacted within the last interval.
pub struct PerAddressRate {
    interval: Duration,
    next: Mutex<HashMap<IpAddr, Instant>>,
}

impl PerAddressRate {
    pub fn per_second(rate: f64) -> Option<PerAddressRate> {
        (rate > 0.0).then(|| PerAddressRate {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(HashMap::new()),
        })
    }

    pub async fn wait(&self, ip: IpAddr) {
        let at = {
            let mut map = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if map.len() >= 1024 {
                map.retain(|_, t| *t > now);
            }
            let at = map.get(&ip).copied().unwrap_or(now).max(now);
            map.insert(ip, at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.next.lock().unwrap().len()
    }
}

/// Domains (with everything under them) and addresses or prefixes never
/// contacted. A listed domain is not looked up at all and gets an error row;
/// a listed MX host name or address is not connected to (its probe is
/// recorded as not made, so the domain reads `incomplete`).
#[derive(Debug, Default, Clone)]
pub struct SkipList {
    domains: HashSet<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl SkipList {
    /// One entry per line: a domain, an address, or a CIDR prefix; `#` comments.
    pub fn parse(text: &str) -> Result<SkipList, String> {
        let mut s = SkipList::default();
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let bad = |why: String| format!("line {}: {entry:?}: {why}", i + 1);
            if let Some((addr, len)) = entry.split_once('/') {
                let ip: IpAddr = addr
                    .parse()
                    .map_err(|_| bad("not an address prefix".into()))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let len: u8 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or_else(|| bad(format!("prefix length must be 0..{max}")))?;
                s.nets.push((ip, len));
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                s.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else {
                let d = crate::input::normalize_domain(entry).map_err(|e| bad(e.to_string()))?;
                s.domains.insert(d);
            }
        }
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.nets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.domains.len() + self.nets.len()
    }

    /// The listed entry that covers `name` (the name itself or a parent).
    pub fn domain(&self, name: &str) -> Option<&str> {
        if self.domains.is_empty() {
            return None;
        }
        let name = name.trim_end_matches('.');
        let mut rest = name;
        loop {
            if let Some(d) = self.domains.get(rest) {
                return Some(d);
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => return None,
            }
        }
    }

    pub fn address(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|(net, len)| in_prefix(ip, *net, *len))
    }
}

fn in_prefix(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_list_domains_and_prefixes() {
        let s = SkipList::parse(
            "# opt-out\nOptOut.example.\n192.0.2.0/28\n2001:db8:1::/48  # hoster\n198.51.100.7\n",
        )
        .unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s.domain("optout.example"), Some("optout.example"));
        assert_eq!(s.domain("mx.optout.example"), Some("optout.example"));
        assert_eq!(s.domain("notoptout.example"), None);
        assert_eq!(s.domain("example"), None);
        assert!(s.address("192.0.2.15".parse().unwrap()));
        assert!(!s.address("192.0.2.16".parse().unwrap()));
        assert!(s.address("2001:db8:1:ff::25".parse().unwrap()));
        assert!(!s.address("2001:db8:2::25".parse().unwrap()));
        assert!(s.address("198.51.100.7".parse().unwrap()));
        assert!(!s.address("198.51.100.8".parse().unwrap()));
        let e = SkipList::parse("ok.example\n10.0.0.0/33\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(SkipList::parse("https://x.example/").is_err());
        assert!(
            SkipList::parse("0.0.0.0/0")
                .unwrap()
                .address("8.8.8.8".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn rates_space_permits_evenly() {
        let r = RateLimiter::per_second(100.0).unwrap();
        let t0 = Instant::now();
        for _ in 0..6 {
            r.wait().await;
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert!(RateLimiter::per_second(0.0).is_none());

        let p = PerAddressRate::per_second(10.0).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        p.wait(a).await;
        p.wait(b).await;
        assert!(
            t0.elapsed() < Duration::from_millis(50),
            "other addresses do not wait"
        );
        p.wait(a).await;
        assert!(t0.elapsed() >= Duration::from_millis(100));
        // Addresses whose next slot has passed are dropped.
        let p = PerAddressRate::per_second(1000.0).unwrap();
        for i in 0..3000u32 {
            p.wait(IpAddr::from(i.to_be_bytes())).await;
            if i % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        assert!(p.len() <= 1024, "{}", p.len());
    }
}
