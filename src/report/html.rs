//! The report as an HTML fragment, for people in a browser (`serve`).
//!
//! It shows what the text report shows, in the same order: the verdict,
//! then each MX host with the DNSSEC status of its records and its TLSA
//! RRset, each address with its STARTTLS outcome and the served chain with
//! every record `[matched]` or `[nomatch]` at each depth, what each
//! authoritative server said, then the findings with their fixes. Every
//! value comes from the audit or the evidence and is escaped by maud; the
//! fragment holds no script and no inline style (the page's CSP forbids
//! both). Records a fix asks for get a copy button, which the page's
//! script reveals (without JavaScript they stay hidden, the text selectable).

use maud::{Markup, html};

use super::text::{lead, outcome_word, record_state, tlsa_not_looked_up};
use crate::core::audit::{AddressAudit, CertView, DomainAudit, HostAudit, RrsetView};
use crate::core::evidence::{Evidence, NsAnswer, NsProbe, Outcome};
use crate::core::finding::Finding;
use crate::core::verdict::HostVerdict;

/// The whole report for one domain. `evidence` adds the per-server DNS
/// results, which the audit does not carry.
pub fn report(a: &DomainAudit, evidence: &Evidence) -> Markup {
    html! {
        (verdict(a))
        section aria-labelledby="mx-h" {
            h2 #mx-h { "MX records" }
            (rrset_table("MX records of the domain", &[("MX", &a.mx)]))
            @if !evidence.nameservers.is_empty() {
                (nameservers(&a.domain, &evidence.nameservers))
            }
        }
        @for (i, h) in a.hosts.iter().enumerate() {
            (host(i, h, evidence.hosts.iter().find(|e| e.name == h.name).map(|e| e.nameservers.as_slice()).unwrap_or(&[])))
        }
        (findings(&a.findings))
    }
}

fn verdict(a: &DomainAudit) -> Markup {
    let v = a.verdict.as_str();
    let counts = super::severity_counts(a);
    html! {
        section class={"verdict v-" (v)} aria-labelledby="verdict-h" {
            h1 #verdict-h tabindex="-1" {
                span.domain { (a.domain) } " "
                span class={"badge v-" (v)} { (v.to_uppercase()) }
            }
            p.lead {
                (lead(a.verdict))
                @if let Some(r) = &a.reason { ": " (prose(r)) }
            }
            p.meta {
                (a.dane_hosts()) " of " (a.hosts.len()) " MX host(s) use DANE · "
                @if counts.is_empty() {
                    "no findings"
                } @else {
                    a href="#findings" {
                        @for (i, (s, n)) in counts.iter().enumerate() {
                            @if i > 0 { ", " }
                            (n) " " (s.as_str())
                        }
                    }
                }
                " · collected " (a.collected_at) ", evaluated at " (a.evaluated_at)
            }
        }
    }
}

/// A table of RRsets: type, name, outcome, DNSSEC, TTL, resolver AD.
fn rrset_table(label: &str, rows: &[(&str, &RrsetView)]) -> Markup {
    html! {
        div.scroll role="region" aria-label=(label) tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Type" } th scope="col" { "Name" } th scope="col" { "Result" }
                    th scope="col" { "DNSSEC" } th scope="col" { "TTL" } th scope="col" { "Resolver AD" }
                } }
                tbody {
                    @for (t, v) in rows { (rrset_row(t, v)) }
                }
            }
        }
    }
}

fn rrset_row(t: &str, v: &RrsetView) -> Markup {
    html! {
        tr {
            th scope="row" { (t) }
            td.name {
                (v.qname)
                @for hop in &v.via { br; "→ CNAME " (hop) }
            }
            td {
                (outcome_word(v.outcome))
                @if let Some(n) = &v.note { " (" (n) ")" }
            }
            td { span class={"dnssec d-" (v.dnssec.as_str())} { (v.dnssec.as_str()) } }
            td { @if let Some(ttl) = v.ttl { (ttl) } @else { "–" } }
            td { @match v.ad { Some(true) => "1", Some(false) => "0", None => "–" } }
        }
    }
}

