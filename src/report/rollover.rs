//! The rollover decision (`preflight`) for people and for machines: the
//! readiness first, then per host what was seen. The core's reasons and
//! notes are typed; they are worded here, once, for both formats.

use std::io::{self, Write};

use serde::Serialize;

use super::{OUTPUT_SCHEMA_VERSION, RunInfo, TOOL, ToolInfo};
use crate::core::evidence::Timestamp;
use crate::core::finding::Finding;
use crate::core::identity::presented_names;
use crate::core::rollover::{
    Decision, FirstSeen, Headline, HostDecision, LiveStatus, Mode, NewCertificate, Note, Readiness,
    Reason, RecordStatus, ServerOutcome, ServerRef, ServerStatus,
};
use crate::core::tlsa::{MatchingType, Selector, TlsaRdata};

/// A zone-file line for a host's TLSA name.
fn zone_line(tlsa_base: &str, r: &TlsaRdata) -> String {
    format!("_25._tcp.{}. IN TLSA {r}", tlsa_base.trim_end_matches('.'))
}

fn server_label(s: &ServerRef) -> String {
    format!("{} [{}]", s.server, s.address)
}

fn with_serial(s: &ServerRef) -> String {
    format!(
        "{}{}",
        server_label(s),
        s.serial
            .map(|x| format!(" (serial {x})"))
            .unwrap_or_default()
    )
}

fn labels(servers: &[ServerRef], f: fn(&ServerRef) -> String) -> String {
    servers.iter().map(f).collect::<Vec<_>>().join(", ")
}

