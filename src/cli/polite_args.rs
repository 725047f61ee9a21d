//! The collector of the commands that audit many domains (`scan`,
//! `watch`): the same politeness limits, skip list and sharing layers,
//! built in one place so the two can never differ.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::collect::plan::ProbePolicy;
use crate::collect::polite::Politeness;
use crate::collect::{Collector, ProbeReuse};
use crate::dns::DnsCollector;
use crate::skip::SkipList;
use crate::smtp::SmtpProber;

use super::exit::CliError;

/// Default of `--dns-cache`: enough for the zones and hosts shared by many
/// domains; per-domain answers are rarely asked twice, so a bigger cache
/// would only grow memory with the input.
pub const DNS_CACHE: usize = 5_000;

/// The politeness and sharing flags of `scan` and `watch`.
#[derive(clap::Args, Debug, Clone)]
pub struct PoliteArgs {
    /// SMTP connections at once to one destination address.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub per_ip_connections: usize,
    /// New SMTP connections per second to one destination address (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 2.0)]
    pub per_ip_rate: f64,
    /// New SMTP connections per second, all destinations together (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub connection_rate: f64,
    /// Never contact these: one domain (with its subdomains), MX host name,
    /// address or CIDR prefix per line.
    #[arg(long, value_name = "FILE")]
    pub skip: Option<PathBuf>,
    /// MX hosts whose DNS evidence is kept for reuse by other domains.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub host_cache: usize,
    /// STARTTLS probe results (per address and SNI) kept for reuse.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub probe_cache: usize,
    /// DNS answers (and validated RRsets) kept for reuse; the oldest go first.
    #[arg(long, value_name = "N", default_value_t = DNS_CACHE)]
    pub dns_cache: usize,
}

/// The limits of a shared collector, whichever command's flags they came from.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub per_ip_connections: usize,
    pub per_ip_rate: f64,
    pub connection_rate: f64,
    pub host_cache: usize,
    pub probe_cache: usize,
    pub dns_cache: usize,
}

impl PoliteArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            per_ip_connections: self.per_ip_connections,
            per_ip_rate: self.per_ip_rate,
            connection_rate: self.connection_rate,
            host_cache: self.host_cache,
            probe_cache: self.probe_cache,
            dns_cache: self.dns_cache,
        }
    }
}

impl Limits {
    /// Rates must be finite and not negative.
    pub fn check(&self) -> Result<(), CliError> {
        for (name, v) in [
            ("--per-ip-rate", self.per_ip_rate),
            ("--connection-rate", self.connection_rate),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(CliError::usage(format!(
                    "{name} must be a number of at least 0 (0: no limit)"
                )));
            }
        }
        Ok(())
    }
}

/// The skip list of `--skip FILE` (empty without one) and the SHA-256 of
/// its text (for settings hashes).
pub fn read_skip_list(path: Option<&Path>) -> Result<(SkipList, Option<String>), CliError> {
    let Some(p) = path else {
        return Ok((SkipList::default(), None));
    };
    let text = std::fs::read_to_string(p)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", p.display())))?;
    let list =
        SkipList::parse(&text).map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?;
    Ok((list, Some(hex::encode(Sha256::digest(text.as_bytes())))))
}

/// The collector with the politeness limits, the skip list, and each MX
/// host's DNS evidence and each STARTTLS probe shared across domains.
pub fn shared_collector(
    dns: DnsCollector,
    smtp: Option<SmtpProber>,
    policy: ProbePolicy,
    limits: &Limits,
    skip: SkipList,
) -> Collector {
    Collector::new(dns, smtp, policy)
        .with_politeness(Politeness::new(
            limits.per_ip_connections.max(1),
            limits.per_ip_rate,
            limits.connection_rate,
        ))
        .with_skip(skip)
        .sharing_hosts(limits.host_cache.max(1))
        .sharing_probes(limits.probe_cache.max(1), ProbeReuse::Bulk)
}
