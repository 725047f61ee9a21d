//! Options for commands that touch the network, resolved into collectors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::collect::Collector;
use crate::collect::plan::ProbePolicy;
use crate::core::evidence::Families;
use crate::dns::{
    DnsCollector, DnsConfig, DnsSetupError, Resolution, TrustAnchorSource, parse_resolver,
    resolvers_from_resolv_conf,
};
use crate::skip::SkipList;
use crate::smtp::{KeyTypes, SmtpConfig, SmtpProber, Timeouts};

use super::exit::CliError;

#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// Recursive resolver, ADDR or ADDR:PORT (repeatable). Default: the
    /// nameservers in /etc/resolv.conf. DNSSEC is validated in-process;
    /// the resolver's own AD bit is only a second opinion.
    #[arg(long = "resolver", value_name = "ADDR[:PORT]")]
    pub resolvers: Vec<String>,
    /// Resolve in process, iteratively from the root servers to each
    /// zone's authoritative servers, without a recursive resolver (DNSSEC
    /// is validated the same way; there is no resolver second opinion).
    #[arg(long, conflicts_with = "resolvers")]
    pub iterative: bool,
    /// Root server hints for --iterative: NS and A/AAAA records in
    /// zone-file syntax. Default: the IANA root servers.
    #[arg(long, value_name = "FILE", requires = "iterative")]
    pub root_hints: Option<PathBuf>,
    /// DNSSEC trust anchor: DNSKEY or DS records in zone-file syntax.
    /// Default: the IANA root KSKs.
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Option<PathBuf>,
    /// Use IPv4 only (DNS and SMTP transport).
    #[arg(short = '4', conflicts_with = "ipv6_only")]
    pub ipv4_only: bool,
    /// Use IPv6 only (DNS and SMTP transport).
    #[arg(short = '6')]
    pub ipv6_only: bool,
    /// Seconds to wait for one DNS answer.
    #[arg(long, value_name = "SECS", default_value_t = 3)]
    pub dns_timeout: u64,
    /// Skip querying each authoritative nameserver directly.
    #[arg(long)]
    pub no_ns_checks: bool,
    /// Skip the resolver's own DNSSEC verdict (the second witness): halves
    /// the resolver's work in bulk scans; `dnssec-witness-disagree` can then
    /// not be reported.
    #[arg(long)]
    pub no_witness: bool,
    /// Skip SMTP: report the DNS part only.
    #[arg(long)]
    pub no_smtp: bool,
    /// Probe SMTP on every MX host, also those without secure TLSA.
    #[arg(long)]
    pub all_hosts: bool,
    /// Name to send with EHLO (use one that resolves to this machine).
    #[arg(long, value_name = "NAME", default_value = "dane-audit.invalid")]
    pub ehlo: String,
    /// Seconds for the TCP connect to port 25.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Seconds for each SMTP phase (greeting, each command, TLS handshake).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub smtp_timeout: u64,
    /// SMTP port (for test beds only; real MX hosts listen on 25).
    #[arg(long, default_value_t = 25, hide = true)]
    pub smtp_port: u16,
    /// Server key types to ask for, one handshake each on its own
    /// connection, offering only that type's signature algorithms: `all`
    /// (ecdsa, rsa, ed25519), `negotiated` (the default offer only), or a
    /// list such as `rsa,ecdsa`. A server with an RSA and an ECDSA
    /// certificate presents each to different senders.
    #[arg(long, value_name = "all|negotiated|LIST", default_value = "all")]
    pub key_types: String,
}

impl NetArgs {
    pub fn families(&self) -> Families {
        Families {
            ipv4: !self.ipv6_only,
            ipv6: !self.ipv4_only,
        }
    }

