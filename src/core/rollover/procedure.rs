//! The rollover as a procedure that acts (`dane-audit rollover`): the
//! steps of RFC 7671 §8.1 and the seed (publish, wait, deploy, verify,
//! retire), what a run remembers for the next one, and what the evidence
//! says about how far the new certificate is deployed.
//!
//! A deploy hook or cron job calls the procedure again and again, and a
//! crash or `kill -9` may stop it anywhere. So every step is derived again
//! from what is observed (the records on the primary, the chains served)
//! whenever it can be; the state file keeps only what cannot be observed:
//! first sightings, the deploy hook's outcome, when verification first
//! passed (the retirement clock), and what this rollover added and removed.

use serde::{Deserialize, Serialize};

use crate::core::audit::DomainAudit;
use crate::core::cert::CertInfo;
use crate::core::evidence::{Evidence, Timestamp};
use crate::core::smtp::completed_tls;
use crate::core::tlsa::{MatchingType, Selector, TlsaRdata};
use crate::core::verdict::HostVerdict;

use super::needs::NewCertificate;
use super::timing::State;

/// Version of the procedure's state file.
pub const PROGRESS_SCHEMA_VERSION: u32 = 1;

/// The steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Put the records for NEW next to the current ones.
    Publish,
    /// Every server, then every cache: TTL plus margin.
    Wait,
    /// Install NEW on the servers (the operator's hook).
    Deploy,
    /// Every address serves NEW, and it authenticates.
    Verify,
    /// Remove the records that match nothing served.
    Retire,
    Done,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Publish => "publish",
            Stage::Wait => "wait",
            Stage::Deploy => "deploy",
            Stage::Verify => "verify",
            Stage::Retire => "retire",
            Stage::Done => "done",
        }
    }
}

/// One record this rollover added or removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub host: String,
    pub record: TlsaRdata,
    pub at: Timestamp,
}

/// One run of the deploy hook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRun {
    pub at: Timestamp,
    /// The exit status; `None` when it was killed (signal or timeout).
    pub status: Option<i32>,
}

impl DeployRun {
    pub fn succeeded(&self) -> bool {
        self.status == Some(0)
    }
}

/// What a run remembers for the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub schema_version: u32,
    pub domain: String,
    /// `3 1 1` data of NEW: a state file belongs to one rollover.
    pub new_key: String,
    pub stage: Stage,
    /// What preflight remembers: first sightings, the largest TTL.
    #[serde(default)]
    pub preflight: State,
    #[serde(default)]
    pub published: Vec<Change>,
    #[serde(default)]
    pub deploys: Vec<DeployRun>,
    /// When verification first passed: the retirement clock starts there.
    #[serde(default)]
    pub verified_at: Option<Timestamp>,
    #[serde(default)]
    pub retired: Vec<Change>,
    #[serde(default)]
    pub done_at: Option<Timestamp>,
}

impl Progress {
    pub fn new(domain: &str, new: &NewCertificate) -> Progress {
        Progress {
            schema_version: PROGRESS_SCHEMA_VERSION,
            domain: domain.to_string(),
            new_key: key_of(new.leaf()),
            stage: Stage::Publish,
            preflight: State::default(),
            published: Vec::new(),
            deploys: Vec::new(),
            verified_at: None,
            retired: Vec::new(),
            done_at: None,
        }
    }

    /// Whether this state belongs to the rollover of `new` for `domain`.
    pub fn belongs_to(&self, domain: &str, new: &NewCertificate) -> bool {
        self.domain == domain && self.new_key == key_of(new.leaf())
    }
}

fn key_of(c: &CertInfo) -> String {
    c.association(Selector::Spki, MatchingType::Sha256)
        .map(hex::encode)
        .unwrap_or_default()
}

/// How far NEW is deployed, over the addresses of the judged hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// No address serves NEW.
    Nowhere,
    /// Some do, some serve another certificate or could not be tested.
    Partly,
    /// Every address completed TLS with NEW's key.
    Everywhere,
}

/// How far NEW is deployed at the addresses that were probed.
pub fn deployment(ev: &Evidence, hosts: &[String], new: &NewCertificate) -> Deployment {
    let want = new.leaf().spki.as_deref();
    let probes: Vec<bool> = ev
        .hosts
        .iter()
        .filter(|h| hosts.is_empty() || hosts.contains(&h.name))
        .flat_map(|h| &h.smtp)
        .map(|p| {
            completed_tls(p)
                && p.chain
                    .first()
                    .is_some_and(|d| CertInfo::parse(&d.0).spki.as_deref() == want)
        })
        .collect();
    match (probes.iter().filter(|x| **x).count(), probes.len()) {
        (0, _) => Deployment::Nowhere,
        (n, all) if n == all => Deployment::Everywhere,
        _ => Deployment::Partly,
    }
}

/// Why the deployed certificate does not count as verified: per address,
/// one line (empty: verified). An address of a DANE host must pass; an
/// address of a host without DANE only has to serve NEW.
pub fn verification(audit: &DomainAudit, hosts: &[String]) -> Vec<String> {
    audit
        .hosts
        .iter()
        .filter(|h| hosts.is_empty() || hosts.contains(&h.name))
        .flat_map(|h| {
            h.addresses.iter().filter_map(move |a| {
                let ok = match a.verdict {
                    HostVerdict::Pass => true,
                    HostVerdict::NotDane => !h.dane,
                    HostVerdict::Fail | HostVerdict::NotTested => false,
                };
                (!ok).then(|| {
                    format!(
                        "{} [{}]: {}{}",
                        h.name,
                        a.address,
                        a.verdict,
                        a.reason
                            .as_ref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    )
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rollover::fixtures::{case, new_cert};
    use crate::core::{EvalOptions, evaluate};

    #[test]
    fn deployment_follows_the_served_leaf_key() {
        let (served_new, _) = case("address-serves-new-already-safe");
        let (served_old, _) = case("ready-state-remembers-an-old-first-sighting-safe");
        let (unreachable, _) = case("smtp-unreachable-undetermined");
        let next = new_cert(&["leaf-next", "int-ca"]);
        assert_eq!(deployment(&served_new, &[], &next), Deployment::Everywhere);
        assert_eq!(deployment(&served_old, &[], &next), Deployment::Nowhere);
        assert_eq!(deployment(&unreachable, &[], &next), Deployment::Nowhere);
        let mut half = served_new.clone();
        let mut old = served_old.hosts[0].smtp[0].clone();
        old.address = "192.0.2.2".parse().unwrap();
        half.hosts[0].smtp.push(old);
        assert_eq!(deployment(&half, &[], &next), Deployment::Partly);
    }

    #[test]
    fn verification_needs_every_address_to_pass() {
        let (ev, at) = case("address-serves-new-already-safe");
        assert!(verification(&evaluate(&ev, &EvalOptions::at(at)), &[]).is_empty());
        let (ev, at) = case("live-broken-new-fixes-it-safe");
        let problems = verification(&evaluate(&ev, &EvalOptions::at(at)), &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("192.0.2.1"), "{problems:?}");
    }

    #[test]
    fn a_state_belongs_to_one_rollover() {
        let next = new_cert(&["leaf-next", "int-ca"]);
        let p = Progress::new("example.net", &next);
        assert!(p.belongs_to("example.net", &next));
        assert!(!p.belongs_to("example.org", &next));
        assert!(!p.belongs_to("example.net", &new_cert(&["leaf-rsa"])));
        let back: Progress = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
