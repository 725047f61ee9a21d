//! A host's TLSA RRset against the chains served at each of its addresses:
//! which records authenticate where, and what is wrong with the others.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::cert::CertInfo;
use super::dane::{RecordMatch, TaFailure, match_record};
use super::diagnosis::{self, Cause};
use super::evidence::Timestamp;
use super::finding::{Code, Finding};
use super::issuers;
use super::tlsa::{MatchingType, Selector, TlsaRdata, Usability, Usage};

/// A chain one address served. An address that presents several chains (one
/// per server key type, see [`super::smtp::presented`]) appears once per chain.
pub struct Served<'a> {
    pub address: IpAddr,
    pub chain: &'a [CertInfo],
}

/// The outcome of the RRset against one served chain.
#[derive(Clone, Debug, Default)]
pub struct ChainResult {
    /// Indices into the RRset of records that authenticated this chain.
    pub authenticated_by: Vec<usize>,
    /// Chain depths of the certificates those records matched.
    pub matched_depths: BTreeSet<usize>,
}

/// Per-address outcome of the RRset.
pub struct AddressResult {
    pub address: IpAddr,
    /// Indices into the RRset of records that authenticated this address:
    /// every chain it presents is authenticated (by these records together);
    /// empty when some chain is not.
    pub authenticated_by: Vec<usize>,
    /// Chain depths of the certificates those records matched.
    pub matched_depths: BTreeSet<usize>,
    /// Indices into `served` of this address's chains.
    pub chains: Vec<usize>,
}

pub struct RrsetResult {
    pub addresses: Vec<AddressResult>,
    /// Per served chain, in the order of `served`.
    pub chains: Vec<ChainResult>,
    /// Per record: authenticated at least one address.
    pub matched: Vec<bool>,
    /// Per record: a diagnosis note for reports.
    pub notes: Vec<Option<String>>,
    pub findings: Vec<Finding>,
}

pub struct Context<'a> {
    pub host: &'a str,
    pub reference_ids: &'a [String],
    pub now: Timestamp,
}

/// A DANE-TA record that matched a served CA and still failed: (index into
/// `served`, record index, depth, why).
type TaFailed = (usize, usize, usize, TaFailure);

/// Matches every usable record against one chain.
fn match_chain(
    cx: &Context<'_>,
    rrset: &[TlsaRdata],
    index: usize,
    chain: &[CertInfo],
    ta_failures: &mut Vec<TaFailed>,
) -> ChainResult {
    let mut out = ChainResult::default();
    for (i, r) in rrset.iter().enumerate() {
        match match_record(r, chain, cx.reference_ids, cx.now) {
            RecordMatch::Authenticated { depth } => {
                out.authenticated_by.push(i);
                out.matched_depths.insert(depth);
            }
            RecordMatch::TaFailed { depth, failure } => {
                ta_failures.push((index, i, depth, failure));
            }
            RecordMatch::NoMatch => {}
        }
    }
    out
}

