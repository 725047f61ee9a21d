//! Bounds on DNS questions outstanding: per server address and in total.
//!
//! With 10^4 domains in flight, each with a few questions at once, a scan
//! would otherwise have tens of thousands of questions out together. Sent to
//! one resolver, they queue inside it (Unbound drops what exceeds its
//! `num-queries-per-thread`, the kernel what exceeds its socket's receive
//! buffer) and time out there, so domains read `incomplete` for our own
//! flood, not for any fault of theirs; sent to one authoritative server, they
//! are a flood. So questions wait here, before their timeout starts, until
//! the server has fewer than its window outstanding, and the whole process
//! fewer than [`total`]: every outstanding UDP question holds a socket (its
//! own, so its source port and ID stay random and unpredictable, RFC 5452).
//!
//! A server's window starts at [`PER_SERVER`] and adapts the way a TCP
//! sender's does to a congested path: when a burst of its questions time
//! out (at least [`OVERLOAD_SHARE`] of the last ones, never a single lost
//! datagram: random loss on a long path is not overload) it is halved, down
//! to [`MIN_WINDOW`]; each window's worth of answers grows it by one again.
//! A resolver that cannot keep up with 512 questions at once is then asked
//! fewer at a time instead of being asked the same questions again.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::collect::polite::PerAddress;

/// Questions outstanding at once to one server address, at most: enough to
/// keep a resolver or a big hoster's nameserver busy at Internet round trips
/// (512 per 50 ms is ~10 000 questions a second), few enough that a busy
/// resolver answers each within a fraction of the 3 s timeout.
pub const PER_SERVER: usize = 512;

/// The smallest window an overloaded server is cut to.
pub const MIN_WINDOW: usize = 16;

/// Timeouts among a server's recent outcomes that mean overload: one in 20.
pub const OVERLOAD_SHARE: usize = 20;

/// Outcomes looked at before a window is judged (and the fewest timeouts
/// that can cut it: `OUTCOMES / OVERLOAD_SHARE`).
const OUTCOMES: usize = 100;

/// DNS questions may hold half the descriptors (SMTP a quarter, see
/// [`crate::collect::polite`]; the rest is files and shared sockets).
const DNS_SHARE: u64 = 2;

/// The windows of the servers with questions out or waiting.
static SERVERS: LazyLock<PerAddress<Window>> = LazyLock::new(PerAddress::default);
static TOTAL: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(total()));

/// Questions outstanding at once in the process: half the open-files limit
/// as it is at the first question; at least 64, at most 2^16.
pub fn total() -> usize {
    crate::scan::fd_limit::share(DNS_SHARE, 64)
}

/// How a question ended, as its server's window sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    TimedOut,
    /// Anything else (unreachable, refused, a question never sent): says
    /// nothing about the server's load.
    Other,
}

/// One server's window.
struct Window {
    slots: Arc<Semaphore>,
    state: Mutex<WindowState>,
}

#[derive(Debug)]
struct WindowState {
    size: usize,
    /// Answers since the window last grew.
    credit: usize,
    /// Slots to retire as they come back (the window was cut while they
    /// were out).
    debt: usize,
    /// Recent outcomes: answered and timed out.
    answered: usize,
    timed_out: usize,
}

