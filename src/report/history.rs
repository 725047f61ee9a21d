//! `dane-audit history`: a watched domain's changes over time, as text or
//! one JSON document.

use std::io::{self, Write};

use maud::{Markup, html};
use serde::Serialize;

use super::html::prose;
use crate::core::evidence::Timestamp;
use crate::watch::db::{AuditRow, EventRow, Recent};
use crate::watch::events::{EVENT_SCHEMA_VERSION, Event, EventKind};

/// What the report covers.
pub struct History<'a> {
    pub domain: &'a str,
    pub since: Option<Timestamp>,
    pub audits: &'a [AuditRow],
    pub events: &'a [EventRow],
    /// List every audit, not only the changes.
    pub every_audit: bool,
}

/// Text: a heading, then per audit that raised something its events, one
/// line each; with `every_audit`, each audit's verdict first.
pub fn write_text(out: &mut dyn Write, h: &History<'_>) -> io::Result<()> {
    let (Some(first), Some(last)) = (h.audits.first(), h.audits.last()) else {
        return writeln!(
            out,
            "{}: no audits{}",
            h.domain,
            h.since.map(|t| format!(" since {t}")).unwrap_or_default()
        );
    };
    writeln!(
        out,
        "{}: {}",
        h.domain,
        summary(
            h.audits.len() as i64,
            first.evaluated_at,
            last.evaluated_at,
            &last.verdict
        )
    )?;
    let mut events = h.events.iter().peekable();
    for a in h.audits {
        let mine: Vec<&EventRow> =
            std::iter::from_fn(|| events.next_if(|e| e.audit_id == Some(a.id))).collect();
        if !h.every_audit && mine.is_empty() {
            continue;
        }
        let head = format!("{}  #{:<6}", a.evaluated_at, a.id);
        if h.every_audit {
            writeln!(
                out,
                "{head}{} ({}, {} ms)",
                a.verdict,
                a.worst_severity.as_deref().unwrap_or("no findings"),
                a.duration_ms
            )?;
        }
        for (i, e) in mine.iter().enumerate() {
            let lead = if i == 0 && !h.every_audit {
                head.clone()
            } else {
                " ".repeat(head.chars().count())
            };
            writeln!(out, "{lead}{}", event_line(&e.event))?;
        }
    }
    // Events whose audit was removed by --keep (verdict changes are kept).
    for e in events {
        writeln!(out, "{}  {:<7}{}", e.event.at, "", event_line(&e.event))?;
    }
    Ok(())
}

fn event_line(e: &Event) -> String {
    format!("{} {}: {}", e.kind.code(), e.state.as_str(), e.message)
}

#[derive(Serialize)]
struct AuditJson<'a> {
    id: i64,
    evaluated_at: Timestamp,
    verdict: &'a str,
    worst_severity: Option<&'a str>,
    duration_ms: i64,
}

#[derive(Serialize)]
struct EventJson<'a> {
    audit_id: Option<i64>,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Serialize)]
struct HistoryJson<'a> {
    schema_version: u32,
    domain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<Timestamp>,
    audits: Vec<AuditJson<'a>>,
    events: Vec<EventJson<'a>>,
}