/// Groups the chain results by address (in order of first appearance): an
/// address is authenticated when every chain it presents is.
fn by_address(served: &[Served<'_>], chains: &[ChainResult]) -> Vec<AddressResult> {
    let mut out: Vec<AddressResult> = Vec::new();
    for (i, s) in served.iter().enumerate() {
        match out.iter_mut().find(|a| a.address == s.address) {
            Some(a) => a.chains.push(i),
            None => out.push(AddressResult {
                address: s.address,
                authenticated_by: Vec::new(),
                matched_depths: BTreeSet::new(),
                chains: vec![i],
            }),
        }
    }
    for a in &mut out {
        if a.chains
            .iter()
            .all(|c| !chains[*c].authenticated_by.is_empty())
        {
            let by: BTreeSet<usize> = a
                .chains
                .iter()
                .flat_map(|c| chains[*c].authenticated_by.iter().copied())
                .collect();
            a.authenticated_by = by.into_iter().collect();
            a.matched_depths = a
                .chains
                .iter()
                .flat_map(|c| chains[*c].matched_depths.iter().copied())
                .collect();
        }
    }
    out
}

/// Evaluates the usable records of `rrset` against every served chain.
pub fn evaluate(cx: &Context<'_>, rrset: &[TlsaRdata], served: &[Served<'_>]) -> RrsetResult {
    let mut findings = Vec::new();
    let mut notes: Vec<Option<String>> = vec![None; rrset.len()];
    let mut ta_failures = Vec::new();
    let chains: Vec<ChainResult> = served
        .iter()
        .enumerate()
        .map(|(i, s)| match_chain(cx, rrset, i, s.chain, &mut ta_failures))
        .collect();
    let mut matched = vec![false; rrset.len()];
    for i in chains.iter().flat_map(|c| &c.authenticated_by) {
        matched[*i] = true;
    }
    let addresses = by_address(served, &chains);
    let unauthenticated: BTreeSet<IpAddr> = addresses
        .iter()
        .filter(|a| a.authenticated_by.is_empty())
        .map(|a| a.address)
        .collect();
    // Chains whose failure a DANE-TA finding explains need no second,
    // vaguer "nothing matches".
    let mut explained = BTreeSet::new();
    for (index, i, depth, failure) in ta_failures {
        let s = &served[index];
        let f = ta_finding(cx, &rrset[i], s.address, depth, &failure, s.chain);
        notes[i] = Some(f.message.clone());
        explained.insert(index);
        findings.push(if chains[index].authenticated_by.is_empty() {
            f
        } else {
            f.secondary()
        });
    }
    for (i, r) in rrset.iter().enumerate() {
        let usable = matches!(r.usability(), Usability::Usable(_));
        if !usable || matched[i] || notes[i].is_some() {
            continue;
        }
        if let Some(f) = record_finding(cx, r, served, &matched, !unauthenticated.is_empty()) {
            notes[i] = Some(f.message.clone());
            findings.push(f);
        }
    }
    findings.extend(no_match_findings(
        cx, rrset, served, &addresses, &chains, &explained,
    ));
    findings.extend(uncovered_findings(
        cx, rrset, served, &addresses, &chains, &explained,
    ));
    findings.extend(practice_findings(cx, rrset, served, &addresses, &chains));
    RrsetResult {
        addresses,
        chains,
        matched,
        notes,
        findings,
    }
}

fn record_subject(cx: &Context<'_>, r: &TlsaRdata) -> String {
    format!("_25._tcp.{} TLSA {}", cx.host, r.short())
}

fn ta_finding(
    cx: &Context<'_>,
    r: &TlsaRdata,
    address: IpAddr,
    depth: usize,
    failure: &TaFailure,
    chain: &[CertInfo],
) -> Finding {
    let at = format!("{}[{address}]", cx.host);
    // Past the served chain: the anchor the record itself holds.
    let ca = match chain.get(depth) {
        Some(c) => format!("matches CA \"{}\"", c.label()),
        None => "holds the trust anchor that signed the served chain".to_string(),
    };
    let (code, msg) = match failure {
        TaFailure::ChainInvalid(why) => (
            Code::DaneTaChainInvalid,
            format!("`{}` {ca} at depth {depth}, but {why}", r.short()),
        ),
        TaFailure::Expired { depth: d, what } => (
            Code::DaneTaExpired,
            format!(
                "`{}` {ca}, but the certificate at depth {d} (\"{}\") is {what}{}",
                r.short(),
                chain.get(*d).map(|c| c.label()).unwrap_or_default(),
                chain
                    .get(*d)
                    .and_then(|c| c.not_after)
                    .map(|t| format!(" (notAfter {t})"))
                    .unwrap_or_default()
            ),
        ),
        TaFailure::NameMismatch { presented } => (
            Code::DaneTaNameMismatch,
            format!(
                "`{}` {ca}, but the leaf names {} and not {}",
                r.short(),
                if presented.is_empty() {
                    "nothing".to_string()
                } else {
                    presented.join(", ")
                },
                cx.reference_ids.join(" or ")
            ),
        ),
    };
    Finding::new(code, at).msg(msg).at_address(cx.host, address)
}

