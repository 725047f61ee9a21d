//! Bounds on DNS questions outstanding: per server address and in total.
//!
//! With 10^4 domains in flight, each with a few questions at once, a scan
//! would otherwise have tens of thousands of questions out together. Sent to
//! one resolver, they queue inside it (Unbound drops what exceeds its
//! `num-queries-per-thread`) and time out there, so domains read
//! `incomplete` for our own flood, not for any fault of theirs; sent to one
//! authoritative server, they are a flood. So questions wait here, before
//! their timeout starts, until the server has fewer than [`PER_SERVER`]
//! outstanding, and the whole process fewer than [`total`]: every
//! outstanding UDP question holds a socket (its own, so its source port and
//! ID stay random and unpredictable, RFC 5452).

use std::net::IpAddr;
use std::sync::LazyLock;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::collect::polite::AddressGate;

/// Questions outstanding at once to one server address: enough to keep a
/// resolver or a big hoster's nameserver busy at Internet round trips (512
/// per 50 ms is ~10 000 questions a second), few enough that a busy resolver
/// answers each within a fraction of the 3 s timeout.
pub const PER_SERVER: usize = 512;

/// DNS questions may hold half the descriptors (SMTP a quarter, see
/// [`crate::collect::polite`]; the rest is files and shared sockets).
const DNS_SHARE: u64 = 2;

static SERVERS: LazyLock<AddressGate> = LazyLock::new(|| AddressGate::new(PER_SERVER));
static TOTAL: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(total()));

/// Questions outstanding at once in the process: half the open-files limit
/// as it is at the first question; at least 64, at most 2^16.
pub fn total() -> usize {
    crate::scan::fd_limit::share(DNS_SHARE, 64)
}

/// Held while one question is outstanding.
pub struct Outstanding {
    _server: OwnedSemaphorePermit,
    _total: SemaphorePermit<'static>,
}

/// Waits until one more question to `server` may be sent.
pub async fn enter(server: IpAddr) -> Outstanding {
    let server = SERVERS.enter(server).await;
    let total = TOTAL
        .acquire()
        .await
        .expect("the DNS question semaphore is never closed");
    Outstanding {
        _server: server,
        _total: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_bounded() {
        let t = total();
        assert!((64..=65_536).contains(&t));
    }

    #[tokio::test]
    async fn a_question_slot_is_given_back() {
        let ip: IpAddr = "192.0.2.53".parse().unwrap();
        let k = PER_SERVER.min(total());
        let held: Vec<_> = futures_util::future::join_all((0..k).map(|_| enter(ip))).await;
        let more = tokio::time::timeout(std::time::Duration::from_millis(50), enter(ip)).await;
        assert!(more.is_err(), "the slots are bounded");
        drop(held);
        let again = tokio::time::timeout(std::time::Duration::from_secs(5), enter(ip)).await;
        assert!(again.is_ok());
    }
}
