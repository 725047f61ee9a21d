//! `dane-audit rollover DOMAIN --cert NEW.pem --update-server ADDR --tsig-key FILE --state FILE`:
//! the certificate rollover of RFC 7671 §8.1 done, not only checked.
//!
//! Each run derives where the rollover stands from what it observes (the
//! records on the primary, what every authoritative server and the resolver
//! serve, the chains served now) and takes the next step only when the
//! previous one is proven: publish NEW's records by TSIG-signed UPDATE
//! (RFC 2136), wait with preflight's own rules until every server and cache
//! has them, run the deploy hook, verify with `check`, and after
//! `--retire-after` remove the records that match nothing served. A cron
//! job or deploy hook calls it again and again; the state file (written
//! atomically) keeps what cannot be observed, so a crash or `kill -9` at
//! any point loses nothing and repeats nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::collect::plan::ProbePolicy;
use crate::collect::{Collector, ProbeReuse};
use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{Evidence, Outcome as Asked, Timestamp};
use crate::core::rollover::procedure::{
    Change, Deployment, PROGRESS_SCHEMA_VERSION, Progress, Stage, deployment, verification,
};
use crate::core::rollover::{self, CandidateRecord, Decision, NewCertificate, Readiness, Reason};
use crate::core::tlsa::TlsaRdata;
use crate::core::{EvalOptions, evaluate};
use crate::dns::parse_resolver;
use crate::dns::tsig_key::TsigKey;
use crate::dns::update::{PrimaryServer, TlsaRrset, TlsaUpdate, UpdateError, tlsa_owner};
use crate::domain::normalize_domain;
use crate::duration::parse_duration;
use crate::report::rollover as rollover_report;
use crate::report::{Format, OUTPUT_SCHEMA_VERSION, RunInfo, TOOL};
use crate::statefile::write_json_atomically;

use super::exit::{CliError, Exit};
use super::net_args::NetArgs;
use super::new_cert::NewCertArgs;
use super::report_args::now;

/// How often `--deploy-settle` looks again for the new certificate.
const SETTLE_POLL: Duration = Duration::from_secs(2);

/// Which records NEW needs (`--records`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RecordChoice {
    /// `3 1 1` for NEW's key and `2 1 1` for its issuing CA (RFC 7671 §8.1's pair).
    Pair,
    /// `3 1 1` for NEW's key only.
    Ee,
    /// `2 1 1` for NEW's issuing CA only.
    Ta,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exit codes: 0 the new certificate is live and verified (old records retired, or due at \
the time the report gives), or it is safe to deploy and no --deploy was given; 4 waiting \
(servers or caches do not have the new records yet, or removed records are still served); \
1 refused or failed (a candidate that would break the live certificate, an UPDATE the \
server refused, a failed deploy hook, a deployment that does not verify); 2 usage, input \
or output error; 3 could not determine (DNS failure, the primary does not answer).")]
pub struct RolloverArgs {
    /// The mail domain whose MX hosts will serve the new certificate.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    #[command(flatten)]
    pub new: NewCertArgs,
    #[command(flatten)]
    pub update: UpdateArgs,
    /// Where the rollover's progress is kept (JSON, written atomically).
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,
    /// The operator's install-and-reload command, run by `sh -c` once it is safe.
    #[arg(long, value_name = "CMD")]
    pub deploy: Option<String>,
    /// How long the deploy command may run.
    #[arg(long, value_name = "DUR", default_value = "10m", value_parser = parse_duration)]
    pub deploy_timeout: u64,
    /// How long after the deploy command the new certificate may take to
    /// appear at every address: a reload is asynchronous (Postfix's master
    /// replaces idle smtpd processes one by one), so the check repeats
    /// every 2 seconds for this long before it calls the deployment failed.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub deploy_settle: u64,
    /// Remove the records that match nothing served this long after the
    /// new certificate verified (default: twice the TLSA TTL).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub retire_after: Option<u64>,
    /// Which records to publish for the new certificate.
    /// Extra time on top of the TLSA TTL, for resolvers that keep records longer.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub margin: u64,
    /// Keep going until done (polling), or --max-wait runs out.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after DUR (e.g. 90s, 30m, 2h, 1d).
    #[arg(long, value_name = "DUR", requires = "wait", value_parser = parse_duration)]
    pub max_wait: Option<u64>,
    /// Seconds between polls with --wait.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration, hide = true)]
    pub poll_interval: u64,
    /// Output format: text or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also accept the domain itself as a DANE-TA certificate name (RFC 7672 §3.2.3 local policy).
    #[arg(long)]
    pub accept_nexthop_name: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

/// Where and how records are changed (RFC 2136 UPDATE signed with TSIG).
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// The zone's primary server, where UPDATEs go (ADDR or ADDR:PORT).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub update_server: String,
    /// TSIG key file (BIND/Knot `key` syntax, as tsig-keygen and keymgr -t write it).
    #[arg(long, value_name = "FILE")]
    pub tsig_key: PathBuf,
    /// The key to use when the file holds several.
    #[arg(long, value_name = "NAME")]
    pub tsig_key_name: Option<String>,
    /// The zone of the TLSA records (default: asked from the primary).
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
    /// Which records to publish for the new certificate.
    #[arg(long, value_enum, default_value_t = RecordChoice::Pair)]
    pub records: RecordChoice,
    /// Change this host's records only (repeatable), instead of every MX host's.
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Print each UPDATE as nsupdate lines and the decision; send nothing,
    /// run nothing, write no state.
    #[arg(long)]
    pub dry_run: bool,
}

