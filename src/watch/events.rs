//! Change and foresight events: typed, with stable codes, deduplicated.
//!
//! [`advance`] is a pure function of the domain's remembered [`WatchState`]
//! and a new [`Snapshot`]: it returns the events to raise and the state to
//! remember. Two kinds of event:
//!
//! * **changes** (`verdict-changed`, `certificate-changed`, `key-changed`,
//!   `tlsa-changed`, `domain-added`) are raised once, when the new audit
//!   shows a value other than the last one *observed* (a round that could
//!   not see the certificate compares nothing, and the next round that
//!   sees it compares with the last one seen);
//! * **conditions** (`finding`, `cert-expiring-uncovered`, `rrsig-expiring`,
//!   `ns-out-of-sync`) are raised once when they start to hold and cleared
//!   once when an audit that could observe them shows they no longer do. A
//!   round that could not tell (the server did not answer, the lookup
//!   failed) leaves them as they are, so an outage never clears and
//!   re-raises every alert: no storms.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::core::evidence::Timestamp;
use crate::core::finding::{Code, Severity};
use crate::core::verdict::{DomainVerdict, HostVerdict};

use super::snapshot::{FindingSnap, HostSnap, Leaf, Snapshot};

/// Version of the event JSON (webhook body, hook stdin, `history --format json`).
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Findings that have their own, aggregated condition: one event per
/// domain, not one per signed RRset or per server.
const OWN_CONDITION: [Code; 2] = [Code::RrsigExpiring, Code::NsOutOfSync];

/// What an event is about, with its data. The tag is the stable code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum EventKind {
    /// The first audit of a domain: where it starts.
    DomainAdded {
        verdict: DomainVerdict,
        codes: Vec<Code>,
    },
    VerdictChanged {
        from: DomainVerdict,
        to: DomainVerdict,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A finding appeared (`raised`) or went away (`cleared`).
    Finding { finding: FindingSnap },
    /// A host serves another certificate with the same key.
    CertificateChanged {
        host: String,
        addresses: Vec<LeafChange>,
    },
    /// A host serves another key (and so another certificate).
    KeyChanged {
        host: String,
        addresses: Vec<LeafChange>,
    },
    /// A host's TLSA RRset changed.
    TlsaChanged {
        host: String,
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// The leaf expires within `--cert-warn-days` and no published record
    /// would authenticate a new key.
    CertExpiringUncovered {
        host: String,
        not_after: Timestamp,
        days_left: i64,
    },
    /// A signature on the DANE path expires within `--sig-warn-days`.
    RrsigExpiring {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<Timestamp>,
        subjects: Vec<String>,
    },
    /// The authoritative servers differ in serial or TLSA RRset.
    NsOutOfSync { subjects: Vec<String> },
}

/// The stable event codes, as [`EventKind`]'s tag spells them.
pub const EVENT_CODES: [&str; 9] = [
    "domain-added",
    "verdict-changed",
    "finding",
    "certificate-changed",
    "key-changed",
    "tlsa-changed",
    "cert-expiring-uncovered",
    "rrsig-expiring",
    "ns-out-of-sync",
];

impl EventKind {
    pub fn code(&self) -> &'static str {
        match self {
            EventKind::DomainAdded { .. } => EVENT_CODES[0],
            EventKind::VerdictChanged { .. } => EVENT_CODES[1],
            EventKind::Finding { .. } => EVENT_CODES[2],
            EventKind::CertificateChanged { .. } => EVENT_CODES[3],
            EventKind::KeyChanged { .. } => EVENT_CODES[4],
            EventKind::TlsaChanged { .. } => EVENT_CODES[5],
            EventKind::CertExpiringUncovered { .. } => EVENT_CODES[6],
            EventKind::RrsigExpiring { .. } => EVENT_CODES[7],
            EventKind::NsOutOfSync { .. } => EVENT_CODES[8],
        }
    }
}