/// One reason in words.
pub fn reason_text(r: &Reason) -> String {
    use Reason::*;
    match r {
        MxLookupFailed { domain } => {
            format!("the MX lookup for {domain} failed, so its mail hosts are unknown")
        }
        MxBogus { domain } => format!(
            "the MX records of {domain} fail DNSSEC validation: DANE senders cannot deliver to {domain} now; fix DNSSEC first"
        ),
        NoMailHost { domain } => format!("{domain} has no mail host to check"),
        LookupFailed { cause } => cause.message.clone(),
        AddressesBogus { host, cause } => format!(
            "{}: DANE senders cannot deliver to {host} now; fix DNSSEC first",
            cause.message
        ),
        TlsaBogus { host, cause } => format!(
            "{}: DANE senders defer mail to {host} now; fix DNSSEC first",
            cause.message
        ),
        AddressesUnsigned { host } => format!(
            "the addresses of {host} are not DNSSEC-signed: senders do not use DANE for it, so the swap cannot break DANE delivery"
        ),
        TlsaUnsigned { host } => format!(
            "the TLSA records of {host} are not DNSSEC-signed: senders ignore them, so the swap cannot break DANE delivery"
        ),
        NoTlsa { host } => format!(
            "{host} has no TLSA records: DANE senders do not authenticate it, so the swap cannot break DANE delivery"
        ),
        ServersUnknown { tlsa_base } => format!(
            "the authoritative servers of _25._tcp.{tlsa_base} could not be found: cannot confirm that each serves the new record"
        ),
        NewNotPublished { cause, listed } => format!(
            "no published TLSA record authenticates the new certificate{}{}",
            cause
                .as_ref()
                .map(|c| format!(": {}", c.message))
                .unwrap_or_default(),
            if *listed {
                ": publish the records listed below, then wait for the TTL plus the margin"
            } else {
                ""
            }
        ),
        NewWithdrawn { lacking } => format!(
            "the resolver has it, but no authoritative server serves a record for the new certificate any more: {}",
            labels(lacking, with_serial)
        ),
        NotOnEveryServer { having, lacking } => format!(
            "not yet on every server: {} serve{} it, but {} do{} not serve a record for the new certificate yet; the TTL counts from when the last server serves it",
            labels(having, server_label),
            if having.len() == 1 { "s" } else { "" },
            labels(lacking, with_serial),
            if lacking.len() == 1 { "es" } else { "" }
        ),
        ServersSilent { servers } => format!(
            "the TLSA query failed at {}: cannot confirm that every server serves the new record (--no-ns-checks relies on the resolver alone)",
            servers
                .iter()
                .map(|(s, why)| format!("{} ({why})", server_label(s)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        CachesMayHoldOldRrset {
            first_seen,
            how,
            ttl,
            margin_secs,
            safe_at,
        } => format!(
            "every server serves a record for the new certificate, first seen there {first_seen} ({}); resolvers may keep the old RRset for the TTL ({ttl} s) plus the margin ({margin_secs} s): safe from {safe_at}",
            match how {
                FirstSeen::Remembered => "remembered in the state file",
                FirstSeen::Asserted => "as --published-before asserts",
                FirstSeen::ThisRun =>
                    "in this run; --state or --published-before tell an earlier time",
            }
        ),
        ResolverStale => "every server serves a record for the new certificate, but the resolver still returns an RRset without it".to_string(),
        DifferentRecordsPerServer { safe_at } => format!(
            "every server authenticates the new certificate, but through different records: safe from {safe_at} at the earliest"
        ),
        AddressUntested { address, message } => format!(
            "{address} could not be tested ({message}): the certificate served there is unknown"
        ),
        AddressFails { address, message } => format!(
            "{address} fails now ({message}): DANE senders cannot deliver there already; fix that first"
        ),
        CandidateBreaksLive { address, leaf } => format!(
            "once published, the candidate RRset would not authenticate the certificate served now at {address} (\"{leaf}\"): publishing it before the swap breaks delivery there; keep a record for the current key until the swap"
        ),
        LiveNotAuthenticated { address, leaf } => format!(
            "the certificate served now at {address} (\"{leaf}\") is not authenticated by the published records: DANE senders fail there already"
        ),
        CandidateEmpty { tlsa_base } => {
            format!("the candidate RRset has no record for _25._tcp.{tlsa_base}")
        }
        CandidateMissesNew { cause } => format!(
            "the candidate RRset does not authenticate the new certificate{}",
            cause
                .as_ref()
                .map(|c| format!(": {}", c.message))
                .unwrap_or_default()
        ),
        CandidatePublished { published } => format!(
            "the candidate RRset would authenticate the new certificate and the current one; the published records already do: {}",
            reason_text(published)
        ),
        CandidateAging { published } => format!(
            "the candidate RRset would authenticate the new certificate and the current one; {}",
            reason_text(published)
        ),
        CandidateToPublish {
            unserved,
            ttl,
            margin_secs,
        } => format!(
            "the candidate RRset would authenticate the new certificate and the current one: publish it{}, then wait until every server serves it, plus the TTL{} and the margin ({margin_secs} s)",
            if *unserved == 0 {
                String::new()
            } else {
                format!(" ({unserved} record(s) not served yet)")
            },
            ttl.map(|t| format!(" ({t} s)")).unwrap_or_default()
        ),
        Ready { first_seen } => format!(
            "the published TLSA records authenticate the new certificate on every server, for longer than the TTL plus the margin, and the current certificate still matches{}",
            first_seen
                .map(|t| format!(" (first seen on every server {t})"))
                .unwrap_or_default()
        ),
    }
}

/// One note in words.
pub fn note_text(n: &Note) -> String {
    match n {
        Note::MxInsecure { domain } => format!(
            "the MX records of {domain} are not DNSSEC-signed, so senders do not use DANE for {domain}; hosts with secure TLSA are still checked (senders reach them through other domains)"
        ),
        Note::MxContext { reason } => reason_text(reason),
        Note::NotAnMxHost { host, domain } => format!("{host} is not an MX host of {domain}"),
        Note::SmtpNotProbed => {
            "the certificate served now was not checked (--no-smtp)".to_string()
        }
        Note::TlsaAlias { tlsa_base } => format!(
            "_25._tcp.{tlsa_base} is an alias: the servers of its target zone are not asked one by one"
        ),
        Note::ServersNotAsked => "the authoritative servers were not asked one by one (--no-ns-checks): only the resolver's view is checked".to_string(),
        Note::ProtectWithDane {
            host,
            tlsa_base,
            records,
        } => format!(
            "to protect {host} with DANE, publish (then wait for the TTL before relying on it):\n{}",
            records
                .iter()
                .map(|r| zone_line(tlsa_base, r))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Note::LiveFixedByNew { address, leaf } => format!(
            "the certificate served now at {address} (\"{leaf}\") is not authenticated by the published records: DANE senders fail there already, and deploying the new certificate fixes it"
        ),
    }
}

/// The domain's one-line reason.
pub fn headline_text(h: Option<&Headline>) -> String {
    match h {
        None => String::new(),
        Some(Headline::Domain(r)) => reason_text(r),
        Some(Headline::Host { host, reason }) => format!("{host}: {}", reason_text(reason)),
        Some(Headline::AllSafe { hosts }) => format!("all {hosts} MX hosts are safe"),
    }
}

fn host_reason(h: &HostDecision) -> String {
    h.reasons.first().map(reason_text).unwrap_or_default()
}

// ---- JSON ------------------------------------------------------------------

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    tool: &'a ToolInfo,
    run: &'a RunInfo,
    command: &'static str,
    exit: u8,
    #[serde(flatten)]
    decision: DecisionView<'a>,
}

#[derive(Serialize)]
struct DecisionView<'a> {
    domain: &'a str,
    verdict: Readiness,
    reason: String,
    evaluated_at: Timestamp,
    margin_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    safe_at: Option<Timestamp>,
    mode: Mode,
    new_certificate: NewCertView,
    hosts: Vec<HostView<'a>>,
    notes: Vec<String>,
}

/// The new certificate, as the report shows it.
#[derive(Serialize)]
struct NewCertView {
    subject: String,
    issuer: String,
    names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<Timestamp>,
    /// `3 1 1` association data of NEW.
    spki_sha256: String,
    /// Labels of the CA certificates in NEW's chain file, in order.
    chain: Vec<String>,
}

impl NewCertView {
    fn of(new: &NewCertificate) -> NewCertView {
        let leaf = new.leaf();
        NewCertView {
            subject: leaf.subject.clone(),
            issuer: leaf.issuer.clone(),
            names: presented_names(leaf).to_vec(),
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            spki_sha256: leaf
                .association(Selector::Spki, MatchingType::Sha256)
                .map(hex::encode)
                .unwrap_or_default(),
            chain: new.chain[1..].iter().map(|c| c.label()).collect(),
        }
    }
}

#[derive(Serialize)]
struct ReasonView {
    verdict: Readiness,
    text: String,
}

#[derive(Serialize)]
struct HostView<'a> {
    host: &'a str,
    tlsa_base: &'a str,
    verdict: Readiness,
    reason: String,
    reasons: Vec<ReasonView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safe_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_seen_from: Option<&'static str>,
    records: &'a [RecordStatus],
    servers: &'a [ServerStatus],
    live: &'a [LiveStatus],
    publish: Vec<String>,
    findings: &'a [Finding],
    notes: Vec<String>,
}

fn first_seen_from(f: FirstSeen) -> &'static str {
    match f {
        FirstSeen::ThisRun => "this run",
        FirstSeen::Remembered => "state",
        FirstSeen::Asserted => "--published-before",
    }
}

