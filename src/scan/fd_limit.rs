//! The open-files limit of a bulk scan.
//!
//! Each domain in flight holds a few sockets at once (DNS over UDP or TCP,
//! an SMTP connection per address being probed), so 10^4 domains in flight
//! need tens of thousands of descriptors, while the usual soft limit is 1024:
//! connections would fail with EMFILE and show up as network failures. The
//! hard limit is the administrator's word on what the process may use, so
//! `scan` raises the soft limit to it at start, and sizes what it keeps in
//! flight by what it got.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors a domain in flight may hold at once: DNS sockets of the
/// parallel lookups of its MX hosts and one SMTP connection per address.
pub const PER_DOMAIN: u64 = 4;

/// Descriptors kept back for the input, output, the runtime and the
/// sockets shared by all domains.
const RESERVE: u64 = 256;

/// Raises the soft open-files limit to the hard limit; returns the soft
/// limit in force afterwards (`None`: unlimited).
pub fn raise_to_hard() -> Option<u64> {
    let now = getrlimit(Resource::Nofile);
    if now.current != now.maximum && now.maximum.is_some() {
        let want = Rlimit {
            current: now.maximum,
            maximum: now.maximum,
        };
        // Refused only when the hard limit is above what the kernel allows
        // (fs.nr_open): the soft limit then stays as it was.
        let _ = setrlimit(Resource::Nofile, want);
    }
    getrlimit(Resource::Nofile).current
}

/// The soft open-files limit now (`None`: unlimited).
pub fn current() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// A `1/divisor` share of the open-files limit as it is now (`scan` raises
/// it at start), within `min..=65_536`: the budget of one kind of socket
/// (DNS questions, SMTP connections), so that neither can starve the other
/// of descriptors whatever `--concurrency` asks for.
pub fn share(divisor: u64, min: usize) -> usize {
    let limit = current().unwrap_or(u64::MAX);
    usize::try_from(limit / divisor.max(1))
        .unwrap_or(usize::MAX)
        .clamp(min, 65_536)
}

/// The most domains that can be in flight under an open-files limit.
pub fn max_in_flight(limit: Option<u64>) -> usize {
    match limit {
        None => usize::MAX,
        Some(l) => usize::try_from(l.saturating_sub(RESERVE) / PER_DOMAIN)
            .unwrap_or(usize::MAX)
            .max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_the_soft_limit() {
        let before = getrlimit(Resource::Nofile).current;
        let after = raise_to_hard();
        match (before, after) {
            (Some(b), Some(a)) => assert!(a >= b),
            (_, None) => {}
            (None, Some(_)) => panic!("an unlimited soft limit became limited"),
        }
    }

    #[test]
    fn a_share_is_bounded() {
        assert!((64..=65_536).contains(&share(2, 64)));
        assert!(share(4, 16) <= share(2, 16));
        assert_eq!(share(u64::MAX, 16), 16);
    }

    #[test]
    fn in_flight_follows_the_limit() {
        assert_eq!(max_in_flight(Some(1024)), 192);
        assert_eq!(max_in_flight(Some(20_000)), 4936);
        assert_eq!(max_in_flight(Some(10)), 1);
        assert_eq!(max_in_flight(None), usize::MAX);
    }
}
