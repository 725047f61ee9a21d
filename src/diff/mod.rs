//! `dane-audit diff OLD NEW`: what changed between two bulk scans.
//!
//! Inputs are `scan` outputs, NDJSON or CSV, in any order, shards simply
//! concatenated (a CSV header may repeat). Each input is reduced to one
//! small record per line (domain, verdict, findings) and sorted by domain
//! with an external merge sort whose memory is bounded by `--sort-memory`
//! ([`sort`]): runs of at most that many bytes are sorted in memory and
//! spilled to temporary files, then merged. The two sorted streams are
//! joined domain by domain ([`compare`]), so memory does not grow with the
//! input: 10^7 lines cost the same resident memory as 10^5.
//!
//! * [`record`]: one scan line to a [`record::Record`].
//! * [`sort`]: the bounded external sort.
//! * [`compare`]: the join, per-domain changes and the summary.

pub mod compare;
pub mod record;
pub mod sort;

pub use compare::{Change, DiffSummary, compare};
pub use record::Record;
pub use sort::{SortError, SortedRecords, sort_file};
