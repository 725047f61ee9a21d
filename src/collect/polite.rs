//! Politeness: at most a few connections at a time to one destination
//! address, and rate limits, global and per destination address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// One shared value per destination address (a semaphore, a DNS window),
/// made on first use. Entries live only while someone holds or waits for
/// them, so memory follows the work in flight, not every address ever seen.
pub struct PerAddress<T> {
    map: Mutex<HashMap<IpAddr, Weak<T>>>,
}

impl<T> Default for PerAddress<T> {
    fn default() -> Self {
        PerAddress {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> PerAddress<T> {
    /// The value of `ip`, made by `make` when nobody holds one.
    pub fn get(&self, ip: IpAddr, make: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 4096 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        match map.get(&ip).and_then(Weak::upgrade) {
            Some(v) => v,
            None => {
                let v = Arc::new(make());
                map.insert(ip, Arc::downgrade(&v));
                v
            }
        }
    }
}

/// Limits concurrent connections per destination address (default 1), so a
/// host shared by many MX names is never hit in parallel.
pub struct AddressGate {
    per_address: usize,
    slots: PerAddress<Semaphore>,
}

impl AddressGate {
    pub fn new(per_address: usize) -> AddressGate {
        AddressGate {
            per_address: per_address.max(1),
            slots: PerAddress::default(),
        }
    }

    /// Waits for a connection slot to `ip`.
    pub async fn enter(&self, ip: IpAddr) -> OwnedSemaphorePermit {
        self.slots
            .get(ip, || Semaphore::new(self.per_address))
            .acquire_owned()
            .await
            .expect("address gate semaphores are never closed")
    }
}

/// SMTP connections may hold a quarter of the descriptors (DNS questions
/// half, see [`crate::dns::outstanding`]).
const SMTP_SHARE: u64 = 4;

/// SMTP probes talking at once in the process. A probe makes its
/// connections one after another, so this bounds SMTP sockets in total: at
/// 10^4 domains in flight on 10^4 distinct addresses, the per-address gate
/// alone would let every one of them connect at once and run the process
/// out of descriptors (connections failing with EMFILE would read as
/// unreachable servers).
static SOCKETS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(crate::scan::fd_limit::share(SMTP_SHARE, 16)));

/// Held while one probe may connect: its address's slot and one of the
/// process's SMTP sockets.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    _socket: tokio::sync::SemaphorePermit<'static>,
}

/// Every limit on SMTP connections.
pub struct Politeness {
    pub gate: AddressGate,
    pub per_address_rate: Option<PerAddressRate>,
    pub connection_rate: Option<RateLimiter>,
}

impl Politeness {
    /// `per_address` connections at once to one address; rates per second
    /// (0: unlimited).
    pub fn new(per_address: usize, per_address_rate: f64, connection_rate: f64) -> Politeness {
        Politeness {
            gate: AddressGate::new(per_address),
            per_address_rate: PerAddressRate::per_second(per_address_rate),
            connection_rate: RateLimiter::per_second(connection_rate),
        }
    }

    /// Waits until a connection to `ip` is allowed; the probe may connect
    /// while the returned permit is held. The process-wide socket comes
    /// last, so that no socket is held while waiting for an address.
    pub async fn admit(&self, ip: IpAddr) -> Admitted {
        let slot = self.gate.enter(ip).await;
        if let Some(r) = &self.per_address_rate {
            r.wait(ip).await;
        }
        if let Some(r) = &self.connection_rate {
            r.wait().await;
        }
        let socket = SOCKETS
            .acquire()
            .await
            .expect("the SMTP socket semaphore is never closed");
        Admitted {
            _slot: slot,
            _socket: socket,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
