//! CSV: one flat row per domain with stable columns (the csv crate quotes).

use std::io::{self, Write};

use super::{OUTPUT_SCHEMA_VERSION, Row, RunInfo, Sink, Summary, TOOL, codes};

/// The columns, in order. Appending is allowed; reordering is not.
pub const COLUMNS: [&str; 11] = [
    "domain",
    "verdict",
    "worst_severity",
    "mx_hosts",
    "dane_hosts",
    "codes",
    "reason",
    "line",
    "evaluated_at",
    "tool_version",
    "schema_version",
];

pub struct CsvSink<'w> {
    out: ::csv::Writer<Box<dyn Write + 'w>>,
}

impl<'w> CsvSink<'w> {
    pub fn new(out: Box<dyn Write + 'w>) -> Self {
        CsvSink {
            out: ::csv::WriterBuilder::new().from_writer(out),
        }
    }
}

fn io_err(e: ::csv::Error) -> io::Error {
    io::Error::other(e)
}

impl Sink for CsvSink<'_> {
    fn begin(&mut self, _run: &RunInfo) -> io::Result<()> {
        self.out.write_record(COLUMNS).map_err(io_err)?;
        self.out.flush()
    }

    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        let schema = OUTPUT_SCHEMA_VERSION.to_string();
        let record: Vec<String> = match row {
            Row::Audit { audit, line } => vec![
                audit.domain.clone(),
                audit.verdict.as_str().into(),
                audit
                    .worst_severity
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                audit.hosts.len().to_string(),
                audit.dane_hosts().to_string(),
                codes(audit)
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(";"),
                audit.reason.clone().unwrap_or_default(),
                line.map(|l| l.to_string()).unwrap_or_default(),
                audit.evaluated_at.to_string(),
                TOOL.version.into(),
                schema.clone(),
            ],
            Row::Error { input, error, line } => vec![
                input.to_string(),
                "error".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                error.to_string(),
                line.map(|l| l.to_string()).unwrap_or_default(),
                String::new(),
                TOOL.version.into(),
                schema,
            ],
        };
        self.out.write_record(&record).map_err(io_err)?;
        self.out.flush()
    }

    fn end(&mut self, _summary: &Summary) -> io::Result<()> {
        self.out.flush()
    }
}