/// Whether a condition started or stopped holding, or a value changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Raised,
    Cleared,
    Changed,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Raised => "raised",
            Transition::Cleared => "cleared",
            Transition::Changed => "changed",
        }
    }
}

/// The served leaf at one address, before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafChange {
    pub address: IpAddr,
    pub from: Leaf,
    pub to: Leaf,
}

/// One event, as sent to webhooks and hooks and kept in the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema_version: u32,
    pub domain: String,
    /// The evaluation time of the audit that raised it.
    pub at: Timestamp,
    pub state: Transition,
    pub severity: Severity,
    /// Identity for deduplication: a condition with this key is raised at
    /// most once until it is cleared.
    pub key: String,
    /// One line for people.
    pub message: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A condition that holds, remembered until it is cleared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Active {
    pub since: Timestamp,
    /// The event that raised it (its clearing repeats its data).
    pub raised: Event,
}

/// What the watch remembers of a domain between audits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// The verdict of the last audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<DomainVerdict>,
    /// Conditions that hold, by key.
    #[serde(default)]
    pub active: BTreeMap<String, Active>,
    /// The last leaf seen per host and address.
    #[serde(default)]
    pub leaves: BTreeMap<String, BTreeMap<IpAddr, Leaf>>,
    /// The last TLSA RRset seen per host.
    #[serde(default)]
    pub tlsa: BTreeMap<String, Vec<String>>,
}

/// Thresholds of the foresight conditions.
#[derive(Clone, Copy, Debug)]
pub struct EventOptions {
    /// `--cert-warn-days`: how far ahead an uncovered expiry is raised.
    pub cert_warn_days: u32,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions { cert_warn_days: 21 }
    }
}

/// The events a new audit raises, and the state to remember after it.
pub fn advance(
    prev: Option<&WatchState>,
    snap: &Snapshot,
    opts: &EventOptions,
) -> (Vec<Event>, WatchState) {
    let mut out = Vec::new();
    let empty = WatchState::default();
    let old = prev.unwrap_or(&empty);
    match prev {
        None => out.push(added(snap)),
        Some(p) => {
            out.extend(verdict_change(p, snap));
            out.extend(leaf_changes(p, snap));
            out.extend(tlsa_changes(p, snap));
        }
    }
    let holding = conditions(snap, opts);
    let mut active = old.active.clone();
    let gone: Vec<String> = active
        .iter()
        .filter(|(k, a)| !holding.iter().any(|e| &e.key == *k) && observed_gone(a, snap))
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        if let Some(a) = active.remove(&key) {
            out.push(clear(&a, snap));
        }
    }
    for ev in holding {
        if active.contains_key(&ev.key) {
            continue;
        }
        // On a domain's first audit its findings are remembered without an
        // event each: the `domain-added` event lists them.
        if !(prev.is_none() && matches!(ev.kind, EventKind::Finding { .. })) {
            out.push(ev.clone());
        }
        active.insert(
            ev.key.clone(),
            Active {
                since: snap.at,
                raised: ev,
            },
        );
    }
    (out, remember(old, snap, active))
}

/// Whether an active condition that no longer shows was observed not to
/// hold (and so is cleared), rather than not observed at all.
fn observed_gone(a: &Active, snap: &Snapshot) -> bool {
    match &a.raised.kind {
        EventKind::Finding { finding } => finding_observed(finding, snap),
        EventKind::CertExpiringUncovered { host, .. } => match snap.host(host) {
            Some(h) => h.chain_seen() || !h.dane,
            None => !snap.mx_failed,
        },
        EventKind::RrsigExpiring { .. } => snap.dns_complete,
        EventKind::NsOutOfSync { .. } => snap.dns_complete && snap.ns_checked,
        _ => false,
    }
}

