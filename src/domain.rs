//! Domain names as people type them, turned into what DNS needs.
//!
//! Accepts upper case, a trailing dot and IDNs (converted to A-labels with
//! UTS #46); refuses, with a message that says what to type instead, URLs,
//! e-mail addresses, names with a port, IP addresses and names that are not
//! valid host names.

use std::net::IpAddr;

/// Why a string is not a domain name we can audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("empty domain name")]
    Empty,
    #[error("{0:?} looks like a URL: give the domain only, e.g. {1}")]
    Url(String, String),
    #[error("{0:?} looks like an e-mail address: give the domain after the @, e.g. {1}")]
    Email(String, String),
    #[error("{0:?} has a port: give the domain only (SMTP uses port 25), e.g. {1}")]
    Port(String, String),
    #[error("{0:?} is an IP address, not a domain name")]
    IpAddress(String),
    #[error("{0:?} is not a valid internationalised domain name")]
    Idna(String),
    #[error("{0:?} is longer than 253 characters")]
    TooLong(String),
    #[error("{0:?} has a label longer than 63 characters")]
    LabelTooLong(String),
    #[error("{0:?} has an empty label (two dots in a row)")]
    EmptyLabel(String),
    #[error("{0:?} contains {1:?}, which is not allowed in a host name")]
    BadChar(String, char),
    #[error("{0:?} has a label that starts or ends with a hyphen")]
    Hyphen(String),
    #[error("{0:?} is a single label: give a fully qualified domain name such as example.org")]
    SingleLabel(String),
}

/// Shortens the input for messages (inputs can be megabytes of garbage).
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Normalises one domain name: A-labels, lower case, no trailing dot.
pub fn normalize_domain(input: &str) -> Result<String, DomainError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DomainError::Empty);
    }
    let show = shown(s);
    if let Some((_, rest)) = s.split_once("://") {
        let host = rest
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("")
            .rsplit('@')
            .next()
            .unwrap_or("");
        let host = host.split(':').next().unwrap_or("");
        return Err(DomainError::Url(show, shown(host)));
    }
    if let Some((_, domain)) = s.rsplit_once('@') {
        return Err(DomainError::Email(show, shown(domain)));
    }
    let unbracketed = s.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<IpAddr>().is_ok() {
        return Err(DomainError::IpAddress(show));
    }
    if let Some((host, port)) = s.rsplit_once(':')
        && !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
    {
        return Err(DomainError::Port(show, shown(host)));
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    let ascii = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).map_err(|_| DomainError::Idna(show.clone()))?
    };
    validate(&ascii).map_err(|e| match e {
        // Report problems against what the user typed, not the A-label form.
        DomainError::TooLong(_) => DomainError::TooLong(show.clone()),
        other => other,
    })?;
    Ok(ascii)
}

fn validate(name: &str) -> Result<(), DomainError> {
    let show = shown(name);
    if name.len() > 253 {
        return Err(DomainError::TooLong(show));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel(show));
        }
        if label.len() > 63 {
            return Err(DomainError::LabelTooLong(show));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(DomainError::BadChar(show, c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::Hyphen(show));
        }
    }
    if labels.len() < 2 {
        return Err(DomainError::SingleLabel(show));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        let cases = [
            ("example.org", "example.org"),
            ("Example.ORG.", "example.org"),
            ("  mail.example.org  ", "mail.example.org"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("ÄÖÜ.de", "xn--4ca0bs.de"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_domain(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_with_a_reason() {
        let long_label = format!("{}.org", "a".repeat(64));
        let long_name = format!("{}org", "abcdefghi.".repeat(26));
        type Expect = fn(&DomainError) -> bool;
        let cases: Vec<(&str, Expect)> = vec![
            ("", |e| matches!(e, DomainError::Empty)),
            (
                "https://example.org/x",
                |e| matches!(e, DomainError::Url(_, h) if h == "example.org"),
            ),
            (
                "postmaster@example.org",
                |e| matches!(e, DomainError::Email(_, d) if d == "example.org"),
            ),
            (
                "example.org:25",
                |e| matches!(e, DomainError::Port(_, h) if h == "example.org"),
            ),
            ("192.0.2.1", |e| matches!(e, DomainError::IpAddress(_))),
            ("[2001:db8::1]", |e| matches!(e, DomainError::IpAddress(_))),
            (&long_label, |e| matches!(e, DomainError::LabelTooLong(_))),
            (&long_name, |e| matches!(e, DomainError::TooLong(_))),
            ("a..b.org", |e| matches!(e, DomainError::EmptyLabel(_))),
            ("exa mple.org", |e| {
                matches!(e, DomainError::BadChar(_, ' '))
            }),
            ("-bad.org", |e| matches!(e, DomainError::Hyphen(_))),
            ("localhost", |e| matches!(e, DomainError::SingleLabel(_))),
            ("\u{0}\u{1}garbage", |e| {
                matches!(e, DomainError::Idna(_) | DomainError::BadChar(..))
            }),
        ];
        for (input, ok) in cases {
            let e = normalize_domain(input).expect_err(input);
            assert!(ok(&e), "{input:?} gave {e:?}");
            assert!(!e.to_string().contains('\n'));
        }
    }
}
