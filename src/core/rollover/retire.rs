//! The last step of a rollover (RFC 7671 §8.1; the seed's step 6: "remove
//! the old record"): once the new certificate is served everywhere and
//! verified, which records are left over? Only a usable DANE record that
//! authenticates nothing served now and not the new certificate goes: a
//! record for another key type, a backup `2 1 1` or the next key's record
//! stays, and so does a record that senders cannot use at all (it is
//! reported by `check`, never silently removed).

use crate::core::dane::data_matches;
use crate::core::evidence::HostEvidence;
use crate::core::smtp::completed_tls;
use crate::core::tlsa::{TlsaRdata, Usability};

use super::Input;
use super::facts::HostFacts;

/// The records of `published` (the host's RRset as its primary serves it)
/// that match nothing served now and do not authenticate NEW. Nothing, as
/// long as any address of the host was not seen to serve a chain: what it
/// serves could be what a record is for.
pub fn leftovers(input: &Input<'_>, h: &HostEvidence, published: &[TlsaRdata]) -> Vec<TlsaRdata> {
    let facts = HostFacts::new(input, h);
    let seen_everywhere = !h.smtp.is_empty() && h.smtp.iter().all(completed_tls);
    if !seen_everywhere {
        return Vec::new();
    }
    published
        .iter()
        .filter(|r| matches!(r.usability(), Usability::Usable(_)))
        .filter(|r| !facts.authenticates_new(r))
        .filter(|r| !facts.authenticates_live(r) && !facts.matches_live_data(r))
        .filter(|r| data_matches(r, facts.new_chain()).is_empty())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rollover::fixtures::{case, new_cert};

    fn leftovers_of(case_name: &str, new_names: &[&str]) -> Vec<String> {
        let (ev, at) = case(case_name);
        let new = new_cert(new_names);
        let input = Input {
            evidence: &ev,
            hosts: &[],
            new: &new,
            candidate: None,
            now: at,
            margin_secs: 0,
            published_before: None,
            accept_nexthop_name: false,
        };
        let h = &ev.hosts[0];
        let published = &h.tlsa.as_ref().unwrap().records;
        leftovers(&input, h, published)
            .iter()
            .map(|r| r.to_string())
            .collect()
    }

    #[test]
    fn only_records_for_nothing_served_and_not_for_new_go() {
        // NEW (leaf-next) is served: the old key's record is left over.
        let gone = leftovers_of("address-serves-new-already-safe", &["leaf-next", "int-ca"]);
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(gone[0].starts_with("3 1 1 7c7e"), "{gone:?}");
        // The old certificate is still served: nothing goes.
        assert!(
            leftovers_of(
                "ready-state-remembers-an-old-first-sighting-safe",
                &["leaf-next", "int-ca"]
            )
            .is_empty()
        );
        // An address that could not be tested: nothing goes.
        assert!(leftovers_of("smtp-unreachable-undetermined", &["leaf-next", "int-ca"]).is_empty());
    }
}
