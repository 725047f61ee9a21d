//! The DNS evidence collector against the real test bed (Knot, NSD, dnsdist
//! and a validating Unbound in the `dane-testbed` network namespace): the
//! evidence of every DNS scenario, and what the core makes of it.
//!
//! `DUMP=dns- cargo test --test dns_testbed dump -- --nocapture` prints the
//! evidence of the scenarios whose name starts with `dns-` (`JSON=1`: in full).

mod support;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use dane_audit::core::dnssec::DnssecStatus::{self, Bogus, Indeterminate, Insecure, Secure};
use dane_audit::core::evaluate::{EvalOptions, evaluate};
use dane_audit::core::evidence::{
    Evidence, FailureKind, Families, HostEvidence, LookupMeta, NsProbe, Outcome, Timestamp,
    ZoneDenial, ZoneSignatures,
};
use dane_audit::dns::{DnsCollector, DnsConfig, TrustAnchorSource};
use support::Testbed;

/// Runs `f` on a fresh thread inside the bed's namespace, on a
/// current-thread runtime (so every socket lives in the bed).
fn in_bed<T: Send + 'static, F: Future<Output = T>>(
    f: impl FnOnce(&'static Testbed) -> F + Send + 'static,
) -> Option<T> {
    let bed = Testbed::get()?;
    let h = std::thread::spawn(move || {
        bed.enter_thread();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f(bed))
    });
    Some(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
}

fn config(bed: &Testbed) -> DnsConfig {
    DnsConfig {
        resolvers: vec![format!("{}:53", bed.resolver()).parse().unwrap()],
        trust_anchor: TrustAnchorSource::File(PathBuf::from(bed.trust_anchor())),
        timeout: Duration::from_millis(800),
        attempts: 2,
        families: Families::default(),
        nameserver_checks: true,
        ..DnsConfig::default()
    }
}

async fn collector(bed: &Testbed) -> DnsCollector {
    DnsCollector::new(config(bed)).await.expect("collector")
}

fn meta_line(m: &LookupMeta) -> String {
    let mut s = format!("{:?}/{}", m.outcome, m.dnssec.as_str());
    if let Some(f) = &m.failure {
        s.push_str(&format!(" [{}: {}]", f.kind.as_str(), f.detail));
    }
    if !m.cnames.is_empty() {
        s.push_str(&format!(
            " via {}",
            m.cnames
                .iter()
                .map(|c| format!("{}->{}({})", c.owner, c.target, c.dnssec.as_str()))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if let Some(w) = &m.witness {
        s.push_str(&format!(" w={}{}", w.rcode, if w.ad { "+AD" } else { "" }));
        if let Some(e) = &w.ede {
            s.push_str(&format!(" ede={} {:?}", e.code, e.text));
        }
        if let Some(c) = &w.cd_rcode {
            s.push_str(&format!(" cd={c}"));
        }
    }
    s
}

/// A compact view of the evidence, for failure messages and the dump.
fn summary(ev: &Evidence) -> String {
    let mut out = format!("MX {} {:?}\n", meta_line(&ev.mx.meta), ev.mx.records);
    for h in &ev.hosts {
        out.push_str(&format!(
            "  host {} base={}\n    A    {} {:?}\n    AAAA {} {:?}\n",
            h.name,
            h.tlsa_base,
            meta_line(&h.a.meta),
            h.a.records,
            meta_line(&h.aaaa.meta),
            h.aaaa.records
        ));
        match &h.tlsa {
            Some(t) => out.push_str(&format!(
                "    TLSA {} {} records\n",
                meta_line(&t.meta),
                t.records.len()
            )),
            None => out.push_str("    TLSA not looked up\n"),
        }
        for p in &h.nameservers {
            out.push_str(&format!(
                "    NS {} [{}] serial={:?} tlsa={:?}{}{} ({}) ctl={:?}{}\n",
                p.server,
                p.address,
                p.soa_serial,
                p.tlsa.outcome,
                p.tlsa
                    .failure
                    .as_ref()
                    .map(|f| format!("/{}", f.kind.as_str()))
                    .unwrap_or_default(),
                p.tlsa
                    .denial
                    .map(|d| format!(" denial={}", d.as_str()))
                    .unwrap_or_default(),
                p.tlsa.records.len(),
                p.control.outcome,
                p.control
                    .failure
                    .as_ref()
                    .map(|f| format!("/{}", f.kind.as_str()))
                    .unwrap_or_default(),
            ));
        }
    }
    for z in &ev.chain {
        out.push_str(&format!("  chain {} {} sigs\n", z.zone, z.rrsigs.len()));
    }
    out
}

fn codes(ev: &Evidence) -> Vec<String> {
    let audit = evaluate(ev, &EvalOptions::at(Timestamp(now())));
    let mut c: Vec<String> = audit
        .findings
        .iter()
        .map(|f| f.code.as_str().to_string())
        .collect();
    c.sort();
    c.dedup();
    c
}

/// Every finding with its message, for an assertion that failed.
fn findings_text(ev: &Evidence) -> String {
    let audit = evaluate(ev, &EvalOptions::at(Timestamp(now())));
    audit
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.code.as_str(), f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn dump() {
    let Some(()) = in_bed(|bed| async move {
        let Ok(only) = std::env::var("DUMP") else {
            return;
        };
        let c = collector(bed).await;
        for s in support::scenarios() {
            if !s.domain.starts_with(&only) {
                continue;
            }
            let t = std::time::Instant::now();
            let ev: Evidence = c.collect(&s.domain).await;
            let ms = t.elapsed().as_millis();
            if std::env::var("JSON").is_ok() {
                eprintln!("{}", serde_json::to_string_pretty(&ev).unwrap());
            }
            eprintln!(
                "=== {} ({ms} ms) want {:?} got {:?}\n{}",
                s.domain,
                s.codes,
                codes(&ev),
                summary(&ev)
            );
        }
    }) else {
        return;
    };
}

// ---- helpers --------------------------------------------------------------------------

/// Collects `domains` with one collector (default config, or `cfg`).
fn collect_with(
    domains: &'static [&'static str],
    cfg: impl FnOnce(&Testbed) -> DnsConfig + Send + 'static,
) -> Option<Vec<Evidence>> {
    in_bed(move |bed| async move {
        let c = DnsCollector::new(cfg(bed)).await.expect("collector");
        let mut out = Vec::new();
        for d in domains {
            out.push(c.collect(d).await);
        }
        out
    })
}

fn collect(domains: &'static [&'static str]) -> Option<Vec<Evidence>> {
    collect_with(domains, config)
}

fn host<'a>(ev: &'a Evidence, name: &str) -> &'a HostEvidence {
    ev.hosts
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no host {name} in\n{}", summary(ev)))
}

