//! Exit codes: a stable interface for CI gates and deploy hooks.

use std::fmt;

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
    /// Interrupted (Ctrl-C) after flushing what was done.
    Interrupted = 130,
}

/// An error that ends the command with one line on stderr.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    pub fn incomplete(message: impl Into<String>) -> CliError {
        CliError {
            exit: Exit::Incomplete,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        // A reader that went away (`| head`) is not an error (Unix convention).
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return CliError {
                exit: Exit::Ok,
                message: String::new(),
            };
        }
        CliError {
            exit: Exit::Incomplete,
            message: format!("output error: {e}"),
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
