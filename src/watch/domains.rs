//! The watched domains: `--domains FILE` (read again on SIGHUP) and
//! `--domain D`, in the syntax of `scan`'s input (one per line, `#`
//! comments, IDNs to A-labels), minus the skip list.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use crate::domain::normalize_domain;
use crate::scan::lines::{Line, LineReader, classify};
use crate::skip::SkipList;

/// Why the domain list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DomainListError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}:{line}: {input:?} is not a domain: {error}")]
    Invalid {
        path: String,
        line: u64,
        input: String,
        error: String,
    },
    #[error("--domain {input:?}: {error}")]
    Argument { input: String, error: String },
    #[error("no domain to watch: give --domains FILE or --domain D")]
    Empty,
}

/// Where the list comes from.
#[derive(Clone, Debug, Default)]
pub struct DomainSource {
    pub file: Option<PathBuf>,
    pub listed: Vec<String>,
}

/// The list as loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainList {
    /// Normalised, each once, in the order given.
    pub names: Vec<String>,
    /// Domains left out because the skip list names them.
    pub skipped: Vec<String>,
}

impl DomainSource {
    /// Reads the list; any invalid line refuses the whole list (a typo
    /// should not silently stop a domain from being watched).
    pub fn load(&self, skip: &SkipList) -> Result<DomainList, DomainListError> {
        let mut all = Vec::new();
        for d in &self.listed {
            all.push(normalize_domain(d).map_err(|e| DomainListError::Argument {
                input: d.clone(),
                error: e.to_string(),
            })?);
        }
        if let Some(path) = &self.file {
            let shown = path.display().to_string();
            let read = |err| DomainListError::Read {
                path: shown.clone(),
                err,
            };
            let mut r = LineReader::new(BufReader::new(File::open(path).map_err(read)?));
            while let Some(raw) = r.next_line().map_err(read)? {
                match classify(&raw) {
                    Line::Skip => {}
                    Line::Domain(d) => all.push(d),
                    Line::Invalid { input, error } => {
                        return Err(DomainListError::Invalid {
                            path: shown,
                            line: raw.no,
                            input,
                            error,
                        });
                    }
                }
            }
        }
        let mut list = DomainList::default();
        let mut seen = std::collections::HashSet::new();
        for d in all {
            if !seen.insert(d.clone()) {
                continue;
            }
            if skip.domain(&d).is_some() {
                list.skipped.push(d);
            } else {
                list.names.push(d);
            }
        }
        if list.names.is_empty() && list.skipped.is_empty() {
            return Err(DomainListError::Empty);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_arguments_merge_normalised_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.txt");
        std::fs::write(
            &f,
            "# watched\nExample.ORG.\n\nb.example  # second\nbücher.example\nopt-out.example\n",
        )
        .unwrap();
        let src = DomainSource {
            file: Some(f.clone()),
            listed: vec!["b.example".into(), "c.example".into()],
        };
        let skip = SkipList::parse("opt-out.example\n").unwrap();
        let l = src.load(&skip).unwrap();
        assert_eq!(
            l.names,
            [
                "b.example",
                "c.example",
                "example.org",
                "xn--bcher-kva.example"
            ]
        );
        assert_eq!(l.skipped, ["opt-out.example"]);
        std::fs::write(&f, "a.example\nhttp://x/\n").unwrap();
        let e = src.load(&skip).unwrap_err().to_string();
        assert!(e.contains("d.txt:2:"), "{e}");
        assert!(matches!(
            DomainSource::default().load(&skip),
            Err(DomainListError::Empty)
        ));
    }
}
