//! `dane-audit tlsa`: the TLSA records for a certificate, chain or key.

use std::io::Write;
use std::path::PathBuf;

use crate::core::association::{RECOMMENDED, records, zone_line};
use crate::core::cert::read_pem_or_der;

use super::exit::{CliError, Exit};

#[derive(clap::Args, Debug)]
pub struct TlsaArgs {
    /// PEM or DER files: a certificate, a chain (leaf first) or a public key.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Certificate usage: 3 (DANE-EE, the server's own certificate) or 2
    /// (DANE-TA, its issuing CA: the second certificate of a chain file).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub usage: u8,
    /// 1: the public key (survives renewals that keep the key); 0: the whole certificate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub selector: u8,
    /// 1: SHA-256; 2: SHA-512; 0: the full data.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub mtype: u8,
    /// Print zone-file lines for this MX host: `_25._tcp.HOST. IN TLSA ...`.
    #[arg(long, value_name = "HOST")]
    pub name: Option<String>,
    /// TCP port of the service (25 for SMTP).
    #[arg(long, default_value_t = 25)]
    pub port: u16,
    /// Print the recommended pair: `3 1 1` for the leaf and `2 1 1` for its
    /// issuer (the chain file must contain the issuer).
    #[arg(long)]
    pub recommend: bool,
}

pub fn run(args: &TlsaArgs, out: &mut dyn Write) -> Result<Exit, CliError> {
    for file in &args.files {
        let bytes = std::fs::read(file)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
        let items = read_pem_or_der(&bytes)
            .map_err(|e| CliError::usage(format!("{}: {e}", file.display())))?;
        let wanted: Vec<(u8, u8, u8)> = if args.recommend {
            RECOMMENDED.to_vec()
        } else {
            vec![(args.usage, args.selector, args.mtype)]
        };
        let rds = records(&items, &wanted)
            .map_err(|e| CliError::usage(format!("{}: {e}", file.display())))?;
        for rd in rds {
            match &args.name {
                Some(host) => writeln!(out, "{}", zone_line(args.port, host, &rd))?,
                None => writeln!(out, "{rd}")?,
            }
        }
    }
    Ok(Exit::Ok)
}
