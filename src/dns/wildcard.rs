//! RFC 4035 §5.3.4: a positive answer synthesised from a wildcard and
//! proven with NSEC.
//!
//! hickory 0.26.3 rejects such answers whenever the NSEC that proves the
//! query name absent is owned by the wildcard itself (it looks for an NSEC
//! that *covers* the wildcard name, which exists; hickory-dns PR #3812
//! records the bug). That is the usual layout of a wildcard TLSA
//! (`*._tcp.mx.example`), which Unbound, BIND and Postfix accept, so the
//! auditor would call working zones bogus. hickory still verifies every
//! signature; this module only redoes the NSEC proof, from the records
//! hickory marked Secure.

use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

/// Whether `resp` proves that its `name qtype` answer is a genuine wildcard
/// expansion: a Secure RRSIG over the answer with fewer labels than the
/// name, and a Secure NSEC of the same zone that proves the next closer
/// name absent (and so the name itself, and any closer wildcard).
pub fn nsec_proves_expansion(resp: &Message, name: &Name, qtype: RecordType) -> bool {
    let Some((labels, signer)) = resp.answers.iter().find_map(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig))
            if r.name == *name
                && r.proof == Proof::Secure
                && sig.input().type_covered == qtype
                && sig.input().num_labels < name.num_labels() =>
        {
            Some((sig.input().num_labels, &sig.input().signer_name))
        }
        _ => None,
    }) else {
        return false;
    };
    let next_closer = name.trim_to(usize::from(labels) + 1);
    resp.authorities.iter().any(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC(nsec)) => {
            r.proof == Proof::Secure
                && signed_by(resp, &r.name, signer)
                && covers(&r.name, nsec, &next_closer, signer)
        }
        _ => false,
    })
}

/// The NSEC at `owner` carries a Secure RRSIG from `signer` (its own zone).
fn signed_by(resp: &Message, owner: &Name, signer: &Name) -> bool {
    resp.authorities.iter().any(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
            r.name == *owner
                && r.proof == Proof::Secure
                && sig.input().type_covered == RecordType::NSEC
                && sig.input().signer_name == *signer
        }
        _ => false,
    })
}

/// Whether the NSEC at `owner` proves `target` absent from `zone`: target
/// sorts strictly between owner and next (canonical order, RFC 4034 §6.1),
/// or after the zone's last name, and is no empty non-terminal above next.
fn covers(owner: &Name, nsec: &NSEC, target: &Name, zone: &Name) -> bool {
    let types = nsec.type_set();
    // RFC 6840 §4.1: the parent side of a delegation denies nothing below it.
    let cut = types.contains(RecordType::NS) && !types.contains(RecordType::SOA);
    if !zone.zone_of(owner) || !zone.zone_of(target) || (cut && owner.zone_of(target)) {
        return false;
    }
    let next = nsec.next_domain_name();
    let between = if next > owner {
        owner < target && target < next
    } else {
        // The zone's last NSEC points back at the apex.
        next == zone && owner < target
    };
    between && !target.zone_of(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn nsec(next: &str, types: &[RecordType]) -> NSEC {
        NSEC::new(n(next), types.iter().copied())
    }

    /// RFC 4034 §6.1 order, with the layouts a wildcard TLSA produces.
    #[test]
    fn covering_is_strict_canonical_order() {
        use RecordType::{NS, NSEC as N, RRSIG, SOA, TLSA};
        let z = n("z.example.");
        let cases = [
            // The wildcard's own NSEC covers the expanded name (the case hickory misses).
            (
                "*._tcp.mx.z.example.",
                "z.example.",
                "_25._tcp.mx.z.example.",
                true,
            ),
            (
                "*._tcp.mx.z.example.",
                "zz.z.example.",
                "_25._tcp.mx.z.example.",
                true,
            ),
            // Next sorts before the target: not covered.
            (
                "*._tcp.mx.z.example.",
                "_24._tcp.mx.z.example.",
                "_25._tcp.mx.z.example.",
                false,
            ),
            // An exact match is no proof of absence.
            (
                "_25._tcp.mx.z.example.",
                "z.example.",
                "_25._tcp.mx.z.example.",
                false,
            ),
            // The target is an empty non-terminal above next: it exists.
            (
                "mx.z.example.",
                "a._tcp.mx.z.example.",
                "_tcp.mx.z.example.",
                false,
            ),
            // Another zone's NSEC proves nothing here.
            (
                "a.other.example.",
                "c.other.example.",
                "b.other.example.",
                false,
            ),
        ];
        for (owner, next, target, want) in cases {
            let got = covers(&n(owner), &nsec(next, &[TLSA, RRSIG, N]), &n(target), &z);
            assert_eq!(got, want, "{owner} -> {next} covers {target}");
        }
        // The parent side of a cut never denies names below it.
        let deleg = nsec("zz.z.example.", &[NS, RRSIG, N]);
        assert!(!covers(
            &n("sub.z.example."),
            &deleg,
            &n("a.sub.z.example."),
            &z
        ));
        // A name after next is not covered, even from the apex.
        let apex = nsec("a.z.example.", &[SOA, NS, RRSIG, N]);
        assert!(!covers(&n("z.example."), &apex, &n("b.z.example."), &z));
    }
}
