//! Findings from querying each authoritative server address on its own.
//!
//! A resolver hides a bad server by retrying another one; senders whose
//! resolver happens to pick it defer mail. Only per-server evidence shows
//! a firewall that drops TLSA, a server that refuses the type, a broken
//! denial on one secondary, or secondaries serving an old zone.

use std::collections::BTreeSet;

use super::dnssec::DnssecStatus;
use super::evidence::{FailureKind, NsAnswer, NsProbe, Outcome};
use super::finding::{Code, Finding};

fn server_label(p: &NsProbe) -> String {
    format!("{} [{}]", p.server.trim_end_matches('.'), p.address)
}

fn answered(a: &NsAnswer) -> bool {
    a.outcome != Outcome::Failed
}

fn failure_kind(a: &NsAnswer) -> Option<FailureKind> {
    a.failure.as_ref().map(|f| f.kind)
}

/// Findings about each server address for one TLSA name.
pub fn findings(host: &str, probes: &[NsProbe]) -> Vec<Finding> {
    let probes: Vec<&NsProbe> = probes.iter().filter(|p| p.asked()).collect();
    // When every server's denial is bogus the zone itself is broken, which
    // `tlsa-denial-bogus` says; per-server blame is for the odd one out.
    let denials: Vec<DnssecStatus> = probes.iter().filter_map(|p| p.tlsa.denial).collect();
    let all_bogus = !denials.is_empty() && denials.iter().all(|d| *d == DnssecStatus::Bogus);
    let mut out: Vec<Finding> = probes
        .iter()
        .filter_map(|p| per_server(host, p))
        .filter(|f| !(all_bogus && f.code == Code::NsDenialBogus))
        .collect();
    out.extend(dnskey_findings(host, &probes));
    out.extend(probes.iter().filter_map(|p| tcp_finding(host, p)));
    out.extend(sync_findings(host, &probes));
    out
}

/// The server answers at all (a control question), so a silent question
/// type or transport is the server's choice, not a dead server.
fn alive(p: &NsProbe) -> bool {
    answered(&p.control) || p.soa_serial.is_some()
}

fn silent(a: &NsAnswer) -> bool {
    matches!(
        failure_kind(a),
        Some(FailureKind::Timeout | FailureKind::Network)
    )
}

/// `ns-drops-dnskey` per server that times out on DNSKEY while it answers
/// other questions; an error when no server of the zone answers DNSKEY
/// (then nothing in the zone validates).
fn dnskey_findings(host: &str, probes: &[&NsProbe]) -> Vec<Finding> {
    let asked: Vec<&&NsProbe> = probes.iter().filter(|p| p.dnskey.is_some()).collect();
    let none_answers = !asked.is_empty()
        && asked
            .iter()
            .all(|p| p.dnskey.as_ref().is_some_and(|a| !answered(a)));
    asked
        .iter()
        .filter(|p| alive(p) && p.dnskey.as_ref().is_some_and(silent))
        .map(|p| {
            let who = server_label(p);
            let zone = p.zone.trim_end_matches('.');
            let f = Finding::new(Code::NsDropsDnskey, who.clone())
                .msg(format!(
                    "{who} does not answer DNSKEY queries for {zone}, but answers other queries{}",
                    if none_answers {
                        "; no server of the zone answers them, so nothing in it validates"
                    } else {
                        ""
                    }
                ))
                .at_host(host);
            if none_answers { f.secondary() } else { f }
        })
        .collect()
}

/// `ns-no-tcp`: the server answers over UDP, never over TCP.
fn tcp_finding(host: &str, p: &NsProbe) -> Option<Finding> {
    let tcp = p.tcp.as_ref()?;
    if !alive(p) || !silent(tcp) {
        return None;
    }
    let who = server_label(p);
    let zone = p.zone.trim_end_matches('.');
    let qname = p.qname.trim_end_matches('.');
    let mut msg = format!(
        "{who}, a server of {zone}, answers over UDP but not over TCP ({} over TCP)",
        tcp.failure
            .as_ref()
            .map(|f| f.kind.as_str())
            .unwrap_or("no answer")
    );
    if p.tlsa.truncated {
        msg.push_str(&format!(
            "; the TLSA answer at {qname} does not fit its UDP answer, so resolvers that ask this server cannot get it"
        ));
    }
    Some(Finding::new(Code::NsNoTcp, who).msg(msg).at_host(host))
}

