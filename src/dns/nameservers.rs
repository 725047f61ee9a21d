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
use super::upstream::{Fetched, Pinned, pinned, rcode_kind, rcode_str, traced};
use super::{DnsCollector, family_ok, now};
use crate::core::dnssec::DnssecStatus;
use crate::core::evidence::{Failure, NsAnswer, NsProbe, Outcome, ZoneSignatures};

/// Most server addresses probed per zone (a zone with 13 NS names × 2 families is 26).
const MAX_SERVERS: usize = 32;

/// The zone that holds `name`: the closest enclosing SOA.
pub async fn zone_of(c: &DnsCollector, name: &Name) -> Option<Name> {
    let mut cur = name.clone();
    loop {
        let f = c.inner.net.resolve(&cur, RecordType::SOA, true).await;
        let resp = f.result.ok()?;
        if matches!(
            resp.metadata.response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) {
            if resp
                .answers
                .iter()
                .any(|r| r.name == cur && r.record_type() == RecordType::SOA)
            {
                return Some(cur);
            }
            let alias = resp
                .answers
                .iter()
                .any(|r| r.name == cur && r.record_type() == RecordType::CNAME);
            if !alias
                && let Some(soa) = resp
                    .authorities
                    .iter()
                    .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&cur))
            {
                return Some(soa.name.clone());
            }
        } else if resp.metadata.response_code != ResponseCode::ServFail {
            return None;
        }
        if cur.is_root() {
            return None;
        }
        cur = cur.base_name();
    }
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
    let Some(zone) = zone_of(c, qname).await else {
        return Vec::new();
    };
    let servers = ns_names(c, &zone).await;
    let addrs = join_all(servers.iter().map(|ns| addresses(c, ns))).await;
    let targets: Vec<(Name, IpAddr)> = servers
        .into_iter()
        .zip(addrs)
        .flat_map(|(ns, ips)| ips.into_iter().map(move |ip| (ns.clone(), ip)))
        .take(MAX_SERVERS)
        .collect();
    join_all(
        targets
            .iter()
            .map(|(ns, ip)| probe_one(c, &zone, ns, *ip, qname)),
    )
    .await
}

async fn probe_one(c: &DnsCollector, zone: &Name, ns: &Name, ip: IpAddr, qname: &Name) -> NsProbe {
    let net = &c.inner.net;
    let server = SocketAddr::new(ip, 53);
    let (tlsa, control, soa) = tokio::join!(
        net.direct(server, qname, RecordType::TLSA),
        net.direct(server, qname, RecordType::A),
        net.direct(server, zone, RecordType::SOA),
    );
    let mut tlsa_answer = answer(&tlsa, qname, RecordType::TLSA);
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
                elapsed_ms: f.elapsed_ms,
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
    let mut records: Vec<String> = resp
        .answers
        .iter()
        .filter(|r| {
            r.name == *qname && (r.record_type() == qtype || r.record_type() == RecordType::CNAME)
        })
        .map(|r| {
            if r.record_type() == RecordType::CNAME {
                format!("CNAME {}", r.data)
            } else {
                convert::presentation(r)
            }
        })
        .collect();
    records.sort();
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
        elapsed_ms: f.elapsed_ms,
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
    let now = now();
    let net = &c.inner.net;
    let zones = join_all(names.iter().map(|n| async move {
        let (_, name) = convert::normalize(n).ok()?;
        zone_of(c, &name).await
    }))
    .await;
    let mut todo: Vec<Name> = zones.into_iter().flatten().collect();
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
        if let Ok(r) = &dnskey.result {
            rrsigs.extend(convert::rrsigs(
                &r.answers,
                Some(&zone),
                &[RecordType::DNSKEY],
                now,
            ));
        }
        if let Some(Ok(r)) = ds.as_ref().map(|f| &f.result) {
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
            out.push((
                zone.num_labels() as usize,
                ZoneSignatures { zone: key, rrsigs },
            ));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1.zone).cmp(&(b.0, &b.1.zone)));
    out.into_iter().map(|(_, z)| z).collect()
}
