//! What an SMTP STARTTLS probe tells about an address (RFC 5321, RFC 3207).
//!
//! The classification keeps "could not test" (refused connection, timeout,
//! a 421/450 rate limit) strictly apart from "tested and failed" (no
//! STARTTLS, STARTTLS refused, handshake failed): the first never becomes a
//! verdict about the server's TLS.

use super::evidence::{
    Der, KeyTypeProbe, LegacyHello, SmtpFailure, SmtpFailureKind, SmtpPhase, SmtpProbe,
};
use super::finding::Code;

/// The class of an SMTP probe's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtpResult {
    /// Not probed on purpose (`--no-smtp`, a skip list, a disabled family).
    NotProbed(String),
    /// The probe could not reach a verdict: `code` says why.
    Untested { code: Code, message: String },
    /// The server was tested and cannot do TLS as DANE requires.
    Failed { code: Code, message: String },
    /// The TLS handshake completed; the chain is in the probe.
    Tls,
}

/// The STARTTLS command-injection case: plaintext arrived with the 220
/// reply, the collector discarded it, and the handshake still completed.
/// Returns the collector's description.
pub fn injection(p: &SmtpProbe) -> Option<&str> {
    let f = p.failure.as_ref()?;
    (f.phase == SmtpPhase::Starttls
        && f.kind == SmtpFailureKind::Protocol
        && p.tls.is_some()
        && !p.chain.is_empty())
    .then_some(f.detail.as_str())
}

/// Whether the probe ended with a TLS session whose chain can be judged.
pub fn completed_tls(p: &SmtpProbe) -> bool {
    matches!(classify(p), SmtpResult::Tls)
}

/// A server that only legacy TLS reaches: the default handshake failed, and
/// a legacy hello got a certificate with a version or suite that a modern
/// client cannot negotiate. Returns what the server chose.
pub fn legacy_only(p: &SmtpProbe) -> Option<&LegacyHello> {
    let f = p.failure.as_ref()?;
    if p.tls.is_some() || f.phase != SmtpPhase::Handshake {
        return None;
    }
    p.key_types
        .iter()
        .filter(|k| k.presented().is_some())
        .filter_map(|k| k.legacy.as_ref())
        .find(|l| !l.modern())
}

/// Where a chain an address presents was seen.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// The default offer's handshake (the probe's own `chain`).
    Negotiated,
    /// A further handshake or legacy hello.
    Further(&'a KeyTypeProbe),
}

/// One distinct chain an address presents to some DANE sender.
#[derive(Clone, Copy, Debug)]
pub struct Presented<'a> {
    pub chain: &'a [Der],
    pub source: Source<'a>,
}

/// Every distinct chain the address presents: after a completed handshake,
/// the default offer's chain and those of the other key types; for a
/// legacy-only server, the chains its legacy hellos got; else none.
/// Identical chains are listed once.
pub fn presented(p: &SmtpProbe) -> Vec<Presented<'_>> {
    let legacy = legacy_only(p).is_some();
    let mut out: Vec<Presented<'_>> = Vec::new();
    if completed_tls(p) && !p.chain.is_empty() {
        out.push(Presented {
            chain: &p.chain,
            source: Source::Negotiated,
        });
    } else if !legacy {
        return out;
    }
    for k in &p.key_types {
        let Some(chain) = k.presented() else {
            continue;
        };
        if k.legacy.is_some() != legacy || out.iter().any(|o| o.chain == chain) {
            continue;
        }
        out.push(Presented {
            chain,
            source: Source::Further(k),
        });
    }
    out
}