fn per_server(host: &str, p: &NsProbe) -> Option<Finding> {
    let who = server_label(p);
    let qname = p.qname.trim_end_matches('.');
    let f = if answered(&p.tlsa) {
        if p.tlsa.denial == Some(DnssecStatus::Bogus) {
            Finding::new(Code::NsDenialBogus, who.clone()).msg(format!(
                "{who} proves that {qname} has no TLSA records with a denial that does not validate"
            ))
        } else {
            return None;
        }
    } else if !answered(&p.control) {
        Finding::new(Code::NsUnreachable, who.clone()).msg(format!(
            "{who} answered neither TLSA nor a control query at {qname} ({})",
            p.control
                .failure
                .as_ref()
                .map(|f| f.kind.as_str())
                .unwrap_or("no answer")
        ))
    } else {
        match failure_kind(&p.tlsa) {
            // Truncated over UDP, then silent over TCP: `ns-no-tcp` says it.
            Some(FailureKind::Timeout | FailureKind::Network) if p.tlsa.truncated => return None,
            Some(FailureKind::Timeout | FailureKind::Network) => {
                Finding::new(Code::NsDropsTlsa, who.clone()).msg(format!(
                    "{who} does not answer TLSA queries for {qname}, but answers other queries at the same name"
                ))
            }
            Some(k) => Finding::new(Code::NsRefusesTlsa, who.clone()).msg(format!(
                "{who} answers TLSA queries for {qname} with {}",
                k.as_str()
            )),
            None => return None,
        }
    };
    Some(f.at_host(host))
}

