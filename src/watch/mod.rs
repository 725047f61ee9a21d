//! `dane-audit watch`: audit domains again and again, remember every
//! result, and say what changed before senders fail.
//!
//! * [`snapshot`]: the facts of one audit that rounds are compared on.
//! * [`events`]: change and foresight events, deduplicated (pure).
pub mod alert;
pub mod db;
pub mod domains;
pub mod events;
pub mod metrics;
pub mod schedule;
pub mod service;
pub mod snapshot;