/// What a run may do besides reading: the parts of `rollover`'s flags
/// that `publish` has too, or fixes.
pub(super) struct Settings<'a> {
    pub domain: &'a str,
    pub new: &'a NewCertArgs,
    pub update: &'a UpdateArgs,
    pub net: &'a NetArgs,
    /// Where progress is kept (`None`: nothing is remembered).
    pub state: Option<&'a Path>,
    pub deploy: Option<&'a str>,
    pub deploy_timeout: u64,
    pub deploy_settle: u64,
    pub retire_after: Option<u64>,
    pub margin: u64,
    pub poll_interval: u64,
    pub format: Format,
    pub accept_nexthop_name: bool,
}

impl<'a> Settings<'a> {
    fn of(a: &'a RolloverArgs) -> Settings<'a> {
        Settings {
            domain: &a.domain,
            new: &a.new,
            update: &a.update,
            net: &a.net,
            state: Some(&a.state),
            deploy: a.deploy.as_deref(),
            deploy_timeout: a.deploy_timeout,
            deploy_settle: a.deploy_settle,
            retire_after: a.retire_after,
            margin: a.margin,
            poll_interval: a.poll_interval,
            format: a.format,
            accept_nexthop_name: a.accept_nexthop_name,
        }
    }
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Old records retired and gone from every server.
    Done,
    /// Live and verified; retirement due then.
    Verified {
        retire_at: Timestamp,
    },
    /// Safe to deploy, and there is no deploy command.
    DeployNow,
    /// `publish --add`: the records are on the primary (or were already).
    Published,
    /// Not yet; `until`: when, if known.
    Waiting {
        why: String,
        until: Option<Timestamp>,
    },
    Refused(String),
    Failed(String),
    Undetermined(String),
}

impl Outcome {
    pub(super) fn exit(&self) -> Exit {
        match self {
            Outcome::Done | Outcome::Verified { .. } | Outcome::DeployNow | Outcome::Published => {
                Exit::Ok
            }
            Outcome::Waiting { .. } => Exit::Wait,
            Outcome::Refused(_) | Outcome::Failed(_) => Exit::Findings,
            Outcome::Undetermined(_) => Exit::Incomplete,
        }
    }

