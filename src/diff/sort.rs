//! A bounded external sort of scan records by domain.
//!
//! Records are gathered until their estimated size reaches the budget,
//! sorted, and written to a temporary run file (one JSON array per line);
//! the runs are then merged through a heap holding one record per run. An
//! input that fits the budget is never written out. Resident memory is the
//! budget plus one read buffer per run, whatever the input's length.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use super::record::{InputFormat, Record, RecordError, csv_record};

/// Read buffer per run file while merging.
const RUN_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SortError {
    #[error("cannot read {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("{path}: {err}")]
    Format { path: String, err: RecordError },
    #[error("{path}: {err}")]
    Csv { path: String, err: csv::Error },
    #[error("temporary sort file: {0}")]
    Temp(std::io::Error),
}

/// Lines read, and those that were not records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub records: u64,
    /// Lines that do not parse (e.g. a last record cut off by a kill).
    pub unreadable: u64,
}

/// Calls `each` for every record of a scan output, NDJSON or CSV.
pub fn for_each_record(
    path: &Path,
    mut each: impl FnMut(Record) -> Result<(), SortError>,
) -> Result<ReadStats, SortError> {
    let shown = path.display().to_string();
    let read = |err| SortError::Read {
        path: shown.clone(),
        err,
    };
    let mut r = BufReader::with_capacity(256 * 1024, File::open(path).map_err(read)?);
    let mut stats = ReadStats::default();
    let mut first = String::new();
    while first.trim().is_empty() {
        first.clear();
        if r.read_line(&mut first).map_err(read)? == 0 {
            return Ok(stats);
        }
    }
    let format = InputFormat::detect(&first).map_err(|err| SortError::Format {
        path: shown.clone(),
        err,
    })?;
    match format {
        InputFormat::Ndjson => {
            let mut line = first;
            loop {
                match format.parse(&line) {
                    Some(rec) => {
                        stats.records += 1;
                        each(rec)?;
                    }
                    None if !line.trim().is_empty() => stats.unreadable += 1,
                    None => {}
                }
                line.clear();
                if r.read_line(&mut line).map_err(read)? == 0 {
                    break;
                }
            }
        }
        InputFormat::Csv {
            domain,
            verdict,
            codes,
        } => {
            // The header was consumed; rows are read as CSV (a quoted
            // field may hold a line break).
            let mut rd = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(r);
            let mut row = csv::StringRecord::new();
            loop {
                match rd.read_record(&mut row) {
                    Ok(false) => break,
                    Ok(true) => match csv_record(&row, domain, verdict, codes) {
                        Some(rec) => {
                            stats.records += 1;
                            each(rec)?;
                        }
                        None if row.get(domain) == Some("domain") => {}
                        None => stats.unreadable += 1,
                    },
                    Err(e) if e.is_io_error() => {
                        return Err(SortError::Csv {
                            path: shown,
                            err: e,
                        });
                    }
                    Err(_) => stats.unreadable += 1,
                }
            }
        }
    }
    Ok(stats)
}

/// Records sorted by domain, from memory or merged from run files.
pub enum SortedRecords {
    Memory(std::vec::IntoIter<Record>),
    Merge {
        runs: Vec<Run>,
        heap: BinaryHeap<Reverse<(String, usize)>>,
        heads: Vec<Option<Record>>,
        /// Keeps the run files until the merge is done.
        _dir: tempfile::TempDir,
    },
}

/// One spilled, sorted run.
pub struct Run {
    reader: BufReader<File>,
    line: String,
}

impl Run {
    fn next(&mut self) -> Result<Option<Record>, SortError> {
        self.line.clear();
        if self
            .reader
            .read_line(&mut self.line)
            .map_err(SortError::Temp)?
            == 0
        {
            return Ok(None);
        }
        serde_json::from_str(&self.line)
            .map(Some)
            .map_err(|e| SortError::Temp(std::io::Error::other(e)))
    }
}

