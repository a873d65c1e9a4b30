//! The run directory: layout, config, metadata and summary files.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::error::{Result, StoreError};
use crate::metrics_log::MetricsLog;
use crate::store::Store;

/// File name of the resolved configuration inside a run directory.
pub const CONFIG_FILE: &str = "config.resolved.toml";

/// Metadata about a run, written to `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Version of rlvr that produced the run.
    pub rlvr_version: String,
    /// `git rev-parse HEAD` of the working directory, with a `-dirty` suffix when tracked
    /// files were modified; `None` outside a git checkout.
    pub git_revision: Option<String>,
    /// The run's seed.
    pub seed: u64,
    /// Host name of the machine.
    pub host: String,
    /// Start time, RFC 3339 with the local offset.
    pub start_time: String,
    /// The command line (program name first).
    pub command: Vec<String>,
    /// The step the run was resumed from, if it is a resumed run.
    pub resumed_from_step: Option<u64>,
}

impl RunMeta {
    /// Metadata for a run starting now on this machine: this crate's version (the workspace
    /// version), [`git_revision`], [`hostname`], the current local time.
    pub fn now(seed: u64, command: Vec<String>, resumed_from_step: Option<u64>) -> RunMeta {
        RunMeta {
            rlvr_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision: git_revision().map(|g| g.to_string()),
            seed,
            host: hostname(),
            start_time: chrono::Local::now().to_rfc3339(),
            command,
            resumed_from_step,
        }
    }
}

/// A git revision: the commit and whether tracked files differ from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRevision {
    /// Full commit hash of `HEAD`.
    pub commit: String,
    /// Whether tracked files have uncommitted changes.
    pub dirty: bool,
}

impl fmt::Display for GitRevision {
    /// `<commit>` or `<commit>-dirty`, like `git describe --dirty`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.commit)?;
        if self.dirty {
            write!(f, "-dirty")?;
        }
        Ok(())
    }
}

fn run_git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

/// The git revision of the current directory, found at run time with `git rev-parse HEAD`;
/// `None` when git is missing or this is not a checkout. The dirty flag comes from
/// `git status --porcelain --untracked-files=no` (untracked files do not count).
pub fn git_revision() -> Option<GitRevision> {
    let commit = run_git(&["rev-parse", "HEAD"])?.trim().to_string();
    if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let dirty = run_git(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    Some(GitRevision { commit, dirty })
}

/// The host name: `/etc/hostname`, else `uname -n`, else `"unknown"`.
pub fn hostname() -> String {
    if let Ok(s) = fs::read_to_string("/etc/hostname") {
        let s = s.trim();
        if !s.is_empty() {
            return s.to_string();
        }
    }
    if let Ok(out) = Command::new("uname")
        .arg("-n")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        if out.status.success() {
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !s.is_empty() {
                return s;
            }
        }
    }
    "unknown".to_string()
}

/// Replaces everything but ASCII letters, digits, `.`, `_` and `-` with `-`, so a config name
/// is safe inside a directory name. Leading dots are stripped; an empty result becomes `run`.
fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_start_matches('.');
    if s.is_empty() {
        "run".to_string()
    } else {
        s.to_string()
    }
}

