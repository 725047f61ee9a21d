//! A TLSA RRset that has grown too large (RFC 7766 §5, RFC 7671 §8.1):
//! its signed answer no longer fits a 1232-octet UDP answer (so every
//! resolver must ask again over TCP), or it holds more records than a host
//! needs, usually because each rollover added one and none was removed.

use super::audit::HostAudit;
use super::evidence::{HostEvidence, Outcome};
use super::finding::{Code, Finding};
use super::tlsa::TlsaRdata;

/// The UDP payload size resolvers advertise since DNS flag day 2020.
pub const UDP_PAYLOAD: u32 = 1232;
/// More records than a host needs: current and next key, their issuers.
pub const MAX_RECORDS: usize = 8;

/// `tlsa-rrset-large` for one host, naming the records that match nothing
/// served (leftovers of earlier rollovers, or next keys).
pub fn finding(h: &HostEvidence, audit: &HostAudit) -> Option<Finding> {
    let t = h.tlsa.as_ref()?;
    if t.meta.outcome != Outcome::Answer || t.records.is_empty() {
        return None;
    }
    let octets = h.tlsa_answer_octets.filter(|o| *o > UDP_PAYLOAD);
    let many = t.records.len() > MAX_RECORDS;
    if octets.is_none() && !many {
        return None;
    }
    let qname = t.meta.qname.trim_end_matches('.');
    let mut why = Vec::new();
    if let Some(o) = octets {
        why.push(format!(
            "its signed answer is {o} octets, more than fits a {UDP_PAYLOAD}-octet UDP answer, so resolvers must ask again over TCP"
        ));
    }
    if many {
        why.push(format!("it has more than {MAX_RECORDS} records"));
    }
    let mut msg = format!(
        "the TLSA RRset at {qname} ({} records) is large: {}",
        t.records.len(),
        why.join("; ")
    );
    let leftovers: Vec<&TlsaRdata> = t
        .records
        .iter()
        .filter(|r| {
            let shown = r.to_string();
            audit
                .records
                .iter()
                .any(|v| v.record == shown && v.usable && v.tested && !v.matched)
        })
        .collect();
    let f = Finding::new(Code::TlsaRrsetLarge, qname.to_string()).at_host(&h.name);
    if leftovers.is_empty() {
        return Some(f.msg(msg));
    }
    let short: Vec<String> = leftovers.iter().map(|r| r.short()).collect();
    msg.push_str(&format!(
        "; these records match nothing the server sends and look like leftovers of earlier rollovers (or next keys): {}",
        short.join(", ")
    ));
    let removals: Vec<String> = leftovers.iter().map(|r| removal(qname, r)).collect();
    Some(f.msg(msg).fix(format!(
        "Unless they are the next keys of a rollover in progress, remove the records that match nothing served: {}; keep `3 1 1` for the current key and `2 1 1` for its issuing CA, prefer digests (matching type 1) to full certificates (matching type 0), and check that every nameserver answers over TCP.",
        removals.join(", ")
    )))
}

/// The record to delete, as a zone-file line; a full-certificate record
/// (too long to quote usefully) by its start.
fn removal(qname: &str, r: &TlsaRdata) -> String {
    if r.data.len() <= 64 {
        format!("`{qname}. IN TLSA {r}`")
    } else {
        format!("`{qname}. IN TLSA {}` (the full-data record)", r.short())
    }
}
