//! `dane-audit diff OLD NEW`: two scan outputs compared, in bounded memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::diff::compare::CompareError;
use crate::diff::{compare, sort_file};
use crate::report::diff::{DiffFormat, DiffWriter};

use super::exit::{CliError, Exit};

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The earlier scan output (NDJSON or CSV; shards may be concatenated).
    pub old: PathBuf,
    /// The later scan output.
    pub new: PathBuf,
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
    /// Write the changes to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// MiB of records each input's sort keeps in memory before spilling a
    /// run to a temporary file (the resident memory stays near twice this).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub sort_memory: usize,
    /// Directory for the sort's temporary files.
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
}

/// Exit 0 when nothing changed, 1 when something did (as diff(1) does).
pub fn run(args: &DiffArgs) -> Result<Exit, CliError> {
    if args.sort_memory == 0 {
        return Err(CliError::usage("--sort-memory must be at least 1 (MiB)"));
    }
    let budget = args.sort_memory.saturating_mul(1 << 20);
    let tmp = args.tmpdir.clone().unwrap_or_else(std::env::temp_dir);
    let (old, old_stats) = sort_file(&args.old, budget, &tmp).map_err(CliError::usage)?;
    let (new, new_stats) = sort_file(&args.new, budget, &tmp).map_err(CliError::usage)?;
    let out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).map_err(|e| CliError::output(p.display(), e))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let mut w = DiffWriter::new(out, args.format)?;
    let mut summary = compare(old, new, |c| w.change(c)).map_err(|e| match e {
        CompareError::Sort(e) => CliError::usage(e),
        CompareError::Write(e) => CliError::from(e),
    })?;
    summary.unreadable = old_stats.unreadable + new_stats.unreadable;
    w.end(&summary)?;
    Ok(if summary.changed > 0 {
        Exit::Findings
    } else {
        Exit::Ok
    })
}
