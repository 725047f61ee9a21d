//! `dane-audit scan`: the bulk audit of large domain lists.
//!
//! Evidence comes from the one [`crate::collect::Collector`], with its
//! sharing layers on: each MX host's DNS evidence and each (address, SNI)
//! STARTTLS probe is done once and shared by all domains, behind the
//! politeness limits and the skip list.
//!
//! * [`lines`]: input lines with a length cap, comments, IDN to A-labels, error rows.
//! * [`run`]: the loop: bounded work in flight, a record written and flushed
//!   per line as soon as it is known, clean stop on interrupt.
//! * [`recent`]: the duplicate window.
//! * [`resume`]: what OUT already holds, the config sidecar.
//! * [`shard`]: `--shard K/N` and `--shard auto`.
//! * [`tally`], [`progress`]: counters, the progress line, the summary.
//! * [`fd_limit`]: the open-files limit, raised to the hard limit at start.

pub mod fd_limit;
pub mod lines;
pub mod progress;
pub mod recent;
pub mod resume;
pub mod run;
pub mod shard;
pub mod tally;

pub use run::{Counts, EvalSpec, Job, RunResult, run};
pub use shard::Shard;
pub use tally::Tally;
