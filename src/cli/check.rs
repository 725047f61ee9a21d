//! `dane-audit check DOMAIN...`: the full audit, a report a person can act on.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;

use crate::core::audit::DomainAudit;
use crate::core::evaluate;
use crate::core::evidence::{Evidence, FailureKind, Outcome};
use crate::domain::normalize_domain;
use crate::report::nagios::{domain_state, overall};
use crate::report::{Format, Row, RunInfo, Summary};

use super::exit::{CliError, Exit, PluginState};
use super::net_args::NetArgs;
use super::report_args::{EvalArgs, ReportArgs, now};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Domains to audit (IDNs are converted to A-labels).
    #[arg(required = true, value_name = "DOMAIN")]
    pub domains: Vec<String>,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub eval: EvalArgs,
    /// Write the collected evidence as JSON (re-evaluate it with `evaluate`).
    #[arg(long, value_name = "FILE")]
    pub save_evidence: Option<PathBuf>,
}

/// Domains audited at once; each domain's hosts and addresses already run
/// in parallel.
const PARALLEL_DOMAINS: usize = 8;

pub async fn run(args: &CheckArgs) -> Result<Exit, CliError> {
    if args.report.format != Some(Format::Nagios) {
        return audit(args).await;
    }
    // A monitoring plugin says UNKNOWN (3) on stdout for any error, usage included.
    match audit(args).await {
        Err(CliError::BrokenPipe) => Ok(Exit::Ok),
        Err(e) => {
            println!("DANE UNKNOWN - {e}");
            Ok(PluginState::Unknown.exit())
        }
        ok => ok,
    }
}

async fn audit(args: &CheckArgs) -> Result<Exit, CliError> {
    let domains = args
        .domains
        .iter()
        .map(|d| normalize_domain(d).map_err(CliError::usage))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = args.eval.options()?;
    let collector = args.net.collector().await?;
    let info = collector.dns().collector_info();
    let run = RunInfo::collected(
        "check",
        &info,
        args.net.family_names(),
        now(),
        opts.now,
        Some(args.report.fail_on_name()),
    );
    let mut sink = args.report.open_sink(Format::Text, &run, false)?;
    let mut results = futures_util::stream::iter(domains)
        .map(|d| {
            let c = &collector;
            async move { c.evidence(&d).await }
        })
        .buffered(PARALLEL_DOMAINS);
    let mut summary = Summary::default();
    let mut audits: Vec<DomainAudit> = Vec::new();
    let mut evidence: Vec<Evidence> = Vec::new();
    while let Some(ev) = results.next().await {
        let audit = evaluate(&ev, &opts);
        let row = Row::Audit {
            audit: &audit,
            line: None,
        };
        summary.add(&row);
        sink.row(&row)?;
        audits.push(audit);
        evidence.push(ev);
    }
    sink.end(&summary)?;
    if let Some(path) = &args.save_evidence {
        save_evidence(path, &evidence)?;
    }
    warn_dead_resolver(&evidence, &info.resolvers);
    if args.report.format == Some(Format::Nagios) {
        let policy = args.report.nagios_policy();
        return Ok(overall(audits.iter().map(|a| domain_state(a, &policy))).exit());
    }
    // With --no-smtp the missing SMTP part is asked for, not a failure to test.
    Ok(args.report.policy(!args.net.no_smtp).judge(&audits))
}

/// Writes evidence as `evaluate` and `preflight --evidence` read it: one
/// document, or an array of them.
pub fn save_evidence(path: &Path, evidence: &[Evidence]) -> Result<(), CliError> {
    let text = if evidence.len() == 1 {
        serde_json::to_string_pretty(&evidence[0])
    } else {
        serde_json::to_string_pretty(evidence)
    }
    .map_err(CliError::usage)?;
    std::fs::write(path, text + "\n").map_err(|e| CliError::output(path.display(), e))
}

/// Says so when nothing came back from the resolver at all.
fn warn_dead_resolver(evidence: &[Evidence], resolvers: &[String]) {
    let dead =
        !evidence.is_empty()
            && evidence.iter().all(|e| {
                e.mx.meta.outcome == Outcome::Failed
                    && e.mx.meta.failure.as_ref().is_some_and(|f| {
                        matches!(f.kind, FailureKind::Timeout | FailureKind::Network)
                    })
            });
    if dead {
        eprintln!(
            "dane-audit: the resolver ({}) did not answer: nothing could be tested",
            resolvers.join(", ")
        );
    }
}