fn sync_findings(host: &str, probes: &[&NsProbe]) -> Option<Finding> {
    let zone = probes.first()?.zone.trim_end_matches('.').to_string();
    let serials: BTreeSet<u32> = probes.iter().filter_map(|p| p.soa_serial).collect();
    let tlsa_sets: BTreeSet<Vec<String>> = probes
        .iter()
        .filter(|p| answered(&p.tlsa))
        .map(|p| {
            let mut r: Vec<String> = p.tlsa.records.iter().map(|x| x.to_string()).collect();
            r.sort();
            r
        })
        .collect();
    if serials.len() <= 1 && tlsa_sets.len() <= 1 {
        return None;
    }
    let detail: Vec<String> = probes
        .iter()
        .map(|p| {
            format!(
                "{} serial {} with {} TLSA",
                server_label(p),
                p.soa_serial
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "?".into()),
                if answered(&p.tlsa) {
                    p.tlsa.records.len().to_string()
                } else {
                    "no answer for".into()
                }
            )
        })
        .collect();
    Some(
        Finding::new(Code::NsOutOfSync, zone.clone())
            .msg(format!(
                "the servers of {zone} disagree: {}",
                detail.join("; ")
            ))
            .at_host(host),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::evidence::Failure;

    fn ans(outcome: Outcome, failure: Option<FailureKind>, records: &[&str]) -> NsAnswer {
        NsAnswer {
            outcome,
            failure: failure.map(|kind| Failure {
                kind,
                detail: String::new(),
            }),
            authoritative: true,
            records: records.iter().map(|s| s.parse().unwrap()).collect(),
            denial: None,
            ttl: None,
            elapsed_ms: 1,
            truncated: false,
        }
    }

    fn probe(addr: &str, control: NsAnswer, tlsa: NsAnswer, serial: Option<u32>) -> NsProbe {
        NsProbe {
            zone: "example.".into(),
            server: "ns1.example.".into(),
            address: addr.parse().unwrap(),
            qname: "_25._tcp.mx.example.".into(),
            control,
            tlsa,
            soa_serial: serial,
            dnskey: None,
            tcp: None,
        }
    }

    fn codes(f: &[Finding]) -> Vec<Code> {
        f.iter().map(|f| f.code).collect()
    }

    #[test]
    fn per_server_table() {
        let ok = || ans(Outcome::NoData, None, &[]);
        let tlsa = || ans(Outcome::Answer, None, &["3 1 1 aa"]);
        let fail = |k| ans(Outcome::Failed, Some(k), &[]);
        let cases = [
            (ok(), tlsa(), vec![]),
            (ok(), fail(FailureKind::Timeout), vec![Code::NsDropsTlsa]),
            (ok(), fail(FailureKind::Refused), vec![Code::NsRefusesTlsa]),
            (ok(), fail(FailureKind::NotImp), vec![Code::NsRefusesTlsa]),
            (ok(), fail(FailureKind::ServFail), vec![Code::NsRefusesTlsa]),
            (
                fail(FailureKind::Timeout),
                fail(FailureKind::Timeout),
                vec![Code::NsUnreachable],
            ),
        ];
        for (control, t, want) in cases {
            let p = probe("192.0.2.53", control, t, Some(1));
            assert_eq!(codes(&findings("mx.example", &[p])), want);
        }
        // Not asked (skip list): neither unreachable nor out of sync.
        let skipped = probe(
            "192.0.2.55",
            fail(FailureKind::Skipped),
            fail(FailureKind::Skipped),
            None,
        );
        let asked = probe("192.0.2.53", ok(), tlsa(), Some(7));
        assert!(findings("mx.example", &[skipped, asked]).is_empty());
        let mut bogus = ans(Outcome::NxDomain, None, &[]);
        bogus.denial = Some(DnssecStatus::Bogus);
        let p = probe("192.0.2.53", ok(), bogus.clone(), Some(1));
        let mut good = ans(Outcome::NxDomain, None, &[]);
        good.denial = Some(DnssecStatus::Secure);
        let q = probe("192.0.2.54", ok(), good, Some(1));
        assert_eq!(
            codes(&findings("mx.example", &[p.clone(), q])),
            vec![Code::NsDenialBogus]
        );
        // Every server bogus: the zone is broken, not one server.
        assert!(findings("mx.example", &[p]).is_empty());
    }

    #[test]
    fn out_of_sync_by_serial_or_rrset() {
        let t1 = || ans(Outcome::Answer, None, &["3 1 1 aa"]);
        let t2 = || ans(Outcome::Answer, None, &["3 1 1 aa", "3 1 1 bb"]);
        let ctl = || ans(Outcome::NoData, None, &[]);
        let same = [
            probe("192.0.2.1", ctl(), t1(), Some(5)),
            probe("192.0.2.2", ctl(), t1(), Some(5)),
        ];
        assert!(findings("mx", &same).is_empty());
        let serial = [
            probe("192.0.2.1", ctl(), t1(), Some(5)),
            probe("192.0.2.2", ctl(), t1(), Some(4)),
        ];
        assert_eq!(codes(&findings("mx", &serial)), vec![Code::NsOutOfSync]);
        let rrset = [
            probe("192.0.2.1", ctl(), t1(), Some(5)),
            probe("192.0.2.2", ctl(), t2(), Some(5)),
        ];
        assert_eq!(codes(&findings("mx", &rrset)), vec![Code::NsOutOfSync]);
    }

    #[test]
    fn dnskey_and_tcp_per_server() {
        let ok = || ans(Outcome::NoData, None, &[]);
        let tlsa = || ans(Outcome::Answer, None, &["3 1 1 aa"]);
        let fail = |k| ans(Outcome::Failed, Some(k), &[]);
        let with = |addr, dnskey: NsAnswer, tcp: NsAnswer| {
            let mut p = probe(addr, ok(), tlsa(), Some(1));
            p.dnskey = Some(dnskey);
            p.tcp = Some(tcp);
            p
        };
        let good = with("192.0.2.1", ok(), ok());
        assert!(findings("mx", std::slice::from_ref(&good)).is_empty());
        // One server drops DNSKEY, the other answers: a warning.
        let drops = with("192.0.2.2", fail(FailureKind::Timeout), ok());
        let f = findings("mx", &[good.clone(), drops.clone()]);
        assert_eq!(codes(&f), vec![Code::NsDropsDnskey]);
        assert_eq!(f[0].severity, crate::core::finding::Severity::Warning);
        // No server answers DNSKEY: an error.
        let f = findings("mx", std::slice::from_ref(&drops));
        assert_eq!(f[0].severity, crate::core::finding::Severity::Error);
        // REFUSED over DNSKEY is an answer, not silence.
        let refused = with("192.0.2.3", fail(FailureKind::Refused), ok());
        assert!(findings("mx", &[good.clone(), refused]).is_empty());
        // No TCP: the truncated TLSA answer that failed over TCP is not "drops TLSA".
        let mut big = fail(FailureKind::Timeout);
        big.truncated = true;
        let mut notcp = with("192.0.2.4", ok(), fail(FailureKind::Timeout));
        notcp.tlsa = big;
        let f = findings("mx", &[good, notcp]);
        assert_eq!(codes(&f), vec![Code::NsNoTcp]);
        assert!(f[0].message.contains("does not fit"), "{}", f[0].message);
        // A dead server is only ns-unreachable.
        let mut dead = with(
            "192.0.2.5",
            fail(FailureKind::Timeout),
            fail(FailureKind::Timeout),
        );
        dead.control = fail(FailureKind::Timeout);
        dead.tlsa = fail(FailureKind::Timeout);
        dead.soa_serial = None;
        assert_eq!(codes(&findings("mx", &[dead])), vec![Code::NsUnreachable]);
    }
}
