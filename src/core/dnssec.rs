//! DNSSEC status of an RRset or of a denial of existence, and signature times.

use serde::{Deserialize, Serialize};

use super::evidence::{Rrsig, Timestamp};

/// The four security states of RFC 4033 §5 / RFC 4035 §4.3.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DnssecStatus {
    /// "An RRset for which the resolver is able to build a chain of signed
    /// DNSKEY and DS RRs from a trusted security anchor to the RRset."
    Secure,
    /// "An RRset for which the resolver knows that it has no chain of signed
    /// DNSKEY and DS RRs from any trusted starting point to the RRset."
    Insecure,
    /// "An RRset for which the resolver believes that it ought to be able to
    /// establish a chain of trust but for which it is unable to do so."
    Bogus,
    /// "An RRset for which the resolver is not able to determine whether the
    /// RRset should be signed": here, also every lookup that failed.
    Indeterminate,
}

impl DnssecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DnssecStatus::Secure => "secure",
            DnssecStatus::Insecure => "insecure",
            DnssecStatus::Bogus => "bogus",
            DnssecStatus::Indeterminate => "indeterminate",
        }
    }
}

/// Where a signature stands at the evaluation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigTime {
    Valid,
    /// Expires within the warning window: whole days left.
    Expiring {
        days_left: i64,
    },
    Expired,
    NotYetValid,
}

/// Classifies one RRSIG at `now` with a warning window of `warn_days`.
///
/// RRSIG times are RFC 1982 serial numbers; collectors store them already
/// unwrapped to Unix seconds, so plain comparison is right here.
pub fn sig_time(sig: &Rrsig, now: Timestamp, warn_days: u32) -> SigTime {
    if now < sig.inception {
        SigTime::NotYetValid
    } else if now >= sig.expiration {
        SigTime::Expired
    } else if sig.expiration.0 - now.0 < i64::from(warn_days) * 86_400 {
        SigTime::Expiring {
            days_left: now.days_until(sig.expiration),
        }
    } else {
        SigTime::Valid
    }
}

/// The signature that matters most for an RRset: the first one to expire.
pub fn earliest_expiry<'a>(sigs: impl IntoIterator<Item = &'a Rrsig>) -> Option<&'a Rrsig> {
    sigs.into_iter().min_by_key(|s| s.expiration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(inc: i64, exp: i64) -> Rrsig {
        Rrsig {
            covered: "TLSA".into(),
            signer: "example.".into(),
            key_tag: 1,
            algorithm: 13,
            inception: Timestamp(inc),
            expiration: Timestamp(exp),
        }
    }

    #[test]
    fn classifies_signature_times() {
        let day = 86_400;
        let now = Timestamp(100 * day);
        let cases = [
            (sig(0, 200 * day), SigTime::Valid),
            (sig(0, 102 * day), SigTime::Expiring { days_left: 2 }),
            (sig(0, 100 * day), SigTime::Expired),
            (sig(0, 50 * day), SigTime::Expired),
            (sig(101 * day, 200 * day), SigTime::NotYetValid),
        ];
        for (s, want) in cases {
            assert_eq!(sig_time(&s, now, 3), want, "{s:?}");
        }
    }

    #[test]
    fn picks_earliest_expiry() {
        let a = sig(0, 10);
        let b = sig(0, 5);
        assert_eq!(earliest_expiry([&a, &b]).unwrap().expiration, Timestamp(5));
    }
}
