//! Exit codes: a stable interface for CI gates and deploy hooks.

use crate::core::audit::DomainAudit;
use crate::core::finding::Severity;
use crate::core::verdict::DomainVerdict;

/// Process exit codes, documented in the README and `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Nothing at or above `--fail-on` (preflight: safe to deploy).
    Ok = 0,
    /// Findings at or above `--fail-on` (preflight: unsafe).
    Findings = 1,
    /// Usage or input error.
    Usage = 2,
    /// Some targets could not be tested (`incomplete`).
    Incomplete = 3,
    /// preflight: not yet safe, wait (the report says until when).
    Wait = 4,
    /// `watch`, `history`: the database is locked by another process
    /// (another watch on it): try again later, or use another database.
    DbLocked = 5,
    /// `watch`, `history`: the database cannot be used: read-only, disk
    /// full, damaged, or from a newer dane-audit.
    DbUnusable = 6,
    /// Interrupted (Ctrl-C) after flushing what was done.
    Interrupted = 130,
}

/// An error that ends the command with one line on stderr. Each kind has
/// one exit code, whatever the command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Arguments or input files that cannot be used (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An output that cannot be written: a file (`-o`, `--save-evidence`,
    /// `--state`, `--summary`, the scan sidecar) or standard output (exit 2).
    #[error("cannot write {what}: {err}")]
    Output { what: String, err: std::io::Error },
    /// The run could not start or finish its work for a reason outside the
    /// input (the trust anchor cannot be fetched, no runtime) (exit 3).
    #[error("{0}")]
    Incomplete(String),
    /// The history database cannot be used (exit 5 when another process
    /// holds it, else 6).
    #[error(transparent)]
    Database(#[from] crate::watch::db::DbError),
    /// The reader of standard output went away (`| head`): not an error
    /// (exit 0, nothing printed), as Unix tools do.
    #[error("")]
    BrokenPipe,
}

impl CliError {
    pub fn usage(message: impl std::fmt::Display) -> CliError {
        CliError::Usage(message.to_string())
    }

    pub fn incomplete(message: impl std::fmt::Display) -> CliError {
        CliError::Incomplete(message.to_string())
    }

    /// A failed write to the named output.
    pub fn output(what: impl std::fmt::Display, err: std::io::Error) -> CliError {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError::BrokenPipe;
        }
        CliError::Output {
            what: what.to_string(),
            err,
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) | CliError::Output { .. } => Exit::Usage,
            CliError::Incomplete(_) => Exit::Incomplete,
            CliError::Database(e) if e.is_locked() => Exit::DbLocked,
            CliError::Database(_) => Exit::DbUnusable,
            CliError::BrokenPipe => Exit::Ok,
        }
    }
}

/// Writes to standard output.
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::output("standard output", e)
    }
}

/// Monitoring-plugin states: the exit codes of `check --format nagios`
/// (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, as the Nagios plugin
/// guidelines have them), the one mode whose codes mean this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PluginState {
    Ok,
    Unknown,
    Warning,
    Critical,
}

impl PluginState {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Ok => "OK",
            PluginState::Warning => "WARNING",
            PluginState::Critical => "CRITICAL",
            PluginState::Unknown => "UNKNOWN",
        }
    }

    /// The process exit for this state: the same numbers as [`Exit`]'s
    /// `Ok`, `Findings`, `Usage` and `Incomplete`, read the plugin way.
    pub fn exit(self) -> Exit {
        match self {
            PluginState::Ok => Exit::Ok,
            PluginState::Warning => Exit::Findings,
            PluginState::Critical => Exit::Usage,
            PluginState::Unknown => Exit::Incomplete,
        }
    }
}

/// The gate policy of `check`, `evaluate` and `scan`.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// `None` for `--fail-on never`.
    pub fail_on: Option<Severity>,
    pub fail_on_incomplete: bool,
    pub require_dane: bool,
}

impl Policy {
    /// Findings that state a problem decide exit 1; "could not determine"
    /// findings only make a run incomplete (exit 3), so an unreachable server
    /// never reads as a broken one.
    pub fn judge<'a>(&self, audits: impl IntoIterator<Item = &'a DomainAudit>) -> Exit {
        let mut incomplete = false;
        let mut failed = false;
        for a in audits {
            if let Some(min) = self.fail_on {
                failed |= a.determined_at_least(min).next().is_some();
            }
            failed |= self.require_dane
                && matches!(a.verdict, DomainVerdict::NotDane | DomainVerdict::Partial);
            incomplete |= a.incomplete();
        }
        if failed {
            Exit::Findings
        } else if incomplete && self.fail_on_incomplete {
            Exit::Incomplete
        } else {
            Exit::Ok
        }
    }
}