impl Window {
    fn new() -> Window {
        Window {
            slots: Arc::new(Semaphore::new(PER_SERVER)),
            state: Mutex::new(WindowState {
                size: PER_SERVER,
                credit: 0,
                debt: 0,
                answered: 0,
                timed_out: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a question's outcome; returns whether its slot is given back
    /// (false: it is retired, the window having been cut).
    fn settle(&self, outcome: Outcome) -> bool {
        let mut st = self.state();
        match outcome {
            Outcome::Answered => st.answered += 1,
            Outcome::TimedOut => st.timed_out += 1,
            Outcome::Other => {}
        }
        if st.answered + st.timed_out >= OUTCOMES {
            let overloaded = st.timed_out * OVERLOAD_SHARE >= st.answered + st.timed_out;
            st.answered = 0;
            st.timed_out = 0;
            if overloaded && st.size > MIN_WINDOW {
                let cut = st.size - (st.size / 2).max(MIN_WINDOW);
                st.size -= cut;
                st.credit = 0;
                st.debt += cut - self.slots.forget_permits(cut);
            }
        }
        if outcome == Outcome::Answered && st.size < PER_SERVER {
            st.credit += 1;
            if st.credit >= st.size {
                st.credit = 0;
                st.size += 1;
                if st.debt > 0 {
                    st.debt -= 1;
                } else {
                    self.slots.add_permits(1);
                }
            }
        }
        if st.debt > 0 {
            st.debt -= 1;
            return false;
        }
        true
    }
}

/// Held while one question is outstanding; [`Outstanding::settle`] tells
/// the server's window how it ended (dropping it unsettled says nothing).
pub struct Outstanding {
    window: Arc<Window>,
    slot: Option<OwnedSemaphorePermit>,
    _total: SemaphorePermit<'static>,
}

impl Outstanding {
    pub fn settle(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    /// Gives the slot back to the window, or retires it if the window was cut.
    fn finish(&mut self, outcome: Outcome) {
        if let Some(slot) = self.slot.take()
            && !self.window.settle(outcome)
        {
            slot.forget();
        }
    }

    /// The server's window now (for tests and diagnostics).
    #[cfg(test)]
    fn window(&self) -> usize {
        self.window.state().size
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.finish(Outcome::Other);
    }
}

/// Waits until one more question to `server` may be sent.
pub async fn enter(server: IpAddr) -> Outstanding {
    let window = SERVERS.get(server, Window::new);
    let slot = Arc::clone(&window.slots)
        .acquire_owned()
        .await
        .expect("the DNS window semaphores are never closed");
    let total = TOTAL
        .acquire()
        .await
        .expect("the DNS question semaphore is never closed");
    Outstanding {
        window,
        slot: Some(slot),
        _total: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let more = tokio::time::timeout(Duration::from_millis(50), enter(ip)).await;
        assert!(more.is_err(), "the slots are bounded");
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), enter(ip)).await;
        assert!(again.is_ok());
    }

    /// Sends `n` questions one after another and settles each.
    async fn settle_n(ip: IpAddr, n: usize, outcome: Outcome) {
        for _ in 0..n {
            enter(ip).await.settle(outcome);
        }
    }

    #[tokio::test]
    async fn random_loss_does_not_shrink_the_window() {
        let ip: IpAddr = "192.0.2.54".parse().unwrap();
        let keep = enter(ip).await; // keeps the window alive between questions
        for _ in 0..10 {
            settle_n(ip, 98, Outcome::Answered).await;
            settle_n(ip, 2, Outcome::TimedOut).await;
        }
        assert_eq!(keep.window(), PER_SERVER, "2% loss is not overload");
    }

    #[tokio::test]
    async fn a_burst_of_timeouts_halves_the_window_and_answers_grow_it_back() {
        let ip: IpAddr = "192.0.2.55".parse().unwrap();
        let keep = enter(ip).await;
        settle_n(ip, 90, Outcome::Answered).await;
        settle_n(ip, 10, Outcome::TimedOut).await;
        assert_eq!(keep.window(), PER_SERVER / 2);
        for _ in 0..20 {
            settle_n(ip, 50, Outcome::TimedOut).await;
        }
        assert_eq!(keep.window(), MIN_WINDOW, "never below the floor");

        // The slots follow the window: MIN_WINDOW at once, and no more
        // (one is held by `keep`).
        let held: Vec<_> =
            futures_util::future::join_all((0..MIN_WINDOW - 1).map(|_| enter(ip))).await;
        let more = tokio::time::timeout(Duration::from_millis(50), enter(ip)).await;
        assert!(more.is_err(), "a cut window holds fewer questions");
        drop(held);

        // A window's worth of answers adds one slot: 16 answers, then 17.
        settle_n(ip, MIN_WINDOW + (MIN_WINDOW + 1), Outcome::Answered).await;
        assert_eq!(keep.window(), MIN_WINDOW + 2);
        let held = tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::future::join_all((0..MIN_WINDOW + 1).map(|_| enter(ip))),
        )
        .await;
        assert!(held.is_ok(), "the grown window holds one question more");
    }
}