/// Checks that `name` is a plain file name (no directory parts).
fn check_file_name(dir: &Path, name: &str) -> Result<()> {
    let bad = |reason| {
        Err(StoreError::InvalidName {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("not a file name");
    }
    if name.contains('/') || name.contains('\\') || name.contains('\0') {
        return bad("must not contain path separators or NUL");
    }
    Ok(())
}

/// A run directory.
///
/// Layout: `config.resolved.toml`, `meta.json`, `metrics.jsonl`, `summary.json`, `store/`
/// (sled), `checkpoints/`, `plots/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates a run directory for a new run.
    ///
    /// With `run_dir = Some(dir)`, `dir` is used (created if missing); it is an error if it
    /// already holds a run (`config.resolved.toml` exists). With `None`, the directory is
    /// `runs/<YYYYmmdd-HHMMSS>-<config name>/` under the current directory, with a `-2`, `-3`,
    /// ... suffix if that name is taken. `checkpoints/` and `plots/` are created inside.
    pub fn create(run_dir: Option<&Path>, config_name: &str) -> Result<RunDir> {
        match run_dir {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
                if dir.join(CONFIG_FILE).exists() {
                    return Err(StoreError::RunExists {
                        path: dir.to_path_buf(),
                    });
                }
                RunDir::with_subdirs(dir.to_path_buf())
            }
            None => {
                let cwd = std::env::current_dir().map_err(|e| StoreError::io(".", e))?;
                RunDir::create_under(&cwd, config_name)
            }
        }
    }

    /// Like `RunDir::create(None, config_name)` but under `base` instead of the current
    /// directory: creates `base/runs/<YYYYmmdd-HHMMSS>-<config name>[-N]/`.
    pub fn create_under(base: &Path, config_name: &str) -> Result<RunDir> {
        let runs = base.join("runs");
        fs::create_dir_all(&runs).map_err(|e| StoreError::io(&runs, e))?;
        let stem = format!(
            "{}-{}",
            chrono::Local::now().format("%Y%m%d-%H%M%S"),
            sanitize_name(config_name)
        );
        for n in 1u32..=10_000 {
            let name = if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            };
            let candidate = runs.join(name);
            // `create_dir` (not `_all`) claims the name atomically, even against a
            // concurrent run started in the same second.
            match fs::create_dir(&candidate) {
                Ok(()) => return RunDir::with_subdirs(candidate),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io(&candidate, e)),
            }
        }
        Err(StoreError::io(
            runs.join(&stem),
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no free run directory name (tried 10000 suffixes)",
            ),
        ))
    }

    fn with_subdirs(path: PathBuf) -> Result<RunDir> {
        let run = RunDir { path };
        for d in [run.checkpoints_dir(), run.plots_dir()] {
            fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
        }
        Ok(run)
    }

    /// Opens an existing run directory (to resume it). It must contain
    /// `config.resolved.toml`; missing `checkpoints/` and `plots/` are recreated.
    pub fn open(path: &Path) -> Result<RunDir> {
        if !path.is_dir() {
            return Err(StoreError::io(
                path,
                io::Error::new(io::ErrorKind::NotFound, "run directory not found"),
            ));
        }
        if !path.join(CONFIG_FILE).is_file() {
            return Err(StoreError::NotARunDir {
                path: path.to_path_buf(),
            });
        }
        RunDir::with_subdirs(path.to_path_buf())
    }

    /// The run directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<run>/checkpoints`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// `<run>/plots`.
    pub fn plots_dir(&self) -> PathBuf {
        self.path.join("plots")
    }

    /// `<run>/store`, the sled database directory.
    pub fn store_dir(&self) -> PathBuf {
        self.path.join("store")
    }

    /// `<run>/metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    /// Opens the run's sled store (`<run>/store`).
    pub fn open_store(&self) -> Result<Store> {
        Store::open(&self.store_dir())
    }

    /// Opens `<run>/metrics.jsonl` for appending.
    pub fn open_metrics_log(&self) -> Result<MetricsLog> {
        MetricsLog::open(&self.metrics_path())
    }

    /// Writes `config.resolved.toml` (atomically).
    pub fn write_config(&self, toml_text: &str) -> Result<()> {
        write_atomic(&self.path.join(CONFIG_FILE), toml_text.as_bytes())
    }

    /// Reads `config.resolved.toml`.
    pub fn read_config(&self) -> Result<String> {
        let p = self.path.join(CONFIG_FILE);
        fs::read_to_string(&p).map_err(|e| StoreError::io(p, e))
    }

    /// Writes `meta.json` (atomically, pretty-printed).
    pub fn write_meta(&self, meta: &RunMeta) -> Result<()> {
        let p = self.path.join("meta.json");
        let v =
            serde_json::to_value(meta).map_err(|source| StoreError::Json { path: p, source })?;
        self.write_json("meta.json", &v)
    }

    /// Reads `meta.json`.
    pub fn read_meta(&self) -> Result<RunMeta> {
        let p = self.path.join("meta.json");
        let text = fs::read_to_string(&p).map_err(|e| StoreError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|source| StoreError::Json { path: p, source })
    }

    /// Writes `summary.json` (atomically, pretty-printed).
    pub fn write_summary(&self, summary: &Value) -> Result<()> {
        self.write_json("summary.json", summary)
    }

    /// Writes `<run>/<name>` as pretty-printed JSON with a trailing newline, atomically.
    /// `name` must be a plain file name.
    pub fn write_json(&self, name: &str, value: &Value) -> Result<()> {
        check_file_name(&self.path, name)?;
        let p = self.path.join(name);
        let mut text = serde_json::to_string_pretty(value).map_err(|source| StoreError::Json {
            path: p.clone(),
            source,
        })?;
        text.push('\n');
        write_atomic(&p, text.as_bytes())
    }

    /// Reads `<run>/<name>` as JSON. `name` must be a plain file name.
    pub fn read_json(&self, name: &str) -> Result<Value> {
        check_file_name(&self.path, name)?;
        let p = self.path.join(name);
        let text = fs::read_to_string(&p).map_err(|e| StoreError::io(&p, e))?;
        serde_json::from_str(&text).map_err(|source| StoreError::Json { path: p, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_config_names() {
        assert_eq!(sanitize_name("grpo-gsm8k"), "grpo-gsm8k");
        assert_eq!(sanitize_name("configs/a b.toml"), "configs-a-b.toml");
        assert_eq!(sanitize_name("../x"), "-x");
        assert_eq!(sanitize_name(""), "run");
        assert_eq!(sanitize_name("..."), "run");
    }

    #[test]
    fn git_revision_display() {
        let g = GitRevision {
            commit: "abc".into(),
            dirty: true,
        };
        assert_eq!(g.to_string(), "abc-dirty");
        let g = GitRevision {
            commit: "abc".into(),
            dirty: false,
        };
        assert_eq!(g.to_string(), "abc");
    }
}
