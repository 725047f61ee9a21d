//! The report a person reads: verdict first, then the evidence host by host
//! (danecheck style: every served certificate with each TLSA record
//! `[matched]` or `[nomatch]`), then the findings with their fixes.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

use super::{Row, RunInfo, Sink, Summary, severity_counts};
use crate::core::audit::{AddressAudit, DomainAudit, HostAudit, RecordView, RrsetView};
use crate::core::evidence::Outcome;
use crate::core::finding::{Finding, Severity};
use crate::core::verdict::{DomainVerdict, HostVerdict};

pub struct TextSink<'w> {
    out: Box<dyn Write + 'w>,
    color: bool,
}

impl<'w> TextSink<'w> {
    pub fn new(out: Box<dyn Write + 'w>, color: bool) -> Self {
        TextSink { out, color }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    fn verdict_style(v: &str) -> Style {
        let c = match v {
            "pass" => AnsiColor::Green,
            "fail" | "error" => AnsiColor::Red,
            "partial" | "incomplete" | "not-tested" => AnsiColor::Yellow,
            _ => AnsiColor::Cyan,
        };
        Style::new().fg_color(Some(c.into())).bold()
    }

    fn severity_style(s: Severity) -> Style {
        let c = match s {
            Severity::Critical => AnsiColor::Red,
            Severity::Error => AnsiColor::Magenta,
            Severity::Warning => AnsiColor::Yellow,
            Severity::Notice => AnsiColor::Cyan,
            Severity::Info => AnsiColor::BrightBlack,
        };
        Style::new().fg_color(Some(c.into())).bold()
    }

    fn verdict(&self, v: &str) -> String {
        self.paint(Self::verdict_style(v), &v.to_uppercase())
    }

    fn domain(&mut self, a: &DomainAudit) -> io::Result<()> {
        let head = format!(
            "{}: {}",
            self.paint(Style::new().bold(), &a.domain),
            self.verdict(a.verdict.as_str())
        );
        writeln!(self.out, "{head}")?;
        if let Some(r) = &a.reason {
            writeln!(self.out, "  {}", meaning(a.verdict, r))?;
        }
        writeln!(self.out, "  MX      {}", rrset(&a.mx))?;
        for h in &a.hosts {
            self.host(h)?;
        }
        self.findings(&a.findings)?;
        let counts: Vec<String> = severity_counts(a)
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        writeln!(
            self.out,
            "Summary: {} {}: {}; {} of {} MX host(s) use DANE; evaluated at {}\n",
            a.domain,
            a.verdict,
            if counts.is_empty() {
                "no findings".to_string()
            } else {
                counts.join(", ")
            },
            a.dane_hosts(),
            a.hosts.len(),
            a.evaluated_at
        )
    }

    fn host(&mut self, h: &HostAudit) -> io::Result<()> {
        let pref = h
            .preference
            .map(|p| format!("MX {p}"))
            .unwrap_or_else(|| "implicit MX".into());
        writeln!(
            self.out,
            "\n  {} ({pref}): {}{}",
            self.paint(Style::new().bold(), &h.name),
            self.verdict(h.verdict.as_str()),
            h.reason
                .as_ref()
                .filter(|_| h.verdict != HostVerdict::Pass)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )?;
        writeln!(self.out, "    A       {}", rrset(&h.a))?;
        writeln!(self.out, "    AAAA    {}", rrset(&h.aaaa))?;
        match &h.tlsa {
            Some(t) => writeln!(self.out, "    TLSA    {}", rrset(t))?,
            None => writeln!(
                self.out,
                "    TLSA    not looked up ({})",
                tlsa_not_looked_up(h)
            )?,
        }
        for r in &h.records {
            let state = record_state(r);
            writeln!(
                self.out,
                "      {}  [{state}]{}",
                short_record(&r.record),
                r.note.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
            )?;
        }
        for a in &h.addresses {
            self.address(a)?;
        }
        Ok(())
    }

    fn address(&mut self, a: &AddressAudit) -> io::Result<()> {
        writeln!(
            self.out,
            "    {}: {}  {}",
            a.address,
            self.verdict(a.verdict.as_str()),
            a.smtp
        )?;
        for c in &a.chain {
            writeln!(
                self.out,
                "      depth {}  {}{}",
                c.depth,
                c.subject,
                c.not_after
                    .map(|t| format!("  (notAfter {t})"))
                    .unwrap_or_default()
            )?;
            for m in &c.records {
                let tag = if m.matched {
                    self.paint(Self::verdict_style("pass"), "[matched]")
                } else if m.signed {
                    self.paint(
                        Self::verdict_style("pass"),
                        "[signed by the record's anchor]",
                    )
                } else {
                    "[nomatch]".to_string()
                };
                writeln!(self.out, "        {tag} {}", m.record)?;
            }
        }
        self.key_types(a)
    }

    /// What each server key type gets at the address (issue 14): one line
    /// per key type, then its certificates when they differ from those above.
    fn key_types(&mut self, a: &AddressAudit) -> io::Result<()> {
        for k in &a.key_types {
            let state = match k.authenticated {
                Some(true) => self.paint(Self::verdict_style("pass"), "[authenticated]"),
                Some(false) => self.paint(Self::verdict_style("fail"), "[not authenticated]"),
                None => String::new(),
            };
            let same = match k.same_chain_as.as_deref() {
                Some("address") => "; the chain above".to_string(),
                Some(other) => format!("; the same chain as {other}"),
                None => String::new(),
            };
            let line = format!(
                "      key type {} ({}): {}{same} {state}",
                k.key_type, k.via, k.detail
            );
            writeln!(self.out, "{}", line.trim_end())?;
            for c in &k.chain {
                writeln!(self.out, "        depth {}  {}", c.depth, c.subject)?;
                for m in &c.records {
                    let tag = match (m.matched, m.signed) {
                        (true, _) => "[matched]",
                        (false, true) => "[signed by the record's anchor]",
                        (false, false) => "[nomatch]",
                    };
                    writeln!(self.out, "          {tag} {}", m.record)?;
                }
            }
        }
        Ok(())
    }

    fn findings(&mut self, findings: &[Finding]) -> io::Result<()> {
        if findings.is_empty() {
            return writeln!(self.out, "\n  No findings.");
        }
        writeln!(self.out, "\n  Findings:")?;
        for f in findings {
            let sev = self.paint(
                Self::severity_style(f.severity),
                &format!("{:<8}", f.severity.as_str().to_uppercase()),
            );
            writeln!(self.out, "  {sev} {}  {}", f.code, f.subject)?;
            writeln!(self.out, "           {}", f.message)?;
            for (i, line) in f.fix.lines().enumerate() {
                let label = if i == 0 { "fix: " } else { "     " };
                writeln!(self.out, "           {label}{line}")?;
            }
            writeln!(self.out, "           see {}", f.rfc)?;
        }
        Ok(())
    }
}

/// Why a host's TLSA RRset was not looked up.
pub(super) fn tlsa_not_looked_up(h: &HostAudit) -> &'static str {
    let no_address = [&h.a, &h.aaaa]
        .iter()
        .all(|l| matches!(l.outcome, Outcome::NoData | Outcome::NxDomain));
    if no_address {
        "the host has no address"
    } else {
        "the host's addresses are not secure"
    }
}