    pub fn family_names(&self) -> Vec<&'static str> {
        let f = self.families();
        let mut v = Vec::new();
        if f.ipv4 {
            v.push("ipv4");
        }
        if f.ipv6 {
            v.push("ipv6");
        }
        v
    }

    pub fn dns_config(&self) -> Result<DnsConfig, CliError> {
        let resolvers = if self.iterative {
            Vec::new()
        } else if self.resolvers.is_empty() {
            resolvers_from_resolv_conf().map_err(CliError::usage)?
        } else {
            self.resolvers
                .iter()
                .map(|r| {
                    parse_resolver(r).ok_or_else(|| {
                        CliError::usage(format!(
                            "--resolver {r:?} is not an address: use 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(DnsConfig {
            resolvers,
            trust_anchor: match &self.trust_anchor {
                Some(p) => TrustAnchorSource::File(p.clone()),
                None => TrustAnchorSource::Iana,
            },
            timeout: Duration::from_secs(self.dns_timeout.max(1)),
            families: self.families(),
            nameserver_checks: !self.no_ns_checks,
            witness: !self.no_witness,
            mode: if self.iterative {
                Resolution::Iterative {
                    root_hints: self.root_hints.clone(),
                }
            } else {
                Resolution::Recursive
            },
            ..DnsConfig::default()
        })
    }

    pub async fn dns(&self) -> Result<DnsCollector, CliError> {
        DnsCollector::new(self.dns_config()?)
            .await
            .map_err(setup_error)
    }

    /// The DNS collector with `skip` applied to its own queries, and caches
    /// of `entries` answers and validated RRsets (a long run keeps them
    /// small, so that memory stays flat).
    pub async fn dns_skipping(
        &self,
        skip: &SkipList,
        entries: usize,
    ) -> Result<DnsCollector, CliError> {
        let cfg = DnsConfig {
            skip: Arc::new(skip.clone()),
            ..self.dns_config()?
        };
        DnsCollector::with_cache_sizes(cfg, entries, entries)
            .await
            .map_err(setup_error)
    }

    /// The parsed `--key-types`.
    pub fn key_types(&self) -> Result<KeyTypes, CliError> {
        KeyTypes::parse(&self.key_types).map_err(|e| CliError::usage(format!("--key-types: {e}")))
    }

    /// As [`NetArgs::smtp`], with a probe's further connections to one
    /// address spaced to `per_address_rate` per second (0: not spaced), as a
    /// scan's `--per-ip-rate` spaces probes.
    pub fn smtp_paced(&self, per_address_rate: f64) -> Result<Option<SmtpProber>, CliError> {
        let gap = if per_address_rate > 0.0 && per_address_rate.is_finite() {
            Duration::from_secs_f64(1.0 / per_address_rate)
        } else {
            Duration::ZERO
        };
        self.smtp_with_gap(gap)
    }

    pub fn smtp(&self) -> Result<Option<SmtpProber>, CliError> {
        self.smtp_with_gap(Duration::ZERO)
    }

    fn smtp_with_gap(&self, connection_gap: Duration) -> Result<Option<SmtpProber>, CliError> {
        if self.no_smtp {
            return Ok(None);
        }
        let phase = Duration::from_secs(self.smtp_timeout.max(1));
        let cfg = SmtpConfig {
            port: self.smtp_port,
            ehlo_name: self.ehlo.clone(),
            timeouts: Timeouts {
                connect: Duration::from_secs(self.connect_timeout.max(1)),
                greeting: phase,
                command: phase,
                handshake: phase,
                ..Timeouts::default()
            },
            key_types: self.key_types()?,
            connection_gap,
            ..SmtpConfig::default()
        };
        SmtpProber::new(cfg).map(Some).map_err(CliError::usage)
    }

    pub fn probe_policy(&self) -> ProbePolicy {
        ProbePolicy {
            all_hosts: self.all_hosts,
            families: self.families(),
            port: self.smtp_port,
        }
    }

    /// The collector for one-off commands: no sharing between domains.
    pub async fn collector(&self) -> Result<Collector, CliError> {
        Ok(Collector::new(
            self.dns().await?,
            self.smtp()?,
            self.probe_policy(),
        ))
    }
}

/// A trust anchor that cannot be fetched is an incomplete run (exit 3);
/// anything else about the setup is a usage error (exit 2).
fn setup_error(e: DnsSetupError) -> CliError {
    match e {
        DnsSetupError::AnchorFetch { .. } => CliError::incomplete(e.to_string()),
        e => CliError::usage(e.to_string()),
    }
}
