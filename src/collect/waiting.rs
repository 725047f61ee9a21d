//! What the work in flight is waiting on, for `scan`'s progress line: DNS
//! questions sent and not yet answered, SMTP connections open, and probes
//! held back by the politeness limits (or the process's SMTP socket cap). With 10^4 domains in flight the rate
//! alone does not say whether the resolver, the mail servers or our own
//! limits set the pace; these three counts do.
//!
//! The counts are process-wide (one scan per process) and only ever shown,
//! never used to decide anything.

use std::sync::atomic::{AtomicUsize, Ordering};

/// One count of things in progress.
pub struct Gauge(AtomicUsize);

impl Gauge {
    const fn new() -> Gauge {
        Gauge(AtomicUsize::new(0))
    }

    /// Counts one more until the returned guard is dropped (also when the
    /// future holding it is cancelled).
    pub fn enter(&'static self) -> InProgress {
        self.0.fetch_add(1, Ordering::Relaxed);
        InProgress(self)
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Held while one thing is in progress.
pub struct InProgress(&'static Gauge);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// DNS questions sent to a server (or the resolver) and not answered yet.
pub static DNS: Gauge = Gauge::new();
/// SMTP probes connecting or talking.
pub static SMTP: Gauge = Gauge::new();
/// SMTP probes waiting for a connection slot, a rate limit or a socket.
pub static POLITENESS: Gauge = Gauge::new();

/// The three counts, as the progress line shows them.
pub fn summary() -> String {
    format!(
        "waiting: {} DNS, {} SMTP, {} politeness",
        DNS.get(),
        SMTP.get(),
        POLITENESS.get()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    static G: Gauge = Gauge::new();

    #[test]
    fn a_guard_counts_until_dropped() {
        let a = G.enter();
        let b = G.enter();
        assert_eq!(G.get(), 2);
        drop(a);
        assert_eq!(G.get(), 1);
        drop(b);
        assert_eq!(G.get(), 0);
    }
}
