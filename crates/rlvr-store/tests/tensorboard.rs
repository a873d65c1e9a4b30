//! Decodes the event files with an independent reader: its own bitwise CRC-32C, TFRecord
//! framing and a minimal protobuf decoder.

use std::fs;

use rlvr_store::EventWriter;
use serde_json::json;

/// Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), independent of any crate.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// Spelled exactly as in the TFRecord specification, on purpose.
#[allow(clippy::manual_rotate)]
fn masked(data: &[u8]) -> u32 {
    let c = crc32c(data);
    ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
}

fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let len_bytes = &bytes[i..i + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[i + 8..i + 12].try_into().unwrap());
        assert_eq!(
            len_crc,
            masked(len_bytes),
            "length CRC of record {}",
            out.len()
        );
        let data = &bytes[i + 12..i + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[i + 12 + len..i + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(data), "data CRC of record {}", out.len());
        out.push(data.to_vec());
        i += 16 + len;
    }
    assert_eq!(i, bytes.len(), "trailing bytes");
    out
}

#[derive(Debug)]
enum Field {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

fn read_varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn fields(b: &[u8]) -> Vec<(u64, Field)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = read_varint(b, &mut i);
        let (num, wt) = (key >> 3, key & 7);
        let f = match wt {
            0 => Field::Varint(read_varint(b, &mut i)),
            1 => {
                let v = b[i..i + 8].try_into().unwrap();
                i += 8;
                Field::Fixed64(v)
            }
            2 => {
                let n = read_varint(b, &mut i) as usize;
                let v = b[i..i + n].to_vec();
                i += n;
                Field::Bytes(v)
            }
            5 => {
                let v = b[i..i + 4].try_into().unwrap();
                i += 4;
                Field::Fixed32(v)
            }
            _ => panic!("unexpected wire type {wt}"),
        };
        out.push((num, f));
    }
    out
}

#[derive(Debug, Default)]
struct Event {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    scalars: Vec<(String, f32)>,
}

fn decode_event(b: &[u8]) -> Event {
    let mut e = Event::default();
    for (num, f) in fields(b) {
        match (num, f) {
            (1, Field::Fixed64(v)) => e.wall_time = f64::from_le_bytes(v),
            (2, Field::Varint(v)) => e.step = v as i64,
            (3, Field::Bytes(v)) => e.file_version = Some(String::from_utf8(v).unwrap()),
            (5, Field::Bytes(summary)) => {
                for (n, f) in fields(&summary) {
                    let (1, Field::Bytes(value)) = (n, f) else {
                        panic!("bad Summary field {n}")
                    };
                    let (mut tag, mut x) = (None, None);
                    for (n, f) in fields(&value) {
                        match (n, f) {
                            (1, Field::Bytes(t)) => tag = Some(String::from_utf8(t).unwrap()),
                            (2, Field::Fixed32(v)) => x = Some(f32::from_le_bytes(v)),
                            (n, f) => panic!("bad Value field {n}: {f:?}"),
                        }
                    }
                    e.scalars.push((tag.unwrap(), x.unwrap()));
                }
            }
            (n, f) => panic!("bad Event field {n}: {f:?}"),
        }
    }
    e
}

#[test]
fn reference_crc_matches() {
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn event_file_decodes_with_independent_reader() {
    let dir = tempfile::tempdir().unwrap();
    let tb = dir.path().join("tb");
    let mut w = EventWriter::create(&tb).unwrap();
    let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    assert_eq!(w.path().parent().unwrap(), tb);

    w.add_scalar("loss", 0.25, 1).unwrap();
    w.add_scalar("reward/mean", -1.5, 300).unwrap();
    let fields = json!({"step": 300, "kl": 0.125, "reward": {"max": 2, "name": "x"}, "ok": true});
    w.add_scalars(300, fields.as_object().unwrap()).unwrap();
    // Nothing numeric: no event.
    w.add_scalars(301, json!({"note": "x"}).as_object().unwrap())
        .unwrap();
    w.add_scalar("big", 1e10, 1 << 40).unwrap();
    assert!(w.add_scalar("x", 1.0, u64::MAX).is_err());
    w.flush().unwrap();

    let events: Vec<Event> = records(&fs::read(w.path()).unwrap())
        .iter()
        .map(|r| decode_event(r))
        .collect();
    assert_eq!(events.len(), 5, "{events:?}");
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(events[0].scalars.is_empty());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for e in &events {
        assert!(
            (now - e.wall_time).abs() < 600.0,
            "wall_time {}",
            e.wall_time
        );
    }
    assert_eq!(events[1].step, 1);
    assert_eq!(events[1].scalars, vec![("loss".to_string(), 0.25)]);
    assert_eq!(events[2].step, 300);
    assert_eq!(events[2].scalars, vec![("reward/mean".to_string(), -1.5)]);
    assert_eq!(events[3].step, 300);
    assert_eq!(
        events[3].scalars,
        vec![("kl".to_string(), 0.125), ("reward/max".to_string(), 2.0)]
    );
    assert_eq!(events[4].step, 1 << 40);
    assert_eq!(events[4].scalars, vec![("big".to_string(), 1e10)]);
}

#[test]
fn two_writers_in_one_directory_get_distinct_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = EventWriter::create(dir.path()).unwrap();
    let b = EventWriter::create(dir.path()).unwrap();
    assert_ne!(a.path(), b.path());
}
