//! TensorBoard event files, written without TensorFlow or a protobuf library.
//!
//! Format: a sequence of TFRecords, each `u64 length (LE)`, `u32 masked CRC32C of the length
//! bytes (LE)`, `data`, `u32 masked CRC32C of data (LE)`, where
//! `mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`. Each record's data is a serialised
//! `tensorflow.Event`; the fields used are
//!
//! ```text
//! message Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//! message Summary { repeated Value value = 1; }
//! message Value   { string tag = 1; float simple_value = 2; }
//! ```
//!
//! The first record carries `file_version = "brain.Event:2"`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::{Result, StoreError};
use crate::run::hostname;

/// The TFRecord CRC mask.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames `data` as one TFRecord.
fn tfrecord(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn key(buf: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(buf, (u64::from(field) << 3) | u64::from(wire_type));
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(buf, field, 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// Encodes a `Summary.Value { tag, simple_value }`.
fn encode_value(tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::with_capacity(tag.len() + 8);
    bytes_field(&mut v, 1, tag.as_bytes());
    key(&mut v, 2, 5);
    v.extend_from_slice(&value.to_le_bytes());
    v
}

/// What an `Event` carries besides its wall time and step.
enum Payload<'a> {
    FileVersion(&'a str),
    Scalars(&'a [(String, f32)]),
}

fn encode_event(wall_time: f64, step: i64, payload: Payload<'_>) -> Vec<u8> {
    let mut e = Vec::new();
    key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        key(&mut e, 2, 0);
        varint(&mut e, step as u64);
    }
    match payload {
        Payload::FileVersion(v) => bytes_field(&mut e, 3, v.as_bytes()),
        Payload::Scalars(values) => {
            let mut summary = Vec::new();
            for (tag, value) in values {
                bytes_field(&mut summary, 1, &encode_value(tag, *value));
            }
            bytes_field(&mut e, 5, &summary);
        }
    }
    e
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Flattens the numeric fields of `map` into `(tag, value)` pairs: nested objects are joined
/// with `/`; booleans, strings, arrays and nulls are skipped.
fn flatten(prefix: &str, map: &Map<String, Value>, out: &mut Vec<(String, f32)>) {
    for (k, v) in map {
        let tag = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}/{k}")
        };
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push((tag, x as f32));
                }
            }
            Value::Object(m) => flatten(&tag, m, out),
            _ => {}
        }
    }
}

/// Writes a TensorBoard event file `events.out.tfevents.<unix secs>.<host>` in a directory.
///
/// Records are buffered; [`EventWriter::flush`] writes them out and `fsync`s. Dropping the
/// writer flushes the buffer (without `fsync`).
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, starting with the
    /// `brain.Event:2` file-version record. If a file of that name already exists (two writers
    /// in the same second), a `.1`, `.2`, ... suffix is added (TensorBoard reads any file whose
    /// name contains `tfevents`).
    pub fn create(dir: &Path) -> Result<EventWriter> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let wall = now_secs();
        let host: String = hostname()
            .chars()
            .map(|c| if c == '/' || c == '\\' { '_' } else { c })
            .collect();
        let base = format!("events.out.tfevents.{}.{}", wall as u64, host);
        let mut n = 0u32;
        let (path, file) = loop {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                Err(e) => return Err(StoreError::io(path, e)),
            }
        };
        let mut w = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        w.write_record(&encode_event(
            wall,
            0,
            Payload::FileVersion("brain.Event:2"),
        ))?;
        Ok(w)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_record(&mut self, event: &[u8]) -> Result<()> {
        self.out
            .write_all(&tfrecord(event))
            .map_err(|e| StoreError::io(&self.path, e))
    }

    fn step_i64(&self, step: u64) -> Result<i64> {
        i64::try_from(step).map_err(|_| StoreError::InvalidRecord {
            path: self.path.clone(),
            message: format!("step {step} does not fit TensorBoard's int64"),
        })
    }

    /// Adds one scalar (stored as `f32`, like TensorBoard's `simple_value`).
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()> {
        let step = self.step_i64(step)?;
        let values = [(tag.to_string(), value as f32)];
        self.write_record(&encode_event(now_secs(), step, Payload::Scalars(&values)))
    }

    /// Adds every numeric field of `fields` as a scalar at `step`, in one event. Nested objects
    /// are flattened with `/` (`{"reward": {"mean": 1}}` → `reward/mean`); non-numeric fields
    /// and a top-level `"step"` field are skipped. Nothing is written if no field is numeric.
    pub fn add_scalars(&mut self, step: u64, fields: &Map<String, Value>) -> Result<()> {
        let step = self.step_i64(step)?;
        let mut values = Vec::new();
        flatten("", fields, &mut values);
        values.retain(|(tag, _)| tag != "step");
        if values.is_empty() {
            return Ok(());
        }
        self.write_record(&encode_event(now_secs(), step, Payload::Scalars(&values)))
    }

    /// Writes buffered records to the file and `fsync`s its data.
    pub fn flush(&mut self) -> Result<()> {
        let io = |e| StoreError::io(&self.path, e);
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_data().map_err(io)
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let enc = |v| {
            let mut b = Vec::new();
            varint(&mut b, v);
            b
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn crc32c_reference_vector() {
        // CRC-32C ("Castagnoli") check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn flattens_nested_numeric_fields() {
        let v = serde_json::json!({"step": 3, "a": 1.5, "b": {"c": 2, "d": "x", "e": {"f": -1}},
                                   "g": true, "h": [1, 2], "i": null});
        let mut out = Vec::new();
        flatten("", v.as_object().unwrap(), &mut out);
        assert_eq!(
            out,
            vec![
                ("step".to_string(), 3.0),
                ("a".to_string(), 1.5),
                ("b/c".to_string(), 2.0),
                ("b/e/f".to_string(), -1.0)
            ]
        );
    }
}
