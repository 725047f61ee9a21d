//! `dane-audit diff`: changed domains as text, NDJSON or CSV, then the summary.

use std::io::{self, Write};

use crate::diff::{Change, DiffSummary};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Text,
    Ndjson,
    Csv,
}

/// Streams changes as they are found; the summary closes the output (in
/// CSV, whose rows have one shape, it goes to standard error instead).
pub enum DiffWriter<'w> {
    Text(Box<dyn Write + 'w>),
    Ndjson(Box<dyn Write + 'w>),
    Csv(Box<csv::Writer<Box<dyn Write + 'w>>>),
}

impl<'w> DiffWriter<'w> {
    pub fn new(out: Box<dyn Write + 'w>, format: DiffFormat) -> io::Result<Self> {
        Ok(match format {
            DiffFormat::Text => DiffWriter::Text(out),
            DiffFormat::Ndjson => DiffWriter::Ndjson(out),
            DiffFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(["domain", "old_verdict", "new_verdict", "gained", "lost"])
                    .map_err(io::Error::other)?;
                DiffWriter::Csv(Box::new(w))
            }
        })
    }

    pub fn change(&mut self, c: &Change) -> io::Result<()> {
        match self {
            DiffWriter::Text(out) => {
                let mut line = format!("{}: {}", c.domain, c.old);
                if c.old != c.new {
                    line.push_str(&format!(" -> {}", c.new));
                }
                if !c.gained.is_empty() {
                    line.push_str(&format!("; gained {}", c.gained.join(", ")));
                }
                if !c.lost.is_empty() {
                    line.push_str(&format!("; lost {}", c.lost.join(", ")));
                }
                writeln!(out, "{line}")
            }
            DiffWriter::Ndjson(out) => {
                serde_json::to_writer(&mut *out, c)?;
                writeln!(out)
            }
            DiffWriter::Csv(w) => {
                let (g, l) = (c.gained.join(";"), c.lost.join(";"));
                w.write_record([&c.domain, &c.old, &c.new, &g, &l])
                    .map_err(io::Error::other)
            }
        }
    }

    pub fn end(&mut self, s: &DiffSummary) -> io::Result<()> {
        match self {
            DiffWriter::Ndjson(out) => {
                serde_json::to_writer(&mut *out, &serde_json::json!({ "summary": s }))?;
                writeln!(out)?;
                out.flush()
            }
            DiffWriter::Text(out) => {
                write_summary(&mut *out, s)?;
                out.flush()
            }
            DiffWriter::Csv(w) => {
                w.flush()?;
                write_summary(&mut io::stderr().lock(), s)
            }
        }
    }
}

/// `diff: 10000 domains before, 10002 after, 14 changed (3 findings only)`
/// then one line per verdict transition, most frequent first.
fn write_summary(out: &mut dyn Write, s: &DiffSummary) -> io::Result<()> {
    writeln!(
        out,
        "diff: {} domains before, {} after, {} changed ({} in findings only){}{}",
        s.old_domains,
        s.new_domains,
        s.changed,
        s.findings_changed,
        if s.duplicates > 0 {
            format!(", {} duplicate lines", s.duplicates)
        } else {
            String::new()
        },
        if s.unreadable > 0 {
            format!(", {} unreadable lines skipped", s.unreadable)
        } else {
            String::new()
        }
    )?;
    let mut t: Vec<(&String, &u64)> = s.transitions.iter().collect();
    t.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (k, n) in t {
        writeln!(out, "  {n:>10}  {k}")?;
    }
    Ok(())
}
