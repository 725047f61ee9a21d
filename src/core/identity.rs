//! Server identity checks for DANE-TA(2) (RFC 7672 §3.2.3).
//!
//! webpki's own name check ignores the subject CN, and RFC 7672 wants it used
//! when (and only when) the certificate has no dNSName subjectAltName; it also
//! allows a wildcard only as the complete left-most label. So the rule lives
//! here, with the RFC's own cases as tests.

use super::cert::CertInfo;

/// The names the certificate presents for matching, by the RFC 7672 rule.
pub fn presented_names(cert: &CertInfo) -> &[String] {
    if cert.dns_names.is_empty() {
        &cert.common_names
    } else {
        &cert.dns_names
    }
}

/// Whether any presented name matches any reference identifier.
pub fn matches_any(cert: &CertInfo, reference_ids: &[String]) -> bool {
    presented_names(cert)
        .iter()
        .any(|p| reference_ids.iter().any(|r| name_matches(p, r)))
}

/// Matches one presented name against one reference identifier.
///
/// Comparison is ASCII case-insensitive and ignores a trailing dot. A
/// presented `*` matches exactly one whole label and only in the left-most
/// position (`*.example.com` matches `mx.example.com`, not `example.com`, not
/// `a.mx.example.com`); partial wildcards such as `mx*.example.com` never match.
pub fn name_matches(presented: &str, reference: &str) -> bool {
    let p = normalise(presented);
    let r = normalise(reference);
    if p.is_empty() || r.is_empty() {
        return false;
    }
    match p.strip_prefix("*.") {
        Some(rest) => {
            if rest.contains('*') || !rest.contains('.') {
                // A wildcard directly under a TLD is never accepted.
                return false;
            }
            match r.split_once('.') {
                Some((first, tail)) => !first.is_empty() && tail == rest,
                None => false,
            }
        }
        None => !p.contains('*') && p == r,
    }
}

fn normalise(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7672_name_rules() {
        let cases = [
            ("mx.example.com", "mx.example.com", true),
            ("MX.Example.COM.", "mx.example.com", true),
            ("*.example.com", "mx.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.mx.example.com", false),
            ("mx*.example.com", "mx1.example.com", false),
            ("*x.example.com", "mx.example.com", false),
            ("*.com", "example.com", false),
            ("mx.*.com", "mx.example.com", false),
            ("other.example.org", "mx.example.com", false),
            ("", "mx.example.com", false),
        ];
        for (p, r, want) in cases {
            assert_eq!(name_matches(p, r), want, "{p} vs {r}");
        }
    }

    fn cert(dns: &[&str], cn: &[&str]) -> CertInfo {
        let mut c = CertInfo::parse(b"not a certificate");
        c.dns_names = dns.iter().map(|s| s.to_string()).collect();
        c.common_names = cn.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn cn_only_when_no_dns_san() {
        let refs = vec!["mx.example.com".to_string()];
        assert!(matches_any(&cert(&[], &["mx.example.com"]), &refs));
        assert!(!matches_any(
            &cert(&["other.example.com"], &["mx.example.com"]),
            &refs
        ));
        assert!(matches_any(
            &cert(&["other.example.com", "mx.example.com"], &[]),
            &refs
        ));
    }
}