fn host(i: usize, h: &HostAudit, nameservers: &[NsProbe]) -> Markup {
    let id = format!("host-{i}");
    let pref = h
        .preference
        .map(|p| format!("MX {p}"))
        .unwrap_or_else(|| "implicit MX".into());
    let v = h.verdict.as_str();
    let mut rows: Vec<(&str, &RrsetView)> = vec![("A", &h.a), ("AAAA", &h.aaaa)];
    if let Some(t) = &h.tlsa {
        rows.push(("TLSA", t));
    }
    html! {
        section.host aria-labelledby=(id) {
            h2 id=(id) {
                (h.name) " " span.pref { "(" (pref) ")" } " "
                span class={"badge v-" (v)} { (v.to_uppercase()) }
            }
            @if let Some(r) = h.reason.as_ref().filter(|_| h.verdict != HostVerdict::Pass) {
                p.reason { (prose(r)) }
            }
            @if h.tlsa_base != h.name {
                p { "TLSA base domain (after CNAME expansion): " code { (h.tlsa_base) } }
            }
            (rrset_table(&format!("DNS records of {}", h.name), &rows))
            @if h.tlsa.is_none() {
                p { "TLSA not looked up: " (tlsa_not_looked_up(h)) "." }
            }
            @if !h.records.is_empty() {
                h3 { "TLSA records at _25._tcp." (h.tlsa_base) }
                ul.records {
                    @for r in &h.records {
                        @let state = record_state(r);
                        li {
                            span class={"tag t-" (state.replace([' ', ','], ""))} { "[" (state) "]" } " "
                            code.record { (r.record) }
                            @if let Some(n) = &r.note { " " span.note { (prose(n)) } }
                        }
                    }
                }
            }
            @for a in &h.addresses { (address(a)) }
            @if !nameservers.is_empty() { (nameservers_of(&h.name, nameservers)) }
        }
    }
}

fn address(a: &AddressAudit) -> Markup {
    let v = a.verdict.as_str();
    html! {
        div.address {
            h3 {
                (a.address) " " span class={"badge v-" (v)} { (v.to_uppercase()) }
            }
            p.smtp { (a.smtp) }
            @if let Some(r) = a.reason.as_ref().filter(|r| !a.smtp.contains(r.as_str())) {
                p.reason { (prose(r)) }
            }
            @if !a.chain.is_empty() {
                ul.chain aria-label={"Certificates served by " (a.address)} {
                    @for c in &a.chain { (cert(c)) }
                }
            }
        }
    }
}

fn cert(c: &CertView) -> Markup {
    html! {
        li {
            p.cert {
                "depth " (c.depth) ": " span.subject { (c.subject) }
                @if let Some(t) = c.not_after { " " span.date { "(notAfter " (t) ")" } }
            }
            p.issuer { "issuer: " (c.issuer) }
            @if !c.records.is_empty() {
                ul.matches {
                    @for m in &c.records {
                        li {
                            @if m.matched {
                                span.tag.t-matched { "[matched]" }
                            } @else if m.signed {
                                span.tag.t-matched { "[signed by the record's anchor]" }
                            } @else {
                                span.tag.t-nomatch { "[nomatch]" }
                            }
                            " " code.record { (m.record) }
                        }
                    }
                }
            }
            @if let Some(spki) = &c.spki_sha256 {
                @let (usage, what) = if c.depth == 0 { (3, "this server key") } else { (2, "this CA") };
                p.suggest {
                    (usage) " 1 1 record for " (what) ": "
                    (copyable(&format!("{usage} 1 1 {spki}")))
                }
            }
        }
    }
}

fn nameservers(domain: &str, probes: &[NsProbe]) -> Markup {
    html! {
        h3 { "Authoritative servers of " (domain) }
        (ns_table(&format!("Authoritative servers of {domain}"), probes))
    }
}

fn nameservers_of(host: &str, probes: &[NsProbe]) -> Markup {
    let qname = probes.first().map(|p| p.qname.as_str()).unwrap_or(host);
    html! {
        h3 { "Each authoritative server, asked directly for " (qname.trim_end_matches('.')) }
        (ns_table(&format!("Authoritative servers for {host}"), probes))
    }
}

fn ns_table(label: &str, probes: &[NsProbe]) -> Markup {
    html! {
        div.scroll role="region" aria-label=(label) tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Server" } th scope="col" { "Address" } th scope="col" { "TLSA" }
                    th scope="col" { "Control query" } th scope="col" { "SOA serial" }
                } }
                tbody {
                    @for p in probes {
                        tr {
                            th scope="row" { (p.server.trim_end_matches('.')) }
                            td { (p.address) }
                            td { (ns_answer(&p.tlsa)) }
                            td { (ns_answer(&p.control)) }
                            td { @if let Some(s) = p.soa_serial { (s) } @else { "–" } }
                        }
                    }
                }
            }
        }
    }
}

/// One server's answer in words: the failure, or the outcome with its records.
fn ns_answer(a: &NsAnswer) -> Markup {
    html! {
        @if let Some(f) = &a.failure {
            (f.to_string())
        } @else {
            (outcome_word(a.outcome))
            @if a.outcome == Outcome::Answer {
                @for r in &a.records { br; code.record { (r.to_string()) } }
            }
            @if let Some(d) = a.denial { ", denial " (d.as_str()) }
        }
    }
}

fn findings(findings: &[Finding]) -> Markup {
    html! {
        section #findings aria-labelledby="findings-h" {
            h2 #findings-h { "Findings (" (findings.len()) ")" }
            @if findings.is_empty() {
                p { "No findings." }
            } @else {
                ol.findings {
                    @for f in findings { (finding(f)) }
                }
            }
        }
    }
}