impl<'a> HostView<'a> {
    fn of(h: &'a HostDecision) -> HostView<'a> {
        HostView {
            host: &h.host,
            tlsa_base: &h.tlsa_base,
            verdict: h.readiness,
            reason: host_reason(h),
            reasons: h
                .reasons
                .iter()
                .map(|r| ReasonView {
                    verdict: r.readiness(),
                    text: reason_text(r),
                })
                .collect(),
            safe_at: h.safe_at,
            ttl: h.ttl,
            first_seen: h.first_seen.map(|(t, _)| t),
            first_seen_from: h.first_seen.map(|(_, f)| first_seen_from(f)),
            records: &h.records,
            servers: &h.servers,
            live: &h.live,
            publish: h
                .publish
                .iter()
                .map(|r| zone_line(&h.tlsa_base, r))
                .collect(),
            findings: &h.findings,
            notes: h.notes.iter().map(note_text).collect(),
        }
    }
}

fn decision_view<'a>(d: &'a Decision, new: &NewCertificate) -> DecisionView<'a> {
    DecisionView {
        domain: &d.domain,
        verdict: d.readiness,
        reason: headline_text(d.headline.as_ref()),
        evaluated_at: d.evaluated_at,
        margin_secs: d.margin_secs,
        safe_at: d.safe_at,
        mode: d.mode,
        new_certificate: NewCertView::of(new),
        hosts: d.hosts.iter().map(HostView::of).collect(),
        notes: d.notes.iter().map(note_text).collect(),
    }
}

