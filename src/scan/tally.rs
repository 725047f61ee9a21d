//! Counts for the progress line, the final summary and the exit code, kept
//! as a few counters (never per domain), and fed both by audits of this run
//! and by the records an earlier run left in OUT (`--resume`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::core::audit::DomainAudit;
use crate::core::finding::Severity;
use crate::core::verdict::DomainVerdict;
use crate::report::Summary;

use super::resume::RecordView;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Records written (audits and error rows).
    pub records: u64,
    /// Error rows (invalid lines, skipped domains, internal errors).
    pub errors: u64,
    pub verdicts: BTreeMap<String, u64>,
    pub codes: BTreeMap<String, u64>,
    pub severities: BTreeMap<String, u64>,
    /// The worst severity among findings that state a problem (not "could
    /// not determine"): with `--fail-on` it decides exit 1.
    pub worst_determined: Option<Severity>,
    /// Some domain is `not-dane` or `partial` (exit 1 with `--require-dane`).
    pub any_not_dane_or_partial: bool,
    /// Some domain is `incomplete`.
    pub any_incomplete: bool,
}

impl Tally {
    pub fn add_audit(&mut self, a: &DomainAudit) {
        let view = RecordView {
            verdict: a.verdict.as_str(),
            findings: a
                .findings
                .iter()
                .map(|f| (f.code.as_str(), Some(f.severity), f.undetermined()))
                .collect(),
        };
        self.add_previous(&view);
    }

    pub fn add_error(&mut self) {
        self.records += 1;
        self.errors += 1;
    }

    /// A record, from this run or read back from OUT.
    pub fn add_previous(&mut self, r: &RecordView<'_>) {
        if r.verdict == "error" {
            self.add_error();
            return;
        }
        self.records += 1;
        *self.verdicts.entry(r.verdict.to_string()).or_default() += 1;
        for (code, sev, undetermined) in &r.findings {
            *self.codes.entry(code.to_string()).or_default() += 1;
            if let Some(s) = sev {
                *self.severities.entry(s.as_str().into()).or_default() += 1;
                if !undetermined {
                    self.worst_determined = self.worst_determined.max(Some(*s));
                }
            }
        }
        self.any_not_dane_or_partial |= r.verdict == DomainVerdict::NotDane.as_str()
            || r.verdict == DomainVerdict::Partial.as_str();
        self.any_incomplete |= r.verdict == DomainVerdict::Incomplete.as_str();
    }

    pub fn merge(&mut self, o: &Tally) {
        self.records += o.records;
        self.errors += o.errors;
        for (k, v) in &o.verdicts {
            *self.verdicts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.codes {
            *self.codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.severities {
            *self.severities.entry(k.clone()).or_default() += v;
        }
        self.worst_determined = self.worst_determined.max(o.worst_determined);
        self.any_not_dane_or_partial |= o.any_not_dane_or_partial;
        self.any_incomplete |= o.any_incomplete;
    }

    /// The most frequent finding codes, most first (ties by name).
    pub fn top_codes(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.codes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// `pass 12, fail 3, ...` in the verdict order of the reports.
    pub fn verdict_counts(&self) -> String {
        let mut parts: Vec<String> = DomainVerdict::ALL
            .iter()
            .filter_map(|v| {
                self.verdicts
                    .get(v.as_str())
                    .map(|n| format!("{} {n}", v.as_str()))
            })
            .collect();
        if self.errors > 0 {
            parts.push(format!("error {}", self.errors));
        }
        if parts.is_empty() {
            "none yet".into()
        } else {
            parts.join(", ")
        }
    }

    /// The renderers' summary (the JSON document's trailer).
    pub fn report_summary(&self) -> Summary {
        Summary {
            domains: self.records,
            errors: self.errors,
            verdicts: self.verdicts.clone(),
            codes: self.codes.clone(),
            severities: self.severities.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_for_the_exit_code() {
        let mut t = Tally::default();
        t.add_previous(&RecordView {
            verdict: "incomplete",
            findings: vec![("smtp-unreachable", Some(Severity::Error), true)],
        });
        assert_eq!(t.worst_determined, None);
        assert!(t.any_incomplete);
        t.add_previous(&RecordView {
            verdict: "fail",
            findings: vec![("tlsa-no-match", Some(Severity::Critical), false)],
        });
        t.add_error();
        assert_eq!(t.worst_determined, Some(Severity::Critical));
        assert_eq!((t.records, t.errors), (3, 1));
        assert_eq!(t.verdict_counts(), "fail 1, incomplete 1, error 1");
        let mut u = Tally::default();
        u.add_previous(&RecordView {
            verdict: "not-dane",
            findings: vec![("tlsa-no-match", Some(Severity::Warning), false)],
        });
        u.merge(&t);
        assert!(u.any_not_dane_or_partial && u.any_incomplete);
        assert_eq!(u.top_codes(1), vec![("tlsa-no-match".to_string(), 2)]);
        assert_eq!(u.report_summary().domains, 4);
    }
}