/// Whether the part of the domain a finding is about was observed, so its
/// absence means it went away. "Could not test" findings go away as soon
/// as the test was made at all.
fn finding_observed(f: &FindingSnap, snap: &Snapshot) -> bool {
    let undetermined = f.undetermined();
    let host = f.host.as_deref().and_then(|h| snap.host(h));
    match (f.address, &f.host) {
        (Some(ip), Some(_)) => match host.and_then(|h| h.address(ip)) {
            Some(a) => undetermined || a.verdict != HostVerdict::NotTested,
            None => host_gone(host, snap),
        },
        (_, Some(_)) => match host {
            Some(h) => undetermined || h.verdict != HostVerdict::NotTested,
            None => !snap.mx_failed,
        },
        _ => !snap.mx_failed && (undetermined || snap.dns_complete),
    }
}

/// An address no longer listed: observed gone when its host was resolved.
fn host_gone(host: Option<&HostSnap>, snap: &Snapshot) -> bool {
    match host {
        Some(h) => h.verdict != HostVerdict::NotTested || !snap.mx_failed,
        None => !snap.mx_failed,
    }
}

/// Every condition that holds in this audit (its key in the event).
fn conditions(snap: &Snapshot, opts: &EventOptions) -> Vec<Event> {
    let mut v: Vec<Event> = snap
        .findings
        .iter()
        .filter(|f| !OWN_CONDITION.contains(&f.code))
        .map(|f| {
            let key = format!("finding {}", f.key());
            let kind = EventKind::Finding { finding: f.clone() };
            event(
                snap,
                Transition::Raised,
                f.severity,
                &key,
                finding_msg(snap, f, true),
                kind,
            )
        })
        .collect();
    for h in &snap.hosts {
        v.extend(cert_expiring(snap, h, opts));
    }
    let subjects = |code| -> Vec<String> {
        let mut s: Vec<String> = snap
            .findings
            .iter()
            .filter(|f| f.code == code)
            .map(|f| f.subject.clone())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let rrsig = subjects(Code::RrsigExpiring);
    if !rrsig.is_empty() {
        let key = "rrsig-expiring".to_string();
        let msg = format!(
            "{}: DNSSEC signatures on the DANE path expire soon{}: {}; re-sign the zone (check the signer)",
            snap.domain,
            snap.rrsig_expires
                .map(|t| format!(" (first at {t})"))
                .unwrap_or_default(),
            rrsig.join(", ")
        );
        let kind = EventKind::RrsigExpiring {
            expires: snap.rrsig_expires,
            subjects: rrsig,
        };
        v.push(event(
            snap,
            Transition::Raised,
            Severity::Warning,
            &key,
            msg,
            kind,
        ));
    }
    let sync = subjects(Code::NsOutOfSync);
    if !sync.is_empty() {
        let key = "ns-out-of-sync".to_string();
        let msg = format!(
            "{}: authoritative servers serve different data: {}; check zone transfers to the secondaries",
            snap.domain,
            sync.join(", ")
        );
        let kind = EventKind::NsOutOfSync { subjects: sync };
        v.push(event(
            snap,
            Transition::Raised,
            Severity::Warning,
            &key,
            msg,
            kind,
        ));
    }
    v
}

/// The foresight condition of one host: its leaf expires within the window
/// and no published record would authenticate a successor key.
fn cert_expiring(snap: &Snapshot, h: &HostSnap, opts: &EventOptions) -> Option<Event> {
    if !h.dane || h.successor_covered {
        return None;
    }
    let not_after = h.leaf_not_after()?;
    let left = not_after.0 - snap.at.0;
    if left >= i64::from(opts.cert_warn_days) * 86_400 {
        return None;
    }
    let days_left = snap.at.days_until(not_after);
    let key = format!("cert-expiring-uncovered {}", h.name);
    let when = if left < 0 {
        format!("expired at {not_after}")
    } else {
        format!("expires at {not_after} ({days_left} day(s))")
    };
    let msg = format!(
        "{}: the certificate {when} and no published TLSA record covers a new key: publish `3 1 1` of the next key (or `2 1 1` of its CA) now, a TTL before the renewal",
        h.name
    );
    let kind = EventKind::CertExpiringUncovered {
        host: h.name.clone(),
        not_after,
        days_left,
    };
    Some(event(
        snap,
        Transition::Raised,
        Severity::Warning,
        &key,
        msg,
        kind,
    ))
}

fn event(
    snap: &Snapshot,
    state: Transition,
    severity: Severity,
    key: &str,
    message: String,
    kind: EventKind,
) -> Event {
    Event {
        schema_version: EVENT_SCHEMA_VERSION,
        domain: snap.domain.clone(),
        at: snap.at,
        state,
        severity,
        key: key.to_string(),
        message,
        kind,
    }
}

/// The clearing of an active condition: its raising event's data, now.
fn clear(a: &Active, snap: &Snapshot) -> Event {
    let r = &a.raised;
    let message = match &r.kind {
        EventKind::Finding { finding } => finding_msg(snap, finding, false),
        EventKind::CertExpiringUncovered { host, .. } => format!(
            "{host}: the certificate expiry is covered now (renewed, a successor key published, or no longer a DANE host)"
        ),
        EventKind::RrsigExpiring { .. } => {
            format!(
                "{}: no DNSSEC signature on the DANE path expires soon any more",
                snap.domain
            )
        }
        EventKind::NsOutOfSync { .. } => {
            format!("{}: the authoritative servers agree again", snap.domain)
        }
        _ => format!("{} cleared", r.key),
    };
    Event {
        at: snap.at,
        state: Transition::Cleared,
        message,
        ..r.clone()
    }
}

fn finding_msg(snap: &Snapshot, f: &FindingSnap, raised: bool) -> String {
    if raised {
        format!(
            "{}: {} ({}): {}",
            snap.domain, f.code, f.severity, f.message
        )
    } else {
        format!("{}: {} on {} cleared", snap.domain, f.code, f.subject)
    }
}

fn added(snap: &Snapshot) -> Event {
    let mut codes: Vec<Code> = snap.findings.iter().map(|f| f.code).collect();
    codes.sort();
    codes.dedup();
    let shown = if codes.is_empty() {
        "no findings".to_string()
    } else {
        codes
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let msg = format!("{}: first audit: {} ({shown})", snap.domain, snap.verdict);
    let kind = EventKind::DomainAdded {
        verdict: snap.verdict,
        codes,
    };
    let sev = snap.worst_severity.unwrap_or(Severity::Info);
    event(snap, Transition::Changed, sev, "domain-added", msg, kind)
}

/// How much a verdict change matters: a new failure is critical, losing
/// certainty or coverage a warning, anything better informational.
pub fn verdict_severity(to: DomainVerdict) -> Severity {
    match to {
        DomainVerdict::Fail => Severity::Critical,
        DomainVerdict::Incomplete | DomainVerdict::Partial | DomainVerdict::NotDane => {
            Severity::Warning
        }
        DomainVerdict::NoMail => Severity::Notice,
        DomainVerdict::Pass => Severity::Info,
    }
}

fn verdict_change(prev: &WatchState, snap: &Snapshot) -> Option<Event> {
    let from = prev.verdict?;
    (from != snap.verdict).then(|| {
        let msg = format!(
            "{}: verdict {from} -> {}{}",
            snap.domain,
            snap.verdict,
            snap.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        let kind = EventKind::VerdictChanged {
            from,
            to: snap.verdict,
            reason: snap.reason.clone(),
        };
        event(
            snap,
            Transition::Changed,
            verdict_severity(snap.verdict),
            "verdict-changed",
            msg,
            kind,
        )
    })
}

/// One event per host whose served leaf changed at some address seen both
/// now and before.
fn leaf_changes(prev: &WatchState, snap: &Snapshot) -> Vec<Event> {
    let mut out = Vec::new();
    for h in &snap.hosts {
        let Some(before) = prev.leaves.get(&h.name) else {
            continue;
        };
        let changes: Vec<LeafChange> = h
            .addresses
            .iter()
            .filter_map(|a| {
                let (old, new) = (before.get(&a.address)?, a.leaf.as_ref()?);
                (old.cert_sha256 != new.cert_sha256).then(|| LeafChange {
                    address: a.address,
                    from: old.clone(),
                    to: new.clone(),
                })
            })
            .collect();
        if changes.is_empty() {
            continue;
        }
        let key_changed = changes
            .iter()
            .any(|c| c.from.spki_sha256 != c.to.spki_sha256);
        let at: Vec<String> = changes.iter().map(|c| c.address.to_string()).collect();
        let (what, key) = if key_changed {
            ("key", format!("key-changed {}", h.name))
        } else {
            (
                "certificate (same key)",
                format!("certificate-changed {}", h.name),
            )
        };
        let c0 = &changes[0];
        let msg = format!(
            "{}: the server {what} changed at {}: 3 1 1 {} -> 3 1 1 {}",
            h.name,
            at.join(", "),
            short(&c0.from.spki_sha256),
            short(&c0.to.spki_sha256)
        );
        let kind = if key_changed {
            EventKind::KeyChanged {
                host: h.name.clone(),
                addresses: changes,
            }
        } else {
            EventKind::CertificateChanged {
                host: h.name.clone(),
                addresses: changes,
            }
        };
        out.push(event(
            snap,
            Transition::Changed,
            Severity::Notice,
            &key,
            msg,
            kind,
        ));
    }
    out
}

fn short(hex: &str) -> String {
    hex.chars().take(16).collect::<String>() + "…"
}

/// One event per host whose TLSA RRset differs from the last one seen.
fn tlsa_changes(prev: &WatchState, snap: &Snapshot) -> Vec<Event> {
    let mut out = Vec::new();
    for h in &snap.hosts {
        let (Some(now), Some(before)) = (&h.tlsa, prev.tlsa.get(&h.name)) else {
            continue;
        };
        if now == before {
            continue;
        }
        let added: Vec<String> = now
            .iter()
            .filter(|r| !before.contains(r))
            .cloned()
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|r| !now.contains(r))
            .cloned()
            .collect();
        let show = |sign: &str, v: &[String]| {
            v.iter()
                .map(|r| format!("{sign}{}", short_record(r)))
                .collect::<Vec<_>>()
        };
        let mut parts = show("+", &added);
        parts.extend(show("-", &removed));
        let msg = format!("{}: the TLSA RRset changed: {}", h.name, parts.join(", "));
        let kind = EventKind::TlsaChanged {
            host: h.name.clone(),
            added,
            removed,
        };
        let key = format!("tlsa-changed {}", h.name);
        out.push(event(
            snap,
            Transition::Changed,
            Severity::Notice,
            &key,
            msg,
            kind,
        ));
    }
    out
}

fn short_record(r: &str) -> String {
    match r.rsplit_once(' ') {
        Some((head, data)) if data.len() > 16 => format!("{head} {}", short(data)),
        _ => r.to_string(),
    }
}

/// The state after this audit: the last observed values, carried forward
/// where this audit could not observe them.
fn remember(old: &WatchState, snap: &Snapshot, active: BTreeMap<String, Active>) -> WatchState {
    let mut leaves = old.leaves.clone();
    let mut tlsa = old.tlsa.clone();
    if !snap.mx_failed {
        leaves.retain(|h, _| snap.host(h).is_some());
        tlsa.retain(|h, _| snap.host(h).is_some());
    }
    for h in &snap.hosts {
        let entry = leaves.entry(h.name.clone()).or_default();
        for a in &h.addresses {
            if let Some(l) = &a.leaf {
                entry.insert(a.address, l.clone());
            }
        }
        if h.verdict != HostVerdict::NotTested {
            entry.retain(|ip, _| h.address(*ip).is_some());
        }
        if let Some(t) = &h.tlsa {
            tlsa.insert(h.name.clone(), t.clone());
        }
    }
    leaves.retain(|_, m| !m.is_empty());
    WatchState {
        verdict: Some(snap.verdict),
        active,
        leaves,
        tlsa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::snapshot::AddressSnap;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_800_000_000;
    const V4: &str = "192.0.2.1";
    const V6: &str = "2001:db8::1";

    fn leaf(key: &str, cert: &str, expires_in_days: i64) -> Leaf {
        Leaf {
            cert_sha256: cert.repeat(8),
            spki_sha256: key.repeat(8),
            not_after: Some(Timestamp(T0 + expires_in_days * DAY)),
        }
    }

    fn finding(
        code: Code,
        subject: &str,
        host: Option<&str>,
        address: Option<&str>,
    ) -> FindingSnap {
        FindingSnap {
            code,
            severity: crate::core::catalogue::entry(code).severity,
            subject: subject.into(),
            host: host.map(Into::into),
            address: address.map(|a| a.parse().unwrap()),
            message: format!("{code} message"),
        }
    }

    /// A passing domain: one DANE host, two addresses serving key "k1".
    fn base() -> Snapshot {
        Snapshot {
            domain: "example.org".into(),
            at: Timestamp(T0),
            verdict: DomainVerdict::Pass,
            reason: None,
            worst_severity: None,
            mx_failed: false,
            dns_complete: true,
            ns_checked: true,
            findings: vec![],
            hosts: vec![HostSnap {
                name: "mx.example.org".into(),
                verdict: HostVerdict::Pass,
                dane: true,
                tlsa: Some(vec!["2 1 1 aa".into(), "3 1 1 bb".into()]),
                addresses: [V4, V6]
                    .iter()
                    .map(|a| AddressSnap {
                        address: a.parse().unwrap(),
                        verdict: HostVerdict::Pass,
                        leaf: Some(leaf("k1", "c1", 300)),
                    })
                    .collect(),
                successor_covered: true,
            }],
            rrsig_expires: Some(Timestamp(T0 + 10 * DAY)),
        }
    }

    type Change = fn(&mut Snapshot);

    fn host(s: &mut Snapshot) -> &mut HostSnap {
        &mut s.hosts[0]
    }

    /// (what, change before round 2, change before round 3, events of round 2, of round 3)
    type Case = (
        &'static str,
        Change,
        Change,
        &'static [&'static str],
        &'static [&'static str],
    );

    fn unchanged(_: &mut Snapshot) {}

    fn key_swap(s: &mut Snapshot) {
        for a in &mut host(s).addresses {
            a.leaf = Some(leaf("k2", "c2", 300));
        }
    }

    fn renew_same_key(s: &mut Snapshot) {
        host(s).addresses[0].leaf = Some(leaf("k1", "c3", 390));
    }

    fn unreachable(s: &mut Snapshot) {
        s.verdict = DomainVerdict::Incomplete;
        let h = host(s);
        h.verdict = HostVerdict::NotTested;
        for a in &mut h.addresses {
            a.verdict = HostVerdict::NotTested;
            a.leaf = None;
        }
        s.findings = vec![
            finding(
                Code::SmtpUnreachable,
                "mx.example.org[192.0.2.1]",
                Some("mx.example.org"),
                Some(V4),
            ),
            finding(
                Code::SmtpUnreachable,
                "mx.example.org[2001:db8::1]",
                Some("mx.example.org"),
                Some(V6),
            ),
        ];
    }

    fn no_backup(s: &mut Snapshot) {
        s.findings = vec![finding(
            Code::TlsaNoBackup,
            "mx.example.org",
            Some("mx.example.org"),
            None,
        )];
    }

    fn no_backup_then_unreachable(s: &mut Snapshot) {
        unreachable(s);
    }

    fn broken(s: &mut Snapshot) {
        s.verdict = DomainVerdict::Fail;
        s.reason = Some("failing: mx.example.org".into());
        host(s).verdict = HostVerdict::Fail;
        host(s).addresses[0].verdict = HostVerdict::Fail;
        host(s).tlsa = Some(vec!["3 1 1 cc".into()]);
        s.findings = vec![finding(
            Code::TlsaNoMatch,
            "mx.example.org[192.0.2.1]",
            Some("mx.example.org"),
            Some(V4),
        )];
    }

    fn tlsa_failed(s: &mut Snapshot) {
        host(s).tlsa = None;
        s.dns_complete = false;
    }

    fn staged_key(s: &mut Snapshot) {
        host(s).tlsa = Some(vec![
            "2 1 1 aa".into(),
            "3 1 1 bb".into(),
            "3 1 1 dd".into(),
        ]);
    }

    fn expiring_uncovered(s: &mut Snapshot) {
        host(s).successor_covered = false;
        host(s).addresses[1].leaf = Some(leaf("k1", "c4", 5));
    }

    fn expiring_unobserved(s: &mut Snapshot) {
        expiring_uncovered(s);
        unreachable(s);
    }

    fn rrsig(s: &mut Snapshot) {
        s.findings.extend([
            finding(Code::RrsigExpiring, "example.org MX", None, None),
            finding(
                Code::RrsigExpiring,
                "_25._tcp.mx.example.org TLSA",
                None,
                None,
            ),
        ]);
    }

    fn rrsig_dns_failed(s: &mut Snapshot) {
        s.dns_complete = false;
        s.mx_failed = true;
        s.verdict = DomainVerdict::Incomplete;
        s.hosts.clear();
        s.findings = vec![finding(Code::MxLookupFailed, "example.org", None, None)];
    }

    fn out_of_sync(s: &mut Snapshot) {
        s.findings = vec![finding(
            Code::NsOutOfSync,
            "_25._tcp.mx.example.org",
            None,
            None,
        )];
    }

    fn out_of_sync_unchecked(s: &mut Snapshot) {
        s.ns_checked = false;
    }

    fn codes(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{} {}", e.kind.code(), e.state.as_str()))
            .collect()
    }

    /// The events' codes and states, in any order, are `want`.
    fn same_codes(what: &str, round: u32, got: &[Event], want: &[&str]) {
        let mut g = codes(got);
        g.sort();
        let mut w: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        w.sort();
        assert_eq!(g, w, "{what}: round {round}: {got:#?}");
    }

    #[test]
    fn rounds_raise_each_change_once() {
        let cases: &[Case] = &[
            ("nothing changes", unchanged, unchanged, &[], &[]),
            (
                "key swapped",
                key_swap,
                key_swap,
                &["key-changed changed"],
                &[],
            ),
            (
                "renewed with the same key",
                renew_same_key,
                renew_same_key,
                &["certificate-changed changed"],
                &[],
            ),
            (
                "server unreachable, then back with a new key",
                unreachable,
                key_swap,
                &[
                    "verdict-changed changed",
                    "finding raised",
                    "finding raised",
                ],
                &[
                    "verdict-changed changed",
                    "key-changed changed",
                    "finding cleared",
                    "finding cleared",
                ],
            ),
            (
                "a finding held while its host cannot be tested",
                no_backup,
                no_backup_then_unreachable,
                &["finding raised"],
                &[
                    "verdict-changed changed",
                    "finding raised",
                    "finding raised",
                ],
            ),
            (
                "broken: new TLSA, no match",
                broken,
                unchanged,
                &[
                    "verdict-changed changed",
                    "tlsa-changed changed",
                    "finding raised",
                ],
                &[
                    "verdict-changed changed",
                    "tlsa-changed changed",
                    "finding cleared",
                ],
            ),
            (
                "TLSA lookup failed: no change seen",
                tlsa_failed,
                unchanged,
                &[],
                &[],
            ),
            (
                "next key staged",
                staged_key,
                staged_key,
                &["tlsa-changed changed"],
                &[],
            ),
            (
                "expiry without a successor record",
                expiring_uncovered,
                expiring_uncovered,
                &[
                    "certificate-changed changed",
                    "cert-expiring-uncovered raised",
                ],
                &[],
            ),
            (
                "expiry held while unobserved, cleared once covered",
                expiring_uncovered,
                expiring_unobserved,
                &[
                    "certificate-changed changed",
                    "cert-expiring-uncovered raised",
                ],
                &[
                    "verdict-changed changed",
                    "finding raised",
                    "finding raised",
                ],
            ),
            (
                "signatures expiring: one event",
                rrsig,
                rrsig,
                &["rrsig-expiring raised"],
                &[],
            ),
            (
                "signatures held while DNS fails",
                rrsig,
                rrsig_dns_failed,
                &["rrsig-expiring raised"],
                &["verdict-changed changed", "finding raised"],
            ),
            (
                "out of sync",
                out_of_sync,
                unchanged,
                &["ns-out-of-sync raised"],
                &["ns-out-of-sync cleared"],
            ),
            (
                "out of sync, then not checked",
                out_of_sync,
                out_of_sync_unchecked,
                &["ns-out-of-sync raised"],
                &[],
            ),
        ];
        let opts = EventOptions { cert_warn_days: 21 };
        for (what, round2, round3, want2, want3) in cases {
            let first = base();
            let (ev1, st1) = advance(None, &first, &opts);
            assert_eq!(codes(&ev1), ["domain-added changed"], "{what}: round 1");
            let mut second = base();
            second.at = Timestamp(T0 + 3600);
            round2(&mut second);
            let (ev2, st2) = advance(Some(&st1), &second, &opts);
            same_codes(what, 2, &ev2, want2);
            let mut third = base();
            third.at = Timestamp(T0 + 7200);
            round3(&mut third);
            let (ev3, st3) = advance(Some(&st2), &third, &opts);
            same_codes(what, 3, &ev3, want3);
            // The same audit again raises nothing: deduplicated.
            let (ev4, _) = advance(Some(&st3), &third, &opts);
            assert!(ev4.is_empty(), "{what}: repeated round: {ev4:#?}");
        }
    }

    #[test]
    fn first_audit_lists_findings_and_raises_foresight() {
        let mut s = base();
        no_backup(&mut s);
        rrsig(&mut s);
        expiring_uncovered(&mut s);
        let (ev, st) = advance(None, &s, &EventOptions::default());
        let mut got = codes(&ev);
        got.sort();
        assert_eq!(
            got,
            [
                "cert-expiring-uncovered raised",
                "domain-added changed",
                "rrsig-expiring raised"
            ]
        );
        assert!(
            st.active
                .contains_key("finding tlsa-no-backup mx.example.org")
        );
        let added = &ev
            .iter()
            .find(|e| e.kind.code() == "domain-added")
            .unwrap()
            .kind;
        assert_eq!(
            added,
            &EventKind::DomainAdded {
                verdict: DomainVerdict::Pass,
                codes: vec![Code::RrsigExpiring, Code::TlsaNoBackup]
            }
        );
    }

    #[test]
    fn cert_warning_window_is_a_threshold() {
        let mut s = base();
        expiring_uncovered(&mut s);
        let raised = |days| {
            let (ev, _) = advance(
                None,
                &s,
                &EventOptions {
                    cert_warn_days: days,
                },
            );
            ev.iter()
                .any(|e| e.kind.code() == "cert-expiring-uncovered")
        };
        assert!(raised(6), "5 days left, window 6");
        assert!(!raised(5), "5 days left, window 5");
        let mut covered = s.clone();
        host(&mut covered).successor_covered = true;
        let (ev, _) = advance(None, &covered, &EventOptions { cert_warn_days: 30 });
        assert!(
            !ev.iter()
                .any(|e| e.kind.code() == "cert-expiring-uncovered")
        );
    }

    #[test]
    fn events_round_trip_as_json_with_their_code() {
        let mut s = base();
        rrsig(&mut s);
        let (ev, st) = advance(None, &s, &EventOptions::default());
        for e in &ev {
            let text = serde_json::to_string(e).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["code"], e.kind.code());
            assert!(EVENT_CODES.contains(&e.kind.code()));
            assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), *e);
        }
        let text = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<WatchState>(&text).unwrap(), st);
    }
}
