use std::process::ExitCode;

use clap::Parser;
use dane_audit::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            // A monitoring plugin's bad arguments are UNKNOWN (3), not CRITICAL (2).
            if code == 2 && nagios_requested() {
                println!("DANE UNKNOWN - invalid arguments (see stderr)");
                return ExitCode::from(3);
            }
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

/// Whether the command line asks for `--format nagios` (looked at only
/// when the arguments could not be parsed).
fn nagios_requested() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .any(|w| w[0] == "--format" && w[1] == "nagios")
        || args.iter().any(|a| a == "--format=nagios")
}
