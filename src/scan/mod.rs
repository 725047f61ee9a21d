//! `dane-audit scan`: the bulk audit of large domain lists.
//!
//! * [`input`]: lines with a length cap, comments, IDN to A-labels, error rows.
//! * [`run`]: the loop: bounded work in flight, a record written and flushed
//!   per line as soon as it is known, clean stop on interrupt.
//! * [`engine`]: one domain's evidence, with each MX host's DNS evidence and
//!   each (address, SNI) STARTTLS probe shared by all domains through
//!   bounded coalescing caches ([`cache`]), behind the politeness limits
//!   ([`limits`]: per-address connections and rate, global rates, skip list).
//! * [`recent`]: the duplicate window.
//! * [`resume`]: what OUT already holds, the config sidecar.
//! * [`shard`]: `--shard K/N` and `--shard auto`.
//! * [`tally`], [`progress`]: counters, the progress line, the summary.
//!
//! The DNS side is a [`crate::dns::DnsCollector`] handed to the [`engine`];
//! the engine does not care how it resolves. `--iterative` (resolution from
//! the root in process) will plug in there, as another way to build the
//! collector, with the same evidence and the same caches above it.

pub mod cache;
pub mod engine;
pub mod input;
pub mod limits;
pub mod progress;
pub mod recent;
pub mod resume;
pub mod run;
pub mod shard;
pub mod tally;

pub use engine::{CacheSizes, Engine, EngineConfig};
pub use run::{Counts, EvalSpec, Job, RunResult, run};
pub use shard::Shard;
pub use tally::Tally;
