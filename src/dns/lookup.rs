//! Validated lookups with CNAME chains followed above the validator, the
//! resolver's second opinion, and the MX and host evidence built from them.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::net::xfer::FirstAnswer;
use hickory_resolver::net::{DnsError, DnsHandle, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::{DnsRequestOptions, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::convert::{self, show, status, worst};
use super::transport::EDNS_PAYLOAD;
use super::upstream::{Noted, rcode_kind, rcode_str, traced};
use super::{DnsCollector, now};
use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{
    CnameHop, Failure, FailureKind, HostEvidence, Lookup, LookupMeta, MxRecord, Outcome, Witness,
};
use crate::core::tlsa::TlsaRdata;

/// Longest CNAME chain followed.
const MAX_HOPS: usize = 8;

/// A finished lookup: metadata, the records of the asked type at the end of
/// the chain, and the name the chain ended at.
pub struct Resolved {
    pub meta: LookupMeta,
    pub records: Vec<Record>,
    pub final_name: Name,
    /// For TLSA answers: [`convert::answer_octets`] at the final name.
    pub octets: Option<u32>,
}

impl Resolved {
    fn into_lookup<T>(self, f: impl Fn(&Record) -> Option<T>) -> Lookup<T> {
        Lookup {
            records: self.records.iter().filter_map(f).collect(),
            meta: self.meta,
        }
    }
}

/// One validated question.
enum Step {
    Final {
        outcome: Outcome,
        status: DnssecStatus,
        records: Vec<Record>,
        ttl: Option<u32>,
        rrsigs: Vec<crate::core::evidence::Rrsig>,
        failure: Option<Failure>,
        octets: Option<u32>,
    },
    Alias {
        target: Name,
        status: DnssecStatus,
        rrsigs: Vec<crate::core::evidence::Rrsig>,
    },
}

fn failed_meta(qname: String, f: Failure) -> LookupMeta {
    LookupMeta {
        qname,
        outcome: Outcome::Failed,
        failure: Some(f),
        dnssec: DnssecStatus::Indeterminate,
        ttl: None,
        rrsigs: Vec::new(),
        cnames: Vec::new(),
        witness: None,
    }
}

fn net_failure(e: &NetError) -> Failure {
    let kind = match e {
        NetError::Timeout => FailureKind::Timeout,
        NetError::Dns(DnsError::ResponseCode(c)) => rcode_kind(*c),
        NetError::Io(_) | NetError::NoConnections => FailureKind::Network,
        NetError::Proto(_) => FailureKind::Malformed,
        _ => FailureKind::Other,
    };
    Failure {
        kind,
        detail: e.to_string(),
    }
}

/// Overall bound on one validated question (the validator may ask many).
fn step_limit(c: &DnsCollector) -> Duration {
    let per = c.inner.cfg.timeout * (c.inner.cfg.attempts.max(1) as u32);
    (per * 8).max(Duration::from_secs(10))
}

/// How one validated question came out, for the iterative mode's retry.
fn validity(step: &(Step, Vec<Noted>)) -> super::iterate::Validity {
    use super::iterate::Validity;
    let (step, noted) = step;
    match step {
        Step::Final {
            outcome: Outcome::Failed,
            ..
        } => Validity::Failed,
        Step::Final { status, .. } | Step::Alias { status, .. }
            if *status == DnssecStatus::Bogus =>
        {
            if noted.is_empty() {
                Validity::Bogus
            } else {
                Validity::Failed
            }
        }
        _ => Validity::Good,
    }
}

impl DnsCollector {
    /// One validated question; in iterative mode a Bogus answer is asked
    /// again from other servers, as a resolver would.
    async fn validated_step(&self, name: &Name, qtype: RecordType) -> (Step, Vec<Noted>) {
        let first = self.validated_once(name, qtype).await;
        match self.inner.net.iterator() {
            Some(it) => {
                super::iterate::retry_bogus(it, name, qtype, first, validity, || {
                    self.validated_once(name, qtype)
                })
                .await
            }
            None => first,
        }
    }

    async fn validated_once(&self, name: &Name, qtype: RecordType) -> (Step, Vec<Noted>) {
        let mut opts = DnsRequestOptions::default();
        opts.edns_set_dnssec_ok = true;
        opts.edns_payload_len = EDNS_PAYLOAD;
        opts.recursion_desired = true;
        let q = Query::query(name.clone(), qtype);
        let limit = step_limit(self);
        let fut = self.inner.validator.lookup(q, opts).first_answer();
        let (res, noted) = traced(async move {
            tokio::time::timeout(limit, fut)
                .await
                .unwrap_or(Err(NetError::Timeout))
        })
        .await;
        let step = match res {
            Ok(resp) => analyze(&resp, name, qtype, None),
            Err(NetError::Dns(DnsError::Nsec {
                response, proof, ..
            })) => analyze(&response, name, qtype, Some(proof)),
            Err(e) => {
                let f = noted
                    .iter()
                    .find(|n| n.name == *name && n.qtype == qtype)
                    .or_else(|| noted.first())
                    .map(|n| n.failure.clone())
                    .unwrap_or_else(|| net_failure(&e));
                Step::Final {
                    outcome: Outcome::Failed,
                    status: DnssecStatus::Indeterminate,
                    records: Vec::new(),
                    ttl: None,
                    rrsigs: Vec::new(),
                    failure: Some(f),
                    octets: None,
                }
            }
        };
        (step, noted)
    }

    /// Looks up `name qtype`, following CNAMEs one validated question per
    /// hop, and asks the resolver for its own view in parallel.
    pub(crate) async fn resolve(&self, name: &Name, qtype: RecordType) -> Resolved {
        let (chain, witness) = tokio::join!(self.chase(name, qtype), self.witness(name, qtype));
        let mut r = chain;
        r.meta.witness = witness;
        r
    }

    async fn chase(&self, name: &Name, qtype: RecordType) -> Resolved {
        let mut meta = LookupMeta {
            qname: show(name),
            outcome: Outcome::Failed,
            failure: None,
            dnssec: DnssecStatus::Secure,
            ttl: None,
            rrsigs: Vec::new(),
            cnames: Vec::new(),
            witness: None,
        };
        let mut cur = name.clone();
        let mut seen = vec![name.clone()];
        loop {
            let (step, noted) = self.validated_step(&cur, qtype).await;
            match step {
                Step::Alias {
                    target,
                    status,
                    rrsigs,
                } => {
                    meta.rrsigs.extend(rrsigs);
                    let status = reclassify_status(status, &noted);
                    meta.cnames.push(CnameHop {
                        owner: show(&cur),
                        target: show(&target),
                        dnssec: status,
                    });
                    meta.dnssec = worst(meta.dnssec, status);
                    if seen.contains(&target) || seen.len() > MAX_HOPS {
                        meta.outcome = Outcome::Failed;
                        meta.failure = Some(Failure {
                            kind: FailureKind::Other,
                            detail: if seen.contains(&target) {
                                format!("CNAME loop at {}", show(&target))
                            } else {
                                format!("more than {MAX_HOPS} CNAMEs")
                            },
                        });
                        meta.dnssec = DnssecStatus::Indeterminate;
                        return Resolved {
                            meta,
                            records: Vec::new(),
                            final_name: cur,
                            octets: None,
                        };
                    }
                    seen.push(target.clone());
                    cur = target;
                }
                Step::Final {
                    outcome,
                    status,
                    records,
                    ttl,
                    rrsigs,
                    failure,
                    octets,
                } => {
                    meta.rrsigs.extend(rrsigs);
                    meta.ttl = ttl;
                    // Hickory turns a failed DNSKEY/DS fetch into Bogus: a Bogus
                    // verdict that met transport failures is a failed lookup.
                    let (outcome, status, failure) = match (status, noted.first()) {
                        (DnssecStatus::Bogus, Some(n)) if failure.is_none() => (
                            Outcome::Failed,
                            DnssecStatus::Indeterminate,
                            Some(validation_failure(n)),
                        ),
                        _ => (outcome, status, failure),
                    };
                    meta.outcome = outcome;
                    meta.failure = failure;
                    meta.dnssec = if outcome == Outcome::Failed {
                        DnssecStatus::Indeterminate
                    } else {
                        worst(meta.dnssec, status)
                    };
                    return Resolved {
                        meta,
                        records,
                        final_name: cur,
                        octets,
                    };
                }
            }
        }
    }

    async fn witness_enabled(&self) -> bool {
        *self
            .inner
            .witness_on
            .get_or_init(|| async {
                let f = self
                    .inner
                    .net
                    .resolve(&Name::root(), RecordType::DNSKEY, false)
                    .await;
                matches!(f.result, Ok(r) if r.metadata.response_code == ResponseCode::NoError
                    && r.metadata.authentic_data)
            })
            .await
    }

    /// The resolver's own answer with CD=0 (None when it does not validate).
    async fn witness(&self, name: &Name, qtype: RecordType) -> Option<Witness> {
        if !self.witness_enabled().await {
            return None;
        }
        let net = &self.inner.net;
        let first = net.resolve(name, qtype, false).await;
        let cd_rcode = match &first.result {
            Ok(r) if r.metadata.response_code == ResponseCode::ServFail => {
                Some(match net.resolve(name, qtype, true).await.result {
                    Ok(r) => rcode_str(r.metadata.response_code),
                    Err(f) => failure_word(&f),
                })
            }
            _ => None,
        };
        Some(match &first.result {
            Ok(r) => witness_from_response(r, cd_rcode),
            Err(f) => Witness {
                rcode: failure_word(f),
                ad: false,
                ede: None,
                cd_rcode: None,
            },
        })
    }
}

fn failure_word(f: &Failure) -> String {
    match f.kind {
        FailureKind::Timeout => "timeout".into(),
        FailureKind::Malformed => "malformed".into(),
        FailureKind::Network => "network-error".into(),
        k => k.as_str().to_string(),
    }
}

/// The resolver's view from its CD=0 answer (and the CD=1 rcode on SERVFAIL).
pub fn witness_from_response(resp: &Message, cd_rcode: Option<String>) -> Witness {
    Witness {
        rcode: rcode_str(resp.metadata.response_code),
        ad: resp.metadata.authentic_data,
        ede: convert::ede(resp),
        cd_rcode,
    }
}

fn validation_failure(n: &Noted) -> Failure {
    Failure {
        kind: n.failure.kind,
        detail: format!(
            "DNSSEC validation could not fetch {} {}: {}",
            show(&n.name),
            n.qtype,
            n.failure.detail
        ),
    }
}

fn reclassify_status(s: DnssecStatus, noted: &[Noted]) -> DnssecStatus {
    if s == DnssecStatus::Bogus && !noted.is_empty() {
        DnssecStatus::Indeterminate
    } else {
        s
    }
}

/// Reads one validated response. `nsec` is hickory's verdict on the
/// NSEC/NSEC3 proof when it rejected it (`DnsError::Nsec`).
fn analyze(resp: &Message, name: &Name, qtype: RecordType, nsec: Option<Proof>) -> Step {
    let now = now();
    let here: Vec<Record> = resp
        .answers
        .iter()
        .filter(|r| r.name == *name && r.record_type() == qtype)
        .cloned()
        .collect();
    let proof_status = nsec.map(status);
    let denial_types = [RecordType::NSEC, RecordType::NSEC3];
    if !here.is_empty() {
        let mut st = here
            .iter()
            .map(|r| status(r.proof))
            .reduce(worst)
            .unwrap_or(DnssecStatus::Indeterminate);
        // hickory's NSEC proof for wildcard answers is unreliable (see
        // `wildcard`); its signature checks are not, so only the proof is redone.
        let proof_redone = proof_status == Some(DnssecStatus::Bogus)
            && st == DnssecStatus::Secure
            && super::wildcard::nsec_proves_expansion(resp, name, qtype);
        if let Some(p) = proof_status.filter(|_| !proof_redone) {
            st = worst(st, p);
        }
        let mut rrsigs = convert::rrsigs(&resp.answers, Some(name), &[qtype], now);
        // A wildcard-expanded answer carries the proof that `name` itself is absent.
        let wildcard = resp.answers.iter().any(|r| {
            r.name == *name
                && matches!(&r.data, RData::DNSSEC(hickory_resolver::proto::dnssec::rdata::DNSSECRData::RRSIG(s))
                    if s.input().type_covered == qtype && s.input().num_labels < r.name.num_labels())
        });
        if wildcard {
            rrsigs.extend(convert::rrsigs(&resp.authorities, None, &denial_types, now));
        }
        return Step::Final {
            outcome: Outcome::Answer,
            status: st,
            ttl: here.iter().map(|r| r.ttl).min(),
            records: here,
            rrsigs,
            failure: None,
            octets: (qtype == RecordType::TLSA)
                .then(|| convert::answer_octets(name, qtype, &resp.answers))
                .flatten(),
        };
    }
    if qtype != RecordType::CNAME
        && let Some(c) = resp
            .answers
            .iter()
            .find(|r| r.name == *name && r.record_type() == RecordType::CNAME)
        && let RData::CNAME(target) = &c.data
    {
        let mut st = status(c.proof);
        if let Some(p) = proof_status {
            st = worst(st, p);
        }
        return Step::Alias {
            target: target.0.clone(),
            status: st,
            rrsigs: convert::rrsigs(&resp.answers, Some(name), &[RecordType::CNAME], now),
        };
    }
    let outcome = if resp.metadata.response_code == ResponseCode::NXDomain {
        Outcome::NxDomain
    } else {
        Outcome::NoData
    };
    let st = match proof_status {
        Some(p) => p,
        None if resp.authorities.iter().any(|r| r.proof == Proof::Secure) => DnssecStatus::Secure,
        None => DnssecStatus::Insecure,
    };
    let ttl = resp.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
        _ => None,
    });
    Step::Final {
        outcome,
        status: st,
        records: Vec::new(),
        ttl,
        rrsigs: convert::rrsigs(&resp.authorities, None, &denial_types, now),
        failure: None,
        octets: None,
    }
}