#[track_caller]
fn assert_meta(m: &LookupMeta, outcome: Outcome, dnssec: DnssecStatus, ev: &Evidence) {
    assert_eq!(
        (m.outcome, m.dnssec),
        (outcome, dnssec),
        "{}: {}\n{}",
        m.qname,
        meta_line(m),
        summary(ev)
    );
}

fn tlsa_meta(h: &HostEvidence) -> &LookupMeta {
    &h.tlsa.as_ref().expect("TLSA looked up").meta
}

fn probes<'a>(h: &'a HostEvidence, server: &str) -> Vec<&'a NsProbe> {
    h.nameservers
        .iter()
        .filter(|p| p.server == server)
        .collect()
}

// ---- RFC 7672 §2.2: secure MX, addresses and TLSA --------------------------------------

#[test]
fn rfc7672_2_2_secure_mx_a_aaaa_tlsa() {
    let Some(evs) = collect(&["good-dualstack.example", "good-nsec3.example"]) else {
        return;
    };
    for ev in &evs {
        assert_meta(&ev.mx.meta, Outcome::Answer, Secure, ev);
        let h = &ev.hosts[0];
        assert_eq!(h.preference, Some(10));
        assert_eq!(h.tlsa_base, h.name);
        assert_meta(&h.a.meta, Outcome::Answer, Secure, ev);
        assert!(!h.a.records.is_empty());
        let t = h.tlsa.as_ref().unwrap();
        assert_meta(&t.meta, Outcome::Answer, Secure, ev);
        assert_eq!(t.meta.qname, format!("_25._tcp.{}", h.name));
        assert!(t.records.len() >= 2, "{}", summary(ev));
        // Signatures of every recorded RRset, signed by the domain's zone.
        for m in [&ev.mx.meta, &h.a.meta, &t.meta] {
            assert!(
                m.rrsigs.iter().any(|s| s.signer == ev.domain
                    && s.expiration.0 > now()
                    && s.inception.0 <= now()),
                "{}: {:?}",
                m.qname,
                m.rrsigs
            );
            let w = m.witness.as_ref().expect("Unbound validates: a witness");
            assert_eq!((w.rcode.as_str(), w.ad), ("NOERROR", true));
        }
        // Chain of trust: root, example, the domain's zone, DNSKEY and DS.
        let zones: Vec<&str> = ev.chain.iter().map(|z| z.zone.as_str()).collect();
        assert_eq!(
            zones,
            [".", "example", ev.domain.as_str()],
            "{}",
            summary(ev)
        );
        let dom = ev.chain.last().unwrap();
        assert!(dom.rrsigs.iter().any(|s| s.covered == "DNSKEY"));
        assert!(
            dom.rrsigs
                .iter()
                .any(|s| s.covered == "DS" && s.signer == "example")
        );
        assert!(codes(ev).is_empty(), "{:?}\n{}", codes(ev), summary(ev));
    }
    let dual = host(&evs[0], "mx.good-dualstack.example");
    assert_meta(&dual.aaaa.meta, Outcome::Answer, Secure, &evs[0]);
    // NSEC3 zone: the secure "no AAAA" is proven with NSEC3 records.
    let n3 = &evs[1].hosts[0];
    assert_meta(&n3.aaaa.meta, Outcome::NoData, Secure, &evs[1]);
    assert!(n3.aaaa.meta.rrsigs.iter().any(|s| s.covered == "NSEC3"));
}

// ---- RFC 4035 §4.3: insecure ------------------------------------------------------------

#[test]
fn rfc4035_4_3_unsigned_domain_is_insecure() {
    let Some(evs) = collect(&["dns-unsigned.example"]) else {
        return;
    };
    let ev = &evs[0];
    assert_meta(&ev.mx.meta, Outcome::Answer, Insecure, ev);
    assert!(ev.mx.meta.rrsigs.is_empty());
    let w = ev.mx.meta.witness.as_ref().unwrap();
    assert_eq!((w.rcode.as_str(), w.ad), ("NOERROR", false));
    let h = &ev.hosts[0];
    assert_meta(&h.a.meta, Outcome::Answer, Insecure, ev);
    assert_meta(&h.aaaa.meta, Outcome::NoData, Insecure, ev);
    assert!(h.tlsa.is_none(), "no secure address: TLSA not looked up");
    assert!(h.nameservers.is_empty());
    assert_eq!(codes(ev), ["mx-insecure"]);
}

