//! Who a request comes from, and how many audits that client may start.
//!
//! Behind a reverse proxy every connection comes from the proxy, so the
//! client is taken from `X-Forwarded-For`, but only when the connection
//! comes from an address the operator trusts (`--trust-forwarded-for`):
//! anyone else could write any address there and escape the rate limit.
//!
//! The limit is a GCRA (generic cell rate algorithm) per client: `10/min`
//! lets a client start 10 audits at once and then one every 6 s. IPv6
//! clients are counted per /64, since one host usually holds a whole /64.
//! The table is bounded: when full, entries whose budget has refilled are
//! dropped first (they are the same as absent), then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client a request is counted for (after `--trust-forwarded-for`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client(pub IpAddr);

/// A rate: `count` per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a rate: use e.g. 10/min, 2/s, 100/h or 30/10m")]
pub struct RateError(String);

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Rate, RateError> {
        let bad = || RateError(s.to_string());
        let (count, per) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match per.trim() {
            "s" | "sec" | "second" => 1,
            "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            other => crate::duration::parse_duration(other).map_err(|_| bad())?,
        };
        if count == 0 || per == 0 {
            return Err(bad());
        }
        Ok(Rate {
            count,
            per: Duration::from_secs(per),
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.count, self.per.as_secs())
    }
}

/// The key a client is counted under: its address, or its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// Per-client GCRA state: the theoretical arrival time of the next audit.
pub struct Limiter {
    rate: Rate,
    table: Mutex<HashMap<IpAddr, Instant>>,
    capacity: usize,
}

impl Limiter {
    pub fn new(rate: Rate, capacity: usize) -> Limiter {
        Limiter {
            rate,
            table: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Spends one unit of `client`'s budget at `now`, or says how long to
    /// wait for one.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let interval = self.rate.per / self.rate.count;
        let burst = interval * (self.rate.count - 1);
        let k = key(client);
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let tat = t.get(&k).copied().filter(|tat| *tat > now).unwrap_or(now);
        let ahead = tat - now;
        if ahead > burst {
            return Err(ahead - burst);
        }
        if !t.contains_key(&k) && t.len() >= self.capacity {
            make_room(&mut t, now, self.capacity);
        }
        t.insert(k, tat + interval);
        Ok(())
    }

    pub fn clients(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Drops the entries whose budget has refilled; if that is not enough, the
/// eighth that refills soonest (so the O(n) pass happens once per n/8 new
/// clients, not per request).
fn make_room(t: &mut HashMap<IpAddr, Instant>, now: Instant, capacity: usize) {
    t.retain(|_, tat| *tat > now);
    if t.len() < capacity {
        return;
    }
    let mut tats: Vec<Instant> = t.values().copied().collect();
    let cut = (tats.len() / 8).max(1);
    let (_, nth, _) = tats.select_nth_unstable(cut - 1);
    let limit = *nth;
    t.retain(|_, tat| *tat > limit);
}

/// The client of a request: the connection's peer, or, when the peer is a
/// trusted proxy, the right-most address of `X-Forwarded-For` that is not
/// itself a trusted proxy (the left part is whatever the client wrote).
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // Garbage in the header: stop at the last address we could trust.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rates_parse() {
        let r: Rate = "10/min".parse().unwrap();
        assert_eq!((r.count, r.per), (10, Duration::from_secs(60)));
        let r: Rate = "30/10m".parse().unwrap();
        assert_eq!((r.count, r.per), (30, Duration::from_secs(600)));
        assert_eq!("2/s".parse::<Rate>().unwrap().per, Duration::from_secs(1));
        for bad in ["10", "0/min", "x/min", "10/0s", "10/fortnight"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn burst_then_one_per_interval_with_retry_after() {
        let l = Limiter::new("3/min".parse().unwrap(), 100);
        let t0 = Instant::now();
        let c = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(l.admit(c, t0).is_ok());
        }
        let wait = l.admit(c, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        assert!(l.admit(c, t0 + Duration::from_secs(19)).is_err());
        assert!(l.admit(c, t0 + Duration::from_secs(20)).is_ok());
        assert!(l.admit(c, t0 + Duration::from_secs(20)).is_err());
        // Another client has its own budget.
        assert!(l.admit(ip("192.0.2.2"), t0).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let l = Limiter::new("1/min".parse().unwrap(), 100);
        let t0 = Instant::now();
        assert!(l.admit(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(l.admit(ip("2001:db8:1:2::ffff"), t0).is_err());
        assert!(l.admit(ip("2001:db8:1:3::1"), t0).is_ok());
        assert!(l.admit(ip("192.0.2.9"), t0).is_ok());
        assert!(l.admit(ip("::ffff:192.0.2.9"), t0).is_err());
    }

    #[test]
    fn table_stays_bounded() {
        let l = Limiter::new("1/h".parse().unwrap(), 50);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let _ = l.admit(IpAddr::V4((0x0a00_0000 + i).into()), t0);
        }
        assert!(l.clients() <= 50, "{}", l.clients());
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.66, 198.51.100.7"),
        );
        // Untrusted peer: the header is ignored.
        assert_eq!(
            client_address(ip("192.0.2.50"), &h, &trusted),
            ip("192.0.2.50")
        );
        // Trusted peer: the right-most untrusted hop (the left one is the
        // client's own claim, which it could forge).
        assert_eq!(
            client_address(ip("127.0.0.1"), &h, &trusted),
            ip("198.51.100.7")
        );
        let two: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "198.51.100.0/24".parse().unwrap(),
        ];
        assert_eq!(
            client_address(ip("127.0.0.1"), &h, &two),
            ip("203.0.113.66")
        );
        let mut junk = HeaderMap::new();
        junk.append("x-forwarded-for", HeaderValue::from_static("<script>"));
        assert_eq!(
            client_address(ip("127.0.0.1"), &junk, &trusted),
            ip("127.0.0.1")
        );
    }
}
