//! Each authoritative server address of a zone, asked on its own (RD=0,
//! DO=1), and the RRSIG times of the DNSKEY/DS chain above a zone.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::future::join_all;
use hickory_resolver::net::xfer::FirstAnswer;
use hickory_resolver::net::{DnsError, DnsHandle, NetError};
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use super::convert::{self, show};
use super::lookup::denial_status;
use super::transport::EDNS_PAYLOAD;
use super::transport::{Transport, failure};
use super::upstream::{Fetched, Pinned, pinned, rcode_kind, rcode_str, traced};
use super::{DnsCollector, family_ok, now};
use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::FailureKind;
use crate::core::evidence::{Failure, NsAnswer, NsProbe, NsRecord, Outcome, ZoneSignatures};
use crate::skip::Refusal;

/// Most server addresses probed per zone (a zone with 13 NS names × 2 families is 26).
const MAX_SERVERS: usize = 32;

/// What a SOA question at `cur` says about the zone holding it.
enum Apex {
    Found(Name),
    /// The resolver could not answer (the zone's servers fail).
    Broken,
    /// Not known here: ask one label up.
    Up,
    Failed,
}

async fn apex_at(c: &DnsCollector, cur: &Name) -> Apex {
    let f = c.inner.net.resolve(cur, RecordType::SOA, true).await;
    let resp = match f.result {
        Ok(r) => r,
        // The resolver gave up on the zone within our time, or (iterative
        // mode) none of the zone's servers could be reached: as SERVFAIL.
        Err(e)
            if matches!(
                e.kind,
                crate::core::evidence::FailureKind::Timeout
                    | crate::core::evidence::FailureKind::Network
            ) =>
        {
            return Apex::Broken;
        }
        Err(_) => return Apex::Failed,
    };
    match resp.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        ResponseCode::ServFail => return Apex::Broken,
        _ => return Apex::Failed,
    }
    if resp
        .answers
        .iter()
        .any(|r| r.name == *cur && r.record_type() == RecordType::SOA)
    {
        return Apex::Found(cur.clone());
    }
    let alias = resp
        .answers
        .iter()
        .any(|r| r.name == *cur && r.record_type() == RecordType::CNAME);
    match resp
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(cur))
    {
        Some(soa) if !alias => Apex::Found(soa.name.clone()),
        _ => Apex::Up,
    }
}

/// The zone that holds `name` (the closest enclosing SOA) and its NS names.
/// When the resolver cannot reach that zone (SERVFAIL), the delegation is
/// read from a referral of the parent zone's servers, so that dead servers
/// are still examined.
pub async fn delegation(c: &DnsCollector, name: &Name) -> Option<(Name, Vec<Name>)> {
    let mut cur = name.clone();
    let mut broken = 0;
    loop {
        match apex_at(c, &cur).await {
            Apex::Found(zone) => {
                if broken == 0 {
                    let ns = ns_names(c, &zone).await;
                    if !ns.is_empty() {
                        return Some((zone, ns));
                    }
                }
                return referral(c, &zone, name).await;
            }
            // A dead resolver would cost a timeout per label: give up soon.
            Apex::Broken if broken >= 4 => return None,
            Apex::Broken => broken += 1,
            Apex::Up => {}
            Apex::Failed => return None,
        }
        if cur.is_root() {
            return None;
        }
        cur = cur.base_name();
    }
}

/// Asks the servers of `parent` directly for the delegation that holds
/// `name` (the NS RRset of the referral).
async fn referral(c: &DnsCollector, parent: &Name, name: &Name) -> Option<(Name, Vec<Name>)> {
    let servers = ns_names(c, parent).await;
    let mut tried = 0;
    for ns in &servers {
        for ip in addresses(c, ns).await {
            if c.inner.cfg.skip.address(ip) {
                continue;
            }
            tried += 1;
            if tried > 4 {
                return None;
            }
            let f = c
                .inner
                .net
                .direct(SocketAddr::new(ip, 53), name, RecordType::NS)
                .await;
            let Ok(resp) = f.result else {
                continue;
            };
            let cut = resp
                .authorities
                .iter()
                .chain(&resp.answers)
                .find(|r| {
                    r.record_type() == RecordType::NS
                        && r.name != *parent
                        && parent.zone_of(&r.name)
                        && r.name.zone_of(name)
                })
                .map(|r| r.name.clone());
            if let Some(cut) = cut {
                let mut names: Vec<Name> = resp
                    .authorities
                    .iter()
                    .chain(&resp.answers)
                    .filter(|r| r.name == cut)
                    .filter_map(|r| match &r.data {
                        RData::NS(ns) => Some(ns.0.to_lowercase()),
                        _ => None,
                    })
                    .collect();
                names.sort_by_key(show);
                names.dedup();
                return Some((cut, names));
            }
        }
    }
    None
}

