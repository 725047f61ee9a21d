//! `--resume`: which input lines an earlier run already wrote to OUT, and
//! whether it ran with the same configuration.
//!
//! Every record carries its input line number; the lines done are kept as
//! sorted ranges, which stay few because lines finish nearly in order (a
//! gap is a domain that was in flight when the run stopped). A last record
//! cut off by a kill is removed from OUT and its line is done again. Next
//! to OUT, a small sidecar `OUT.scan.json` holds the hash of the settings
//! that decide what a record says; a resume with other settings is refused.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::catalogue;
use crate::core::finding::{Code, Severity};
use crate::report::Format;

use super::tally::Tally;

/// Input lines done, as sorted disjoint inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoneLines {
    ranges: Vec<(u64, u64)>,
    count: u64,
}

impl DoneLines {
    /// Marks `line` done; returns false if it already was.
    pub fn insert(&mut self, line: u64) -> bool {
        // First range that starts after `line`.
        let i = self.ranges.partition_point(|r| r.0 <= line);
        if i > 0 && self.ranges[i - 1].1 >= line {
            return false;
        }
        self.count += 1;
        let joins_left = i > 0 && self.ranges[i - 1].1 + 1 == line;
        let joins_right = i < self.ranges.len() && self.ranges[i].0 == line + 1;
        match (joins_left, joins_right) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = line,
            (false, true) => self.ranges[i].0 = line,
            (false, false) => self.ranges.insert(i, (line, line)),
        }
        true
    }

    pub fn contains(&self, line: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.0 <= line);
        i > 0 && self.ranges[i - 1].1 >= line
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of ranges (memory use).
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }
}

/// What an earlier run left in OUT.
#[derive(Debug, Default)]
pub struct Previous {
    pub done: DoneLines,
    /// Verdicts and codes of the records found (the final summary covers them).
    pub tally: Tally,
    /// Bytes of a cut-off last record that were removed.
    pub cut_bytes: u64,
    /// OUT is empty after the cut (a CSV header must be written again).
    pub empty: bool,
}

#[derive(Deserialize)]
struct NdRecord {
    line: Option<u64>,
    verdict: Option<String>,
    #[serde(default)]
    findings: Vec<NdFinding>,
}

#[derive(Deserialize)]
struct NdFinding {
    code: String,
    severity: String,
}

/// One record as the tally needs it.
pub struct RecordView<'a> {
    pub verdict: &'a str,
    /// (code, severity, undetermined)
    pub findings: Vec<(&'a str, Option<Severity>, bool)>,
}

fn undetermined(code: &str) -> bool {
    code.parse::<Code>()
        .map(|c| catalogue::entry(c).undetermined)
        .unwrap_or(false)
}

/// Why OUT cannot be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("--resume: cannot open {path}: {err}")]
    Open { path: String, err: std::io::Error },
    #[error("--resume: reading {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("--resume needs --format ndjson or csv (a JSON document cannot be appended to)")]
    Format,
    #[error("--resume: cannot cut the partial last record of {path}: {err}")]
    Cut { path: String, err: std::io::Error },
    #[error(
        "--resume: {path} line {line} is not a dane-audit scan record ({why}); the file is not the output of an earlier scan"
    )]
    NotARecord {
        path: String,
        line: u64,
        why: String,
    },
    #[error("--resume: {path} line {line} has no input line number; was it written by `scan`?")]
    NoLineNumber { path: String, line: u64 },
    #[error("--resume: {path} does not start with the CSV header of `scan`")]
    NoHeader { path: String },
    #[error("--resume: {path} record {record} is not a complete `scan` record")]
    Partial { path: String, record: u64 },
}

fn read_error(path: &Path) -> impl Fn(std::io::Error) -> ResumeError + '_ {
    move |err| ResumeError::Read {
        path: path.display().to_string(),
        err,
    }
}

/// Reads OUT, removes a cut-off last record, and returns what is done.
pub fn read_previous(path: &Path, format: Format) -> Result<Previous, ResumeError> {
    let shown = path.display().to_string();
    let file = File::options()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|err| ResumeError::Open {
            path: shown.clone(),
            err,
        })?;
    let (mut prev, keep) = match format {
        Format::Ndjson => read_ndjson(&file, path)?,
        Format::Csv => read_csv(&file, path)?,
        Format::Json | Format::Text | Format::Nagios => return Err(ResumeError::Format),
    };
    let len = file.metadata().map_err(read_error(path))?.len();
    if keep < len {
        file.set_len(keep)
            .map_err(|err| ResumeError::Cut { path: shown, err })?;
        prev.cut_bytes = len - keep;
    }
    prev.empty = keep == 0;
    Ok(prev)
}

