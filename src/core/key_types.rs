//! The per-key-type view of an address: which certificate each server key
//! type gets (ECDSA, RSA, Ed25519, or a legacy hello), and whether the TLSA
//! records authenticate it. Reports show it next to the address's chain, so
//! that a certificate only some senders get is as visible as the one the
//! default offer got.

use super::audit::{CertView, KeyTypeView};
use super::cert::CertInfo;
use super::evidence::{KeyTypeProbe, SmtpPhase, SmtpProbe, TlsInfo};
use super::host::cert_views;
use super::rrset::ChainResult;
use super::smtp::{Presented, Source, first_clause, presented};
use super::tlsa::TlsaRdata;

/// The views of one probe's key types. `chains` and `results` follow
/// [`presented`] for the probe (the parsed chains and, where DANE applies,
/// their results); nothing for a probe that made no further handshakes.
pub fn views(
    p: &SmtpProbe,
    chains: &[&[CertInfo]],
    results: &[Option<&ChainResult>],
    records: &[TlsaRdata],
) -> Vec<KeyTypeView> {
    if p.key_types.is_empty() {
        return Vec::new();
    }
    let shown = presented(p);
    let authenticated = |j: usize| {
        results
            .get(j)
            .copied()
            .flatten()
            .map(|r| !r.authenticated_by.is_empty())
    };
    // Without a completed default handshake, the further ones were legacy hellos.
    let legacy = p.tls.is_none();
    let mut out = Vec::new();
    if let (Some(first), Some(Source::Negotiated)) =
        (chains.first(), shown.first().map(|s| s.source))
    {
        out.push(KeyTypeView {
            key_type: leaf_type(first),
            via: "negotiated",
            offered: true,
            detail: p.tls.as_ref().map(tls_line).unwrap_or_default(),
            authenticated: authenticated(0),
            same_chain_as: Some("address".into()),
            chain: Vec::new(),
        });
    }
    for k in &p.key_types {
        let found = k
            .presented()
            .and_then(|c| shown.iter().position(|s| s.chain == c));
        out.push(match found {
            Some(j) => KeyTypeView {
                authenticated: authenticated(j),
                ..presented_view(k, j, &shown, chains, records)
            },
            None => not_presented(k, legacy),
        });
    }
    out
}

/// A further handshake that got the `j`th presented chain.
fn presented_view(
    k: &KeyTypeProbe,
    j: usize,
    shown: &[Presented<'_>],
    chains: &[&[CertInfo]],
    records: &[TlsaRdata],
) -> KeyTypeView {
    let own = matches!(shown[j].source, Source::Further(x) if std::ptr::eq(x, k));
    let same_chain_as = match (j, own) {
        (0, _) => Some("address".to_string()),
        (_, true) => None,
        (_, false) => Some(match shown[j].source {
            Source::Further(x) => name(x),
            Source::Negotiated => "address".to_string(),
        }),
    };
    let chain: Vec<CertView> = match (&same_chain_as, chains.get(j)) {
        (None, Some(c)) => cert_views(c, records),
        _ => Vec::new(),
    };
    KeyTypeView {
        key_type: name(k),
        via: via(k),
        offered: true,
        detail: detail(k),
        authenticated: None,
        same_chain_as,
        chain,
    }
}

/// A further handshake that got nothing a sender would be presented.
fn not_presented(k: &KeyTypeProbe, legacy: bool) -> KeyTypeView {
    let why = match (&k.failure, k.presented()) {
        (Some(f), _) if f.phase != SmtpPhase::Handshake => format!(
            "not tested: {} failed ({})",
            f.phase.as_str(),
            first_clause(&f.detail)
        ),
        (Some(f), _) if !f.detail.is_empty() => {
            format!("not offered: {}", first_clause(&f.detail))
        }
        (Some(f), _) => format!("not offered: {} failed", f.phase.as_str()),
        (None, Some(_)) => "not used: the default handshake decides for this server".into(),
        (None, None) => "not offered".into(),
    };
    KeyTypeView {
        key_type: k.asked_names(),
        via: if legacy { "legacy-hello" } else { via(k) },
        offered: false,
        detail: why,
        authenticated: None,
        same_chain_as: None,
        chain: Vec::new(),
    }
}

/// The key type a further handshake got (what it asked for, if unknown).
fn name(k: &KeyTypeProbe) -> String {
    k.key_type
        .map_or_else(|| k.asked_names(), |t| t.as_str().to_string())
}

fn via(k: &KeyTypeProbe) -> &'static str {
    if k.legacy.is_some() {
        "legacy-hello"
    } else {
        "handshake"
    }
}

fn detail(k: &KeyTypeProbe) -> String {
    match (&k.legacy, &k.tls) {
        (Some(l), _) => format!(
            "{} {}, certificate read in clear, no handshake completed",
            l.version, l.cipher
        ),
        (None, Some(t)) => tls_line(t),
        (None, None) => String::new(),
    }
}

fn tls_line(t: &TlsInfo) -> String {
    let group = t
        .group
        .as_ref()
        .map(|g| format!(" {g}"))
        .unwrap_or_default();
    format!("{} {}{group}", t.version, t.cipher)
}

fn leaf_type(chain: &[CertInfo]) -> String {
    chain
        .first()
        .and_then(CertInfo::key_type)
        .map_or_else(|| "other".to_string(), |k| k.as_str().to_string())
}
