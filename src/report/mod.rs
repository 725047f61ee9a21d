//! Renderers: one streaming sink per output format.
//!
//! Every sink writes a domain as soon as it is evaluated and flushes, so a
//! bulk run can be followed (and resumed) while it goes, and an interrupted
//! run leaves well-formed lines behind. The JSON document is streamed too:
//! header, then one array element per domain, then the trailer.

mod csv;
pub mod diff;
pub mod history;
pub mod html;
mod json;
pub mod nagios;
pub mod rollover;
mod text;

use std::io::{self, Write};

use serde::Serialize;

use crate::core::audit::DomainAudit;
use crate::core::evidence::{CollectorInfo, Timestamp};
use crate::core::finding::{Code, Severity};
use crate::core::verdict::DomainVerdict;

pub use self::csv::CsvSink;
pub use self::json::{JsonSink, NdjsonSink, json_document};
pub use self::nagios::{NagiosPolicy, NagiosSink};
pub use self::text::TextSink;

/// Version of the machine output formats; bumped on incompatible changes.
pub const OUTPUT_SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Ndjson,
    Csv,
    /// `check` only: one monitoring-plugin status line; exit 0-3 as plugins do.
    Nagios,
}

/// Run metadata carried by every machine format.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub command: String,
    pub started_at: Timestamp,
    pub evaluated_at: Timestamp,
    pub resolvers: Vec<String>,
    pub trust_anchor: String,
    pub families: Vec<&'static str>,
    /// The gate's threshold (`preflight` has none: its exit is its readiness).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_on: Option<String>,
}

impl RunInfo {
    /// The run block of a command whose evidence came from a collector
    /// described by `info` (`check`, and the API that must match it).
    pub fn collected(
        command: &str,
        info: &CollectorInfo,
        families: Vec<&'static str>,
        started_at: Timestamp,
        evaluated_at: Timestamp,
        fail_on: Option<String>,
    ) -> RunInfo {
        RunInfo {
            command: command.into(),
            started_at,
            evaluated_at,
            resolvers: info.resolvers.clone(),
            trust_anchor: info.trust_anchor.clone(),
            families,
            fail_on,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

pub const TOOL: ToolInfo = ToolInfo {
    name: env!("CARGO_PKG_NAME"),
    version: env!("CARGO_PKG_VERSION"),
};

/// One row of output: an audited domain, or an input line that could not be
/// audited (bulk scans never drop a line).
pub enum Row<'a> {
    Audit {
        audit: &'a DomainAudit,
        line: Option<u64>,
    },
    Error {
        input: &'a str,
        error: &'a str,
        line: Option<u64>,
    },
}

/// Counts for the final summary line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub domains: u64,
    pub errors: u64,
    pub verdicts: std::collections::BTreeMap<String, u64>,
    pub codes: std::collections::BTreeMap<String, u64>,
    pub severities: std::collections::BTreeMap<String, u64>,
}

impl Summary {
    pub fn add(&mut self, row: &Row<'_>) {
        self.domains += 1;
        match row {
            Row::Audit { audit, .. } => {
                *self
                    .verdicts
                    .entry(audit.verdict.as_str().into())
                    .or_default() += 1;
                for f in &audit.findings {
                    *self.codes.entry(f.code.as_str().into()).or_default() += 1;
                    *self
                        .severities
                        .entry(f.severity.as_str().into())
                        .or_default() += 1;
                }
            }
            Row::Error { .. } => self.errors += 1,
        }
    }

    /// `12 domains: 7 pass, 2 fail, ...; most frequent: tlsa-no-backup (5), ...`
    pub fn line(&self) -> String {
        let mut parts: Vec<String> = DomainVerdict::ALL
            .iter()
            .filter_map(|v| {
                self.verdicts
                    .get(v.as_str())
                    .map(|n| format!("{n} {}", v.as_str()))
            })
            .collect();
        if self.errors > 0 {
            parts.push(format!("{} invalid", self.errors));
        }
        let mut codes: Vec<(&String, &u64)> = self.codes.iter().collect();
        codes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = codes
            .iter()
            .take(5)
            .map(|(c, n)| format!("{c} ({n})"))
            .collect();
        let mut s = format!(
            "{} domain{}: {}",
            self.domains,
            if self.domains == 1 { "" } else { "s" },
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        );
        if !top.is_empty() {
            s.push_str(&format!("; most frequent findings: {}", top.join(", ")));
        }
        s
    }
}

/// A streaming renderer.
pub trait Sink {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()>;
    fn row(&mut self, row: &Row<'_>) -> io::Result<()>;
    fn end(&mut self, summary: &Summary) -> io::Result<()>;
}

/// Builds the sink for a format.
pub fn sink<'w>(format: Format, out: Box<dyn Write + 'w>, color: bool) -> Box<dyn Sink + 'w> {
    match format {
        Format::Text => Box::new(TextSink::new(out, color)),
        Format::Json => Box::new(JsonSink::new(out)),
        Format::Ndjson => Box::new(NdjsonSink::new(out)),
        Format::Csv => Box::new(CsvSink::new(out)),
        Format::Nagios => Box::new(NagiosSink::new(out, NagiosPolicy::default())),
    }
}

/// Codes of an audit, sorted, unique.
pub fn codes(audit: &DomainAudit) -> Vec<Code> {
    let mut c: Vec<Code> = audit.findings.iter().map(|f| f.code).collect();
    c.sort();
    c.dedup();
    c
}

/// Count of findings per severity, most severe first, non-zero only.
pub fn severity_counts(audit: &DomainAudit) -> Vec<(Severity, usize)> {
    Severity::ALL
        .iter()
        .map(|s| {
            (
                *s,
                audit.findings.iter().filter(|f| f.severity == *s).count(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}