/// The decision as one JSON document, with the schema header every
/// machine format carries.
pub fn write_json(
    out: &mut dyn Write,
    d: &Decision,
    new: &NewCertificate,
    run: &RunInfo,
    exit: u8,
) -> io::Result<()> {
    let doc = Document {
        schema_version: OUTPUT_SCHEMA_VERSION,
        tool: &TOOL,
        run,
        command: "preflight",
        exit,
        decision: decision_view(d, new),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// The decision's body as a JSON value, for documents that embed it.
pub fn decision_value(d: &Decision, new: &NewCertificate) -> serde_json::Value {
    serde_json::to_value(decision_view(d, new)).unwrap_or_default()
}

/// The decision's body alone (no header), for golden files.
pub fn decision_json(d: &Decision, new: &NewCertificate) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&decision_view(d, new))
}

// ---- text ------------------------------------------------------------------

fn upper(v: Readiness) -> String {
    v.as_str().to_ascii_uppercase()
}

/// The text report: the readiness first, then per host what was seen.
pub fn write_text(
    out: &mut dyn Write,
    d: &Decision,
    new: &NewCertificate,
    exit: u8,
) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} (exit {exit}){}",
        d.domain,
        upper(d.readiness),
        d.safe_at
            .map(|t| format!(", safe from {t}"))
            .unwrap_or_default()
    )?;
    writeln!(out, "  {}", headline_text(d.headline.as_ref()))?;
    write_new_cert(out, &NewCertView::of(new))?;
    writeln!(
        out,
        "  evaluated {}; margin {} s; {}",
        d.evaluated_at,
        d.margin_secs,
        match d.mode {
            Mode::Candidate => "judging the candidate RRset (--tlsa)",
            Mode::Published => "judging the published TLSA records",
        }
    )?;
    for h in &d.hosts {
        write_host(out, h)?;
    }
    for note in &d.notes {
        writeln!(out, "  note: {}", note_text(note))?;
    }
    writeln!(
        out,
        "Summary: {} {}: {}",
        d.domain,
        d.readiness,
        match d.readiness {
            Readiness::Safe =>
                "deploy the new certificate now, then run `dane-audit check` and remove the old records",
            Readiness::Wait => "do not deploy yet; run again (or use --wait)",
            Readiness::Unsafe => "do not deploy; fix what is listed first",
            Readiness::Undetermined =>
                "could not determine; run again when the failures above are gone",
        }
    )
}

fn write_new_cert(out: &mut dyn Write, n: &NewCertView) -> io::Result<()> {
    writeln!(
        out,
        "  new certificate: {}  (names: {}; notAfter {})",
        n.subject,
        if n.names.is_empty() {
            "none".to_string()
        } else {
            n.names.join(", ")
        },
        n.not_after
            .map(|t| t.to_string())
            .unwrap_or_else(|| "?".into())
    )?;
    writeln!(out, "    3 1 1 {}", n.spki_sha256)?;
    if n.chain.is_empty() {
        writeln!(out, "    chain: none (no CA certificate given)")
    } else {
        writeln!(out, "    chain: {}", n.chain.join(" <- "))
    }
}

