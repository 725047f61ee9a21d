//! The pages around the report: the form, the page of an audit in
//! progress, the finished result, refusals and errors, and the long
//! explanation of a finding code. Templates are maud (compiled in, every
//! value escaped); the script and the style sheet are separate embedded
//! files, because the Content-Security-Policy allows no inline code.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::cli::explain::secondary_rule;
use crate::core::catalogue::entry;
use crate::core::evidence::Timestamp;
use crate::core::finding::Code;
use crate::report::html::{fix_line, see_rfc};
use crate::watch::db::Recent;

use super::assets;
use super::progress::Line;

/// Seconds between reloads of a page in progress without JavaScript.
pub const RELOAD_SECONDS: u32 = 3;

/// The frame of every page.
fn layout(title: &str, reload: bool, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dane-audit" }
                link rel="stylesheet" href=(assets::STYLE.url());
                link rel="icon" type="image/svg+xml" href=(assets::ICON.url());
                script src=(assets::SCRIPT.url()) defer {}
                @if reload {
                    noscript { meta http-equiv="refresh" content=(RELOAD_SECONDS); }
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "dane-audit" }
                    span.tagline { "DANE for SMTP, checked" }
                }
                (main)
                footer {
                    p {
                        "dane-audit " (env!("CARGO_PKG_VERSION"))
                        " · checks RFC 7672 DANE for SMTP: DNSSEC, TLSA, STARTTLS on every MX address · "
                        a href="/api/v1/openapi.json" { "API" }
                    }
                }
                div #announce .visually-hidden aria-live="polite" {}
            }
        }
    }
}

/// The domain form. `value` and `error` come back when the input was refused.
fn form(value: &str, error: Option<&str>) -> Markup {
    html! {
        form.check action="/check" method="get" {
            label for="domain" { "Mail domain" }
            div.row {
                @if let Some(e) = error {
                    input #domain name="domain" type="text" inputmode="url" autocomplete="off"
                        autocapitalize="none" spellcheck="false" required maxlength="253"
                        placeholder="example.org" value=(value)
                        aria-invalid="true" aria-describedby="domain-error";
                    button type="submit" { "Check" }
                    p #domain-error .error role="alert" { (e) }
                } @else {
                    input #domain name="domain" type="text" inputmode="url" autocomplete="off"
                        autocapitalize="none" spellcheck="false" required maxlength="253"
                        placeholder="example.org" value=(value);
                    button type="submit" { "Check" }
                }
            }
        }
    }
}

pub fn home(value: &str, error: Option<&str>) -> Markup {
    layout(
        "Check DANE for a mail domain",
        false,
        html! {
            main #main {
                h1 { "Check DANE for a mail domain" }
                p.intro {
                    "Enter the domain part of a mail address. Every MX host is checked: "
                    "the DNSSEC status of its records, its TLSA records, what each "
                    "authoritative nameserver answers, and a STARTTLS handshake on every "
                    "address, IPv4 and IPv6, matched against the TLSA records. "
                    "You get a verdict and, for every problem, the exact fix."
                }
                (form(value, error))
            }
        },
    )
}

/// An audit still running: the lines so far; the script follows `events`.
pub fn progress(domain: &str, lines: &[Line], dropped: usize, events: &str) -> Markup {
    layout(
        &format!("Checking {domain}"),
        true,
        html! {
            main #main data-events=(events) {
                h1 #progress-h tabindex="-1" { "Checking " span.domain { (domain) } "…" }
                p.intro {
                    "Results appear below as they arrive. Without JavaScript this page "
                    "reloads every " (RELOAD_SECONDS) " seconds until the report is ready."
                }
                ol #progress .progress aria-labelledby="progress-h" data-count=(lines.len()) {
                    @for l in lines {
                        li class={"k-" (l.kind.as_str())} { (l.text) }
                    }
                }
                @if dropped > 0 {
                    p { (dropped) " more step(s) not shown." }
                }
            }
        },
    )
}

