//! `dane-audit evaluate FILE`: the core on saved evidence, offline.

use std::io::Read;
use std::path::PathBuf;

use crate::core::evaluate;
use crate::core::evidence::parse_evidence;
use crate::report::{Format, Row, RunInfo, Summary};

use super::exit::{CliError, Exit};
use super::report_args::{EvalArgs, ReportArgs, now};

#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// Evidence JSON written by `check --save-evidence` (`-` for stdin).
    pub file: PathBuf,
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub eval: EvalArgs,
}

pub fn run(args: &EvaluateArgs) -> Result<Exit, CliError> {
    if args.report.format == Some(Format::Nagios) {
        return Err(CliError::usage(
            "--format nagios is for `check` (a monitoring plugin checks live)",
        ));
    }
    let opts = args.eval.options()?;
    let text = read_input(&args.file)?;
    let evidence = parse_evidence(&text)
        .map_err(|e| CliError::usage(format!("{}: {e}", args.file.display())))?;
    let first = evidence.first();
    let run = RunInfo {
        command: "evaluate".into(),
        started_at: now(),
        evaluated_at: opts.now,
        resolvers: first
            .map(|e| e.collector.resolvers.clone())
            .unwrap_or_default(),
        trust_anchor: first
            .map(|e| e.collector.trust_anchor.clone())
            .unwrap_or_default(),
        families: Vec::new(),
        fail_on: Some(args.report.fail_on_name()),
    };
    let mut sink = args.report.open_sink(Format::Text, &run, false)?;
    let mut summary = Summary::default();
    let mut audits = Vec::new();
    for ev in &evidence {
        let audit = evaluate(ev, &opts);
        let row = Row::Audit {
            audit: &audit,
            line: None,
        };
        summary.add(&row);
        sink.row(&row)?;
        audits.push(audit);
    }
    sink.end(&summary)?;
    Ok(args.report.policy(true).judge(&audits))
}

fn read_input(path: &PathBuf) -> Result<String, CliError> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
    } else {
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        // Evidence of one domain is kilobytes; refuse absurd inputs early.
        if meta.len() > 512 * 1024 * 1024 {
            return Err(CliError::usage(format!(
                "{} is larger than 512 MiB: not an evidence file",
                path.display()
            )));
        }
        text = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    }
    Ok(text)
}