fn write_host(out: &mut dyn Write, h: &HostDecision) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "  {}: {}{}",
        h.host,
        upper(h.readiness),
        h.safe_at.map(|t| format!(" until {t}")).unwrap_or_default()
    )?;
    for reason in &h.reasons {
        writeln!(out, "    - {}: {}", reason.readiness(), reason_text(reason))?;
    }
    write_records(out, h)?;
    write_servers(out, &h.servers)?;
    write_live(out, &h.live)?;
    if !h.publish.is_empty() {
        writeln!(out, "    publish:")?;
        for r in &h.publish {
            writeln!(out, "      {}", zone_line(&h.tlsa_base, r))?;
        }
    }
    write_findings(out, &h.findings)?;
    for note in &h.notes {
        writeln!(out, "    note: {}", note_text(note))?;
    }
    Ok(())
}

fn write_records(out: &mut dyn Write, h: &HostDecision) -> io::Result<()> {
    if h.records.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "    TLSA _25._tcp.{}{}",
        h.tlsa_base,
        h.ttl.map(|t| format!("  TTL {t} s")).unwrap_or_default()
    )?;
    let answering = h.servers.iter().filter(|s| s.new.is_some()).count();
    for rec in &h.records {
        let mut tags = Vec::new();
        for (on, tag) in [
            (rec.new, "new"),
            (rec.live, "live"),
            (!rec.usable, "unusable"),
            (rec.candidate, "candidate"),
            (rec.resolver, "resolver"),
        ] {
            if on {
                tags.push(tag.to_string());
            }
        }
        if answering > 0 {
            tags.push(format!("servers {}/{answering}", rec.servers));
        }
        writeln!(out, "      {}  [{}]", rec.record.short(), tags.join("] ["))?;
    }
    Ok(())
}

fn write_servers(out: &mut dyn Write, servers: &[ServerStatus]) -> io::Result<()> {
    if servers.is_empty() {
        return Ok(());
    }
    writeln!(out, "    servers:")?;
    for s in servers {
        writeln!(
            out,
            "      {} [{}]{}: {}{}{}",
            s.server,
            s.address,
            s.serial.map(|x| format!(" serial {x}")).unwrap_or_default(),
            match s.answer {
                ServerOutcome::Answer => format!("{} record(s)", s.records),
                ServerOutcome::Nodata => "nodata".to_string(),
                ServerOutcome::Nxdomain => "nxdomain".to_string(),
                ServerOutcome::Failed => "failed".to_string(),
                ServerOutcome::Alias => "alias".to_string(),
            },
            s.ttl.map(|t| format!(", TTL {t}")).unwrap_or_default(),
            match s.new {
                Some(true) => ", new certificate: yes",
                Some(false) => ", new certificate: no",
                None => "",
            }
        )?;
    }
    Ok(())
}

fn write_live(out: &mut dyn Write, live: &[LiveStatus]) -> io::Result<()> {
    if live.is_empty() {
        return Ok(());
    }
    writeln!(out, "    served now:")?;
    for l in live {
        writeln!(
            out,
            "      {}: {}{}{}{}",
            l.address,
            l.status.as_str(),
            l.leaf
                .as_ref()
                .map(|x| format!("  (\"{x}\")"))
                .unwrap_or_default(),
            if l.serving_new {
                "  already the new key"
            } else {
                ""
            },
            l.detail
                .as_ref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

fn write_findings(out: &mut dyn Write, findings: &[Finding]) -> io::Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    writeln!(out, "    findings:")?;
    for f in findings {
        writeln!(
            out,
            "      {:<8} {}  {}",
            f.severity.as_str(),
            f.code,
            f.message
        )?;
        for (i, line) in f.fix.lines().enumerate() {
            let lead = if i == 0 { "fix: " } else { "     " };
            writeln!(out, "               {lead}{line}")?;
        }
    }
    Ok(())
}