/// Classifies one probe.
pub fn classify(p: &SmtpProbe) -> SmtpResult {
    if injection(p).is_some() {
        return SmtpResult::Tls;
    }
    let Some(f) = &p.failure else {
        return SmtpResult::Tls;
    };
    let detail = detail(f);
    match (f.phase, f.kind) {
        (_, SmtpFailureKind::NotProbed) => SmtpResult::NotProbed(f.detail.clone()),
        (SmtpPhase::Connect, _) => untested(
            Code::SmtpUnreachable,
            format!("could not connect to port {}: {detail}", p.port),
        ),
        (SmtpPhase::Greeting, SmtpFailureKind::Timeout | SmtpFailureKind::Closed) => {
            untested(Code::SmtpUnreachable, format!("no SMTP greeting: {detail}"))
        }
        (_, SmtpFailureKind::NoStarttls) => failed(
            Code::StarttlsNotOffered,
            "EHLO did not offer STARTTLS".to_string(),
        ),
        (_, SmtpFailureKind::Reply) => by_reply(p, f.phase),
        (_, SmtpFailureKind::Protocol) => failed(
            Code::SmtpProtocolError,
            format!("protocol error during {}: {detail}", f.phase.as_str()),
        ),
        (SmtpPhase::Handshake, _) => match legacy_only(p) {
            Some(l) => failed(Code::TlsLegacyOnly, legacy_message(l, &detail)),
            None => failed(
                Code::TlsHandshakeFailed,
                format!("TLS handshake failed: {detail}"),
            ),
        },
        (SmtpPhase::Ehlo, SmtpFailureKind::Closed)
        | (SmtpPhase::Starttls, SmtpFailureKind::Closed) => {
            // A server that hangs up in the middle of the dialogue is how many
            // MTAs enforce connection limits: not a verdict on TLS.
            untested(
                Code::SmtpUnreachable,
                format!(
                    "the server closed the connection during {}",
                    f.phase.as_str()
                ),
            )
        }
        (phase, _) => untested(
            Code::SmtpUnreachable,
            format!("{} did not complete: {detail}", phase.as_str()),
        ),
    }
}

/// What a legacy-only server means for senders, in words.
fn legacy_message(l: &LegacyHello, detail: &str) -> String {
    let who = if matches!(l.version.as_str(), "TLSv1.2" | "TLSv1.3") {
        "OpenSSL-based senders may still negotiate it"
    } else {
        "OpenSSL 3 at its default security level (and so current Postfix and Exim) refuses \
         TLS 1.0/1.1 as well"
    };
    format!(
        "the server accepts only legacy TLS: to a hello offering TLS 1.0 to 1.2 with CBC and RSA \
         key-exchange suites it chose {} with {} (its certificate was read in clear; no \
         handshake was completed); senders that require TLS 1.2 with ECDHE and AEAD suites \
         (RFC 9325, rustls-based MTAs) cannot negotiate with it, {who} (the modern handshake \
         failed: {})",
        l.version,
        l.cipher,
        first_clause(detail)
    )
}

/// A failure detail without the collector's explanation after it ("received
/// fatal alert: ProtocolVersion: the server accepts ..." -> the alert).
pub fn first_clause(detail: &str) -> &str {
    detail.split(": the server ").next().unwrap_or(detail)
}

fn detail(f: &SmtpFailure) -> String {
    if f.detail.is_empty() {
        format!("{:?}", f.kind).to_lowercase()
    } else {
        f.detail.clone()
    }
}

fn untested(code: Code, message: String) -> SmtpResult {
    SmtpResult::Untested { code, message }
}

fn failed(code: Code, message: String) -> SmtpResult {
    SmtpResult::Failed { code, message }
}