/// Returns the state and the length of OUT to keep (up to the last complete record).
fn read_ndjson(file: &File, path: &Path) -> Result<(Previous, u64), ResumeError> {
    let mut r = BufReader::with_capacity(256 * 1024, file);
    let mut prev = Previous::default();
    let mut keep = 0u64;
    let mut buf = Vec::new();
    let mut no = 0u64;
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(read_error(path))?;
        if n == 0 {
            break;
        }
        no += 1;
        if buf.last() != Some(&b'\n') {
            break; // cut off by a kill: dropped, done again
        }
        let rec: NdRecord = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                // A complete line that does not parse: only acceptable as the
                // very last thing in the file (a torn write).
                let mut rest = [0u8; 1];
                if r.read(&mut rest).map(|n| n == 0).unwrap_or(false) {
                    break;
                }
                return Err(ResumeError::NotARecord {
                    path: path.display().to_string(),
                    line: no,
                    why: e.to_string(),
                });
            }
        };
        let Some(line) = rec.line else {
            return Err(ResumeError::NoLineNumber {
                path: path.display().to_string(),
                line: no,
            });
        };
        prev.done.insert(line);
        let verdict = rec.verdict.as_deref().unwrap_or("error");
        let view = RecordView {
            verdict,
            findings: rec
                .findings
                .iter()
                .map(|f| {
                    (
                        f.code.as_str(),
                        f.severity.parse().ok(),
                        undetermined(&f.code),
                    )
                })
                .collect(),
        };
        prev.tally.add_previous(&view);
        keep += n as u64;
    }
    Ok((prev, keep))
}

fn read_csv(file: &File, path: &Path) -> Result<(Previous, u64), ResumeError> {
    let shown = path.display().to_string();
    let mut f = file;
    f.seek(SeekFrom::Start(0)).map_err(read_error(path))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(256 * 1024, f));
    let mut prev = Previous::default();
    let mut rec = csv::ByteRecord::new();
    let header_ok = match rdr.read_byte_record(&mut rec) {
        Ok(true) => true,
        Ok(false) => return Ok((prev, 0)),
        Err(_) => return Ok((prev, 0)),
    };
    let header_end = rdr.position().byte();
    if !ends_with_newline(file, header_end).map_err(read_error(path))? {
        return Ok((prev, 0)); // the header itself was cut off
    }
    let col = |name: &str| rec.iter().position(|f| f == name.as_bytes());
    let (Some(c_domain), Some(c_line), Some(c_verdict), Some(c_codes), Some(c_worst)) = (
        col("domain"),
        col("line"),
        col("verdict"),
        col("codes"),
        col("worst_severity"),
    ) else {
        return Err(ResumeError::NoHeader { path: shown });
    };
    let _ = (c_domain, header_ok);
    let width = rec.len();
    let mut keep = header_end;
    let mut no = 1u64;
    loop {
        let start = rdr.position().byte();
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(_) => {
                keep = start;
                break;
            }
        }
        no += 1;
        let end = rdr.position().byte();
        let complete =
            rec.len() == width && ends_with_newline(file, end).map_err(read_error(path))?;
        let line = std::str::from_utf8(rec.get(c_line).unwrap_or(b""))
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        match (complete, line) {
            (true, Some(line)) => {
                prev.done.insert(line);
                let verdict =
                    std::str::from_utf8(rec.get(c_verdict).unwrap_or(b"")).unwrap_or("error");
                let worst: Option<Severity> = std::str::from_utf8(rec.get(c_worst).unwrap_or(b""))
                    .ok()
                    .and_then(|s| s.parse().ok());
                let codes = std::str::from_utf8(rec.get(c_codes).unwrap_or(b"")).unwrap_or("");
                let view = RecordView {
                    verdict,
                    // CSV has only the worst severity: each code is judged at it.
                    findings: codes
                        .split(';')
                        .filter(|c| !c.is_empty())
                        .map(|c| (c, worst, undetermined(c)))
                        .collect(),
                };
                prev.tally.add_previous(&view);
                keep = end;
            }
            _ => {
                if is_last(file, end).map_err(read_error(path))? {
                    keep = start;
                    break;
                }
                return Err(ResumeError::Partial {
                    path: shown,
                    record: no,
                });
            }
        }
    }
    Ok((prev, keep))
}

fn byte_before(file: &File, pos: u64) -> std::io::Result<Option<u8>> {
    if pos == 0 {
        return Ok(None);
    }
    let mut f = file;
    let mut b = [0u8; 1];
    let cur = f.stream_position()?;
    f.seek(SeekFrom::Start(pos - 1))?;
    let n = f.read(&mut b)?;
    f.seek(SeekFrom::Start(cur))?;
    Ok((n == 1).then_some(b[0]))
}

fn ends_with_newline(file: &File, end: u64) -> std::io::Result<bool> {
    Ok(byte_before(file, end)? == Some(b'\n'))
}

fn is_last(file: &File, end: u64) -> std::io::Result<bool> {
    Ok(end >= file.metadata()?.len())
}

/// The sidecar next to OUT.
pub fn sidecar_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".scan.json");
    PathBuf::from(s)
}

/// What the sidecar holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sidecar {
    pub tool: String,
    pub config_hash: String,
    /// The settings behind the hash, for people.
    pub config: serde_json::Value,
    pub input: String,
    /// SHA-256 of the first `input_head_len` bytes of the input file (not for stdin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_head_sha256: Option<String>,
    #[serde(default)]
    pub input_head_len: u64,
    pub started_at: String,
    /// running, interrupted, failed or complete.
    pub status: String,
    pub updated_at: String,
}

