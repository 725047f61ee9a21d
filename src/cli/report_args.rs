//! Options shared by every command that prints audits, resolved into one
//! validated configuration before any work starts.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use crate::core::EvalOptions;
use crate::core::evidence::Timestamp;
use crate::core::finding::Severity;
use crate::report::{self, Format, NagiosPolicy, NagiosSink, RunInfo, Sink};

use super::exit::{CliError, Policy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Critical,
    Error,
    Warning,
    Notice,
    Never,
}

/// `--fail-on` when not given (also what `serve`'s exit header applies).
pub const DEFAULT_FAIL_ON: FailOn = FailOn::Error;

impl FailOn {
    /// The least severity that fails the gate (`None` for `never`).
    pub fn severity(self) -> Option<Severity> {
        match self {
            FailOn::Critical => Some(Severity::Critical),
            FailOn::Error => Some(Severity::Error),
            FailOn::Warning => Some(Severity::Warning),
            FailOn::Notice => Some(Severity::Notice),
            FailOn::Never => None,
        }
    }

    /// The flag's value as written.
    pub fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Colour in text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Write results to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 1 when a finding at or above this severity is present.
    #[arg(long, value_enum, default_value_t = DEFAULT_FAIL_ON)]
    pub fail_on: FailOn,
    /// Exit 3 when some target could not be tested (default for check).
    #[arg(long, overrides_with = "no_fail_on_incomplete")]
    pub fail_on_incomplete: bool,
    /// Exit 0 even when some target could not be tested.
    #[arg(long)]
    pub no_fail_on_incomplete: bool,
    /// Treat `not-dane` and `partial` as failures (exit 1), for CI gates.
    #[arg(long)]
    pub require_dane: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Evaluate signature and certificate times as of TIME (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME", conflicts_with = "days")]
    pub at: Option<String>,
    /// Evaluate as of N days from now (catches expiries early).
    #[arg(long, value_name = "N")]
    pub days: Option<u32>,
    /// Warn about DNSSEC signatures that expire within N days.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub sig_warn_days: u32,
    /// Also accept the domain itself as a DANE-TA certificate name (RFC 7672 §3.2.3 local policy).
    #[arg(long)]
    pub accept_nexthop_name: bool,
}

/// The wall clock, read in one place: the core never reads it.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Timestamp(secs)
}

impl EvalArgs {
    pub fn options(&self) -> Result<EvalOptions, CliError> {
        let now = match (&self.at, self.days) {
            (Some(t), _) => Timestamp::parse(t).ok_or_else(|| {
                CliError::usage(format!(
                    "--at {t:?} is not a time: use RFC 3339 (2027-01-31T00:00:00Z) or Unix seconds"
                ))
            })?,
            (None, Some(d)) => Timestamp(now().0 + i64::from(d) * 86_400),
            (None, None) => now(),
        };
        Ok(EvalOptions {
            now,
            sig_warn_days: self.sig_warn_days,
            accept_nexthop_name: self.accept_nexthop_name,
        })
    }
}

impl ReportArgs {
    pub fn policy(&self, incomplete_default: bool) -> Policy {
        Policy {
            fail_on: self.fail_on.severity(),
            fail_on_incomplete: if self.no_fail_on_incomplete {
                false
            } else {
                self.fail_on_incomplete || incomplete_default
            },
            require_dane: self.require_dane,
        }
    }

    /// `--format nagios`: CRITICAL at `--fail-on`, and for `not-dane` or
    /// `partial` with `--require-dane`.
    pub fn nagios_policy(&self) -> NagiosPolicy {
        let p = self.policy(true);
        NagiosPolicy {
            critical_at: p.fail_on,
            require_dane: p.require_dane,
        }
    }

    pub fn fail_on_name(&self) -> String {
        self.fail_on.name()
    }

    fn color(&self, to_terminal: bool) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => to_terminal && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// Opens the output and builds the sink, then writes the run header.
    pub fn open_sink(
        &self,
        default: Format,
        run: &RunInfo,
        append: bool,
    ) -> Result<Box<dyn Sink>, CliError> {
        let format = self.format.unwrap_or(default);
        let (out, terminal): (Box<dyn Write>, bool) = match &self.output {
            Some(path) => {
                let f = File::options()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(path)
                    .map_err(|e| CliError::output(path.display(), e))?;
                (Box::new(BufWriter::new(f)), false)
            }
            None => (Box::new(std::io::stdout()), std::io::stdout().is_terminal()),
        };
        let mut sink = match format {
            Format::Nagios => Box::new(NagiosSink::new(out, self.nagios_policy())),
            f => report::sink(f, out, self.color(terminal)),
        };
        sink.begin(run)?;
        Ok(sink)
    }
}