/// A reply code ended the dialogue: which reply, at which step.
fn by_reply(p: &SmtpProbe, phase: SmtpPhase) -> SmtpResult {
    let reply = match phase {
        SmtpPhase::Greeting => p.greeting.as_ref(),
        SmtpPhase::Ehlo => p.ehlo.as_ref(),
        SmtpPhase::Starttls => p.starttls.as_ref(),
        _ => None,
    };
    let code = reply.map(|r| r.code).unwrap_or(0);
    let text = reply
        .and_then(|r| r.lines.first())
        .map(|l| format!(" {l}"))
        .unwrap_or_default();
    let said = format!("{code}{text}");
    match phase {
        SmtpPhase::Starttls => failed(
            Code::StarttlsRefused,
            format!("STARTTLS was answered with {said}"),
        ),
        _ if (400..500).contains(&code) => untested(
            Code::SmtpRateLimited,
            format!(
                "the server answered {said} {}: not tested (a temporary refusal says nothing about STARTTLS)",
                if phase == SmtpPhase::Greeting {
                    "instead of its greeting"
                } else {
                    "to EHLO"
                }
            ),
        ),
        SmtpPhase::Greeting => untested(
            Code::SmtpUnreachable,
            format!("the server refused service: {said}"),
        ),
        _ => failed(
            Code::StarttlsNotOffered,
            format!("EHLO was rejected with {said}, so STARTTLS cannot be used"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::evidence::Reply;

    fn probe(failure: Option<(SmtpPhase, SmtpFailureKind)>) -> SmtpProbe {
        SmtpProbe {
            address: "192.0.2.1".parse().unwrap(),
            port: 25,
            elapsed_ms: 0,
            greeting: None,
            ehlo: None,
            starttls: None,
            tls: None,
            chain: vec![],
            failure: failure.map(|(phase, kind)| SmtpFailure {
                phase,
                kind,
                detail: String::new(),
            }),
            key_types: Vec::new(),
        }
    }

    fn reply(code: u16, lines: &[&str]) -> Option<Reply> {
        Some(Reply {
            code,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn code_of(r: &SmtpResult) -> Option<Code> {
        match r {
            SmtpResult::Untested { code, .. } | SmtpResult::Failed { code, .. } => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn outcome_table() {
        use SmtpFailureKind as K;
        use SmtpPhase as P;
        let cases = [
            (
                P::Connect,
                K::Refused,
                None,
                Some(Code::SmtpUnreachable),
                false,
            ),
            (
                P::Connect,
                K::Timeout,
                None,
                Some(Code::SmtpUnreachable),
                false,
            ),
            (
                P::Greeting,
                K::Timeout,
                None,
                Some(Code::SmtpUnreachable),
                false,
            ),
            (
                P::Greeting,
                K::Reply,
                reply(421, &["too many connections"]),
                Some(Code::SmtpRateLimited),
                false,
            ),
            (
                P::Greeting,
                K::Reply,
                reply(554, &["no service"]),
                Some(Code::SmtpUnreachable),
                false,
            ),
            (
                P::Greeting,
                K::Protocol,
                None,
                Some(Code::SmtpProtocolError),
                true,
            ),
            (
                P::Ehlo,
                K::Reply,
                reply(450, &["greylisted"]),
                Some(Code::SmtpRateLimited),
                false,
            ),
            (
                P::Ehlo,
                K::Reply,
                reply(550, &["go away"]),
                Some(Code::StarttlsNotOffered),
                true,
            ),
            (
                P::Starttls,
                K::Reply,
                reply(454, &["TLS not available"]),
                Some(Code::StarttlsRefused),
                true,
            ),
            (
                P::Starttls,
                K::Protocol,
                None,
                Some(Code::SmtpProtocolError),
                true,
            ),
            (
                P::Handshake,
                K::Tls,
                None,
                Some(Code::TlsHandshakeFailed),
                true,
            ),
            (
                P::Handshake,
                K::Closed,
                None,
                Some(Code::TlsHandshakeFailed),
                true,
            ),
            (P::Ehlo, K::Closed, None, Some(Code::SmtpUnreachable), false),
        ];
        for (phase, kind, r, want, is_failure) in cases {
            let mut p = probe(Some((phase, kind)));
            match phase {
                P::Greeting => p.greeting = r,
                P::Ehlo => p.ehlo = r,
                P::Starttls => p.starttls = r,
                _ => {}
            }
            let got = classify(&p);
            assert_eq!(code_of(&got), want, "{phase:?} {kind:?}");
            assert_eq!(
                matches!(got, SmtpResult::Failed { .. }),
                is_failure,
                "{phase:?} {kind:?}"
            );
        }
        assert_eq!(classify(&probe(None)), SmtpResult::Tls);
        assert!(matches!(
            classify(&probe(Some((P::Connect, K::NotProbed)))),
            SmtpResult::NotProbed(_)
        ));
    }

    #[test]
    fn ehlo_without_starttls_is_not_offered() {
        let mut p = probe(Some((SmtpPhase::Ehlo, SmtpFailureKind::NoStarttls)));
        p.ehlo = reply(250, &["mx.example", "PIPELINING", "8BITMIME"]);
        assert_eq!(code_of(&classify(&p)), Some(Code::StarttlsNotOffered));
    }
}