fn finding(f: &Finding) -> Markup {
    let sev = f.severity.as_str();
    html! {
        li class={"finding s-" (sev)} {
            p.head {
                span class={"badge s-" (sev)} { (sev.to_uppercase()) } " "
                a.code href={"/explain/" (f.code.as_str())} { (f.code.as_str()) } " "
                span.subject { (f.subject) }
            }
            p.message { (prose(&f.message)) }
            div.fix {
                span.label { "Fix: " }
                @for line in f.fix.lines() { p { (fix_line(line)) } }
            }
            (see_rfc(f.rfc))
        }
    }
}

/// "See RFC 7672 §3.1.3, ..." with each reference a link.
pub fn see_rfc(refs: &str) -> Markup {
    html! {
        p.rfc {
            "See "
            @for (i, (text, url)) in rfc_links(refs).iter().enumerate() {
                @if i > 0 { ", " }
                a href=(url) rel="noreferrer" { (text) }
            }
        }
    }
}

/// A line of a fix: text, with `backquoted` parts as code; records (and a
/// line that is a whole zone-file record) get a copy button.
pub fn fix_line(line: &str) -> Markup {
    if !line.contains('`') && is_record(line) {
        return copyable(line.trim());
    }
    html! {
        @for (i, part) in line.split('`').enumerate() {
            @if i % 2 == 0 { (part) }
            @else if is_record(part) { (copyable(part)) }
            @else { code { (part) } }
        }
    }
}

/// Text from the core (messages, notes, reasons): `backquoted` parts as code.
pub fn prose(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 0 { (part) } @else { code { (part) } }
        }
    }
}

/// A record with a copy button (hidden until the script shows it).
fn copyable(record: &str) -> Markup {
    html! {
        span.copyable {
            code.record { (record) }
            " "
            // The accessible name starts with the visible word (WCAG 2.5.3).
            button.copy type="button" hidden data-copy=(record) {
                span.label { "Copy" } span.visually-hidden { " " (record) }
            }
        }
    }
}

/// Whether `s` is TLSA record data (`3 1 1 <hex>`) or a zone-file line
/// ending in it: what an operator pastes into a zone.
pub fn is_record(s: &str) -> bool {
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let rdata = match tokens.iter().position(|t| *t == "TLSA") {
        Some(i) => &tokens[i + 1..],
        None => &tokens[..],
    };
    matches!(rdata, [u, s, m, data]
        if [u, s, m].iter().all(|t| t.len() <= 3 && t.chars().all(|c| c.is_ascii_digit()))
            && data.len() >= 2
            && data.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `RFC 7672 §3.1.3, §3.2` as (text, rfc-editor.org link) pairs; a bare
/// section refers to the RFC named before it.
pub fn rfc_links(refs: &str) -> Vec<(String, String)> {
    let mut rfc = String::new();
    refs.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            let mut section = part;
            if let Some(rest) = part.strip_prefix("RFC ") {
                let (num, sec) = rest.split_once(' ').unwrap_or((rest, ""));
                rfc = num.to_string();
                section = sec;
            }
            let sec = section
                .trim_start_matches('§')
                .split('-')
                .next()
                .unwrap_or("");
            let mut url = format!("https://www.rfc-editor.org/rfc/rfc{rfc}");
            if !sec.is_empty() {
                url.push_str(&format!("#section-{sec}"));
            }
            (part.to_string(), url)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_recognised() {
        assert!(is_record("3 1 1 1c2d3e"));
        assert!(is_record(
            "_25._tcp.mx.example.net. IN TLSA 2 1 1 2bbad93ab5c79279ec121507f272cbe0"
        ));
        assert!(!is_record("3 1 1"), "a parameter set, not a record");
        assert!(!is_record("Publish a second record, e.g."));
        assert!(!is_record("3 1 1 not-hex"));
        assert!(!is_record("_25._tcp.<host>"));
    }

    #[test]
    fn rfc_references_link_to_sections() {
        assert_eq!(
            rfc_links("RFC 7671 §5.1, §8"),
            vec![
                (
                    "RFC 7671 §5.1".to_string(),
                    "https://www.rfc-editor.org/rfc/rfc7671#section-5.1".to_string()
                ),
                (
                    "§8".to_string(),
                    "https://www.rfc-editor.org/rfc/rfc7671#section-8".to_string()
                ),
            ]
        );
        assert_eq!(
            rfc_links("RFC 7505")[0].1,
            "https://www.rfc-editor.org/rfc/rfc7505"
        );
        assert_eq!(
            rfc_links("RFC 7671 §5.1-5.2")[0].1,
            "https://www.rfc-editor.org/rfc/rfc7671#section-5.1"
        );
    }

    #[test]
    fn fix_text_is_escaped_and_records_get_a_copy_button() {
        let m = fix_line("Publish `3 1 1 ab12` or <script>alert(1)</script> `x`").into_string();
        assert!(m.contains("&lt;script&gt;"), "{m}");
        assert!(!m.contains("<script>"), "{m}");
        assert!(m.contains(r#"data-copy="3 1 1 ab12""#), "{m}");
        assert!(m.contains("<code>x</code>"), "{m}");
    }
}
