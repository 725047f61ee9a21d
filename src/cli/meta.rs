//! What the tool says about itself: `--version` (with `--verbose`), shell
//! completions and man pages, all generated from the same clap definitions
//! as `--help`, so that they never drift from it.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::Cli;
use super::exit::{CliError, Exit};

/// `dane-audit 0.1.0 (git 0123456789ab)`.
pub fn version_line() -> String {
    format!(
        "dane-audit {} (git {})",
        env!("CARGO_PKG_VERSION"),
        env!("DANE_AUDIT_GIT_REV")
    )
}

pub fn print_version(verbose: bool, out: &mut dyn Write) -> Result<Exit, CliError> {
    writeln!(out, "{}", version_line())?;
    if verbose {
        writeln!(
            out,
            "hickory {} (DNS, DNSSEC validation), rustls {} with rustls-webpki {} (TLS, DANE-TA paths)",
            env!("DANE_AUDIT_HICKORY_VERSION"),
            env!("DANE_AUDIT_RUSTLS_VERSION"),
            env!("DANE_AUDIT_WEBPKI_VERSION"),
        )?;
        let tags: Vec<String> = crate::dns::builtin_key_tags()
            .iter()
            .map(u16::to_string)
            .collect();
        writeln!(
            out,
            "built-in trust anchor: the IANA root KSKs, key tags {}",
            tags.join(", ")
        )?;
    }
    Ok(Exit::Ok)
}

/// The script is made in memory first: clap_complete panics when its writer
/// fails (a closed pipe), and a failed write here is an output error.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> Result<Exit, CliError> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "dane-audit", &mut script);
    if shell == clap_complete::Shell::Bash {
        script = bash_states_fixed(&script);
    }
    out.write_all(&script)?;
    Ok(Exit::Ok)
}

/// clap_complete's bash script spells the state of a subcommand of a
/// hyphenated program two ways (`dane__audit__subcmd__check` where it walks
/// the words, `dane__subcmd__audit__subcmd__check` in the arms that offer
/// the flags), so no flag of a subcommand ever completes (clap-rs/clap#6421,
/// open). The arms are respelled the way the walk spells them.
fn bash_states_fixed(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("dane__subcmd__audit", "dane__audit")
        .into_bytes()
}

/// `dane-audit.1` and `dane-audit-SUBCOMMAND.1` for every subcommand.
pub fn manpages(dir: &Path) -> Result<Exit, CliError> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::output(dir.display(), e))?;
    let root = Cli::command().version(env!("CARGO_PKG_VERSION"));
    write_page(dir, "dane-audit", root.clone())?;
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("dane-audit-{}", sub.get_name());
        write_page(dir, &name, sub.clone().name(name.clone()))?;
    }
    Ok(Exit::Ok)
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> Result<(), CliError> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(|e| CliError::output(path.display(), e))?;
    std::fs::write(&path, buf).map_err(|e| CliError::output(path.display(), e))
}
