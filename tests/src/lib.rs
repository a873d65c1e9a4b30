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

/// The lines of a JSONL file as JSON values (blank lines skipped), panicking with the path and
/// line on error (test helper).
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Runs a command that prints one JSON value on stdout (e.g. `rlvr train`'s summary), panicking
/// with its stderr when it fails (test helper).
pub fn run_json(cmd: &mut std::process::Command) -> serde_json::Value {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the command prints its result as JSON")
}

/// A child process that is killed and reaped when dropped, passed or failed.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `<rlvr> serve --port 0 --model <model>` and waits (60 s at most) for its
/// `listening on URL` line on stderr; returns the guard and the base URL. Stderr keeps being
/// drained on a thread so the server never blocks on it.
pub fn spawn_serve(rlvr: &Path, model: &Path) -> (KillOnDrop, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(rlvr)
        .env("RLVR_LOG", "warn")
        .env("RAYON_NUM_THREADS", "1")
        .args(["serve", "--port", "0", "--model"])
        .arg(model)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rlvr serve starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let guard = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!("rlvr serve printed no `listening on` line; stderr: {seen:?}")
            });
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("an address")
                .to_string();
        }
        seen.push(line);
    };
    (guard, url)
}