/// A finished report (`fragment` was rendered, and escaped, by
/// [`crate::report::html::report`]).
pub fn result(
    domain: &str,
    fragment: &str,
    finished: Option<Timestamp>,
    ttl_secs: u64,
    watched: bool,
) -> Markup {
    layout(
        &format!("{domain}: DANE report"),
        false,
        html! {
            main #main .report {
                (PreEscaped(fragment))
                section.after aria-label="About this result" {
                    @if watched {
                        p.watched {
                            "This domain is watched: "
                            a href={"/history/" (domain)} { "its history of changes" } "."
                        }
                    }
                    p {
                        @if let Some(t) = finished { "Checked at " (t) ". " }
                        "This result is kept for " (duration_words(ttl_secs)) "; "
                        "reloading within that time shows it again without a new check. "
                        "As JSON: " a href={"/api/v1/check/" (domain)} { "/api/v1/check/" (domain) } "."
                    }
                    h2 { "Check another domain" }
                    (form("", None))
                }
            }
        },
    )
}

/// `300` as "5 min", `90` as "90 s".
fn duration_words(secs: u64) -> String {
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// The audit did not finish.
pub fn failed(domain: &str, why: &str) -> Markup {
    message_page(
        &format!("{domain}: not checked"),
        &format!("{domain} could not be checked"),
        why,
    )
}

/// A refusal or an error, said plainly, with the form to try again.
pub fn message_page(title: &str, heading: &str, text: &str) -> Markup {
    layout(
        title,
        false,
        html! {
            main #main {
                h1 { (heading) }
                p.message { (text) }
                (form("", None))
            }
        },
    )
}

/// The input was not a domain name: the form again, with the reason.
pub fn bad_domain(input: &str, why: &str) -> Markup {
    layout(
        "Not a domain name",
        false,
        html! {
            main #main {
                h1 { "Check DANE for a mail domain" }
                (form(input, Some(why)))
            }
        },
    )
}

/// `/history/{domain}`: a watched domain's newest changes
/// ([`crate::report::history::html`]).
pub fn history(domain: &str, recent: &Recent) -> Markup {
    layout(
        &format!("{domain}: history"),
        false,
        html! {
            main #main .report {
                (crate::report::history::html(domain, recent))
                section.after aria-label="About this history" {
                    p {
                        a href={"/check/" (domain)} { "Check " (domain) " now" } ". "
                        "As JSON: " a href={"/api/v1/history/" (domain)} { "/api/v1/history/" (domain) } ". "
                        a href="/history" { "All watched domains" } "."
                    }
                }
            }
        },
    )
}

/// `/history`: the domains the watch's database holds (at most `max`).
pub fn history_list(domains: &[String], max: usize) -> Markup {
    layout(
        "Watched domains",
        false,
        html! {
            main #main {
                h1 { "Watched domains" }
                @if domains.is_empty() {
                    p { "No domain has been audited by the watch yet." }
                } @else {
                    p.intro {
                        (domains.len()) " domain(s) audited by " code { "dane-audit watch" }
                        ". Each page shows what changed, and when."
                    }
                    ul.domains {
                        @for d in domains.iter().take(max) {
                            li { a.domain href={"/history/" (d)} { (d) } }
                        }
                    }
                    @if domains.len() > max {
                        p { (domains.len() - max) " more not shown." }
                    }
                }
            }
        },
    )
}

/// `/history/{domain}` of a domain the database does not hold.
pub fn not_watched(domain: &str) -> Markup {
    layout(
        &format!("{domain}: not watched"),
        false,
        html! {
            main #main {
                h1 { span.domain { (domain) } " is not watched" }
                p.message {
                    "The watch's database has no history of this domain. "
                    a href={"/check/" (domain)} { "Check it now" } ", or see "
                    a href="/history" { "the watched domains" } "."
                }
            }
        },
    )
}

/// The long form of a finding code (`dane-audit explain CODE`).
pub fn explain(code: Code) -> Markup {
    let e = entry(code);
    html! {
        (layout(&format!("{code}"), false, html! {
            main #main {
                h1 { code { (code.as_str()) } }
                p.lead { span class={"badge s-" (e.severity.as_str())} { (e.severity.as_str().to_uppercase()) } " " (e.title) }
                @if e.secondary.is_some() { p { (secondary_rule(code)) } }
                p { (e.explain) }
                h2 { "Fix" }
                @for line in e.fix.lines() { p { (fix_line(line)) } }
                (see_rfc(e.rfc))
            }
        }))
    }
}