#[test]
fn rfc7672_2_2_1_insecure_host_zone() {
    let Some(evs) = collect(&["dns-host-insecure.example", "dns-tlsa-insecure.example"]) else {
        return;
    };
    let ev = &evs[0];
    assert_meta(&ev.mx.meta, Outcome::Answer, Secure, ev);
    let h = host(ev, "mx.hosts-unsigned.example");
    assert_meta(&h.a.meta, Outcome::Answer, Insecure, ev);
    assert!(h.tlsa.is_none());
    // The TLSA name delegated to an unsigned child: insecure records.
    let ev = &evs[1];
    let h = &ev.hosts[0];
    assert_meta(&h.a.meta, Outcome::Answer, Secure, ev);
    assert_meta(tlsa_meta(h), Outcome::Answer, Insecure, ev);
    assert_eq!(h.tlsa.as_ref().unwrap().records.len(), 2);
}

// ---- RFC 4035 §5.5: bogus data is kept, with its signatures -----------------------------

#[test]
fn rfc4035_5_5_bogus_mx_a_tlsa_with_data_present() {
    let Some(evs) = collect(&[
        "dns-mx-bogus.example",
        "dns-host-bogus.example",
        "dns-tlsa-bogus.example",
    ]) else {
        return;
    };
    let bogus_witness = |m: &LookupMeta| {
        let w = m.witness.as_ref().expect("witness");
        assert_eq!(w.rcode, "SERVFAIL", "{}", m.qname);
        assert_eq!(w.cd_rcode.as_deref(), Some("NOERROR"), "{}", m.qname);
        assert_eq!(w.ede.as_ref().map(|e| e.code), Some(6), "EDE DNSSEC Bogus");
    };
    let ev = &evs[0];
    assert_meta(&ev.mx.meta, Outcome::Answer, Bogus, ev);
    assert!(!ev.mx.records.is_empty(), "bogus data is evidence");
    assert!(!ev.mx.meta.rrsigs.is_empty());
    bogus_witness(&ev.mx.meta);
    assert!(ev.hosts.is_empty(), "no hosts from a bogus MX RRset");
    assert_eq!(codes(ev), ["mx-bogus"]);

    let ev = &evs[1];
    let h = &ev.hosts[0];
    assert_meta(&h.a.meta, Outcome::Answer, Bogus, ev);
    assert_eq!(h.a.records.len(), 1);
    bogus_witness(&h.a.meta);
    assert!(h.tlsa.is_none(), "no secure address: TLSA not looked up");
    assert_eq!(codes(ev), ["host-address-bogus"]);

    let ev = &evs[2];
    let h = &ev.hosts[0];
    let t = h.tlsa.as_ref().unwrap();
    assert_meta(&t.meta, Outcome::Answer, Bogus, ev);
    assert_eq!(t.records.len(), 2);
    assert!(t.meta.rrsigs.iter().any(|s| s.covered == "TLSA"));
    bogus_witness(&t.meta);
    assert_eq!(codes(ev), ["tlsa-bogus"]);
}

/// `--no-witness`: the in-process validator alone still finds the bogus
/// RRsets; no lookup carries a resolver verdict.
#[test]
fn without_witness_the_validator_alone_still_finds_bogus_data() {
    let Some(evs) = collect_with(&["dns-tlsa-bogus.example", "example"], |bed| DnsConfig {
        witness: false,
        ..config(bed)
    }) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    let t = h.tlsa.as_ref().unwrap();
    assert_meta(&t.meta, Outcome::Answer, Bogus, ev);
    assert_eq!(codes(ev), ["tlsa-bogus"]);
    for m in [&ev.mx.meta, &h.a.meta, &t.meta, &evs[1].mx.meta] {
        assert!(m.witness.is_none(), "{}: witness asked for", m.qname);
    }
}

// ---- RFC 4035 §5.4 / RFC 5155 §8: broken denial of existence -----------------------------