/// JSON: `{"schema_version", "domain", "audits": [...], "events": [...]}`,
/// each event as the webhook receives it plus its `audit_id`.
pub fn write_json(out: &mut dyn Write, h: &History<'_>) -> io::Result<()> {
    let doc = HistoryJson {
        schema_version: EVENT_SCHEMA_VERSION,
        domain: h.domain,
        since: h.since,
        audits: h
            .audits
            .iter()
            .map(|a| AuditJson {
                id: a.id,
                evaluated_at: a.evaluated_at,
                verdict: &a.verdict,
                worst_severity: a.worst_severity.as_deref(),
                duration_ms: a.duration_ms,
            })
            .collect(),
        events: h
            .events
            .iter()
            .map(|e| EventJson {
                audit_id: e.audit_id,
                event: &e.event,
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// The summary line of a history: "N audits from T1 to T2; last verdict V"
/// (the text report's heading, without the domain).
fn summary(audits: i64, first: Timestamp, last: Timestamp, verdict: &str) -> String {
    format!(
        "{audits} audit{} from {first} to {last}; last verdict {verdict}",
        if audits == 1 { "" } else { "s" },
    )
}

/// HTML (`serve --db`): what the text shows, for the newest changes only
/// ([`Recent`] is bounded), newest first, each audit that raised
/// something with its time, number and verdict, then its events. Every
/// value is escaped by maud; no script, no inline style.
pub fn html(domain: &str, r: &Recent) -> Markup {
    let verdict = r.last_verdict.as_deref().unwrap_or("none");
    let older = (r.events_total - r.events.len() as i64).max(0);
    // Consecutive events of one audit form a group; newest group first.
    let mut groups: Vec<(Option<&AuditRow>, Timestamp, Vec<&EventRow>)> = Vec::new();
    for e in &r.events {
        match groups.last_mut() {
            Some((Some(a), _, evs)) if e.audit_id == Some(a.id) => evs.push(e),
            _ => {
                let a = e
                    .audit_id
                    .and_then(|id| r.audits.iter().find(|a| a.id == id));
                let at = a.map(|a| a.evaluated_at).unwrap_or(e.event.at);
                groups.push((a, at, vec![e]));
            }
        }
    }
    groups.reverse();
    html! {
        section class={"verdict v-" (verdict)} aria-labelledby="history-h" {
            h1 #history-h tabindex="-1" {
                "History of " span.domain { (domain) } " "
                span class={"badge v-" (verdict)} { (verdict.to_uppercase()) }
            }
            p.lead {
                @match (r.first, r.last) {
                    (Some(f), Some(l)) => (summary(r.audits_total, f, l, verdict)),
                    _ => "no audits",
                }
            }
            p.meta { "As recorded by " code { "dane-audit watch" } "." }
        }
        section aria-labelledby="changes-h" {
            h2 #changes-h { "Changes (" (r.events_total) "), newest first" }
            @if groups.is_empty() {
                p { "No changes recorded." }
            } @else {
                ol.history {
                    @for (audit, at, events) in &groups {
                        li.change {
                            p.head {
                                time datetime=(at) { (at) }
                                @if let Some(a) = audit {
                                    " · audit #" (a.id) " · "
                                    span class={"badge v-" (a.verdict)} { (a.verdict.to_uppercase()) }
                                }
                            }
                            ul.events {
                                @for e in events {
                                    @let sev = e.event.severity.as_str();
                                    li {
                                        span class={"badge s-" (sev)} { (sev.to_uppercase()) } " "
                                        code.event { (e.event.kind.code()) } " "
                                        @if let EventKind::Finding { finding } = &e.event.kind {
                                            a.code href={"/explain/" (finding.code.as_str())} { (finding.code.as_str()) } " "
                                        }
                                        span.state { (e.event.state.as_str()) } ": "
                                        (prose(&e.event.message))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if older > 0 {
                p.older {
                    (older) " older change(s) not shown. All of them: "
                    a href={"/api/v1/history/" (domain)} { "as JSON" }
                    ", or " code { "dane-audit history " (domain) " --db FILE" } "."
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::finding::Severity;
    use crate::core::verdict::DomainVerdict;
    use crate::watch::events::Transition;

    fn row(id: i64, at: i64, verdict: &str) -> AuditRow {
        AuditRow {
            id,
            evaluated_at: Timestamp(at),
            verdict: verdict.into(),
            worst_severity: None,
            duration_ms: 80,
        }
    }

    fn changed(audit: i64, at: i64, from: DomainVerdict, to: DomainVerdict) -> EventRow {
        EventRow {
            audit_id: Some(audit),
            event: Event {
                schema_version: EVENT_SCHEMA_VERSION,
                domain: "example.org".into(),
                at: Timestamp(at),
                state: Transition::Changed,
                severity: Severity::Critical,
                key: "verdict-changed".into(),
                message: format!("example.org: verdict {from} -> {to}"),
                kind: EventKind::VerdictChanged {
                    from,
                    to,
                    reason: None,
                },
            },
        }
    }

    #[test]
    fn text_lists_only_audits_that_changed_something() {
        let audits = [
            row(1, 0, "pass"),
            row(2, 3600, "pass"),
            row(3, 7200, "fail"),
        ];
        let events = [changed(3, 7200, DomainVerdict::Pass, DomainVerdict::Fail)];
        let h = History {
            domain: "example.org",
            since: None,
            audits: &audits,
            events: &events,
            every_audit: false,
        };
        let mut out = Vec::new();
        write_text(&mut out, &h).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "example.org: 3 audits from 1970-01-01T00:00:00Z to 1970-01-01T02:00:00Z; last verdict fail\n\
             1970-01-01T02:00:00Z  #3     verdict-changed changed: example.org: verdict pass -> fail\n"
        );
        let mut out = Vec::new();
        write_json(&mut out, &h).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["events"][0]["audit_id"], 3);
        assert_eq!(v["events"][0]["code"], "verdict-changed");
        assert_eq!(v["audits"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn html_groups_events_by_audit_newest_first_and_escapes() {
        let mut hostile = changed(3, 7200, DomainVerdict::Pass, DomainVerdict::Fail);
        hostile.event.message = "<b>x</b> `3 1 1 ab`".into();
        let r = Recent {
            audits_total: 3,
            first: Some(Timestamp(0)),
            last: Some(Timestamp(7200)),
            last_verdict: Some("fail".into()),
            events_total: 5,
            events: vec![
                changed(2, 3600, DomainVerdict::Fail, DomainVerdict::Pass),
                hostile,
            ],
            audits: vec![row(2, 3600, "pass"), row(3, 7200, "fail")],
        };
        let page = html("example.org", &r).into_string();
        assert!(page.contains(
            "3 audits from 1970-01-01T00:00:00Z to 1970-01-01T02:00:00Z; last verdict fail"
        ));
        assert!(
            page.contains("&lt;b&gt;x&lt;/b&gt; <code>3 1 1 ab</code>"),
            "{page}"
        );
        assert!(!page.contains("<b>"));
        assert_eq!(page.matches(r#"<li class="change">"#).count(), 2);
        assert!(page.find("audit #3").unwrap() < page.find("audit #2").unwrap());
        assert!(page.contains("3 older change(s) not shown"), "{page}");
    }
}
