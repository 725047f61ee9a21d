//! JSON (one streamed document) and NDJSON (one object per domain per line).

use std::io::{self, Write};

use serde::Serialize;

use super::{OUTPUT_SCHEMA_VERSION, Row, RunInfo, Sink, Summary, TOOL, ToolInfo};
use crate::core::audit::DomainAudit;

/// The per-domain object of both formats.
#[derive(Serialize)]
struct DomainObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a ToolInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(flatten)]
    audit: &'a DomainAudit,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a ToolInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    domain: &'a str,
    verdict: &'static str,
    error: &'a str,
}

fn to_value(row: &Row<'_>, standalone: bool) -> serde_json::Result<String> {
    let schema_version = standalone.then_some(OUTPUT_SCHEMA_VERSION);
    let tool = standalone.then_some(&TOOL);
    match row {
        Row::Audit { audit, line } => serde_json::to_string(&DomainObject {
            schema_version,
            tool,
            line: *line,
            audit,
        }),
        Row::Error { input, error, line } => serde_json::to_string(&ErrorObject {
            schema_version,
            tool,
            line: *line,
            domain: input,
            verdict: "error",
            error,
        }),
    }
}

pub struct JsonSink<'w> {
    out: Box<dyn Write + 'w>,
    first: bool,
}

impl<'w> JsonSink<'w> {
    pub fn new(out: Box<dyn Write + 'w>) -> Self {
        JsonSink { out, first: true }
    }
}

impl Sink for JsonSink<'_> {
    fn begin(&mut self, run: &RunInfo) -> io::Result<()> {
        write!(
            self.out,
            "{{\"schema_version\":{OUTPUT_SCHEMA_VERSION},\"tool\":{},\"run\":{},\"domains\":[",
            serde_json::to_string(&TOOL)?,
            serde_json::to_string(run)?
        )?;
        self.out.flush()
    }

    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        let sep = if self.first { "\n" } else { ",\n" };
        self.first = false;
        write!(self.out, "{sep}{}", to_value(row, false)?)?;
        self.out.flush()
    }

    fn end(&mut self, summary: &Summary) -> io::Result<()> {
        writeln!(
            self.out,
            "\n],\"summary\":{}}}",
            serde_json::to_string(summary)?
        )?;
        self.out.flush()
    }
}

pub struct NdjsonSink<'w> {
    out: Box<dyn Write + 'w>,
}

impl<'w> NdjsonSink<'w> {
    pub fn new(out: Box<dyn Write + 'w>) -> Self {
        NdjsonSink { out }
    }
}

impl Sink for NdjsonSink<'_> {
    fn begin(&mut self, _run: &RunInfo) -> io::Result<()> {
        Ok(())
    }

    fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        writeln!(self.out, "{}", to_value(row, true)?)?;
        self.out.flush()
    }

    fn end(&mut self, _summary: &Summary) -> io::Result<()> {
        self.out.flush()
    }
}

/// One audit as the whole document `check --format json` prints for it
/// (the same sink, so the two cannot drift apart).
pub fn json_document(run: &RunInfo, audit: &DomainAudit) -> io::Result<String> {
    let mut buf: Vec<u8> = Vec::new();
    {
        let mut sink = JsonSink::new(Box::new(&mut buf));
        let row = Row::Audit { audit, line: None };
        let mut summary = Summary::default();
        summary.add(&row);
        sink.begin(run)?;
        sink.row(&row)?;
        sink.end(&summary)?;
    }
    String::from_utf8(buf).map_err(io::Error::other)
}
