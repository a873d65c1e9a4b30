//! `metrics.jsonl`: one JSON object per line, each with a `"step"`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::atomic::write_atomic;
use crate::error::{Result, StoreError};

/// The `"step"` of a record, if it is an object with a non-negative integer `step`.
fn step_of(v: &Value) -> Option<u64> {
    v.as_object()?.get("step")?.as_u64()
}

/// Append-only metrics log (`<run>/metrics.jsonl`).
///
/// Lines are buffered; [`MetricsLog::flush`] writes them out and `fsync`s the data. Dropping
/// the log flushes the buffer (without `fsync`).
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsLog {
    /// Opens `path` for appending, creating it if needed.
    ///
    /// If the file ends in a partial line (a write torn by a kill), that partial line is cut
    /// off first, so new records never get glued onto it (a complete record that only lacks
    /// its newline is kept and terminated).
    pub fn open(path: &Path) -> Result<MetricsLog> {
        let io = |e| StoreError::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            file.seek(SeekFrom::End(-1)).map_err(io)?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                let mut bytes = Vec::new();
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.read_to_end(&mut bytes).map_err(io)?;
                let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let complete = serde_json::from_slice::<Value>(&bytes[keep..])
                    .ok()
                    .and_then(|v| step_of(&v))
                    .is_some();
                if complete {
                    // Only the newline is missing: terminate the record instead of losing it.
                    file.write_all(b"\n").map_err(io)?;
                } else {
                    file.set_len(keep as u64).map_err(io)?;
                }
                file.sync_data().map_err(io)?;
            }
        }
        Ok(MetricsLog {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record: a JSON object with a non-negative integer `"step"`.
    pub fn append(&mut self, record: &Value) -> Result<()> {
        if !record.is_object() {
            return Err(StoreError::InvalidRecord {
                path: self.path.clone(),
                message: "a metrics record must be a JSON object".into(),
            });
        }
        if step_of(record).is_none() {
            return Err(StoreError::InvalidRecord {
                path: self.path.clone(),
                message: "field `step` missing or not a non-negative integer".into(),
            });
        }
        let mut line = serde_json::to_string(record).map_err(|source| StoreError::Json {
            path: self.path.clone(),
            source,
        })?;
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .map_err(|e| StoreError::io(&self.path, e))
    }

    /// Writes buffered lines to the file and `fsync`s its data.
    pub fn flush(&mut self) -> Result<()> {
        let io = |e| StoreError::io(&self.path, e);
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_data().map_err(io)
    }

    /// Rewrites `path` atomically, keeping only the lines whose `step` is `<= step` (resume
    /// calls this with the step of the checkpoint it restarts from). A torn last line (no
    /// trailing newline, left by a kill) is dropped silently; any other malformed line is an
    /// error naming `file:line`. A missing file is not an error (nothing was logged yet).
    /// Returns the number of lines kept.
    pub fn truncate_after(path: &Path, step: u64) -> Result<usize> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let mut out = String::with_capacity(text.len());
        let mut kept = 0;
        for (_, line, v) in parse_lines(path, &text)? {
            if step_of(&v).is_some_and(|s| s <= step) {
                out.push_str(line);
                out.push('\n');
                kept += 1;
            }
        }
        write_atomic(path, out.as_bytes())?;
        Ok(kept)
    }
}

impl Drop for MetricsLog {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// Parses a JSON-lines text: `(1-based line number, line text, record)` for every non-blank
/// line. Every record must be an object with a non-negative integer `step`. A final line
/// without a trailing newline that does not parse is a torn write and is skipped.
fn parse_lines<'a>(path: &Path, text: &'a str) -> Result<Vec<(usize, &'a str, Value)>> {
    let terminated = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let lineno = i + 1;
        let is_torn_candidate = !terminated && i + 1 == lines.len();
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if is_torn_candidate => continue,
            Err(e) => {
                return Err(StoreError::BadLine {
                    path: path.to_path_buf(),
                    line: lineno,
                    message: format!("invalid JSON: {e}"),
                })
            }
        };
        if !v.is_object() {
            return Err(StoreError::BadLine {
                path: path.to_path_buf(),
                line: lineno,
                message: "not a JSON object".into(),
            });
        }
        if step_of(&v).is_none() {
            return Err(StoreError::BadLine {
                path: path.to_path_buf(),
                line: lineno,
                message: "field `step` missing or not a non-negative integer".into(),
            });
        }
        out.push((lineno, *line, v));
    }
    Ok(out)
}

/// Reads a metrics log: every record, in file order.
///
/// A malformed line is an error naming `file:line`, except a final line without a trailing
/// newline, which is a write in flight (or torn by a kill) and is skipped.
pub fn read_metrics(path: &Path) -> Result<Vec<Value>> {
    let text = fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
    Ok(parse_lines(path, &text)?
        .into_iter()
        .map(|(_, _, v)| v)
        .collect())
}