#[test]
fn rfc4035_5_4_broken_nsec_denial_for_tlsa_and_aaaa() {
    let Some(evs) = collect(&[
        "dns-tlsa-denial-bogus.example",
        "dns-host-denial-bogus.example",
    ]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    assert_meta(&h.a.meta, Outcome::Answer, Secure, ev);
    assert_meta(&h.aaaa.meta, Outcome::Answer, Secure, ev);
    let t = tlsa_meta(h);
    assert_meta(t, Outcome::NxDomain, Bogus, ev);
    assert!(
        t.rrsigs.iter().any(|s| s.covered == "NSEC"),
        "{:?}",
        t.rrsigs
    );
    assert_eq!(
        t.witness.as_ref().unwrap().cd_rcode.as_deref(),
        Some("NXDOMAIN")
    );
    // Every server serves the same broken proof.
    assert!(!h.nameservers.is_empty());
    assert!(h.nameservers.iter().all(|p| p.tlsa.denial == Some(Bogus)));
    assert_eq!(codes(ev), ["tlsa-denial-bogus"]);

    let ev = &evs[1];
    let h = &ev.hosts[0];
    assert_meta(&h.a.meta, Outcome::Answer, Secure, ev);
    assert_meta(&h.aaaa.meta, Outcome::NoData, Bogus, ev);
    assert_meta(tlsa_meta(h), Outcome::Answer, Secure, ev);
    assert_eq!(codes(ev), ["host-denial-bogus"]);
}

#[test]
fn rfc5155_8_broken_nsec3_denial_for_tlsa() {
    let Some(evs) = collect(&["dns-tlsa-denial-bogus-nsec3.example"]) else {
        return;
    };
    let ev = &evs[0];
    let t = tlsa_meta(&ev.hosts[0]);
    assert_meta(t, Outcome::NxDomain, Bogus, ev);
    assert!(
        t.rrsigs.iter().any(|s| s.covered == "NSEC3"),
        "{:?}",
        t.rrsigs
    );
    assert_eq!(codes(ev), ["tlsa-denial-bogus"]);
}

#[test]
fn rfc4035_5_4_bogus_denial_on_one_server_only() {
    let Some(evs) = collect(&["dns-ns-denial-bogus.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    // The resolver retried the good server: a secure denial.
    assert_meta(tlsa_meta(h), Outcome::NxDomain, Secure, ev);
    for p in probes(h, "ns-a.example") {
        assert_eq!(p.tlsa.denial, Some(Secure), "{}", summary(ev));
    }
    let b = probes(h, "ns-b.example");
    assert_eq!(b.len(), 2, "IPv4 and IPv6");
    for p in b {
        assert_eq!(p.tlsa.outcome, Outcome::NxDomain);
        assert!(p.tlsa.authoritative);
        assert_eq!(p.tlsa.denial, Some(Bogus), "{}", summary(ev));
    }
    assert_eq!(codes(ev), ["ns-denial-bogus", "tlsa-absent"]);
}

// ---- per-server checks ------------------------------------------------------------------

#[test]
fn rfc7672_2_2_tlsa_dropped_on_one_server_over_ipv6_only() {
    let Some(evs) = collect(&["dns-tlsa-drop-v6.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    assert_meta(tlsa_meta(h), Outcome::Answer, Secure, ev);
    let drop6 = probes(h, "ns-drop6.example");
    assert_eq!(drop6.len(), 2, "{}", summary(ev));
    for p in drop6 {
        assert_eq!(p.control.outcome, Outcome::NoData, "control answered");
        assert!(p.soa_serial.is_some());
        if p.address.is_ipv6() {
            assert_eq!(p.tlsa.outcome, Outcome::Failed);
            assert_eq!(p.tlsa.failure.as_ref().unwrap().kind, FailureKind::Timeout);
        } else {
            assert_eq!(p.tlsa.outcome, Outcome::Answer);
            assert_eq!(p.tlsa.records.len(), 2);
        }
    }
    assert_eq!(codes(ev), ["ns-drops-tlsa"]);
}

/// `-4` and `-6` restrict which server addresses are asked (and which
/// resolver address is used).
#[test]
fn families_restrict_transport() {
    let v4 = collect_with(&["dns-tlsa-drop-v6.example"], |bed| DnsConfig {
        resolvers: vec![
            format!("{}:53", bed.resolver()).parse().unwrap(),
            format!("[{}]:53", bed.var("RESOLVER6")).parse().unwrap(),
        ],
        families: Families {
            ipv4: true,
            ipv6: false,
        },
        ..config(bed)
    });
    let Some(v4) = v4 else {
        return;
    };
    let ev = &v4[0];
    assert_eq!(ev.collector.resolvers, ["198.51.100.53:53"]);
    assert!(!ev.collector.families.ipv6);
    assert!(!ev.hosts[0].nameservers.is_empty());
    assert!(ev.hosts[0].nameservers.iter().all(|p| p.address.is_ipv4()));
    assert!(codes(ev).is_empty(), "{:?}", codes(ev));

    let v6 = collect_with(&["dns-tlsa-drop-v6.example"], |bed| DnsConfig {
        resolvers: vec![
            format!("{}:53", bed.resolver()).parse().unwrap(),
            format!("[{}]:53", bed.var("RESOLVER6")).parse().unwrap(),
        ],
        families: Families {
            ipv4: false,
            ipv6: true,
        },
        ..config(bed)
    })
    .unwrap();
    let ev = &v6[0];
    assert_eq!(ev.collector.resolvers, ["[2001:db8:53::53]:53"]);
    assert_meta(tlsa_meta(&ev.hosts[0]), Outcome::Answer, Secure, ev);
    assert!(ev.hosts[0].nameservers.iter().all(|p| p.address.is_ipv6()));
    assert_eq!(codes(ev), ["ns-drops-tlsa"]);
}

#[test]
fn rfc7672_2_2_tlsa_dropped_everywhere_is_a_lookup_failure() {
    let Some(evs) = collect(&["dns-tlsa-drop-all.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    let t = tlsa_meta(h);
    assert_meta(t, Outcome::Failed, Indeterminate, ev);
    // Unbound either stays silent past our timeout or, once it has marked
    // both servers as unresponsive, answers SERVFAIL at once.
    let kind = t.failure.as_ref().unwrap().kind;
    assert!(
        matches!(kind, FailureKind::Timeout | FailureKind::ServFail),
        "{kind:?}"
    );
    assert_eq!(h.nameservers.len(), 4, "{}", summary(ev));
    for p in &h.nameservers {
        assert_eq!(p.control.outcome, Outcome::NoData);
        assert_eq!(p.tlsa.failure.as_ref().unwrap().kind, FailureKind::Timeout);
    }
    assert_eq!(codes(ev), ["ns-drops-tlsa", "tlsa-lookup-failed"]);
}

#[test]
fn server_refusing_tlsa() {
    let Some(evs) = collect(&["dns-tlsa-refused.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    let refuse = probes(h, "ns-refuse.example");
    assert_eq!(refuse.len(), 2);
    for p in refuse {
        assert_eq!(p.tlsa.outcome, Outcome::Failed);
        assert_eq!(p.tlsa.failure.as_ref().unwrap().kind, FailureKind::Refused);
        assert_eq!(p.control.outcome, Outcome::NoData);
    }
    assert_eq!(codes(ev), ["ns-refuses-tlsa"]);
}

#[test]
fn rfc1034_4_3_5_stale_secondary() {
    let Some(evs) = collect(&["dns-ns-out-of-sync.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    let a = probes(h, "ns-a.example");
    let b = probes(h, "ns-b.example");
    assert!(!a.is_empty() && !b.is_empty());
    let (sa, sb) = (a[0].soa_serial.unwrap(), b[0].soa_serial.unwrap());
    assert_eq!(sa, sb + 1, "stale secondary one serial behind");
    assert_eq!(a[0].tlsa.records.len(), 3);
    assert_eq!(b[0].tlsa.records.len(), 2);
    // Sorted by presentation form: comparable across servers.
    let shown: Vec<String> = a[0].tlsa.records.iter().map(|r| r.to_string()).collect();
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(sorted, shown);
    assert_eq!(a[0].tlsa.tlsa_records().count(), 3, "typed TLSA records");
    assert!(
        a[0].tlsa
            .tlsa_records()
            .all(|r| (r.usage, r.selector) == (3, 1) || (r.usage, r.selector) == (2, 1))
    );
    assert!(
        b[0].tlsa
            .records
            .iter()
            .all(|r| a[0].tlsa.records.contains(r))
    );
    assert_eq!(codes(ev), ["ns-out-of-sync"]);
}

#[test]
fn unreachable_nameserver_address() {
    let Some(evs) = collect(&["dns-ns-dead.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    let dead = probes(h, "ns-dead.example");
    assert_eq!(dead.len(), 2);
    for p in dead {
        assert_eq!(
            p.control.failure.as_ref().unwrap().kind,
            FailureKind::Timeout
        );
        assert_eq!(p.soa_serial, None);
    }
    assert_eq!(codes(ev), ["ns-unreachable"]);
}

// ---- RFC 4034 §3.1.5: signature times ----------------------------------------------------

#[test]
fn rfc4034_3_1_5_expiring_and_expired_signatures() {
    let Some(evs) = collect(&["dns-rrsig-expiring.example", "dns-rrsig-expired.example"]) else {
        return;
    };
    let day = 86_400;
    let ev = &evs[0];
    let h = &ev.hosts[0];
    let t = tlsa_meta(h);
    assert_meta(t, Outcome::Answer, Secure, ev);
    for m in [&ev.mx.meta, &h.a.meta, t] {
        let exp = m.rrsigs.iter().map(|s| s.expiration.0).min().unwrap();
        assert!(
            exp > now() && exp - now() < 3 * day,
            "{}: expires {exp}",
            m.qname
        );
    }
    let zone = ev.chain.iter().find(|z| z.zone == ev.domain).unwrap();
    assert!(
        zone.rrsigs
            .iter()
            .any(|s| s.covered == "DNSKEY" && s.expiration.0 - now() < 3 * day)
    );
    assert_eq!(codes(ev), ["rrsig-expiring"]);

    let ev = &evs[1];
    let h = &ev.hosts[0];
    let t = tlsa_meta(h);
    assert_meta(t, Outcome::Answer, Bogus, ev);
    let sig = t.rrsigs.iter().find(|s| s.covered == "TLSA").unwrap();
    assert!(
        sig.expiration.0 < now() && now() - sig.expiration.0 < 5 * day,
        "{sig:?}"
    );
    assert!(sig.inception.0 < sig.expiration.0);
    assert_eq!(sig.signer, ev.domain);
    // Only the TLSA RRSIG was expired: the addresses stay secure.
    assert_meta(&h.a.meta, Outcome::Answer, Secure, ev);
    assert_eq!(codes(ev), ["rrsig-expired", "tlsa-bogus"]);
}

// ---- RFC 7672 §2.2.2, RFC 7505, RFC 5321 §5.1 -------------------------------------------

#[test]
fn rfc7672_2_2_2_cnamed_mx_host() {
    let Some(evs) = collect(&["good-cname.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = host(ev, "mx.good-cname.example");
    for m in [&h.a.meta, &h.aaaa.meta] {
        assert_eq!(m.qname, "mx.good-cname.example");
        assert_eq!(m.cnames.len(), 1);
        let c = &m.cnames[0];
        assert_eq!(
            (c.owner.as_str(), c.target.as_str(), c.dnssec),
            ("mx.good-cname.example", "real.good-cname.example", Secure)
        );
        assert!(m.rrsigs.iter().any(|s| s.covered == "CNAME"));
    }
    assert_meta(&h.a.meta, Outcome::Answer, Secure, ev);
    // The target has no AAAA. hickory checks the NSEC of a CNAME'd answer
    // against the original name (PR #3595) and says Bogus; asked hop by hop
    // it is the secure denial it is.
    assert_meta(&h.aaaa.meta, Outcome::NoData, Secure, ev);
    // Every hop secure: the expanded name is the TLSA base domain.
    assert_eq!(h.tlsa_base, "real.good-cname.example");
    let t = h.tlsa.as_ref().unwrap();
    assert_eq!(t.meta.qname, "_25._tcp.real.good-cname.example");
    assert_meta(&t.meta, Outcome::Answer, Secure, ev);
    assert_eq!(t.records.len(), 2);
    assert!(
        h.nameservers
            .iter()
            .all(|p| p.qname == "_25._tcp.real.good-cname.example")
    );
    assert_eq!(codes(ev), ["mx-cname"]);
}

#[test]
fn rfc7505_null_mx_and_rfc5321_5_1_implicit_mx() {
    let Some(evs) = collect(&["dns-null-mx.example", "good-implicit.example"]) else {
        return;
    };
    let ev = &evs[0];
    assert_meta(&ev.mx.meta, Outcome::Answer, Secure, ev);
    assert_eq!(ev.mx.records.len(), 1);
    assert_eq!(
        (
            ev.mx.records[0].preference,
            ev.mx.records[0].exchange.as_str()
        ),
        (0, ".")
    );
    assert!(ev.hosts.is_empty());
    assert_eq!(codes(ev), ["null-mx"]);

    let ev = &evs[1];
    assert_meta(&ev.mx.meta, Outcome::NoData, Secure, ev);
    assert!(ev.mx.records.is_empty());
    assert_eq!(ev.hosts.len(), 1);
    let h = &ev.hosts[0];
    assert_eq!(
        (h.name.as_str(), h.preference),
        ("good-implicit.example", None)
    );
    assert_meta(tlsa_meta(h), Outcome::Answer, Secure, ev);
    assert_eq!(codes(ev), ["implicit-mx"]);
}

// ---- failures ---------------------------------------------------------------------------

#[test]
fn mx_zone_delegated_to_a_closed_server_is_a_lookup_failure() {
    let Some(evs) = collect(&["dns-mx-lookup-failed.example"]) else {
        return;
    };
    let ev = &evs[0];
    assert_meta(&ev.mx.meta, Outcome::Failed, Indeterminate, ev);
    // Unbound answers SERVFAIL once it has given up on ns-closed; before
    // that (fresh cache) it may stay silent past our timeout.
    let kind = ev.mx.meta.failure.as_ref().unwrap().kind;
    assert!(
        matches!(kind, FailureKind::ServFail | FailureKind::Timeout),
        "{kind:?}"
    );
    let w = ev.mx.meta.witness.as_ref().unwrap();
    if w.rcode == "SERVFAIL" {
        assert_eq!(
            w.cd_rcode.as_deref(),
            Some("SERVFAIL"),
            "CD=1 does not help"
        );
    }
    assert!(ev.hosts.is_empty());
    assert!(codes(ev).contains(&"mx-lookup-failed".to_string()));
}

/// The servers of a zone the resolver cannot reach are still examined: the
/// delegation comes from the parent's referral (ns-closed answers ICMP port
/// unreachable on both addresses).
#[test]
fn servers_of_an_unreachable_zone_come_from_the_referral() {
    let Some(probes) = in_bed(|bed| async move {
        let c = collector(bed).await;
        c.probe_nameservers("_25._tcp.mx.dns-mx-lookup-failed.example")
            .await
    }) else {
        return;
    };
    assert_eq!(probes.len(), 2, "{probes:?}");
    for p in &probes {
        assert_eq!(p.zone, "dns-mx-lookup-failed.example");
        assert_eq!(p.server, "ns-closed.example");
        assert_eq!(p.control.outcome, Outcome::Failed);
        assert_eq!(
            p.control.failure.as_ref().unwrap().kind,
            FailureKind::Network,
            "{:?}",
            p.control
        );
    }
    let f = dane_audit::core::nameserver::findings("mx.dns-mx-lookup-failed.example", &probes);
    let codes: Vec<&str> = f.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ["ns-unreachable", "ns-unreachable"]);
}

/// A resolver address where every packet is dropped: a failed MX lookup
/// (timeout) within the configured bound, not a hang.
#[test]
fn resolver_that_does_not_answer() {
    let Some(r) = in_bed(|bed| async move {
        let dead = bed.var("NS_DEAD").split(',').next().unwrap().to_string();
        let cfg = DnsConfig {
            resolvers: vec![format!("{dead}:53").parse().unwrap()],
            // The DNSKEY anchor needs no network at setup.
            timeout: Duration::from_millis(500),
            attempts: 2,
            ..config(bed)
        };
        let c = DnsCollector::new(cfg)
            .await
            .expect("setup needs no network");
        let t = std::time::Instant::now();
        let mx = c.mx("good-311.example").await;
        let first = t.elapsed();
        let ev = c.collect("good-311.example").await;
        (mx, first, ev)
    }) else {
        return;
    };
    let (mx, first, ev) = r;
    assert_eq!(mx.meta.outcome, Outcome::Failed);
    assert_eq!(mx.meta.dnssec, Indeterminate);
    assert_eq!(mx.meta.failure.as_ref().unwrap().kind, FailureKind::Timeout);
    assert!(mx.meta.witness.is_none(), "no validating resolver seen");
    // 2 attempts × 500 ms, with the witness probe in parallel.
    assert!(first < Duration::from_millis(2500), "took {first:?}");
    assert!(ev.hosts.is_empty());
    let audit = evaluate(&ev, &EvalOptions::at(Timestamp(now())));
    assert_eq!(audit.verdict.to_string(), "incomplete");
    assert_eq!(codes(&ev), ["mx-lookup-failed"]);
}

/// A server that does not validate (an authoritative server used as the
/// resolver): no witness, so it cannot make every lookup "disagree".
#[test]
fn non_validating_resolver_gives_no_witness() {
    let Some(evs) = collect_with(&["example"], |bed| DnsConfig {
        resolvers: vec![
            format!("{}:53", bed.var("NS_KNOT").split(',').next().unwrap())
                .parse()
                .unwrap(),
        ],
        nameserver_checks: false,
        ..config(bed)
    }) else {
        return;
    };
    let ev = &evs[0];
    // Knot is authoritative for `example`: a secure NODATA for its MX.
    assert_meta(&ev.mx.meta, Outcome::NoData, Secure, ev);
    assert!(ev.mx.meta.witness.is_none());
}

// ---- trust anchors ----------------------------------------------------------------------

#[test]
fn ds_trust_anchor_is_matched_against_the_root_dnskey_set() {
    let Some(r) = in_bed(|bed| async move {
        let ds = PathBuf::from(bed.var("TRUST_ANCHOR_DS"));
        let c = DnsCollector::new(DnsConfig {
            trust_anchor: TrustAnchorSource::File(ds),
            ..config(bed)
        })
        .await
        .expect("DS anchor");
        let info = c.collector_info().trust_anchor;
        let mx = c.mx("good-311.example").await;
        // A DS that matches no key of the root: a clear setup error.
        let dir = std::env::temp_dir().join(format!("dane-audit-ds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.ds");
        std::fs::write(
            &bad,
            ". IN DS 12345 13 2 00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\n",
        )
        .unwrap();
        let err = DnsCollector::new(DnsConfig {
            trust_anchor: TrustAnchorSource::File(bad),
            ..config(bed)
        })
        .await
        .unwrap_err()
        .to_string();
        // With the IANA anchors the bed's private root is bogus.
        let iana = DnsCollector::new(DnsConfig {
            trust_anchor: TrustAnchorSource::Iana,
            ..config(bed)
        })
        .await
        .unwrap();
        let iana_mx = iana.mx("good-311.example").await;
        let _ = std::fs::remove_dir_all(&dir);
        (info, mx, err, iana_mx)
    }) else {
        return;
    };
    let (info, mx, err, iana_mx) = r;
    assert!(info.contains("root.ds (1 key(s))"), "{info}");
    assert_eq!((mx.meta.outcome, mx.meta.dnssec), (Outcome::Answer, Secure));
    assert!(
        err.contains("no DNSKEY of . ") && err.contains("12345"),
        "{err}"
    );
    assert!(!err.contains('\n'));
    assert_eq!(iana_mx.meta.dnssec, Bogus, "{}", meta_line(&iana_mx.meta));
}

// ---- end to end through the core --------------------------------------------------------

/// Where the codes from this collector plus the core differ from
/// scenarios.tsv, and why. Everything else must match exactly.
const KNOWN: &[(&str, &[&str], &str)] = &[(
    "dns-ns-no-tcp.example",
    &["ns-no-tcp", "tlsa-rrset-large"],
    "tlsa-stale needs the served chain (SMTP), which DNS evidence alone does not have",
)];

/// The DNS-only scenarios (plus the DNS-side codes of good-implicit and
/// good-cname) give exactly the codes scenarios.tsv lists.
#[test]
fn scenarios_tsv_dns_codes_through_the_core() {
    let Some(results) = in_bed(|bed| async move {
        let c = collector(bed).await;
        let mut out = Vec::new();
        for s in support::scenarios() {
            if !(s.domain.starts_with("dns-")
                || s.domain == "good-implicit.example"
                || s.domain == "good-cname.example")
            {
                continue;
            }
            let mut ev = c.collect(&s.domain).await;
            // As `check` does: failed lookups are attributed to their servers.
            dane_audit::collect::attribute_mx_failure(&c, &mut ev).await;
            out.push((s, ev));
        }
        out
    }) else {
        return;
    };
    assert!(results.len() >= 20, "{} DNS scenarios", results.len());
    let mut bad = Vec::new();
    for (s, ev) in &results {
        let got = codes(ev);
        let want: Vec<String> = match KNOWN.iter().find(|k| k.0 == s.domain) {
            Some((_, codes, _)) => codes.iter().map(|c| c.to_string()).collect(),
            None => s.codes.clone(),
        };
        let verdict = evaluate(ev, &EvalOptions::at(Timestamp(now())))
            .verdict
            .to_string();
        eprintln!(
            "{:<40} {:<10} {:<45} {}",
            s.domain,
            verdict,
            got.join(";"),
            if got == want { "ok" } else { "MISMATCH" }
        );
        if got != want {
            bad.push(format!(
                "{}: want {:?} got {:?}\n{}",
                s.domain,
                want,
                got,
                summary(ev)
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Cold (fresh collector) and warm (same collector again) times per domain.
#[test]
fn collect_timings() {
    let Some((cold, warm, n)) = in_bed(|bed| async move {
        let names: Vec<String> = support::scenarios()
            .into_iter()
            .map(|s| s.domain)
            .filter(|d| d.starts_with("dns-") || d.starts_with("good-"))
            .collect();
        let c = collector(bed).await;
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for d in &names {
            let t = std::time::Instant::now();
            let _ = c.collect(d).await;
            cold.push((d.clone(), t.elapsed()));
        }
        for d in &names {
            let t = std::time::Instant::now();
            let _ = c.collect(d).await;
            warm.push((d.clone(), t.elapsed()));
        }
        (cold, warm, names.len())
    }) else {
        return;
    };
    let total = |v: &[(String, Duration)]| v.iter().map(|x| x.1).sum::<Duration>();
    let median = |v: &[(String, Duration)]| {
        let mut d: Vec<Duration> = v.iter().map(|x| x.1).collect();
        d.sort();
        d[d.len() / 2]
    };
    for ((d, c), (_, w)) in cold.iter().zip(&warm) {
        eprintln!(
            "{d:<40} cold {:>6.1} ms  warm {:>6.1} ms",
            c.as_secs_f64() * 1e3,
            w.as_secs_f64() * 1e3
        );
    }
    eprintln!(
        "{n} domains: cold total {:?} (median {:?}), warm total {:?} (median {:?})",
        total(&cold),
        median(&cold),
        total(&warm),
        median(&warm)
    );
    assert!(total(&warm) < total(&cold));
}

// ---- How the zones on the path are signed (RFC 8624, RFC 9905, RFC 9276) ------------------

fn chain_zone<'a>(ev: &'a Evidence, zone: &str) -> &'a ZoneSignatures {
    ev.chain
        .iter()
        .find(|z| z.zone == zone)
        .unwrap_or_else(|| panic!("no zone {zone} in the chain of\n{}", summary(ev)))
}

fn key_algorithms(z: &ZoneSignatures) -> Vec<u8> {
    let mut a: Vec<u8> = z.dnskeys.iter().map(|k| k.algorithm).collect();
    a.sort_unstable();
    a.dedup();
    a
}

#[test]
fn rfc8624_how_each_zone_is_signed_reaches_the_evidence() {
    let Some(evs) = collect(&[
        "dns-alg7-nsec3.example",
        "dns-alg5-nsec.example",
        "dns-ds-sha1.example",
        "dns-rsa1024.example",
        "dns-nsec3-iterations.example",
        "good-311-211.example",
    ]) else {
        return;
    };
    let nsec3 = |iterations, salt: &str| {
        Some(ZoneDenial::Nsec3 {
            hash: 1,
            iterations,
            salt: salt.into(),
        })
    };
    let z = chain_zone(&evs[0], "dns-alg7-nsec3.example");
    assert_eq!(key_algorithms(z), [7]);
    assert_eq!(z.denial, nsec3(0, ""));
    assert!(z.ds.iter().all(|d| d.digest_type == 2 && d.algorithm == 7));
    assert_eq!(codes(&evs[0]), ["dnssec-algorithm-deprecated"]);
    let z = chain_zone(&evs[1], "dns-alg5-nsec.example");
    assert_eq!(
        (key_algorithms(z), &z.denial),
        (vec![5], &Some(ZoneDenial::Nsec))
    );
    assert_eq!(codes(&evs[1]), ["dnssec-algorithm-deprecated"]);
    let z = chain_zone(&evs[2], "dns-ds-sha1.example");
    assert!(!z.ds.is_empty() && z.ds.iter().all(|d| d.digest_type == 1));
    assert_eq!(codes(&evs[2]), ["ds-digest-sha1-only"]);
    assert_eq!(
        key_algorithms(chain_zone(&evs[3], "dns-rsa1024.example")),
        [8]
    );
    assert_eq!(codes(&evs[3]), ["dnssec-key-weak"]);
    let z = chain_zone(&evs[4], "dns-nsec3-iterations.example");
    assert_eq!(z.denial, nsec3(10, "aabbccdd"));
    assert_eq!(codes(&evs[4]), ["nsec3-parameters"]);
    // A healthy path: ECDSA and NSEC from the root down, SHA-256 DS records.
    let ev = &evs[5];
    for zone in [".", "example", "good-311-211.example"] {
        let z = chain_zone(ev, zone);
        assert_eq!(
            (key_algorithms(z), &z.denial),
            (vec![13], &Some(ZoneDenial::Nsec)),
            "{zone}"
        );
        assert!(z.ds.iter().all(|d| d.digest_type == 2), "{zone}");
    }
    assert!(codes(ev).is_empty(), "{:?}", codes(ev));
    // The earliest signature expiry on the host's path is the earliest of
    // its RRsets' latest signatures (here the zone's or its parent's).
    let audit = evaluate(ev, &EvalOptions::at(Timestamp(now())));
    let first = audit.hosts[0]
        .earliest_signature_expiry
        .clone()
        .expect("a signed path");
    let h = &ev.hosts[0];
    for m in [&ev.mx.meta, &h.a.meta, tlsa_meta(h)] {
        let latest = m.rrsigs.iter().map(|s| s.expiration).max().unwrap();
        assert!(first.at <= latest, "{first:?} after {} {latest}", m.qname);
    }
}

#[test]
fn rfc7766_servers_without_tcp_or_dnskey_are_named() {
    let Some(evs) = collect(&["dns-ns-no-tcp.example", "dns-ns-drops-dnskey.example"]) else {
        return;
    };
    let ev = &evs[0];
    let h = &ev.hosts[0];
    assert!(
        h.tlsa_answer_octets.is_some_and(|o| o > 1232),
        "{:?}",
        h.tlsa_answer_octets
    );
    for p in probes(h, "ns-notcp.example") {
        let tcp = p.tcp.as_ref().expect("asked over TCP");
        // nftables answers TCP with a reset: a network error, not silence.
        assert_eq!(
            tcp.failure.as_ref().map(|f| f.kind),
            Some(FailureKind::Network)
        );
        assert!(
            p.tlsa.truncated && p.tlsa.outcome == Outcome::Failed,
            "{p:?}"
        );
        assert_eq!(p.dnskey.as_ref().map(|a| a.outcome), Some(Outcome::Answer));
    }
    for p in probes(h, "ns-a.example") {
        assert!(
            p.tlsa.truncated && p.tlsa.outcome == Outcome::Answer,
            "{p:?}"
        );
        assert_eq!(p.tlsa.records.len(), 5);
        assert!(p.tcp.as_ref().is_some_and(|a| a.failure.is_none()));
    }
    // DNS evidence alone: nothing served to call the leftovers stale.
    assert_eq!(codes(ev), ["ns-no-tcp", "tlsa-rrset-large"]);
    let ev = &evs[1];
    let h = &ev.hosts[0];
    let dropk = probes(h, "ns-dropk.example");
    assert_eq!(dropk.len(), 2);
    for p in dropk {
        let k = p.dnskey.as_ref().expect("DNSKEY asked");
        assert_eq!(
            k.failure.as_ref().map(|f| f.kind),
            Some(FailureKind::Timeout)
        );
        assert_eq!(p.tlsa.outcome, Outcome::Answer);
    }
    for p in probes(h, "ns-a.example") {
        assert!(p.dnskey.as_ref().is_some_and(|a| a.failure.is_none()));
    }
    assert_eq!(codes(ev), ["ns-drops-dnskey"], "{}", findings_text(ev));
}