/// Bytes of the input hashed to recognise it on resume.
pub const INPUT_HEAD: u64 = 64 * 1024;

/// SHA-256 (hex) of the first `len` bytes of a file.
pub fn head_hash(path: &Path, len: u64) -> io::Result<String> {
    let mut f = File::open(path)?.take(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// A short hex hash of a settings document.
pub fn config_hash(config: &serde_json::Value) -> String {
    let text = serde_json::to_string(config).unwrap_or_default();
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

pub fn read_sidecar(path: &Path) -> Result<Option<Sidecar>, String> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("{}: not a scan sidecar ({e})", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the sidecar atomically (temporary file, then rename).
pub fn write_sidecar(path: &Path, s: &Sidecar) -> io::Result<()> {
    crate::statefile::write_json_atomically(path, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn done_lines_merge_into_ranges() {
        let mut d = DoneLines::default();
        for l in [1, 2, 3, 5, 7, 6, 4, 10] {
            assert!(d.insert(l));
        }
        assert!(!d.insert(3));
        assert_eq!(d.len(), 8);
        assert_eq!(d.ranges, vec![(1, 7), (10, 10)]);
        assert!(d.contains(1) && d.contains(7) && d.contains(10));
        assert!(!d.contains(0) && !d.contains(8) && !d.contains(11));
        // Nearly ordered completion keeps the ranges few.
        let mut d = DoneLines::default();
        for l in 1..=100_000u64 {
            let l = if l % 64 == 0 {
                l - 1
            } else if l % 64 == 63 {
                l + 1
            } else {
                l
            };
            d.insert(l);
        }
        assert_eq!(d.ranges(), 1);
    }

    fn file_with(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        (dir, p)
    }

    #[test]
    fn ndjson_partial_last_line_is_cut() {
        let full = concat!(
            r#"{"line":1,"domain":"a.example","verdict":"pass","findings":[]}"#,
            "\n",
            r#"{"line":3,"domain":"x","verdict":"error","error":"bad"}"#,
            "\n",
            r#"{"line":2,"domain":"b.example","verdict":"fail","findings":[{"code":"tlsa-no-match","severity":"error"}]}"#,
            "\n"
        );
        let cut = format!("{full}{}", r#"{"line":4,"domain":"c.exa"#);
        let (_d, p) = file_with(cut.as_bytes());
        let prev = read_previous(&p, Format::Ndjson).unwrap();
        assert_eq!(prev.done.len(), 3);
        assert!(prev.done.contains(2) && !prev.done.contains(4));
        assert!(prev.cut_bytes > 0);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), full);
        assert_eq!(prev.tally.records, 3);
        // Garbage in the middle is refused.
        let (_d, p) = file_with(b"{\"line\":1}\nnot json\n{\"line\":2}\n");
        assert!(read_previous(&p, Format::Ndjson).is_err());
        // JSON cannot be resumed.
        assert!(read_previous(&p, Format::Json).is_err());
    }

    #[test]
    fn csv_partial_last_record_is_cut() {
        let header = "domain,verdict,worst_severity,mx_hosts,dane_hosts,codes,reason,line,evaluated_at,tool_version,schema_version\n";
        let rec1 = "a.example,pass,,1,1,,,1,100,0.1.0,1\n";
        let rec2 = "\"b,x\",error,,,,,\"bad\nname\",2,,0.1.0,1\n";
        let full = format!("{header}{rec1}{rec2}");
        for cut in [
            "c.example,fail,error,1,1,tlsa-no-match,,3",
            "\"c\n",
            "c.example,pass,,1,1,,,4,100,0.1.0,1",
        ] {
            let (_d, p) = file_with(format!("{full}{cut}").as_bytes());
            let prev = read_previous(&p, Format::Csv).unwrap();
            assert_eq!(prev.done.len(), 2, "{cut:?}");
            assert_eq!(std::fs::read_to_string(&p).unwrap(), full, "{cut:?}");
        }
        let (_d, p) = file_with(&header.as_bytes()[..20]);
        let prev = read_previous(&p, Format::Csv).unwrap();
        assert!(prev.empty);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }

    #[test]
    fn sidecar_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = sidecar_path(&dir.path().join("out.ndjson"));
        assert!(p.to_string_lossy().ends_with("out.ndjson.scan.json"));
        assert_eq!(read_sidecar(&p).unwrap(), None);
        let cfg = serde_json::json!({"format": "ndjson"});
        let s = Sidecar {
            tool: "dane-audit 0".into(),
            config_hash: config_hash(&cfg),
            config: cfg,
            input: "list.txt".into(),
            input_head_sha256: None,
            input_head_len: 0,
            started_at: "t".into(),
            status: "running".into(),
            updated_at: "t".into(),
        };
        write_sidecar(&p, &s).unwrap();
        assert_eq!(read_sidecar(&p).unwrap(), Some(s));
    }
}
