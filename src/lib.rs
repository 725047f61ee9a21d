//! dane-audit: audit DANE for SMTP (RFC 6698, RFC 7671, RFC 7672).
//!
//! The crate is split so that every verdict can be reproduced offline:
//! collectors ([`dns`], [`smtp`]) only gather [`core::evidence::Evidence`];
//! the pure [`core`] turns evidence plus an evaluation time into findings and
//! verdicts; [`report`] renders them; [`cli`] wires it together.

pub mod cli;
pub mod collect;
pub mod core;
pub mod diff;
pub mod dns;
pub mod domain;
pub mod duration;
pub mod fuzz;
pub mod report;
pub mod scan;
pub mod serve;
pub mod skip;
pub mod smtp;
pub mod special_purpose;
pub mod statefile;
pub mod watch;
pub mod zonefile;