/// Status of a denial answer as hickory left it (see [`analyze`]).
pub fn denial_status(resp: &Message, nsec: Option<Proof>) -> DnssecStatus {
    match nsec {
        Some(p) => status(p),
        None if resp.authorities.iter().any(|r| r.proof == Proof::Secure) => DnssecStatus::Secure,
        None => DnssecStatus::Insecure,
    }
}

fn invalid_name(qname: &str, why: convert::NameError) -> LookupMeta {
    failed_meta(
        qname.trim().to_ascii_lowercase(),
        Failure {
            kind: FailureKind::Other,
            detail: why.to_string(),
        },
    )
}

pub async fn mx(c: &DnsCollector, domain: &str) -> Lookup<MxRecord> {
    let name = match convert::normalize(domain) {
        Ok((_, n)) => n,
        Err(why) => {
            return Lookup {
                meta: invalid_name(domain, why),
                records: Vec::new(),
            };
        }
    };
    let mut l = c
        .resolve(&name, RecordType::MX)
        .await
        .into_lookup(convert::mx);
    l.records
        .sort_by(|a, b| (a.preference, &a.exchange).cmp(&(b.preference, &b.exchange)));
    l.records.dedup();
    l
}

fn family_secure(l: &Lookup<IpAddr>) -> bool {
    l.meta.outcome == Outcome::Answer
        && l.meta.dnssec == DnssecStatus::Secure
        && !l.records.is_empty()
}

