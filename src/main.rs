use std::process::ExitCode;

use clap::Parser;
use dane_audit::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli::run(cli) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) => {
            if !matches!(e, cli::CliError::BrokenPipe) {
                eprintln!("dane-audit: {e}");
            }
            ExitCode::from(e.exit() as u8)
        }
    }
}