/// A TLSA record's state at its host, in words.
pub(super) fn record_state(r: &RecordView) -> &'static str {
    match (r.usable, r.matched, r.tested) {
        (false, _, _) => "unusable",
        (true, true, _) => "matched",
        (true, false, true) => "not matched",
        (true, false, false) => "usable, not tested",
    }
}

/// What a verdict means for mail, in one line.
fn meaning(v: DomainVerdict, reason: &str) -> String {
    format!("{}: {reason}", lead(v))
}

/// What a verdict means for mail, in a few words.
pub(super) fn lead(v: DomainVerdict) -> &'static str {
    match v {
        DomainVerdict::Pass => "DANE senders can deliver securely",
        DomainVerdict::Partial => "only some MX hosts are protected",
        DomainVerdict::Fail => "DANE senders cannot deliver to some host",
        DomainVerdict::NotDane => "DANE does not apply",
        DomainVerdict::Incomplete => "could not be fully tested",
        DomainVerdict::NoMail => "no mail service",
    }
}

/// A lookup's outcome, in words.
pub(super) fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Answer => "answer",
        Outcome::NoData => "no records",
        Outcome::NxDomain => "name does not exist",
        Outcome::Failed => "lookup failed",
    }
}

fn rrset(v: &RrsetView) -> String {
    let outcome = outcome_word(v.outcome);
    let mut s = v.qname.clone();
    for hop in &v.via {
        s.push_str(&format!(" -> CNAME {hop}"));
    }
    s.push_str(&format!("  {outcome}, {}", v.dnssec.as_str()));
    if let Some(t) = v.ttl {
        s.push_str(&format!(", TTL {t}"));
    }
    if let Some(ad) = v.ad {
        s.push_str(&format!(", resolver AD={}", u8::from(ad)));
    }
    if let Some(n) = &v.note {
        s.push_str(&format!(" ({n})"));
    }
    s
}

fn short_record(r: &str) -> String {
    let mut parts = r.splitn(4, ' ');
    let (u, s, m, d) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if d.len() > 16 {
        format!("{u} {s} {m} {}…", &d[..16])
    } else {
        r.to_string()
    }
}

impl Sink for TextSink<'_> {
    fn begin(&mut self, _run: &RunInfo) -> io::Result<()> {
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        match row {
            Row::Audit { audit, .. } => self.domain(audit)?,
            Row::Error { input, error, line } => writeln!(
                self.out,
                "{}: {} {error}{}\n",
                input,
                self.verdict("error"),
                line.map(|l| format!(" (line {l})")).unwrap_or_default()
            )?,
        }
        self.out.flush()
    }

    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        if summary.domains > 1 {
            writeln!(self.out, "{}", summary.line())?;
        }
        self.out.flush()
    }
}
