//! The evaluation core: pure functions from collected evidence to findings.
//!
//! Nothing in this module tree performs I/O, reads the clock or spawns tasks:
//! the evaluation time is a parameter, so a saved evidence file gives the same
//! report today and in a year (`dane-audit evaluate --at ...`).

pub mod association;
pub mod audit;
pub mod catalogue;
pub mod cert;
pub mod dane;
pub mod diagnosis;
pub mod dnssec;
pub mod evaluate;
pub mod evidence;
pub mod finding;
pub mod host;
pub mod identity;
pub mod issuers;
pub mod key_types;
pub mod nameserver;
pub mod path;
pub mod record_anchor;
pub mod rollover;
pub mod rrset;
pub mod signing;
pub mod smtp;
pub mod tlsa;
pub mod tlsa_size;
pub mod verdict;

pub use evaluate::{EvalOptions, evaluate};