/// Explains a usable record that authenticated no address.
fn record_finding(
    cx: &Context<'_>,
    r: &TlsaRdata,
    served: &[Served<'_>],
    matched: &[bool],
    some_address_fails: bool,
) -> Option<Finding> {
    let subject = record_subject(cx, r);
    let cause = served
        .iter()
        .find_map(|s| diagnosis::diagnose(r, s.chain).map(|c| (c, s.chain)));
    if let Some((cause, chain)) = cause {
        return Some(cause_finding(cx, r, &cause, chain, subject));
    }
    if r.usage() == Usage::DaneTa && !served.is_empty() {
        let f = not_in_chain(cx, r, subject);
        return Some(if some_address_fails { f } else { f.secondary() });
    }
    if matched.iter().any(|m| *m) {
        return Some(
            Finding::new(Code::TlsaStale, subject)
                .msg(format!(
                    "`{}` matches no certificate served at any address of {}, while another record does",
                    r.short(),
                    cx.host
                ))
                .at_host(cx.host),
        );
    }
    None
}

fn cause_finding(
    cx: &Context<'_>,
    r: &TlsaRdata,
    cause: &Cause,
    chain: &[CertInfo],
    subject: String,
) -> Finding {
    let label = |d: usize| chain.get(d).map(|c| c.label()).unwrap_or_default();
    let f = match cause {
        Cause::WrongSelector { depth, right } => {
            let fixed = TlsaRdata {
                selector: right.value(),
                ..r.clone()
            };
            Finding::new(Code::TlsaWrongSelector, subject)
                .msg(format!(
                    "`{}` carries the digest of {} of \"{}\" (depth {depth}) but says selector {}: it never matches",
                    r.short(),
                    right.describe(),
                    label(*depth),
                    r.selector
                ))
                .fix(format!("Publish `{fixed}` instead (same data, selector {}).", right.value()))
        }
        Cause::WrongEncoding {
            depth,
            selector,
            encoding,
        } => {
            let right = chain.get(*depth).and_then(|c| {
                Some(TlsaRdata {
                    usage: r.usage,
                    selector: selector.value(),
                    mtype: r.mtype,
                    data: c.association(*selector, MatchingType::from_u8(r.mtype)?)?,
                })
            });
            let f = Finding::new(Code::TlsaWrongEncoding, subject).msg(format!(
                "`{}` is the digest of the {encoding} of {} of \"{}\", not of its DER bytes",
                r.short(),
                selector.describe(),
                label(*depth)
            ));
            match right {
                Some(ok) => f.fix(format!("Publish `{ok}` instead (digest over DER).")),
                None => f,
            }
        }
        Cause::WrongUsage { depth } => {
            let right_usage = if *depth == 0 { 3 } else { 2 };
            let fixed = TlsaRdata {
                usage: right_usage,
                ..r.clone()
            };
            Finding::new(Code::TlsaWrongUsage, subject)
                .msg(format!(
                    "`{}` matches \"{}\" at depth {depth}, {}, but usage {} {}",
                    r.short(),
                    label(*depth),
                    if *depth == 0 {
                        "the server's own certificate"
                    } else {
                        "a CA certificate"
                    },
                    r.usage,
                    if r.usage == 3 {
                        "(DANE-EE) only matches the leaf"
                    } else {
                        "(DANE-TA) only matches CA certificates above the leaf"
                    }
                ))
                .fix(format!("Publish `{fixed}` instead (usage {right_usage})."))
        }
    };
    f.at_host(cx.host)
}

fn not_in_chain(cx: &Context<'_>, r: &TlsaRdata, subject: String) -> Finding {
    let known = issuers::identify(r);
    let what = match known {
        Some(ca) if ca.is_root => format!("the root CA \"{}\"", ca.name),
        Some(ca) => format!("the CA \"{}\"", ca.name),
        None => "a CA".to_string(),
    };
    Finding::new(Code::DaneTaNotInChain, subject)
        .msg(format!(
            "`{}` pins {what}, which the server does not send at any address of {}",
            r.short(),
            cx.host
        ))
        .at_host(cx.host)
}

/// `tlsa-no-match` per address where no chain authenticates (and no DANE-TA
/// finding explains why), with the records that would fix it.
fn no_match_findings(
    cx: &Context<'_>,
    rrset: &[TlsaRdata],
    served: &[Served<'_>],
    addresses: &[AddressResult],
    chains: &[ChainResult],
    explained: &BTreeSet<usize>,
) -> Vec<Finding> {
    let usable = usable_count(rrset);
    addresses
        .iter()
        .filter(|a| a.chains.iter().all(|c| chains[*c].authenticated_by.is_empty()))
        .filter(|a| !a.chains.iter().any(|c| explained.contains(c)))
        .map(|a| {
            let leaves: Vec<&CertInfo> = a
                .chains
                .iter()
                .filter_map(|c| served[*c].chain.first())
                .collect();
            let labels: Vec<String> = leaves
                .iter()
                .map(|c| match (leaves.len(), c.key_type()) {
                    (2.., Some(k)) => format!("\"{}\" ({k})", c.label()),
                    _ => format!("\"{}\"", c.label()),
                })
                .collect();
            let leaf_text = match labels.len() {
                0 => "leaf \"none\"".to_string(),
                1 => format!("leaf {}", labels[0]),
                _ => format!("leaves {}, one per key type", labels.join(", ")),
            };
            let mut f = Finding::new(Code::TlsaNoMatch, format!("{}[{}]", cx.host, a.address))
                .msg(format!(
                    "none of the {usable} usable TLSA record(s) of {} matches the chain served at {} ({leaf_text})",
                    cx.host, a.address,
                ))
                .at_address(cx.host, a.address);
            let wanted: Vec<String> = leaves
                .iter()
                .filter_map(|c| ee_line(cx, c))
                .collect();
            if !wanted.is_empty() {
                f = f.fix(format!(
                    "Publish {} for the served key{}, wait for the TLSA TTL, then remove records that no longer match; or serve the certificate the records describe.",
                    wanted.join(" and "),
                    if wanted.len() > 1 { "s" } else { "" }
                ));
            }
            f
        })
        .collect()
}

/// The zone-file line of the `3 1 1` record for a certificate's key, quoted.
fn ee_line(cx: &Context<'_>, cert: &CertInfo) -> Option<String> {
    let d = cert.association(Selector::Spki, MatchingType::Sha256)?;
    Some(format!(
        "`_25._tcp.{}. IN TLSA 3 1 1 {}`",
        cx.host,
        hex::encode(d)
    ))
}

fn usable_count(rrset: &[TlsaRdata]) -> usize {
    rrset
        .iter()
        .filter(|r| matches!(r.usability(), Usability::Usable(_)))
        .count()
}

/// `tlsa-key-type-uncovered`: an address some of whose chains authenticate
/// and others do not. Senders that get an uncovered certificate fail.
fn uncovered_findings(
    cx: &Context<'_>,
    rrset: &[TlsaRdata],
    served: &[Served<'_>],
    addresses: &[AddressResult],
    chains: &[ChainResult],
    explained: &BTreeSet<usize>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for a in addresses {
        let (good, bad): (Vec<usize>, Vec<usize>) = a
            .chains
            .iter()
            .partition(|c| !chains[**c].authenticated_by.is_empty());
        if good.is_empty() {
            continue;
        }
        let covered: Vec<String> = good
            .iter()
            .map(|c| {
                let recs: Vec<String> = chains[*c]
                    .authenticated_by
                    .iter()
                    .map(|i| format!("`{}`", rrset[*i].short()))
                    .collect();
                format!("{} by {}", key_type_name(served[*c].chain), recs.join(", "))
            })
            .collect();
        for c in bad.into_iter().filter(|c| !explained.contains(c)) {
            out.push(uncovered(cx, rrset, served, a, c, &covered));
        }
    }
    out
}

/// "RSA", "ECDSA", ... for the leaf of a chain.
fn key_type_name(chain: &[CertInfo]) -> String {
    chain
        .first()
        .and_then(CertInfo::key_type)
        .map_or_else(|| "other-key".to_string(), |k| k.as_str().to_string())
}

fn uncovered(
    cx: &Context<'_>,
    rrset: &[TlsaRdata],
    served: &[Served<'_>],
    a: &AddressResult,
    bad: usize,
    covered: &[String],
) -> Finding {
    let chain = served[bad].chain;
    let kt = key_type_name(chain);
    let label = chain.first().map(|c| c.label()).unwrap_or_default();
    let f = Finding::new(Code::TlsaKeyTypeUncovered, format!("{}[{}]", cx.host, a.address))
        .msg(format!(
            "senders that negotiate {kt} get the {kt} certificate \"{label}\" at {}, which none of the {} usable TLSA record(s) of {} authenticates (covered: {}): they cannot deliver",
            a.address,
            usable_count(rrset),
            cx.host,
            covered.join("; ")
        ))
        .at_address(cx.host, a.address);
    let ee = chain
        .first()
        .and_then(|c| ee_line(cx, c))
        .map(|line| format!("{line} for the {kt} key"));
    let ta = shared_issuer(cx, served, a).map(|(ca, rec)| {
        format!(
            "`_25._tcp.{}. IN TLSA {rec}` for \"{ca}\", the CA that issued every certificate {} presents",
            cx.host, a.address
        )
    });
    match (ee, ta) {
        (Some(ee), Some(ta)) => f.fix(format!(
            "Publish {ee}, or {ta}; wait for the TLSA TTL. Or stop serving the {kt} certificate."
        )),
        (Some(one), None) | (None, Some(one)) => f.fix(format!(
            "Publish {one}; wait for the TLSA TTL. Or stop serving the {kt} certificate."
        )),
        (None, None) => f,
    }
}

/// A CA certificate sent in every chain of the address whose `2 1 1` record
/// would authenticate each of them: one record for every key type.
fn shared_issuer(
    cx: &Context<'_>,
    served: &[Served<'_>],
    a: &AddressResult,
) -> Option<(String, TlsaRdata)> {
    let first = served[*a.chains.first()?].chain;
    first.iter().skip(1).find_map(|ca| {
        let record = TlsaRdata {
            usage: 2,
            selector: 1,
            mtype: 1,
            data: ca.association(Selector::Spki, MatchingType::Sha256)?,
        };
        a.chains
            .iter()
            .all(|c| {
                matches!(
                    match_record(&record, served[*c].chain, cx.reference_ids, cx.now),
                    RecordMatch::Authenticated { .. }
                )
            })
            .then(|| (ca.label(), record))
    })
}

/// Best-practice findings on an RRset that works (or partly works).
fn practice_findings(
    cx: &Context<'_>,
    rrset: &[TlsaRdata],
    served: &[Served<'_>],
    addresses: &[AddressResult],
    chains: &[ChainResult],
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(i) = no_backup(rrset, served, addresses, chains) {
        out.push(
            Finding::new(Code::TlsaNoBackup, cx.host.to_string())
                .msg(format!(
                    "at {} only certificates matched by `{}` authenticate the server, and no record covers a replacement: the next key or CA change breaks delivery",
                    cx.host,
                    rrset[i].short()
                ))
                .at_host(cx.host),
        );
    }
    for r in rrset {
        let subject = record_subject(cx, r);
        let short_lived = (r.usage == 3 && r.selector == 0)
            .then(|| {
                served
                    .iter()
                    .filter_map(|s| s.chain.first())
                    .find(|leaf| {
                        super::dane::data_matches(r, std::slice::from_ref(leaf)).contains(&0)
                    })
                    .and_then(|leaf| leaf.lifetime_days())
            })
            .flatten()
            .filter(|d| *d <= 100);
        if let Some(days) = short_lived {
            out.push(
                Finding::new(Code::TlsaFullCertShortLived, subject.clone())
                    .msg(format!(
                        "`{}` pins a whole certificate that is valid for only {days} days",
                        r.short()
                    ))
                    .at_host(cx.host),
            );
        }
        if r.usage == 2 {
            out.extend(ta_practice(cx, r, rrset, served, subject));
        }
    }
    out
}

/// A chain has a backup when its authenticating records cover two
/// different certificates of it (e.g. `3 1 1` + `2 1 1`), or when a usable
/// record matches nothing served anywhere (the next key, or another issuer).
/// Returns an authenticating record of the first chain without, among the
/// addresses that are authenticated (every chain of theirs).
fn no_backup(
    rrset: &[TlsaRdata],
    served: &[Served<'_>],
    addresses: &[AddressResult],
    chains: &[ChainResult],
) -> Option<usize> {
    let authenticating: BTreeSet<usize> = addresses
        .iter()
        .flat_map(|a| a.authenticated_by.iter().copied())
        .collect();
    let spare = rrset.iter().enumerate().any(|(i, r)| {
        matches!(r.usability(), Usability::Usable(_))
            && !authenticating.contains(&i)
            && served
                .iter()
                .all(|s| super::dane::data_matches(r, s.chain).is_empty())
    });
    if spare {
        return None;
    }
    addresses
        .iter()
        .filter(|a| !a.authenticated_by.is_empty())
        .flat_map(|a| &a.chains)
        .map(|c| &chains[*c])
        .find(|c| c.matched_depths.len() == 1)
        .and_then(|c| c.authenticated_by.first().copied())
}

fn ta_practice(
    cx: &Context<'_>,
    r: &TlsaRdata,
    rrset: &[TlsaRdata],
    served: &[Served<'_>],
    subject: String,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let known = issuers::identify(r);
    let served_root = served.iter().any(|s| {
        super::dane::data_matches(r, s.chain)
            .iter()
            .any(|d| *d > 0 && s.chain[*d].self_issued)
    });
    if served_root || known.is_some_and(|k| k.is_root) {
        let name = known.map(|k| k.name.clone()).unwrap_or_else(|| {
            served
                .iter()
                .find_map(|s| {
                    super::dane::data_matches(r, s.chain)
                        .first()
                        .map(|d| s.chain[*d].label())
                })
                .unwrap_or_default()
        });
        out.push(
            Finding::new(Code::TlsaRootPinned, subject.clone())
                .msg(format!("`{}` pins the root CA \"{name}\"", r.short()))
                .at_host(cx.host),
        );
    }
    if let Some(group) = known.and_then(|k| k.rotation_group) {
        let mut missing: Vec<String> = issuers::group_members(group)
            .filter(|ca| !rrset.iter().any(|x| x.usage == 2 && ca.pinned_by(x)))
            .map(|ca| ca.name.clone())
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            let mut add: Vec<String> = issuers::group_members(group)
                .filter(|ca| !rrset.iter().any(|x| x.usage == 2 && ca.pinned_by(x)))
                .filter_map(|ca| ca.tlsa_211())
                .map(|t| format!("_25._tcp.{}. IN TLSA {t}", cx.host))
                .collect();
            add.dedup();
            out.push(
                Finding::new(Code::TlsaSingleIssuerPin, subject)
                    .msg(format!(
                        "`{}` pins \"{}\", one of {group}; the next certificate may come from {}",
                        r.short(),
                        known.map(|k| k.name.as_str()).unwrap_or_default(),
                        missing.join(", ")
                    ))
                    .fix(format!(
                        "Also publish a record for every sibling CA:\n{}",
                        add.join("\n")
                    ))
                    .at_host(cx.host),
            );
        }
    }
    out
}
