//! Logging of the daemons (`watch`, `serve`): structured lines on stderr,
//! as text or JSON, with the level from `DANE_AUDIT_LOG`.

use std::io::IsTerminal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DANE_AUDIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,dane_audit=info"));
    let b = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests in one process) keeps the first.
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}
