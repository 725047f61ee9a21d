//! `dane-audit explain CODE`: the long form of a finding.

use std::io::Write;

use crate::core::catalogue::entry;
use crate::core::finding::Code;

use super::exit::{CliError, Exit};

pub fn run(code: Option<&str>, list: bool, out: &mut dyn Write) -> Result<Exit, CliError> {
    if list || code.is_none() {
        for c in Code::ALL {
            let e = entry(*c);
            writeln!(
                out,
                "{:<28} {:<8} {}",
                c.as_str(),
                e.severity.as_str(),
                e.title
            )?;
        }
        return Ok(Exit::Ok);
    }
    let code: Code = code.unwrap_or_default().parse().map_err(CliError::usage)?;
    let e = entry(code);
    let severity = match e.secondary {
        Some(s) => format!("{} (or {s}, see below)", e.severity),
        None => e.severity.to_string(),
    };
    writeln!(out, "{code}: {}", e.title)?;
    writeln!(out, "severity: {severity}")?;
    writeln!(out, "reference: {}", e.rfc)?;
    if let Some(t) = e.tlsrpt {
        writeln!(out, "TLS-RPT result type: {t}")?;
    }
    if e.undetermined {
        writeln!(
            out,
            "kind: could not determine (makes the verdict incomplete, exit 3, not a failure)"
        )?;
    }
    writeln!(out, "\n{}\n", textwrap(e.explain, 78))?;
    writeln!(out, "Fix: {}", e.fix)?;
    if e.secondary.is_some() {
        writeln!(out, "\n{}", textwrap(secondary_rule(code), 78))?;
    }
    Ok(Exit::Ok)
}

pub fn secondary_rule(code: Code) -> &'static str {
    match code {
        Code::TlsaAbsent => {
            "The severity is info, and warning when other MX hosts of the domain have TLSA records."
        }
        Code::DaneTaNotInChain
        | Code::DaneTaChainInvalid
        | Code::DaneTaExpired
        | Code::DaneTaNameMismatch => {
            "The severity is critical when no other record authenticates the address, and error when another record still does (mail flows, but the backup record is broken)."
        }
        Code::Nsec3Parameters => {
            "The severity is notice, and warning above 150 iterations, where validators may treat the zone's answers as insecure (RFC 9276 §3.2)."
        }
        Code::NsDropsDnskey => {
            "The severity is warning, and error when no server of the zone answers DNSKEY queries (then nothing in the zone validates)."
        }
        _ => {
            "The severity is critical when the host has a secure TLSA RRset (DANE senders require TLS), and notice otherwise."
        }
    }
}

/// Wraps text at `width` columns on word boundaries.
fn textwrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}
