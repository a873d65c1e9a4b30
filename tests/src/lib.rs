//! Helpers shared by rlvr's conformance and end-to-end tests: finding `../shared`, and the
//! CI rule for missing fixtures (fail under `CI=true`, skip with a message elsewhere).

use std::path::{Path, PathBuf};

/// `RLVR_SHARED` if set, else `<workspace root>/../shared`.
pub fn shared_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("RLVR_SHARED") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits inside the workspace")
        .join("../shared")
}

/// Whether this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// `shared/<rel>` if it exists. When it does not: panics under CI, otherwise prints why the
/// test is skipped and returns `None`.
pub fn require_shared(rel: &str) -> Option<PathBuf> {
    let p = shared_dir().join(rel);
    if p.exists() {
        return Some(p);
    }
    let msg = format!(
        "{} is missing: set RLVR_SHARED to the shared folder (datasets, fixtures, golden)",
        p.display()
    );
    if in_ci() {
        panic!("{msg} (CI=true: missing fixtures fail the run)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Reads a JSON file, panicking with its path on error (test helper).
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON array of numbers as f64.
pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// A JSON array of token ids.
pub fn u32s(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as u32)
        .collect()
}

/// A JSON array of arrays of token ids.
pub fn u32_rows(v: &serde_json::Value) -> Vec<Vec<u32>> {
    v.as_array().expect("array").iter().map(u32s).collect()
}
