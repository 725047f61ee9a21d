//! What an audit has found so far, as lines a person can follow while it
//! runs (the page shows them as they arrive, by server-sent events, or on
//! each reload without JavaScript). The final report replaces them: these
//! lines are a view of raw evidence, not a verdict.

use serde::Serialize;

use crate::collect::Progress;
use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{HostEvidence, Lookup, Outcome, SmtpProbe};
use crate::core::smtp::{SmtpResult, classify};

/// How a line reads: a step under way, something that looks right,
/// something that looks wrong, or something deliberately not done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Step,
    Ok,
    Problem,
    Skipped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Step => "step",
            Kind::Ok => "ok",
            Kind::Problem => "problem",
            Kind::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    pub kind: Kind,
    pub text: String,
}

impl Line {
    pub fn step(text: impl Into<String>) -> Line {
        Line {
            kind: Kind::Step,
            text: text.into(),
        }
    }
}

/// The line for one piece of progress.
pub fn line(p: Progress<'_>) -> Line {
    match p {
        Progress::Host { name, preference } => Line::step(format!(
            "{}: {name}: looking up its addresses and TLSA records",
            preference
                .map(|p| format!("MX {p}"))
                .unwrap_or_else(|| "no MX, the domain itself".into())
        )),
        Progress::HostDns(h) => host_dns(h),
        Progress::Probe { host, probe } => probe_line(host, probe),
    }
}

fn lookup_words<T>(l: &Lookup<T>) -> String {
    let what = match l.meta.outcome {
        Outcome::Answer => format!("{} record(s)", l.records.len()),
        Outcome::NoData => "none".into(),
        Outcome::NxDomain => "no such name".into(),
        Outcome::Failed => "lookup failed".into(),
    };
    format!("{what}, {}", l.meta.dnssec.as_str())
}

fn host_dns(h: &HostEvidence) -> Line {
    let mut text = format!(
        "{}: A {}; AAAA {}",
        h.name,
        lookup_words(&h.a),
        lookup_words(&h.aaaa)
    );
    let mut kind = Kind::Ok;
    match &h.tlsa {
        Some(t) => {
            text.push_str(&format!("; TLSA {}", lookup_words(t)));
            if !(t.meta.outcome == Outcome::Answer && t.meta.dnssec == DnssecStatus::Secure) {
                kind = Kind::Problem;
            }
        }
        None => {
            text.push_str("; TLSA not looked up (the addresses are not secure)");
            kind = Kind::Problem;
        }
    }
    let bogus = [&h.a.meta, &h.aaaa.meta]
        .iter()
        .any(|m| m.dnssec == DnssecStatus::Bogus || m.outcome == Outcome::Failed);
    if bogus {
        kind = Kind::Problem;
    }
    let asked = h.nameservers.iter().filter(|p| p.asked()).count();
    if !h.nameservers.is_empty() {
        text.push_str(&format!(
            "; {asked} of {} authoritative server address(es) asked directly",
            h.nameservers.len()
        ));
    }
    Line { kind, text }
}

fn probe_line(host: &str, p: &SmtpProbe) -> Line {
    let at = format!("{host} [{}]", p.address);
    match classify(p) {
        SmtpResult::Tls => Line {
            kind: Kind::Ok,
            text: format!(
                "{at}: STARTTLS ok, {} {}, {} certificate(s) served",
                p.tls.as_ref().map(|t| t.version.as_str()).unwrap_or("TLS"),
                p.tls.as_ref().map(|t| t.cipher.as_str()).unwrap_or(""),
                p.chain.len()
            ),
        },
        SmtpResult::NotProbed(why) => Line {
            kind: Kind::Skipped,
            text: format!("{at}: not tested: {why}"),
        },
        SmtpResult::Untested { message, .. } => Line {
            kind: Kind::Skipped,
            text: format!("{at}: not tested: {message}"),
        },
        SmtpResult::Failed { message, .. } => Line {
            kind: Kind::Problem,
            text: format!("{at}: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::plan::not_probed;

    #[test]
    fn a_screened_address_reads_not_tested() {
        let p = not_probed(
            "10.0.0.1".parse().unwrap(),
            25,
            "address not allowed here (private use 10.0.0.0/8, RFC 1918)".into(),
        );
        let l = line(Progress::Probe {
            host: "mx.example",
            probe: &p,
        });
        assert_eq!(l.kind, Kind::Skipped);
        assert_eq!(
            l.text,
            "mx.example [10.0.0.1]: not tested: address not allowed here (private use 10.0.0.0/8, RFC 1918)"
        );
        let start = line(Progress::Host {
            name: "mx.example",
            preference: Some(10),
        });
        assert_eq!(
            start.text,
            "MX 10: mx.example: looking up its addresses and TLSA records"
        );
    }
}