async fn ns_names(c: &DnsCollector, zone: &Name) -> Vec<Name> {
    let f = c.inner.net.resolve(zone, RecordType::NS, true).await;
    let Ok(resp) = f.result else {
        return Vec::new();
    };
    let mut names: Vec<Name> = resp
        .answers
        .iter()
        .filter(|r| r.name == *zone)
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_lowercase()),
            _ => None,
        })
        .collect();
    names.sort_by_key(show);
    names.dedup();
    names
}

async fn addresses(c: &DnsCollector, ns: &Name) -> Vec<IpAddr> {
    let fam = c.inner.cfg.families;
    let mut types = Vec::new();
    if fam.ipv4 {
        types.push(RecordType::A);
    }
    if fam.ipv6 {
        types.push(RecordType::AAAA);
    }
    let got = join_all(types.iter().map(|t| c.inner.net.resolve(ns, *t, true))).await;
    let mut out: Vec<IpAddr> = got
        .iter()
        .filter_map(|f| f.result.as_ref().ok())
        .flat_map(|r| {
            r.answers
                .iter()
                .filter_map(convert::address)
                .collect::<Vec<_>>()
        })
        .filter(|ip| family_ok(fam, *ip))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Asks every server address of the zone holding `qname` for TLSA at
/// `qname`, a control question (A) at the same name, and the zone's SOA.
pub async fn probe_servers(c: &DnsCollector, qname: &Name) -> Vec<NsProbe> {
    let Some((zone, servers)) = delegation(c, qname).await else {
        return Vec::new();
    };
    let addrs = join_all(servers.iter().map(|ns| addresses(c, ns))).await;
    let targets: Vec<(Name, IpAddr)> = servers
        .into_iter()
        .zip(addrs)
        .flat_map(|(ns, ips)| ips.into_iter().map(move |ip| (ns.clone(), ip)))
        .take(MAX_SERVERS)
        .collect();
    let zone = &zone;
    join_all(targets.iter().map(|(ns, ip)| async move {
        match c.inner.cfg.skip.refusal(*ip) {
            Some(why) => not_asked(zone, ns, *ip, qname, why),
            None => probe_one(c, zone, ns, *ip, qname).await,
        }
    }))
    .await
}

/// A skip-listed (or screened) server address: recorded, so the report
/// says it was not checked and why, but never sent a packet.
fn not_asked(zone: &Name, ns: &Name, ip: IpAddr, qname: &Name, why: Refusal) -> NsProbe {
    let skipped = NsAnswer {
        outcome: Outcome::Failed,
        failure: Some(failure(FailureKind::Skipped, why.to_string())),
        authoritative: false,
        records: Vec::new(),
        denial: None,
        ttl: None,
        elapsed_ms: 0,
        truncated: false,
    };
    NsProbe {
        zone: show(zone),
        server: show(ns),
        address: ip,
        qname: show(qname),
        control: skipped.clone(),
        tlsa: skipped,
        soa_serial: None,
        dnskey: None,
        tcp: None,
    }
}

/// One server address: TLSA at `qname` (UDP, then TCP when truncated), a
/// control question at the same name, and for its zone the SOA and the
/// DNSKEY RRset (over UDP only); and whether it answers over TCP at all
/// (once per address). Every answer is cached per server, so hosts in one
/// zone cost one probe per server.
async fn probe_one(c: &DnsCollector, zone: &Name, ns: &Name, ip: IpAddr, qname: &Name) -> NsProbe {
    let net = &c.inner.net;
    let server = SocketAddr::new(ip, 53);
    let ((tlsa, truncated), control, soa, dnskey, tcp) = tokio::join!(
        tlsa_over_udp_then_tcp(c, server, qname),
        net.direct(server, qname, RecordType::A),
        net.direct(server, zone, RecordType::SOA),
        net.direct_over(server, zone, RecordType::DNSKEY, Transport::Udp),
        net.tcp_check(server, zone),
    );
    let mut tlsa_answer = answer(&tlsa, qname, RecordType::TLSA);
    tlsa_answer.truncated = truncated;
    if matches!(tlsa_answer.outcome, Outcome::NoData | Outcome::NxDomain)
        && let Ok(resp) = &tlsa.result
    {
        tlsa_answer.denial = Some(validate_denial(c, qname, resp).await);
    }
    let soa_serial = soa.result.as_ref().ok().and_then(|r| {
        r.answers.iter().find_map(|rec| match &rec.data {
            RData::SOA(s) if rec.name == *zone => Some(s.serial),
            _ => None,
        })
    });
    NsProbe {
        zone: show(zone),
        server: show(ns),
        address: ip,
        qname: show(qname),
        control: answer(&control, qname, RecordType::A),
        tlsa: tlsa_answer,
        soa_serial,
        dnskey: Some(brief(answer(&dnskey, zone, RecordType::DNSKEY))),
        tcp: Some(brief(answer(&tcp, zone, RecordType::SOA))),
    }
}

/// Whether and how a server answered, without the records (the keys are
/// in the chain's evidence once, not once per server).
fn brief(mut a: NsAnswer) -> NsAnswer {
    a.records.clear();
    a
}

/// TLSA as a resolver asks it (UDP, then TCP on TC=1), as two cached
/// questions, so that a failure after a truncated UDP answer is known to
/// be a TCP failure. The flag says whether the UDP answer was truncated.
async fn tlsa_over_udp_then_tcp(
    c: &DnsCollector,
    server: SocketAddr,
    qname: &Name,
) -> (Fetched, bool) {
    let net = &c.inner.net;
    let udp = net
        .direct_over(server, qname, RecordType::TLSA, Transport::Udp)
        .await;
    match &udp.result {
        Ok(r) if r.metadata.truncation => (
            net.direct_over(server, qname, RecordType::TLSA, Transport::Tcp)
                .await,
            true,
        ),
        _ => (udp, false),
    }
}

/// One server's answer as evidence.
fn answer(f: &Fetched, qname: &Name, qtype: RecordType) -> NsAnswer {
    let resp = match &f.result {
        Ok(r) => r,
        Err(fail) => {
            return NsAnswer {
                outcome: Outcome::Failed,
                failure: Some(fail.clone()),
                authoritative: false,
                records: Vec::new(),
                denial: None,
                ttl: None,
                elapsed_ms: f.elapsed_ms,
                truncated: false,
            };
        }
    };
    let code = resp.metadata.response_code;
    let (outcome, failure) = match code {
        ResponseCode::NoError | ResponseCode::NXDomain => (Outcome::NoData, None),
        c => (
            Outcome::Failed,
            Some(Failure {
                kind: rcode_kind(c),
                detail: rcode_str(c),
            }),
        ),
    };
    let here = |r: &&hickory_resolver::proto::rr::Record| {
        r.name == *qname && (r.record_type() == qtype || r.record_type() == RecordType::CNAME)
    };
    let ttl = resp.answers.iter().filter(here).map(|r| r.ttl).min();
    let mut records: Vec<NsRecord> = resp
        .answers
        .iter()
        .filter(here)
        .map(|r| match (r.record_type(), convert::tlsa(r)) {
            (RecordType::CNAME, _) => NsRecord::Cname(r.data.to_string()),
            (_, Some(t)) => NsRecord::Tlsa(t),
            _ => NsRecord::Other(convert::presentation(r)),
        })
        .collect();
    records.sort_by_cached_key(|r| r.to_string());
    records.dedup();
    let outcome = match outcome {
        Outcome::Failed => Outcome::Failed,
        _ if !records.is_empty() => Outcome::Answer,
        _ if code == ResponseCode::NXDomain => Outcome::NxDomain,
        o => o,
    };
    NsAnswer {
        outcome,
        failure,
        authoritative: resp.metadata.authoritative,
        records,
        denial: None,
        ttl,
        elapsed_ms: f.elapsed_ms,
        truncated: false,
    }
}

/// Runs the validator over this server's own denial (DNSKEY and DS fetched
/// through the resolver as usual).
async fn validate_denial(c: &DnsCollector, qname: &Name, resp: &Arc<DnsResponse>) -> DnssecStatus {
    let pin = Arc::new(Pinned {
        name: qname.clone(),
        qtype: RecordType::TLSA,
        response: (**resp).clone(),
    });
    let mut opts = DnsRequestOptions::default();
    opts.edns_set_dnssec_ok = true;
    opts.edns_payload_len = EDNS_PAYLOAD;
    let lookup = c
        .inner
        .validator
        .lookup(Query::query(qname.clone(), RecordType::TLSA), opts)
        .first_answer();
    let (res, noted) = pinned(pin, traced(lookup)).await;
    let st = match res {
        Ok(r) => denial_status(&r, None),
        Err(NetError::Dns(DnsError::Nsec {
            response, proof, ..
        })) => denial_status(&response, Some(proof)),
        Err(_) => DnssecStatus::Indeterminate,
    };
    if st == DnssecStatus::Bogus && !noted.is_empty() {
        DnssecStatus::Indeterminate
    } else {
        st
    }
}

/// RRSIG times over DNSKEY and DS of each zone from the zones of `names`
/// up to the root (root first).
pub async fn chain_signatures(c: &DnsCollector, names: &[String]) -> Vec<ZoneSignatures> {
    chain_signatures_from(c, names, &[]).await
}

/// As [`chain_signatures`], with zones already known (an RRSIG's signer names
/// the zone that holds the RRset, so no SOA walk is needed for it).
pub async fn chain_signatures_from(
    c: &DnsCollector,
    names: &[String],
    known_zones: &[String],
) -> Vec<ZoneSignatures> {
    let now = now();
    let net = &c.inner.net;
    let zones = join_all(names.iter().map(|n| async move {
        let (_, name) = convert::normalize(n).ok()?;
        let mut cur = name;
        loop {
            match apex_at(c, &cur).await {
                Apex::Found(z) => return Some(z),
                Apex::Failed => return None,
                Apex::Broken | Apex::Up if !cur.is_root() => cur = cur.base_name(),
                _ => return None,
            }
        }
    }))
    .await;
    let mut todo: Vec<Name> = zones.into_iter().flatten().collect();
    todo.extend(
        known_zones
            .iter()
            .filter_map(|z| convert::normalize(z).ok().map(|(_, n)| n)),
    );
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out: Vec<(usize, ZoneSignatures)> = Vec::new();
    while let Some(zone) = todo.pop() {
        let key = show(&zone);
        if !done.insert(key.clone()) {
            continue;
        }
        let (dnskey, ds) = tokio::join!(net.resolve(&zone, RecordType::DNSKEY, true), async {
            if zone.is_root() {
                None
            } else {
                Some(net.resolve(&zone, RecordType::DS, true).await)
            }
        });
        let mut rrsigs = Vec::new();
        let mut dnskeys = Vec::new();
        let mut ds_digests = Vec::new();
        if let Ok(r) = &dnskey.result {
            rrsigs.extend(convert::rrsigs(
                &r.answers,
                Some(&zone),
                &[RecordType::DNSKEY],
                now,
            ));
            dnskeys = convert::zone_keys(&r.answers, &zone);
        }
        if let Some(Ok(r)) = ds.as_ref().map(|f| &f.result) {
            ds_digests = convert::ds_digests(&r.answers, &zone);
            let sigs = convert::rrsigs(&r.answers, Some(&zone), &[RecordType::DS], now);
            // The parent zone: the DS signer, or the SOA owner of a denial.
            let parent = r
                .answers
                .iter()
                .find_map(|rec| match &rec.data {
                    RData::DNSSEC(DNSSECRData::RRSIG(s))
                        if rec.name == zone && s.input().type_covered == RecordType::DS =>
                    {
                        Some(s.input().signer_name.clone())
                    }
                    _ => None,
                })
                .or_else(|| {
                    r.authorities
                        .iter()
                        .find(|rec| {
                            rec.record_type() == RecordType::SOA
                                && rec.name.zone_of(&zone)
                                && rec.name != zone
                        })
                        .map(|rec| rec.name.clone())
                });
            rrsigs.extend(sigs);
            todo.push(parent.unwrap_or_else(|| zone.base_name()));
        } else if !zone.is_root() {
            todo.push(zone.base_name());
        }
        if !rrsigs.is_empty() {
            // Signed: one more question, for its denial parameters.
            let denial = net
                .resolve(&zone, RecordType::NSEC3PARAM, true)
                .await
                .result
                .ok()
                .and_then(|r| convert::zone_denial(&r, &zone));
            out.push((
                zone.num_labels() as usize,
                ZoneSignatures {
                    zone: key,
                    rrsigs,
                    dnskeys,
                    ds: ds_digests,
                    denial,
                },
            ));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1.zone).cmp(&(b.0, &b.1.zone)));
    out.into_iter().map(|(_, z)| z).collect()
}