    fn text(&self) -> String {
        match self {
            Outcome::Done => "done: the new certificate is live and verified, the old records are gone from every server".into(),
            Outcome::Verified { retire_at } => format!(
                "the new certificate is live and verified; the records that match nothing served are removed from {retire_at} (run again then)"
            ),
            Outcome::DeployNow => "safe: deploy the new certificate now (no --deploy given), then run again to verify and retire".into(),
            Outcome::Published => "the records for the new certificate are on the primary; wait for every server and the TTL before deploying (`dane-audit preflight`)".into(),
            Outcome::Waiting { why, until } => format!(
                "wait: {why}; run again{}",
                until.map(|t| format!(" from {t}")).unwrap_or_default()
            ),
            Outcome::Refused(why) => format!("refused: {why}"),
            Outcome::Failed(why) => format!("failed: {why}"),
            Outcome::Undetermined(why) => format!("could not determine: {why}"),
        }
    }
}

/// One thing a run did or found, for the report.
#[derive(Clone, Debug, serde::Serialize)]
struct Event {
    stage: &'static str,
    text: String,
}

pub(super) struct Rollover<'a> {
    args: Settings<'a>,
    domain: String,
    hosts: Vec<String>,
    new: NewCertificate,
    records: Vec<TlsaRdata>,
    key: TsigKey,
    primary: PrimaryServer,
    collector: Collector,
    progress: Progress,
    zones: BTreeMap<String, String>,
    events: Vec<Event>,
    last: Option<Decision>,
    /// The command, as reports name it.
    pub(super) command: &'static str,
}

pub async fn run(args: &RolloverArgs) -> Result<Exit, CliError> {
    let mut r = Rollover::prepare(Settings::of(args)).await?;
    let started = Instant::now();
    let deadline = args.wait.then(|| {
        started + Duration::from_secs(args.max_wait.unwrap_or(super::preflight::MAX_WAIT_DEFAULT))
    });
    let outcome = loop {
        let outcome = r.round().await?;
        let again = matches!(outcome, Outcome::Waiting { .. } | Outcome::Verified { .. });
        let Some(deadline) = deadline.filter(|_| again && !args.update.dry_run) else {
            break outcome;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break outcome;
        }
        let nap = r.nap(&outcome).min(left);
        eprintln!(
            "dane-audit rollover: {} (checking again in {} s)",
            outcome.text(),
            nap.as_secs()
        );
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = tokio::signal::ctrl_c() => {
                r.print(&outcome)?;
                return Ok(Exit::Interrupted);
            }
        }
        r.collector.forget(true);
    };
    r.print(&outcome)?;
    Ok(outcome.exit())
}

