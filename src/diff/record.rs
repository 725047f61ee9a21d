//! One line of a scan output, reduced to what a diff compares.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A domain's verdict and findings in one scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub domain: String,
    pub verdict: String,
    /// Finding keys, sorted and unique: `code subject` from NDJSON, `code`
    /// from CSV (which has no subjects).
    pub findings: Vec<String>,
    /// Whether the keys carry subjects (NDJSON).
    pub detailed: bool,
}

impl Record {
    /// Bytes this record holds in memory, roughly (for the sort's budget).
    pub fn weight(&self) -> usize {
        96 + self.domain.len()
            + self.verdict.len()
            + self.findings.iter().map(|f| f.len() + 24).sum::<usize>()
    }

    /// The finding keys compared with `other`: codes only when either side
    /// has no subjects.
    pub fn keys_against(&self, other: &Record) -> Vec<String> {
        if self.detailed && other.detailed {
            return self.findings.clone();
        }
        let mut k: Vec<String> = self
            .findings
            .iter()
            .map(|f| f.split(' ').next().unwrap_or(f).to_string())
            .collect();
        k.sort();
        k.dedup();
        k
    }
}

/// The format of one input, told from its first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    Ndjson,
    /// CSV, with the column positions from its header.
    Csv {
        domain: usize,
        verdict: usize,
        codes: usize,
    },
}

/// Why an input cannot be read as a scan output.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "not a scan output: the first line is neither a JSON object nor a CSV header with domain, verdict and codes"
    )]
    Format,
}

impl InputFormat {
    /// From the first non-empty line.
    pub fn detect(first: &str) -> Result<InputFormat, RecordError> {
        let t = first.trim_start_matches('\u{feff}').trim();
        if t.starts_with('{') {
            return Ok(InputFormat::Ndjson);
        }
        let cols: Vec<&str> = t.split(',').map(str::trim).collect();
        let at = |name: &str| cols.iter().position(|c| *c == name);
        match (at("domain"), at("verdict"), at("codes")) {
            (Some(domain), Some(verdict), Some(codes)) => Ok(InputFormat::Csv {
                domain,
                verdict,
                codes,
            }),
            _ => Err(RecordError::Format),
        }
    }

    /// One line; `None` for a blank line, a repeated CSV header (shards
    /// concatenated) or a line that does not parse (a record cut off by a
    /// kill), which the caller counts.
    pub fn parse(&self, line: &str) -> Option<Record> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return None;
        }
        match *self {
            InputFormat::Ndjson => parse_json(line),
            InputFormat::Csv {
                domain,
                verdict,
                codes,
            } => parse_csv(line, domain, verdict, codes),
        }
    }
}

#[derive(Deserialize)]
struct JsonFinding<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow, default)]
    subject: Cow<'a, str>,
}

#[derive(Deserialize)]
struct JsonRecord<'a> {
    #[serde(borrow)]
    domain: Cow<'a, str>,
    #[serde(borrow)]
    verdict: Cow<'a, str>,
    #[serde(borrow, default)]
    findings: Vec<JsonFinding<'a>>,
}

fn parse_json(line: &str) -> Option<Record> {
    let r: JsonRecord<'_> = serde_json::from_str(line).ok()?;
    let mut findings: Vec<String> = r
        .findings
        .iter()
        .map(|f| format!("{} {}", f.code, f.subject))
        .collect();
    findings.sort();
    findings.dedup();
    Some(Record {
        domain: r.domain.into_owned(),
        verdict: r.verdict.into_owned(),
        findings,
        detailed: true,
    })
}

fn parse_csv(line: &str, domain: usize, verdict: usize, codes: usize) -> Option<Record> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let row = rd.records().next()?.ok()?;
    csv_record(&row, domain, verdict, codes)
}

/// One CSV row (as the streaming reader gives it); `None` for a repeated header.
pub fn csv_record(
    row: &csv::StringRecord,
    domain: usize,
    verdict: usize,
    codes: usize,
) -> Option<Record> {
    let d = row.get(domain)?;
    let v = row.get(verdict)?;
    if d == "domain" && v == "verdict" {
        return None;
    }
    let mut findings: Vec<String> = row
        .get(codes)?
        .split(';')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    findings.sort();
    findings.dedup();
    Some(Record {
        domain: d.to_string(),
        verdict: v.to_string(),
        findings,
        detailed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ndjson_and_csv_rows() {
        let nd = InputFormat::detect(r#"{"domain":"a"}"#).unwrap();
        let r = nd
            .parse(r#"{"schema_version":1,"line":3,"domain":"a.example","verdict":"fail","hosts":[{"x":1}],"findings":[{"code":"tlsa-no-match","subject":"mx[192.0.2.1]","message":"m"},{"code":"tlsa-no-backup","subject":"mx"}]}"#)
            .unwrap();
        assert_eq!(
            r.findings,
            ["tlsa-no-backup mx", "tlsa-no-match mx[192.0.2.1]"]
        );
        let e = nd
            .parse(r#"{"line":7,"domain":"http://x","verdict":"error","error":"not a domain"}"#)
            .unwrap();
        assert_eq!((e.verdict.as_str(), e.findings.len()), ("error", 0));
        assert!(nd.parse(r#"{"domain":"cut-off","verd"#).is_none());
        let header = "domain,verdict,worst_severity,mx_hosts,dane_hosts,codes,reason,line";
        let csv = InputFormat::detect(header).unwrap();
        let r = csv
            .parse(r#"b.example,partial,warning,2,1,partial-coverage;tlsa-absent,"a, quoted reason",4"#)
            .unwrap();
        assert_eq!(r.findings, ["partial-coverage", "tlsa-absent"]);
        assert!(
            csv.parse(header).is_none(),
            "repeated header of a concatenated shard"
        );
        assert!(InputFormat::detect("hello,world").is_err());
    }

    #[test]
    fn mixed_formats_compare_codes() {
        let nd = Record {
            domain: "a".into(),
            verdict: "pass".into(),
            findings: vec!["tlsa-stale mx a".into(), "tlsa-stale mx b".into()],
            detailed: true,
        };
        let csv = Record {
            detailed: false,
            findings: vec!["tlsa-stale".into()],
            ..nd.clone()
        };
        assert_eq!(nd.keys_against(&csv), ["tlsa-stale"]);
        assert_eq!(nd.keys_against(&nd).len(), 2);
    }
}
