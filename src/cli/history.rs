//! `dane-audit history DOMAIN --db FILE`: what changed, from the watch's
//! database (read-only: it may run beside the watch).

use std::io::Write;
use std::path::PathBuf;

use crate::core::evidence::Timestamp;
use crate::duration::parse_duration;
use crate::report::history::{History, write_json, write_text};
use crate::watch::db::Store;

use super::exit::{CliError, Exit};
use super::report_args::now;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// The watched domain (omit with --list).
    #[arg(value_name = "DOMAIN", required_unless_present_any = ["list", "evidence", "report"])]
    pub domain: Option<String>,
    /// The watch's database.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Only changes from this time on: RFC 3339, Unix seconds, or an age (`7d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
    /// Every audit, not only those that changed something.
    #[arg(long)]
    pub audits: bool,
    /// Print the evidence stored with audit ID (JSON, for `dane-audit evaluate -`).
    #[arg(long, value_name = "ID", conflicts_with = "report")]
    pub evidence: Option<i64>,
    /// Print the report stored with audit ID (as `check --format ndjson` prints it).
    #[arg(long, value_name = "ID")]
    pub report: Option<i64>,
    /// List the domains the database holds.
    #[arg(long, conflicts_with_all = ["evidence", "report"])]
    pub list: bool,
}

/// `--since`: a time, or an age counted back from now.
pub fn since(text: &str) -> Result<Timestamp, CliError> {
    if let Some(t) = Timestamp::parse(text) {
        return Ok(t);
    }
    let age = parse_duration(text).map_err(|_| {
        CliError::usage(format!(
            "--since {text:?}: use RFC 3339 (2026-05-01T00:00:00Z), Unix seconds, or an age such as 7d"
        ))
    })?;
    Ok(Timestamp(now().0 - age as i64))
}

pub fn run(args: &HistoryArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    let store = Store::open_read(&args.db)?;
    if args.list {
        for d in store.domains()? {
            writeln!(out, "{d}")?;
        }
        return Ok(Exit::Ok);
    }
    if let Some((id, evidence)) = args
        .evidence
        .map(|i| (i, true))
        .or(args.report.map(|i| (i, false)))
    {
        let doc = store
            .document(id, evidence)?
            .ok_or_else(|| CliError::usage(format!("{}: no audit {id}", args.db.display())))?;
        writeln!(out, "{doc}")?;
        return Ok(Exit::Ok);
    }
    let raw = args.domain.as_deref().unwrap_or_default();
    let domain = crate::domain::normalize_domain(raw).map_err(CliError::usage)?;
    let from = args.since.as_deref().map(since).transpose()?;
    let Some((audits, events)) = store.history(&domain, from.unwrap_or(Timestamp(i64::MIN)))?
    else {
        return Err(CliError::usage(format!(
            "{}: {domain} was never audited here (`history --list --db {}` lists the domains)",
            args.db.display(),
            args.db.display()
        )));
    };
    let h = History {
        domain: &domain,
        since: from,
        audits: &audits,
        events: &events,
        every_audit: args.audits,
    };
    match args.format {
        HistoryFormat::Text => write_text(out, &h)?,
        HistoryFormat::Json => write_json(out, &h)?,
    }
    out.flush()?;
    Ok(Exit::Ok)
}
