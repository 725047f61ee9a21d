//! The watch's view of real evidence: which hosts have a successor key
//! covered (the `cert-expiring-uncovered` foresight), and the monitoring
//! plugin state of each kind of domain, from the evidence vectors of
//! testdata/vectors (evaluated at their stored time).

use std::path::Path;

use dane_audit::cli::exit::PluginState;
use dane_audit::core::evidence::{Evidence, Timestamp};
use dane_audit::core::{EvalOptions, evaluate};
use dane_audit::report::NagiosPolicy;
use dane_audit::report::nagios::domain_state;
use dane_audit::watch::snapshot::Snapshot;

#[derive(serde::Deserialize)]
struct Vector {
    at: Timestamp,
    evidence: Evidence,
}

fn snapshot(name: &str) -> (Snapshot, dane_audit::core::audit::DomainAudit) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vectors")
        .join(format!("{name}.json"));
    let v: Vector = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let audit = evaluate(&v.evidence, &EvalOptions::at(v.at));
    (Snapshot::new(&audit, &v.evidence), audit)
}

#[test]
fn successor_coverage_per_vector() {
    let cases = [
        ("good-311", false, "only the current key's record"),
        ("good-301", false, "3 0 1: the whole current certificate"),
        (
            "good-311-plus-211",
            true,
            "2 1 1 on the CA the server sends",
        ),
        ("good-211-intermediate", true, "2 1 1 on the intermediate"),
        (
            "good-rollover",
            true,
            "a 3 1 1 for the next key, not served yet",
        ),
        (
            "good-210-root-key-not-sent",
            true,
            "2 1 0: the record's CA key signed the chain",
        ),
    ];
    for (name, covered, why) in cases {
        let (s, _) = snapshot(name);
        let h = &s.hosts[0];
        assert!(h.dane, "{name}");
        assert_eq!(h.successor_covered, covered, "{name}: {why}");
        assert!(h.leaf_not_after().is_some(), "{name}");
    }
}

#[test]
fn snapshots_tell_unobserved_from_absent() {
    let (s, _) = snapshot("smtp-unreachable");
    assert!(
        s.hosts.iter().all(|h| !h.chain_seen()),
        "no chain was served"
    );
    let (s, _) = snapshot("tlsa-lookup-failed");
    assert!(!s.dns_complete);
    assert!(
        s.hosts.iter().all(|h| h.tlsa.is_none()),
        "a failed TLSA lookup is not an empty RRset"
    );
    let (s, _) = snapshot("tlsa-absent");
    assert_eq!(
        s.hosts[0].tlsa.as_deref(),
        Some(&[][..]),
        "a secure denial is an empty RRset"
    );
    let (s, _) = snapshot("mx-lookup-failed");
    assert!(s.mx_failed);
    let (s, _) = snapshot("rrsig-expiring");
    assert!(s.rrsig_expires.is_some_and(|t| t > s.at));
}

#[test]
fn plugin_state_per_vector() {
    let p = NagiosPolicy::default();
    let cases = [
        ("good-311-plus-211", PluginState::Ok),
        ("good-311", PluginState::Ok),
        ("ns-out-of-sync", PluginState::Warning),
        ("partial-coverage", PluginState::Warning),
        ("rrsig-expiring", PluginState::Warning),
        ("tlsa-bogus", PluginState::Critical),
        ("no-match-changed-cert", PluginState::Critical),
        ("smtp-unreachable", PluginState::Unknown),
        ("mx-lookup-failed", PluginState::Unknown),
        ("mx-insecure", PluginState::Ok),
    ];
    for (name, want) in cases {
        let (_, audit) = snapshot(name);
        assert_eq!(domain_state(&audit, &p), want, "{name}: {}", audit.verdict);
    }
    let (_, audit) = snapshot("mx-insecure");
    let strict = NagiosPolicy {
        require_dane: true,
        ..p
    };
    assert_eq!(domain_state(&audit, &strict), PluginState::Critical);
}

/// While the servers are out of sync, the resolver answers from one or the
/// other; the watch must not call each switch a TLSA change.
#[test]
fn out_of_sync_servers_are_not_a_tlsa_change_at_every_switch() {
    use dane_audit::watch::events::{EventOptions, advance};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/vectors/ns-out-of-sync.json");
    let v: Vector = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let from_ns1 = v.evidence.clone();
    let mut from_ns2 = v.evidence.clone();
    // The resolver asked the stale server this time.
    let stale = from_ns2.hosts[0].nameservers[1]
        .tlsa
        .tlsa_records()
        .cloned()
        .collect();
    from_ns2.hosts[0].tlsa.as_mut().unwrap().records = stale;
    assert_ne!(from_ns1.hosts[0].tlsa, from_ns2.hosts[0].tlsa);
    let snap = |ev: &Evidence| Snapshot::new(&evaluate(ev, &EvalOptions::at(v.at)), ev);
    let (a, b) = (snap(&from_ns1), snap(&from_ns2));
    assert_eq!(
        a.hosts[0].tlsa, b.hosts[0].tlsa,
        "the records published anywhere"
    );
    assert_eq!(a.hosts[0].tlsa.as_ref().unwrap().len(), 2);
    let opts = EventOptions::default();
    let (_, state) = advance(None, &a, &opts);
    let (events, _) = advance(Some(&state), &b, &opts);
    assert!(
        !events.iter().any(|e| e.kind.code() == "tlsa-changed"),
        "{events:#?}"
    );
}
