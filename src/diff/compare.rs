//! The join of two sorted scans: per domain, the verdict transition and the
//! findings gained and lost; a summary of counts per transition.

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::Record;
use super::sort::SortError;

/// The verdict shown for a domain missing from one side.
pub const ABSENT: &str = "absent";

/// One domain whose verdict or findings differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub domain: String,
    pub old: String,
    pub new: String,
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

/// Counts over every domain of either side.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiffSummary {
    pub old_domains: u64,
    pub new_domains: u64,
    /// Domains whose verdict or findings changed.
    pub changed: u64,
    /// Domains with the same verdict but other findings.
    pub findings_changed: u64,
    /// `old -> new` verdict pairs (same-verdict pairs included), by count.
    pub transitions: BTreeMap<String, u64>,
    /// Lines of either input that were not records (cut off, garbage).
    pub unreadable: u64,
    /// Lines for a domain already seen in the same input (duplicates).
    pub duplicates: u64,
}

/// Drops repeated domains of one sorted stream (duplicate lines), counting them.
struct Dedup<I: Iterator<Item = Result<Record, SortError>>> {
    inner: std::iter::Peekable<I>,
    dupes: u64,
}

impl<I: Iterator<Item = Result<Record, SortError>>> Iterator for Dedup<I> {
    type Item = Result<Record, SortError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = match self.inner.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        while let Some(Ok(n)) = self.inner.peek() {
            if n.domain != r.domain {
                break;
            }
            self.dupes += 1;
            self.inner.next();
        }
        Some(Ok(r))
    }
}

fn diff_keys(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .filter(|k| b.binary_search(k).is_err())
        .cloned()
        .collect()
}

/// Joins the two streams (each sorted by domain), calling `each` for every
/// domain that changed; returns the summary.
pub fn compare(
    old: impl Iterator<Item = Result<Record, SortError>>,
    new: impl Iterator<Item = Result<Record, SortError>>,
    mut each: impl FnMut(&Change) -> std::io::Result<()>,
) -> Result<DiffSummary, CompareError> {
    let mut old = Dedup {
        inner: old.peekable(),
        dupes: 0,
    };
    let mut new = Dedup {
        inner: new.peekable(),
        dupes: 0,
    };
    let mut s = DiffSummary::default();
    let mut a = old.next().transpose()?;
    let mut b = new.next().transpose()?;
    loop {
        let (o, n) = match (&a, &b) {
            (None, None) => break,
            (Some(x), Some(y)) if x.domain == y.domain => (a.take(), b.take()),
            (Some(x), Some(y)) if x.domain < y.domain => (a.take(), None),
            (Some(_), None) => (a.take(), None),
            _ => (None, b.take()),
        };
        let took_old = o.is_some();
        let took_new = n.is_some();
        if let Some(c) = change(o.as_ref(), n.as_ref(), &mut s) {
            each(&c)?;
        }
        if took_old {
            a = old.next().transpose()?;
        }
        if took_new {
            b = new.next().transpose()?;
        }
    }
    s.duplicates = old.dupes + new.dupes;
    Ok(s)
}

/// Counts one domain and returns its change, if any.
fn change(o: Option<&Record>, n: Option<&Record>, s: &mut DiffSummary) -> Option<Change> {
    let domain = o.or(n)?.domain.clone();
    s.old_domains += u64::from(o.is_some());
    s.new_domains += u64::from(n.is_some());
    let ov = o.map_or(ABSENT, |r| r.verdict.as_str()).to_string();
    let nv = n.map_or(ABSENT, |r| r.verdict.as_str()).to_string();
    *s.transitions.entry(format!("{ov} -> {nv}")).or_default() += 1;
    let (gained, lost) = match (o, n) {
        (Some(o), Some(n)) => {
            let (ok, nk) = (o.keys_against(n), n.keys_against(o));
            (diff_keys(&nk, &ok), diff_keys(&ok, &nk))
        }
        (None, Some(n)) => (n.findings.clone(), Vec::new()),
        (Some(o), None) => (Vec::new(), o.findings.clone()),
        (None, None) => return None,
    };
    if ov == nv && gained.is_empty() && lost.is_empty() {
        return None;
    }
    s.changed += 1;
    if ov == nv {
        s.findings_changed += 1;
    }
    Some(Change {
        domain,
        old: ov,
        new: nv,
        gained,
        lost,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Sort(#[from] SortError),
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(d: &str, v: &str, f: &[&str]) -> Result<Record, SortError> {
        Ok(Record {
            domain: d.into(),
            verdict: v.into(),
            findings: f.iter().map(|s| s.to_string()).collect(),
            detailed: true,
        })
    }

    #[test]
    fn joins_sorted_streams() {
        let old = vec![
            rec("a", "pass", &[]),
            rec("b", "pass", &["tlsa-no-backup mx"]),
            rec("b", "pass", &["tlsa-no-backup mx"]),
            rec("c", "fail", &["tlsa-no-match mx"]),
            rec("d", "pass", &[]),
        ];
        let new = vec![
            rec("a", "pass", &[]),
            rec("b", "pass", &[]),
            rec("c", "pass", &[]),
            rec("e", "not-dane", &["tlsa-absent mx"]),
        ];
        let mut seen = Vec::new();
        let s = compare(old.into_iter(), new.into_iter(), |c| {
            seen.push(c.clone());
            Ok(())
        })
        .unwrap();
        let got: Vec<(&str, &str, &str, usize, usize)> = seen
            .iter()
            .map(|c| {
                (
                    c.domain.as_str(),
                    c.old.as_str(),
                    c.new.as_str(),
                    c.gained.len(),
                    c.lost.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("b", "pass", "pass", 0, 1),
                ("c", "fail", "pass", 0, 1),
                ("d", "pass", "absent", 0, 0),
                ("e", "absent", "not-dane", 1, 0)
            ]
        );
        assert_eq!(
            (
                s.old_domains,
                s.new_domains,
                s.changed,
                s.findings_changed,
                s.duplicates
            ),
            (4, 4, 4, 1, 1)
        );
        assert_eq!(s.transitions["pass -> pass"], 2);
        assert_eq!(s.transitions["fail -> pass"], 1);
    }
}
