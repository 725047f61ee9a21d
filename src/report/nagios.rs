//! `check --format nagios`: one status line with performance data, then one
//! line per domain, as the monitoring-plugins guidelines describe (Nagios,
//! Icinga, Checkmk, Zabbix): `DANE WARNING - summary | 'label'=value;;;;`.
//! The state is also the exit code (0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN): see [`crate::cli::exit::PluginState`].

use std::io::{self, Write};

use crate::cli::exit::PluginState;
use crate::core::audit::DomainAudit;
use crate::core::finding::Severity;
use crate::core::verdict::DomainVerdict;

use super::{Row, RunInfo, Sink, Summary, codes};

/// What makes a domain CRITICAL besides a failing verdict.
#[derive(Clone, Copy, Debug)]
pub struct NagiosPolicy {
    /// `--fail-on`: a finding that states a problem at or above it.
    pub critical_at: Option<Severity>,
    /// `--require-dane`: `not-dane` and `partial` are critical.
    pub require_dane: bool,
}

impl Default for NagiosPolicy {
    fn default() -> Self {
        NagiosPolicy {
            critical_at: Some(Severity::Error),
            require_dane: false,
        }
    }
}

/// A domain's state: CRITICAL when DANE senders fail (or the policy says
/// so), UNKNOWN when it could not be tested, WARNING for a warning finding
/// or partial coverage, OK otherwise. "Could not determine" findings only
/// make it UNKNOWN, never CRITICAL.
pub fn domain_state(a: &DomainAudit, p: &NagiosPolicy) -> PluginState {
    let worst = a
        .findings
        .iter()
        .filter(|f| !f.undetermined())
        .map(|f| f.severity)
        .max();
    let dane_missing = matches!(a.verdict, DomainVerdict::NotDane | DomainVerdict::Partial);
    if a.verdict == DomainVerdict::Fail
        || p.critical_at.is_some_and(|c| worst.is_some_and(|w| w >= c))
        || (p.require_dane && dane_missing)
    {
        PluginState::Critical
    } else if a.verdict == DomainVerdict::Incomplete {
        PluginState::Unknown
    } else if worst.is_some_and(|w| w >= Severity::Warning) || a.verdict == DomainVerdict::Partial {
        PluginState::Warning
    } else {
        PluginState::Ok
    }
}

/// The state of several domains: CRITICAL over WARNING over UNKNOWN over
/// OK (the monitoring-plugins library's `max_state_alt`).
pub fn overall(states: impl IntoIterator<Item = PluginState>) -> PluginState {
    states.into_iter().max().unwrap_or(PluginState::Unknown)
}

struct Line {
    domain: String,
    state: PluginState,
    text: String,
    perf: Vec<(String, String)>,
}

/// Buffers the (few) domains of a `check` and prints at the end.
pub struct NagiosSink<'w> {
    out: Box<dyn Write + 'w>,
    policy: NagiosPolicy,
    lines: Vec<Line>,
}

impl<'w> NagiosSink<'w> {
    pub fn new(out: Box<dyn Write + 'w>, policy: NagiosPolicy) -> Self {
        NagiosSink {
            out,
            policy,
            lines: Vec::new(),
        }
    }
}

/// A perfdata label, quoted when it must be (single quotes doubled).
fn label(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Days until the first leaf served by any MX address expires.
fn cert_days(a: &DomainAudit) -> Option<f64> {
    a.hosts
        .iter()
        .flat_map(|h| &h.addresses)
        .filter_map(|ad| ad.chain.first()?.not_after)
        .min()
        .map(|t| ((t.0 - a.evaluated_at.0) as f64 / 86_400.0 * 10.0).round() / 10.0)
}

fn line_of(a: &DomainAudit, state: PluginState) -> Line {
    let codes: Vec<&str> = codes(a).iter().map(|c| c.as_str()).collect();
    let mut text = format!("{}: {}", a.domain, a.verdict);
    if let Some(r) = &a.reason {
        text.push_str(&format!(" ({r})"));
    }
    if !codes.is_empty() {
        text.push_str(&format!("; {}", codes.join(", ")));
    }
    let count = |s: Severity| a.findings.iter().filter(|f| f.severity == s).count();
    let mut perf = vec![
        ("mx_hosts".to_string(), a.hosts.len().to_string()),
        ("dane_hosts".to_string(), a.dane_hosts().to_string()),
        (
            "critical".to_string(),
            count(Severity::Critical).to_string(),
        ),
        ("error".to_string(), count(Severity::Error).to_string()),
        ("warning".to_string(), count(Severity::Warning).to_string()),
    ];
    if let Some(d) = cert_days(a) {
        perf.push(("cert_days".to_string(), d.to_string()));
    }
    Line {
        domain: a.domain.clone(),
        state,
        text,
        perf,
    }
}

impl Sink for NagiosSink<'_> {
    fn begin(&mut self, _run: &RunInfo) -> io::Result<()> {
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        let line = match row {
            Row::Audit { audit, .. } => line_of(audit, domain_state(audit, &self.policy)),
            Row::Error { input, error, .. } => Line {
                domain: input.to_string(),
                state: PluginState::Unknown,
                text: format!("{input}: {error}"),
                perf: Vec::new(),
            },
        };
        self.lines.push(line);
        Ok(())
    }

    fn end(&mut self, _summary: &Summary) -> io::Result<()> {
        let state = overall(self.lines.iter().map(|l| l.state));
        let mut worst: Vec<&Line> = self.lines.iter().filter(|l| l.state == state).collect();
        worst.truncate(3);
        let summary = match (state, self.lines.len()) {
            (_, 0) => "no domain checked".to_string(),
            (PluginState::Ok, n) => format!(
                "{n} domain{} OK: {}",
                if n == 1 { "" } else { "s" },
                self.lines
                    .iter()
                    .map(|l| l.text.as_str())
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            (s, n) => format!(
                "{} of {n} {}: {}",
                self.lines.iter().filter(|l| l.state == s).count(),
                s.as_str().to_lowercase(),
                worst
                    .iter()
                    .map(|l| l.text.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let multi = self.lines.len() > 1;
        let perf: Vec<String> = self
            .lines
            .iter()
            .flat_map(|l| {
                l.perf.iter().map(move |(k, v)| {
                    let name = if multi {
                        format!("{} {k}", l.domain)
                    } else {
                        k.clone()
                    };
                    format!("{}={v};;;;", label(&name))
                })
            })
            .collect();
        // The status line carries no '|' but the separator.
        let summary = summary.replace('|', "/");
        writeln!(
            self.out,
            "DANE {} - {summary} | {}",
            state.as_str(),
            perf.join(" ")
        )?;
        for l in &self.lines {
            writeln!(
                self.out,
                "[{}] {}",
                l.state.as_str(),
                l.text.replace('|', "/")
            )?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_quoted_when_needed() {
        assert_eq!(label("mx_hosts"), "mx_hosts");
        assert_eq!(label("a.example cert_days"), "'a.example cert_days'");
        assert_eq!(label("o'brien"), "'o''brien'");
    }

    #[test]
    fn overall_state_ranks_critical_warning_unknown_ok() {
        use PluginState::*;
        assert_eq!(overall([Ok, Unknown]), Unknown);
        assert_eq!(overall([Unknown, Warning]), Warning);
        assert_eq!(overall([Warning, Critical, Ok]), Critical);
        assert_eq!(overall([]), Unknown);
        assert_eq!(Critical.exit() as u8, 2);
        assert_eq!(Unknown.exit() as u8, 3);
    }
}