impl<'a> Rollover<'a> {
    /// Everything checked before any network work.
    pub(super) async fn prepare(args: Settings<'a>) -> Result<Rollover<'a>, CliError> {
        if !matches!(args.format, Format::Text | Format::Json) {
            return Err(CliError::usage("rollover writes --format text or json"));
        }
        let domain = normalize_domain(args.domain).map_err(CliError::usage)?;
        let hosts = args
            .update
            .hosts
            .iter()
            .map(|h| normalize_domain(h).map_err(|e| CliError::usage(format!("--host: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let new = args.new.load()?;
        let records = chosen(&new, args.update.records)?;
        let key = TsigKey::load(&args.update.tsig_key, args.update.tsig_key_name.as_deref())
            .map_err(CliError::usage)?;
        let addr: SocketAddr = parse_resolver(&args.update.update_server).ok_or_else(|| {
            CliError::usage(format!(
                "--update-server {:?} is not an address: use 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53",
                args.update.update_server
            ))
        })?;
        let primary = PrimaryServer::new(addr, Duration::from_secs(args.net.dns_timeout.max(1)));
        let progress = match args.state {
            Some(p) => read_progress(p, &domain, &new)?,
            None => Progress::new(&domain, &new),
        };
        let mut zones = BTreeMap::new();
        if let Some(z) = &args.update.zone {
            let z = normalize_domain(z).map_err(|e| CliError::usage(format!("--zone: {e}")))?;
            zones.insert(String::new(), z);
        }
        let policy = ProbePolicy {
            all_hosts: true,
            ..args.net.probe_policy()
        };
        let collector = Collector::new(args.net.dns().await?, args.net.smtp()?, policy)
            .sharing_probes(64, ProbeReuse::Poll);
        Ok(Rollover {
            args,
            domain,
            hosts,
            new,
            records,
            key,
            primary,
            collector,
            progress,
            zones,
            events: Vec::new(),
            last: None,
            command: "rollover",
        })
    }

    fn say(&mut self, stage: Stage, text: impl Into<String>) {
        self.events.push(Event {
            stage: stage.as_str(),
            text: text.into(),
        });
    }

    fn save(&mut self, stage: Stage) -> Result<(), CliError> {
        self.progress.stage = stage;
        match self.args.state {
            Some(path) if !self.args.update.dry_run => write_json_atomically(path, &self.progress)
                .map_err(|e| CliError::output(path.display(), e)),
            _ => Ok(()),
        }
    }

    async fn observe(&self) -> Evidence {
        self.collector.evidence_for(&self.domain, &self.hosts).await
    }

    /// One pass over the steps, as far as they are proven.
    async fn round(&mut self) -> Result<Outcome, CliError> {
        let ev = self.observe().await;
        if let Some(why) = no_hosts(&ev, &self.hosts) {
            return Ok(Outcome::Undetermined(why));
        }
        match deployment(&ev, &self.hosts, &self.new) {
            Deployment::Everywhere => self.after_deploy(ev).await,
            Deployment::Nowhere | Deployment::Partly => self.before_deploy(ev).await,
        }
    }

    /// Hosts where DANE is on: the only ones whose records a rollover changes.
    fn dane_hosts(&self, ev: &Evidence) -> Vec<String> {
        ev.hosts
            .iter()
            .filter(|h| self.hosts.is_empty() || self.hosts.contains(&h.name))
            .filter(|h| {
                h.tlsa.as_ref().is_some_and(|t| {
                    t.meta.outcome == Asked::Answer && t.meta.dnssec == DnssecStatus::Secure
                })
            })
            .map(|h| h.name.clone())
            .collect()
    }

    fn input<'e>(
        &'e self,
        ev: &'e Evidence,
        candidate: Option<&'e [CandidateRecord]>,
    ) -> rollover::Input<'e> {
        rollover::Input {
            evidence: ev,
            hosts: &self.hosts,
            new: &self.new,
            candidate,
            now: now(),
            margin_secs: self.args.margin,
            published_before: None,
            accept_nexthop_name: self.args.accept_nexthop_name,
        }
    }

    // ---- steps 1-3: publish, wait, deploy --------------------------------

    async fn before_deploy(&mut self, mut ev: Evidence) -> Result<Outcome, CliError> {
        match self.publish(&ev).await? {
            Publish::Done { sent: true } => {
                self.collector.forget(false);
                ev = self.observe().await;
            }
            Publish::Done { sent: false } => {}
            Publish::Stop(o) => return Ok(o),
        }
        let (decision, next) = rollover::decide(&self.input(&ev, None), &self.progress.preflight);
        self.progress.preflight = next;
        let headline = rollover_report::headline_text(decision.headline.as_ref());
        let readiness = decision.readiness;
        let safe_at = decision.safe_at;
        self.last = Some(decision);
        self.save(Stage::Wait)?;
        match readiness {
            Readiness::Wait => {
                self.say(Stage::Wait, headline);
                return Ok(Outcome::Waiting {
                    why: "not every server and cache has the new records yet".into(),
                    until: safe_at,
                });
            }
            Readiness::Unsafe => return Ok(Outcome::Refused(headline)),
            Readiness::Undetermined => return Ok(Outcome::Undetermined(headline)),
            Readiness::Safe => self.say(Stage::Wait, format!("safe: {headline}")),
        }
        let Some(cmd) = self.args.deploy.map(str::to_string) else {
            self.save(Stage::Deploy)?;
            return Ok(Outcome::DeployNow);
        };
        if self.args.update.dry_run {
            self.say(Stage::Deploy, format!("would run: {cmd}"));
            return Ok(Outcome::DeployNow);
        }
        let run =
            super::deploy::run(&cmd, &self.domain, self.args.new, self.args.deploy_timeout).await;
        let ok = run.succeeded();
        self.say(
            Stage::Deploy,
            format!(
                "ran `{cmd}`: {}",
                match run.status {
                    Some(s) => format!("exit {s}"),
                    None => "killed (timeout or signal)".to_string(),
                }
            ),
        );
        self.progress.deploys.push(run);
        self.save(Stage::Deploy)?;
        if !ok {
            return Ok(Outcome::Failed(
                "the deploy command failed; every record stays, run again once it is fixed".into(),
            ));
        }
        let ev = self.settled().await;
        self.after_deploy(ev).await
    }

    /// Fresh evidence once the new certificate is served everywhere, or the
    /// last evidence when `--deploy-settle` runs out first.
    async fn settled(&mut self) -> Evidence {
        let deadline = Instant::now() + Duration::from_secs(self.args.deploy_settle);
        loop {
            self.collector.forget(true);
            let ev = self.observe().await;
            let everywhere = deployment(&ev, &self.hosts, &self.new) == Deployment::Everywhere;
            if everywhere || Instant::now() >= deadline {
                return ev;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Step 1: NEW's records next to the current ones on every DANE host,
    /// never instead of them, and never a candidate that fails its check.
    async fn publish(&mut self, ev: &Evidence) -> Result<Publish, CliError> {
        let mut plans = Vec::new();
        for host in self.dane_hosts(ev) {
            let (zone, current) = match self.read(&host).await {
                Ok(x) => x,
                Err(o) => return Ok(Publish::Stop(o)),
            };
            let missing: Vec<TlsaRdata> = self
                .records
                .iter()
                .filter(|r| !current.records.contains(r))
                .cloned()
                .collect();
            if !missing.is_empty() {
                plans.push((host, zone, current, missing));
            }
        }
        if plans.is_empty() {
            return Ok(Publish::Done { sent: false });
        }
        if let Some(why) = self.candidate_fails(ev, &plans) {
            return Ok(Publish::Stop(Outcome::Refused(format!(
                "no UPDATE sent: {why}"
            ))));
        }
        for (host, zone, current, missing) in plans {
            let ttl = current.ttl.unwrap_or(3600);
            let update =
                TlsaUpdate::add(&zone, &current, &missing, ttl).map_err(CliError::usage)?;
            if let Err(o) = self.send(Stage::Publish, &update).await {
                return Ok(Publish::Stop(o));
            }
            let at = now();
            self.progress
                .published
                .extend(missing.into_iter().map(|record| Change {
                    host: host.clone(),
                    record,
                    at,
                }));
            self.save(Stage::Publish)?;
        }
        Ok(Publish::Done {
            sent: !self.args.update.dry_run,
        })
    }

    /// Why the RRsets after the UPDATEs would be wrong, judged as
    /// preflight judges a candidate: they must authenticate NEW and keep
    /// authenticating what is served now.
    fn candidate_fails(
        &self,
        ev: &Evidence,
        plans: &[(String, String, TlsaRrset, Vec<TlsaRdata>)],
    ) -> Option<String> {
        let candidate: Vec<CandidateRecord> = plans
            .iter()
            .flat_map(|(host, _, current, missing)| {
                current
                    .records
                    .iter()
                    .chain(missing)
                    .map(move |r| CandidateRecord {
                        owner: Some(format!("_25._tcp.{host}.")),
                        rdata: r.clone(),
                    })
            })
            .collect();
        let planned: Vec<String> = plans.iter().map(|p| p.0.clone()).collect();
        let (d, _) = rollover::decide(&self.input(ev, Some(&candidate)), &self.progress.preflight);
        d.hosts
            .iter()
            .filter(|h| planned.contains(&h.host))
            .flat_map(|h| h.reasons.iter().map(move |r| (h, r)))
            .find(|(_, r)| {
                matches!(
                    r,
                    Reason::CandidateBreaksLive { .. }
                        | Reason::CandidateMissesNew { .. }
                        | Reason::CandidateEmpty { .. }
                        | Reason::AddressesBogus { .. }
                )
            })
            .map(|(h, r)| format!("{}: {}", h.host, rollover_report::reason_text(r)))
    }

    /// The zone and the current RRset of a host's TLSA name, on the primary.
    async fn read(&mut self, host: &str) -> Result<(String, TlsaRrset), Outcome> {
        let zone = match self.zones.get("").cloned() {
            Some(z) => z,
            None => self.zone_of(host).await?,
        };
        let current = self
            .primary
            .read_tlsa(host)
            .await
            .map_err(|e| self.update_outcome(e))?;
        Ok((zone, current))
    }

    async fn zone_of(&mut self, host: &str) -> Result<String, Outcome> {
        if let Some(z) = self.zones.get(host) {
            return Ok(z.clone());
        }
        let owner = tlsa_owner(host).map_err(|e| Outcome::Failed(e.to_string()))?;
        let zone = self
            .primary
            .zone_of(&owner)
            .await
            .map_err(|e| self.update_outcome(e))?;
        if zone == "." {
            return Err(Outcome::Failed(format!(
                "{} answers for {owner} as the root zone: it is not the primary of that name's zone; give --zone",
                self.primary.addr
            )));
        }
        self.zones.insert(host.to_string(), zone.clone());
        Ok(zone)
    }

    /// Sends (or, with --dry-run, prints) one UPDATE.
    async fn send(&mut self, stage: Stage, update: &TlsaUpdate) -> Result<(), Outcome> {
        if update.is_noop() {
            return Ok(());
        }
        if self.args.update.dry_run {
            let text = update.render(Some(self.primary.addr), Some(&self.key));
            self.say(stage, format!("would send:\n{}", text.trim_end()));
            return Ok(());
        }
        self.primary
            .send(update, &self.key)
            .await
            .map_err(|e| self.update_outcome(e))?;
        let what: Vec<String> = update
            .adds()
            .iter()
            .map(|r| format!("added {}", r.short()))
            .chain(
                update
                    .deletes()
                    .iter()
                    .map(|r| format!("removed {}", r.short())),
            )
            .collect();
        self.say(
            stage,
            format!(
                "{}: {} (UPDATE to {} signed with {}: NOERROR)",
                update.owner(),
                what.join(", "),
                self.primary.addr,
                self.key.name()
            ),
        );
        Ok(())
    }

    fn update_outcome(&self, e: UpdateError) -> Outcome {
        match &e {
            UpdateError::Rejected(r) if r.prerequisite_failed() => Outcome::Undetermined(format!(
                "{e} (the RRset changed while this run worked: run again, it reads it afresh)"
            )),
            UpdateError::Rejected(_) | UpdateError::NotAuthentic { .. } => {
                Outcome::Failed(e.to_string())
            }
            UpdateError::Timeout { .. }
            | UpdateError::NoReply { .. }
            | UpdateError::Network { .. } => Outcome::Undetermined(e.to_string()),
            _ => Outcome::Failed(e.to_string()),
        }
    }

    // ---- steps 4-5: verify, retire ---------------------------------------

    async fn after_deploy(&mut self, ev: Evidence) -> Result<Outcome, CliError> {
        let at = now();
        let audit = evaluate(
            &ev,
            &EvalOptions {
                now: at,
                sig_warn_days: 3,
                accept_nexthop_name: self.args.accept_nexthop_name,
            },
        );
        if deployment(&ev, &self.hosts, &self.new) != Deployment::Everywhere {
            self.save(Stage::Deploy)?;
            return Ok(Outcome::Failed(
                "the new certificate is not served at every address after the deploy command; every record stays".into(),
            ));
        }
        let problems = verification(&audit, &self.hosts);
        if !problems.is_empty() {
            self.save(Stage::Verify)?;
            return Ok(Outcome::Failed(format!(
                "the new certificate is served but does not verify, every record stays: {}",
                problems.join("; ")
            )));
        }
        let verified_at = *self.progress.verified_at.get_or_insert(at);
        self.say(
            Stage::Verify,
            format!(
                "every address serves the new certificate and it authenticates (verified since {verified_at})"
            ),
        );
        self.save(Stage::Retire)?;
        let retire_at = Timestamp(verified_at.0 + self.retire_after(&ev) as i64);
        if at < retire_at {
            return Ok(Outcome::Verified { retire_at });
        }
        self.retire(ev).await
    }

    /// `--retire-after`, or twice the largest TLSA TTL seen.
    fn retire_after(&self, ev: &Evidence) -> u64 {
        self.args.retire_after.unwrap_or_else(|| {
            let seen = self
                .progress
                .preflight
                .hosts
                .values()
                .filter_map(|h| h.ttl_max)
                .chain(ev.hosts.iter().filter_map(|h| h.tlsa.as_ref()?.meta.ttl))
                .max()
                .unwrap_or(3600);
            2 * u64::from(seen)
        })
    }

    /// `publish --add`: step 1 alone.
    pub(super) async fn add(&mut self) -> Result<Outcome, CliError> {
        let ev = self.observe().await;
        if let Some(why) = no_hosts(&ev, &self.hosts) {
            return Ok(Outcome::Undetermined(why));
        }
        Ok(match self.publish(&ev).await? {
            Publish::Stop(o) => o,
            Publish::Done { .. } => Outcome::Published,
        })
    }

    /// `publish --remove-stale`: step 5 alone.
    pub(super) async fn remove_stale(&mut self) -> Result<Outcome, CliError> {
        let ev = self.observe().await;
        if let Some(why) = no_hosts(&ev, &self.hosts) {
            return Ok(Outcome::Undetermined(why));
        }
        self.retire(ev).await
    }

    /// Step 5: remove what matches nothing served, then confirm that no
    /// server serves it any more.
    async fn retire(&mut self, mut ev: Evidence) -> Result<Outcome, CliError> {
        let mut sent = false;
        for host in self.dane_hosts(&ev) {
            let (zone, current) = match self.read(&host).await {
                Ok(x) => x,
                Err(o) => return Ok(o),
            };
            let Some(h) = ev.hosts.iter().find(|h| h.name == host) else {
                continue;
            };
            let input = self.input(&ev, None);
            let old = rollover::retire::leftovers(&input, h, &current.records);
            if old.is_empty() {
                continue;
            }
            let update = match TlsaUpdate::remove(&zone, &current, &old) {
                Ok(u) => u,
                Err(e) => {
                    self.say(Stage::Retire, format!("{host}: kept: {e}"));
                    continue;
                }
            };
            if let Err(o) = self.send(Stage::Retire, &update).await {
                return Ok(o);
            }
            let at = now();
            self.progress
                .retired
                .extend(update.deletes().iter().map(|record| Change {
                    host: host.clone(),
                    record: record.clone(),
                    at,
                }));
            self.save(Stage::Retire)?;
            sent = true;
        }
        if self.args.update.dry_run {
            return Ok(Outcome::Waiting {
                why: "nothing sent (--dry-run)".into(),
                until: None,
            });
        }
        if sent {
            self.collector.forget(false);
            ev = self.observe().await;
        }
        let still: Vec<String> = ev
            .hosts
            .iter()
            .flat_map(|h| h.nameservers.iter().map(move |p| (h, p)))
            .filter(|(h, p)| {
                p.tlsa.tlsa_records().any(|r| {
                    self.progress
                        .retired
                        .iter()
                        .any(|c| c.host == h.name && c.record == *r)
                })
            })
            .map(|(_, p)| format!("{} [{}]", p.server.trim_end_matches('.'), p.address))
            .collect();
        if !still.is_empty() {
            return Ok(Outcome::Waiting {
                why: format!(
                    "removed on the primary; still served by {}",
                    still.join(", ")
                ),
                until: None,
            });
        }
        self.progress.done_at.get_or_insert(now());
        self.say(Stage::Done, "no server serves a retired record");
        self.save(Stage::Done)?;
        Ok(Outcome::Done)
    }

    // ---- output ----------------------------------------------------------

    /// How long to sleep before the next poll.
    fn nap(&self, o: &Outcome) -> Duration {
        let poll = Duration::from_secs(self.args.poll_interval.max(1));
        let until = match o {
            Outcome::Waiting { until, .. } => *until,
            Outcome::Verified { retire_at } => Some(*retire_at),
            _ => None,
        };
        match until {
            Some(t) => Duration::from_secs((t.0 - now().0).max(0) as u64 + 1)
                .min(poll.max(Duration::from_secs(300))),
            None => poll,
        }
    }

    pub(super) fn print(&self, outcome: &Outcome) -> Result<(), CliError> {
        let exit = outcome.exit() as u8;
        let mut out = std::io::stdout().lock();
        match self.args.format {
            Format::Json => {
                let run = RunInfo {
                    command: self.command.into(),
                    started_at: now(),
                    evaluated_at: now(),
                    resolvers: self.collector.dns().collector_info().resolvers,
                    trust_anchor: self.collector.dns().collector_info().trust_anchor,
                    families: self.args.net.family_names(),
                    fail_on: None,
                };
                let doc = Document {
                    schema_version: OUTPUT_SCHEMA_VERSION,
                    tool: &TOOL,
                    run,
                    command: self.command,
                    exit,
                    domain: &self.domain,
                    stage: self.progress.stage,
                    outcome: outcome.text(),
                    dry_run: self.args.update.dry_run,
                    events: &self.events,
                    decision: self
                        .last
                        .as_ref()
                        .map(|d| rollover_report::decision_value(d, &self.new)),
                    published: &self.progress.published,
                    deploys: &self.progress.deploys,
                    verified_at: self.progress.verified_at,
                    retired: &self.progress.retired,
                };
                serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
                writeln!(out)?;
            }
            _ => {
                for e in &self.events {
                    writeln!(out, "{}: {}: {}", self.domain, e.stage, e.text)?;
                }
                writeln!(
                    out,
                    "Summary: {}: {} (at {}, exit {exit})",
                    self.domain,
                    outcome.text(),
                    self.progress.stage.as_str()
                )?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// The machine report of a run.
#[derive(serde::Serialize)]
struct Document<'d> {
    schema_version: u32,
    tool: &'d crate::report::ToolInfo,
    run: RunInfo,
    command: &'static str,
    exit: u8,
    domain: &'d str,
    stage: Stage,
    outcome: String,
    dry_run: bool,
    events: &'d [Event],
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<serde_json::Value>,
    published: &'d [Change],
    deploys: &'d [crate::core::rollover::procedure::DeployRun],
    #[serde(skip_serializing_if = "Option::is_none")]
    verified_at: Option<Timestamp>,
    retired: &'d [Change],
}

enum Publish {
    Done { sent: bool },
    Stop(Outcome),
}

/// The records `--records` asks for.
fn chosen(new: &NewCertificate, choice: RecordChoice) -> Result<Vec<TlsaRdata>, CliError> {
    let want = |r: &TlsaRdata| match choice {
        RecordChoice::Pair => true,
        RecordChoice::Ee => r.usage == 3,
        RecordChoice::Ta => r.usage == 2,
    };
    let records: Vec<TlsaRdata> = new.records.iter().filter(|r| want(r)).cloned().collect();
    if records.is_empty() {
        return Err(CliError::usage(
            "--records ta needs the issuing CA: give the chain with --chain (or a full-chain --cert)",
        ));
    }
    Ok(records)
}

/// Why there is no host to roll over, if there is none.
fn no_hosts(ev: &Evidence, hosts: &[String]) -> Option<String> {
    if !hosts.is_empty() {
        return None;
    }
    let m = &ev.mx.meta;
    if m.outcome == Asked::Failed || m.dnssec == DnssecStatus::Indeterminate {
        return Some(format!("the MX lookup for {} failed", ev.domain));
    }
    ev.hosts
        .is_empty()
        .then(|| format!("{} has no mail host to roll over", ev.domain))
}

fn read_progress(path: &Path, domain: &str, new: &NewCertificate) -> Result<Progress, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => return Ok(Progress::new(domain, new)),
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Progress::new(domain, new));
        }
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let p: Progress = serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "{} is not a rollover state file: {e}",
            path.display()
        ))
    })?;
    if p.schema_version != PROGRESS_SCHEMA_VERSION {
        return Err(CliError::usage(format!(
            "{}: state schema version {} is not supported (this build writes {PROGRESS_SCHEMA_VERSION})",
            path.display(),
            p.schema_version
        )));
    }
    if !p.belongs_to(domain, new) {
        return Err(CliError::usage(format!(
            "{} belongs to another rollover ({} to key {}): use a new state file for this one",
            path.display(),
            p.domain,
            &p.new_key.chars().take(16).collect::<String>()
        )));
    }
    Ok(p)
}
