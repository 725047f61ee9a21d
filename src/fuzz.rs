//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the regression
//! test over `testdata/fuzz/`: one body per target, so that an input the
//! fuzzer found replays as a plain `cargo test`. Each asserts the invariants
//! its parser promises; a panic is a bug.

use crate::core::cert::CertInfo;
use crate::core::dane::match_record;
use crate::core::diagnosis::diagnose;
use crate::core::evidence::{Timestamp, parse_evidence};
use crate::core::tlsa::TlsaRdata;
use crate::core::{EvalOptions, evaluate};
use crate::dns::tsig_key::parse_keys;
use crate::domain::normalize_domain;
use crate::scan::lines::{Line, LineReader, classify};
use crate::smtp::reply::{Framed, Limits};

/// The evaluation time used by the targets (inside the test PKI's validity).
const AT: Timestamp = Timestamp(1_906_502_400);

/// SMTP reply framing: every read ends in a reply within the caps, or an error.
pub fn smtp_reply(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let limits = Limits {
            max_line: 512,
            max_lines: 20,
            max_reply_bytes: 4096,
        };
        let mut framed = Framed::new(data);
        // Each reply consumes at least one byte, so this ends with the input.
        for _ in 0..=data.len() {
            match framed.read_reply(&limits).await {
                Ok(reply) => {
                    assert!(reply.lines.len() <= limits.max_lines);
                    assert!((100..1000).contains(&reply.code));
                }
                Err(_) => break,
            }
        }
    });
}

/// TLSA text: a parsed record prints back to text that parses to itself;
/// zone-file text (`--tlsa-file`) never panics the reader.
pub fn tlsa_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<TlsaRdata>() {
        let _ = r.usability();
        let again: TlsaRdata = r.to_string().parse().expect("display parses back");
        assert_eq!(again, r);
        let _ = r.short();
    }
    if let Ok(candidates) = crate::cli::preflight::tlsa_candidates(text) {
        for c in candidates {
            let _ = c.rdata.usability();
        }
    }
}

/// Domain-list lines: each is skipped, a domain or an error row, and a
/// normalised domain normalises to itself.
pub fn domain_line(data: &[u8]) {
    let mut reader = LineReader::new(data);
    let mut lines = 0;
    while let Ok(Some(raw)) = reader.next_line() {
        lines += 1;
        assert!(lines <= data.len() + 1, "more lines than bytes");
        match classify(&raw) {
            Line::Domain(d) => {
                assert_eq!(normalize_domain(&d).as_deref(), Ok(d.as_str()));
                assert!(d.len() <= 253);
            }
            Line::Invalid { error, .. } => assert!(!error.is_empty()),
            Line::Skip => {}
        }
    }
}

/// Evidence JSON: whatever parses evaluates and serialises.
pub fn evidence_eval(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(all) = parse_evidence(text) else {
        return;
    };
    for ev in &all {
        let audit = evaluate(ev, &EvalOptions::at(AT));
        serde_json::to_string(&audit).expect("audits serialise");
    }
}

/// Certificate chains into matching and diagnosis. Layout: `[u, s, m, n]`,
/// `n` bytes of association data, then certificates as `[len_hi, len_lo,
/// der...]`.
pub fn chain_match(data: &[u8]) {
    let [u, s, m, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(*n).min(rest.len());
    let record = TlsaRdata {
        usage: u % 5,
        selector: s % 3,
        mtype: m % 4,
        data: rest[..n].to_vec(),
    };
    let mut chain = Vec::new();
    let mut r = &rest[n..];
    while let [hi, lo, tail @ ..] = r {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        chain.push(CertInfo::parse(&tail[..len]));
        r = &tail[len..];
        if chain.len() > 8 {
            break;
        }
    }
    let refs = vec!["mx1.example.net".to_string()];
    let _ = match_record(&record, &chain, &refs, AT);
    let _ = diagnose(&record, &chain);
    for c in &chain {
        let _ = c.label();
        let _ = c.lifetime_days();
    }
}

/// TSIG key files: any text parses to keys or to a one-line error, and a
/// parsed key's secret shows in neither its Debug nor its Display.
pub fn tsig_key_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_keys(text) {
        Ok(keys) => {
            assert!(!keys.is_empty());
            for k in &keys {
                assert!(k.name().ends_with('.'));
                let shown = format!("{k:?} {k}");
                assert!(shown.contains("<redacted>"));
                assert!(!k.secret_appears_in(&shown), "{shown}");
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
}

/// A server's answer to the legacy ClientHello (TLS records, ServerHello,
/// Certificate): any bytes give `More`, `Done` or `Failed`; a chain holds no
/// more bytes than came in; and once a prefix decides, more bytes do not
/// change the decision (the reader stops at the first decision).
pub fn legacy_flight(data: &[u8]) {
    use crate::smtp::legacy::{Progress, cipher_name, parse_flight, version_name};
    let full = parse_flight(data);
    if let Progress::Done(f) = &full {
        let total: usize = f.chain.iter().map(Vec::len).sum();
        assert!(total <= data.len());
        let _ = (version_name(f.version), cipher_name(f.cipher));
    }
    let step = (data.len() / 16).max(1);
    for cut in (0..data.len()).step_by(step) {
        match (parse_flight(&data[..cut]), &full) {
            (Progress::More, _) | (Progress::Failed(_), Progress::Failed(_)) => {}
            (Progress::Done(f), Progress::Done(g)) => assert_eq!(&f, g, "prefix of {cut} bytes"),
            (decided, _) => panic!("prefix of {cut} bytes decided {decided:?}, all of it {full:?}"),
        }
    }
}

/// One fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, for the regression runner.
pub const TARGETS: &[(&str, Target)] = &[
    ("smtp_reply", smtp_reply),
    ("tlsa_text", tlsa_text),
    ("domain_line", domain_line),
    ("evidence_eval", evidence_eval),
    ("chain_match", chain_match),
    ("tsig_key_file", tsig_key_file),
    ("legacy_flight", legacy_flight),
];
