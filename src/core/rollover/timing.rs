//! Step 3 of a rollover (RFC 7671 §8.1: "wait at least the TTL"): when did
//! every server first serve a record for NEW, how long may resolvers keep
//! the RRset without it, and from when is the swap safe.
//!
//! DNS does not say when a record was published, so the first sighting is
//! remembered across runs ([`State`]) or asserted by the operator; an
//! unknown publication counts from this run, never from the past.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::evidence::{HostEvidence, Timestamp};

use super::facts::HostFacts;
use super::publication::Publication;
use super::reason::{FirstSeen, Reason};

/// Version of the state file format.
pub const STATE_SCHEMA_VERSION: u32 = 1;

/// What earlier runs saw: per host, when each TLSA record was first seen
/// on every authoritative server, and the largest TTL seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub schema_version: u32,
    #[serde(default)]
    pub hosts: BTreeMap<String, HostState>,
}

impl Default for State {
    fn default() -> Self {
        State {
            schema_version: STATE_SCHEMA_VERSION,
            hosts: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The largest TLSA TTL seen: a cache may hold the old RRset that long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_max: Option<u32>,
    /// Record (presentation form) -> first time every server served it.
    #[serde(default)]
    pub first_seen: BTreeMap<String, Timestamp>,
}

/// The TTL to wait: the servers' (original) TTL, else the resolver's, and
/// never less than one an earlier run saw.
pub(super) fn ttl_of(h: &HostEvidence, prev: &HostState) -> Option<u32> {
    let servers = h.nameservers.iter().filter_map(|p| p.tlsa.ttl).max();
    let resolver = h.tlsa.as_ref().and_then(|t| t.meta.ttl);
    [servers.or(resolver), prev.ttl_max]
        .into_iter()
        .flatten()
        .max()
}

/// The state to remember for the host, and the earliest sighting, on
/// every server, of a record that authenticates NEW.
pub(super) fn remember(
    facts: &HostFacts<'_>,
    p: &Publication<'_>,
    prev: &HostState,
    ttl: Option<u32>,
) -> (HostState, Option<(Timestamp, FirstSeen)>) {
    let now = facts.now();
    let mut next = HostState {
        ttl_max: ttl,
        first_seen: BTreeMap::new(),
    };
    let mut earliest: Option<(Timestamp, FirstSeen)> = None;
    for rec in p.union.iter().filter(|r| p.everywhere(r)) {
        let key = rec.to_string();
        let for_new = facts.authenticates_new(rec);
        let mut seen = prev
            .first_seen
            .get(&key)
            .map(|t| (*t, FirstSeen::Remembered))
            .unwrap_or((now, FirstSeen::ThisRun));
        if for_new
            && let Some(asserted) = facts.input.published_before
            && asserted <= seen.0
        {
            seen = (asserted, FirstSeen::Asserted);
        }
        if seen.0 > now {
            seen = (now, FirstSeen::ThisRun);
        }
        next.first_seen.insert(key, seen.0);
        if for_new && earliest.is_none_or(|e| seen.0 < e.0) {
            earliest = Some(seen);
        }
    }
    (next, earliest)
}

/// When the swap becomes safe, once every server serves a record for NEW.
pub(super) struct Timing {
    pub first_seen: (Timestamp, FirstSeen),
    pub safe_at: Timestamp,
    /// Why it is not safe yet; `None`: the wait is over.
    pub wait: Option<Reason>,
}

/// `earliest`: the first sighting of one record for NEW on every server
/// (`None` when the servers authenticate NEW through different records,
/// so no single record's age is known).
pub(super) fn judge(
    facts: &HostFacts<'_>,
    earliest: Option<(Timestamp, FirstSeen)>,
    ttl: Option<u32>,
    new_by_resolver: bool,
) -> Timing {
    let now = facts.now();
    let margin_secs = facts.input.margin_secs;
    let ttl = ttl.unwrap_or(0);
    let wait = i64::from(ttl) + margin_secs as i64;
    let Some((first_seen, how)) = earliest else {
        let safe_at = Timestamp(now.0 + wait);
        return Timing {
            first_seen: (now, FirstSeen::ThisRun),
            safe_at,
            wait: Some(Reason::DifferentRecordsPerServer { safe_at }),
        };
    };
    let aged = Timestamp(first_seen.0 + wait);
    let (safe_at, wait) = if now < aged {
        let r = Reason::CachesMayHoldOldRrset {
            first_seen,
            how,
            ttl,
            margin_secs,
            safe_at: aged,
        };
        (aged, Some(r))
    } else if !new_by_resolver {
        // The resolver's copy is older than the servers' RRset: it goes
        // when its remaining TTL runs out, not at a time already past.
        (resolver_expiry(facts), Some(Reason::ResolverStale))
    } else {
        (aged, None)
    };
    Timing {
        first_seen: (first_seen, how),
        safe_at,
        wait,
    }
}

/// When the resolver's cached TLSA RRset expires: now plus the TTL its
/// answer counts down from.
fn resolver_expiry(facts: &HostFacts<'_>) -> Timestamp {
    let left = facts.h.tlsa.as_ref().and_then(|t| t.meta.ttl).unwrap_or(0);
    Timestamp(facts.now().0 + i64::from(left))
}
