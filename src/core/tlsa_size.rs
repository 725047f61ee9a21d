//! A TLSA RRset that has grown too large (RFC 7766 §5, RFC 7671 §8.1):
//! its signed answer no longer fits a 1232-octet UDP answer (so every
//! resolver must ask again over TCP), or it holds more records than a host
//! needs, usually because each rollover added one and none was removed.

use super::audit::HostAudit;
use super::evidence::{HostEvidence, Outcome};
use super::finding::{Code, Finding};

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
    let leftovers: Vec<String> = t
        .records
        .iter()
        .filter(|r| {
            let shown = r.to_string();
            audit
                .records
                .iter()
                .any(|v| v.record == shown && v.usable && v.tested && !v.matched)
        })
        .map(|r| r.short())
        .collect();
    if !leftovers.is_empty() {
        msg.push_str(&format!(
            "; these records match nothing the server sends and look like leftovers of earlier rollovers (or next keys): {}",
            leftovers.join(", ")
        ));
    }
    Some(
        Finding::new(Code::TlsaRrsetLarge, qname.to_string())
            .msg(msg)
            .at_host(&h.name),
    )
}
