//! Small JSON files that must survive a crash whole: preflight's and
//! rollover's state, the scan sidecar. A reader (or the next run after a
//! `kill -9`) sees the old file or the new one, never half of either.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

/// Writes `value` next to `path`, flushes it to disk, renames it into place
/// and flushes the directory, so that the rename itself survives a crash.
pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    });
    let placed = written.and_then(|_| std::fs::rename(&tmp, path));
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed?;
    // The rename is durable once the directory is: best effort where a
    // directory cannot be opened for syncing.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        write_json_atomically(&path, &vec![1, 2]).unwrap();
        write_json_atomically(&path, &vec![3]).unwrap();
        let back: Vec<u32> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, [3]);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_json_atomically(&dir.path().join("missing/s.json"), &1).is_err());
    }
}