fn tlsa_name(base: &Name) -> Option<Name> {
    Name::from_ascii("_25._tcp.").ok()?.append_domain(base).ok()
}

pub async fn host(c: &DnsCollector, name: &str, preference: Option<u16>) -> HostEvidence {
    let (shown, qname) = match convert::normalize(name) {
        Ok(x) => x,
        Err(why) => {
            let meta = invalid_name(name, why);
            return HostEvidence {
                name: meta.qname.clone(),
                preference,
                tlsa_base: meta.qname.clone(),
                a: Lookup {
                    meta: meta.clone(),
                    records: Vec::new(),
                },
                aaaa: Lookup {
                    meta,
                    records: Vec::new(),
                },
                tlsa: None,
                nameservers: Vec::new(),
                smtp: Vec::new(),
                tlsa_answer_octets: None,
            };
        }
    };
    let (a, aaaa) = tokio::join!(
        c.resolve(&qname, RecordType::A),
        c.resolve(&qname, RecordType::AAAA)
    );
    // RFC 7672 §2.2.2: the expanded name is the TLSA base domain only when
    // every alias on the way is secure.
    let chain = if !a.meta.cnames.is_empty() { &a } else { &aaaa };
    let expanded = (!chain.meta.cnames.is_empty()
        && chain
            .meta
            .cnames
            .iter()
            .all(|h| h.dnssec == DnssecStatus::Secure))
    .then(|| chain.final_name.clone());
    let a = a.into_lookup(convert::address);
    let aaaa = aaaa.into_lookup(convert::address);
    let mut base = expanded.clone().unwrap_or_else(|| qname.clone());
    let checks = c.inner.cfg.nameserver_checks;
    let probe = |b: &Name| {
        let n = tlsa_name(b);
        async move {
            match (n, checks) {
                (Some(n), true) => super::ns_probe::probe_servers(c, &n).await,
                _ => Vec::new(),
            }
        }
    };
    let (tlsa, nameservers) = if family_secure(&a) || family_secure(&aaaa) {
        // The TLSA lookup, and the size of its signed answer.
        let at = |b: &Name| {
            let b = b.clone();
            async move {
                match tlsa_name(&b) {
                    Some(n) => {
                        let r = c.resolve(&n, RecordType::TLSA).await;
                        let octets = r.octets;
                        (r.into_lookup(convert::tlsa), octets)
                    }
                    None => (
                        Lookup {
                            meta: invalid_name(
                                &show(&b),
                                convert::NameError::TooLong(format!("_25._tcp.{}", show(&b))),
                            ),
                            records: Vec::new(),
                        },
                        None,
                    ),
                }
            }
        };
        if expanded.is_none() {
            // The base domain is known: ask the servers while the resolver works.
            let (t, ns) = tokio::join!(at(&base), probe(&base));
            (Some(t), ns)
        } else {
            let first: (Lookup<TlsaRdata>, Option<u32>) = at(&base).await;
            let no_secure_tlsa = matches!(
                (first.0.meta.outcome, first.0.meta.dnssec),
                (Outcome::NoData | Outcome::NxDomain, DnssecStatus::Secure)
                    | (_, DnssecStatus::Insecure)
            );
            let t = if no_secure_tlsa {
                base = qname.clone();
                at(&base).await
            } else {
                first
            };
            (Some(t), probe(&base).await)
        }
    } else {
        (None, Vec::new())
    };
    let (tlsa, tlsa_answer_octets) = match tlsa {
        Some((t, octets)) => (Some(t), octets),
        None => (None, None),
    };
    HostEvidence {
        name: shown,
        preference,
        tlsa_base: show(&base),
        a,
        aaaa,
        tlsa,
        nameservers,
        smtp: Vec::new(),
        tlsa_answer_octets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::evidence::{Evidence, Timestamp};
    use crate::core::finding::Code;
    use hickory_resolver::proto::op::{DnsResponse, Edns, MessageType, OpCode};
    use hickory_resolver::proto::rr::rdata::opt::{EdnsCode, EdnsOption};

    fn synthetic(code: ResponseCode, ad: bool, ede: Option<(u16, &str)>) -> Message {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("_25._tcp.mx.example.").unwrap(),
            RecordType::TLSA,
        ));
        m.metadata.response_code = code;
        m.metadata.authentic_data = ad;
        let mut edns = Edns::new();
        if let Some((c, text)) = ede {
            let mut data = c.to_be_bytes().to_vec();
            data.extend_from_slice(text.as_bytes());
            edns.options_mut().insert(EdnsOption::Unknown(15, data));
        }
        m.edns = Some(edns);
        // Through the wire format and back, as the collector sees it.
        DnsResponse::from_buffer(m.to_vec().unwrap())
            .unwrap()
            .into_message()
    }

    #[test]
    fn witness_reads_rcode_ad_and_ede() {
        let m = synthetic(
            ResponseCode::ServFail,
            false,
            Some((7, "signature expired")),
        );
        let w = witness_from_response(&m, Some("NOERROR".into()));
        assert_eq!(w.rcode, "SERVFAIL");
        assert!(!w.ad);
        let e = w.ede.unwrap();
        assert_eq!((e.code, e.text.as_str()), (7, "signature expired"));
        assert_eq!(w.cd_rcode.as_deref(), Some("NOERROR"));
        let ok = witness_from_response(&synthetic(ResponseCode::NoError, true, None), None);
        assert_eq!((ok.rcode.as_str(), ok.ad, ok.ede), ("NOERROR", true, None));
        assert_eq!(u16::from(EdnsCode::from(15u16)), 15);
    }

    /// The in-process validator says Secure, the resolver SERVFAILs with an
    /// EDE: the disagreement reaches the evidence and the core reports it.
    #[test]
    fn witness_disagreement_reaches_the_evidence() {
        let resp = synthetic(ResponseCode::ServFail, false, Some((6, "DNSSEC Bogus")));
        let witness = witness_from_response(&resp, Some("NOERROR".into()));
        let meta = |qname: &str, outcome, w: Option<Witness>| LookupMeta {
            qname: qname.into(),
            outcome,
            failure: None,
            dnssec: DnssecStatus::Secure,
            ttl: Some(300),
            rrsigs: vec![],
            cnames: vec![],
            witness: w,
        };
        let ev = Evidence {
            schema_version: crate::core::evidence::EVIDENCE_SCHEMA_VERSION,
            domain: "example".into(),
            collected_at: Timestamp(1_800_000_000),
            collector: Default::default(),
            mx: Lookup {
                meta: meta("example", Outcome::Answer, None),
                records: vec![MxRecord {
                    preference: 10,
                    exchange: "mx.example".into(),
                }],
            },
            hosts: vec![HostEvidence {
                name: "mx.example".into(),
                preference: Some(10),
                tlsa_base: "mx.example".into(),
                a: Lookup {
                    meta: meta("mx.example", Outcome::Answer, None),
                    records: vec!["192.0.2.25".parse().unwrap()],
                },
                aaaa: Lookup {
                    meta: meta("mx.example", Outcome::NoData, None),
                    records: vec![],
                },
                tlsa: Some(Lookup {
                    meta: meta("_25._tcp.mx.example", Outcome::NoData, Some(witness)),
                    records: vec![],
                }),
                nameservers: vec![],
                smtp: vec![],
                tlsa_answer_octets: None,
            }],
            chain: vec![],
            nameservers: vec![],
        };
        // The evidence keeps the witness through its JSON form.
        let json = serde_json::to_string(&ev).unwrap();
        let back: Evidence = serde_json::from_str(&json).unwrap();
        let w = back.hosts[0]
            .tlsa
            .as_ref()
            .unwrap()
            .meta
            .witness
            .clone()
            .unwrap();
        assert_eq!(w.rcode, "SERVFAIL");
        assert_eq!(w.ede.unwrap().code, 6);
        let audit = crate::core::evaluate(
            &back,
            &crate::core::EvalOptions::at(Timestamp(1_800_000_000)),
        );
        let f = audit
            .findings
            .iter()
            .find(|f| f.code == Code::DnssecWitnessDisagree)
            .expect("dnssec-witness-disagree");
        assert!(f.message.contains("EDE 6"), "{}", f.message);
    }
}