impl Iterator for SortedRecords {
    type Item = Result<Record, SortError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SortedRecords::Memory(it) => it.next().map(Ok),
            SortedRecords::Merge {
                runs, heap, heads, ..
            } => {
                let Reverse((_, i)) = heap.pop()?;
                let out = heads[i].take()?;
                match runs[i].next() {
                    Ok(Some(r)) => {
                        heap.push(Reverse((r.domain.clone(), i)));
                        heads[i] = Some(r);
                    }
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                Some(Ok(out))
            }
        }
    }
}

fn spill(dir: &Path, n: usize, batch: &mut Vec<Record>) -> Result<File, SortError> {
    batch.sort_by(|a, b| a.domain.cmp(&b.domain));
    let path = dir.join(format!("run-{n}"));
    let f = File::create(&path).map_err(SortError::Temp)?;
    let mut w = BufWriter::with_capacity(RUN_BUFFER, f);
    for r in batch.drain(..) {
        serde_json::to_writer(&mut w, &r).map_err(|e| SortError::Temp(e.into()))?;
        w.write_all(b"\n").map_err(SortError::Temp)?;
    }
    w.flush().map_err(SortError::Temp)?;
    File::open(&path).map_err(SortError::Temp)
}

/// Sorts one input by domain within `budget` bytes, spilling to `tmp`.
pub fn sort_file(
    path: &Path,
    budget: usize,
    tmp: &Path,
) -> Result<(SortedRecords, ReadStats), SortError> {
    let mut batch: Vec<Record> = Vec::new();
    let mut used = 0usize;
    let mut dir: Option<tempfile::TempDir> = None;
    let mut files: Vec<File> = Vec::new();
    let stats = for_each_record(path, |rec| {
        used += rec.weight();
        batch.push(rec);
        if used >= budget {
            if dir.is_none() {
                dir = Some(
                    tempfile::Builder::new()
                        .prefix("dane-audit-diff-")
                        .tempdir_in(tmp)
                        .map_err(SortError::Temp)?,
                );
            }
            let d = dir
                .as_ref()
                .map(|d| d.path().to_path_buf())
                .unwrap_or_default();
            files.push(spill(&d, files.len(), &mut batch)?);
            batch.shrink_to(1024);
            used = 0;
        }
        Ok(())
    })?;
    let Some(dir) = dir else {
        batch.sort_by(|a, b| a.domain.cmp(&b.domain));
        return Ok((SortedRecords::Memory(batch.into_iter()), stats));
    };
    if !batch.is_empty() {
        files.push(spill(dir.path(), files.len(), &mut batch)?);
    }
    drop(batch);
    let mut runs: Vec<Run> = files
        .into_iter()
        .map(|f| Run {
            reader: BufReader::with_capacity(RUN_BUFFER, f),
            line: String::new(),
        })
        .collect();
    let mut heap = BinaryHeap::new();
    let mut heads = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter_mut().enumerate() {
        let head = run.next()?;
        if let Some(r) = &head {
            heap.push(Reverse((r.domain.clone(), i)));
        }
        heads.push(head);
    }
    Ok((
        SortedRecords::Merge {
            runs,
            heap,
            heads,
            _dir: dir,
        },
        stats,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_runs_merge_in_domain_order() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.ndjson");
        let mut text = String::new();
        for i in (0..5000).rev() {
            text.push_str(&format!(
                "{{\"domain\":\"d{i:05}.example\",\"verdict\":\"pass\",\"findings\":[]}}\n"
            ));
        }
        text.push_str("{\"domain\":\"cut");
        std::fs::write(&input, text).unwrap();
        // A budget of a few records forces many runs.
        let (sorted, stats) = sort_file(&input, 20_000, dir.path()).unwrap();
        assert!(matches!(sorted, SortedRecords::Merge { .. }));
        assert_eq!(
            stats,
            ReadStats {
                records: 5000,
                unreadable: 1
            }
        );
        let domains: Vec<String> = sorted.map(|r| r.unwrap().domain).collect();
        assert_eq!(domains.len(), 5000);
        assert!(domains.windows(2).all(|w| w[0] < w[1]));
        let (mem, _) = sort_file(&input, 1 << 30, dir.path()).unwrap();
        assert!(matches!(mem, SortedRecords::Memory(_)));
    }
}
