//! The error type of the crate.

use std::path::PathBuf;

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the store; every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system I/O error on `path`.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `RunDir::open` on a directory without `config.resolved.toml`.
    #[error("{}: not a run directory (no config.resolved.toml)", .path.display())]
    NotARunDir {
        /// The directory.
        path: PathBuf,
    },
    /// `RunDir::create` on an explicit directory that already holds a run.
    #[error(
        "{}: already holds a run (config.resolved.toml exists); open it to resume instead",
        .path.display()
    )]
    RunExists {
        /// The directory.
        path: PathBuf,
    },
    /// A file name given to a writer is not a plain file name.
    #[error("{}: invalid file name {name:?}: {reason}", .dir.display())]
    InvalidName {
        /// The directory the file was to be written in.
        dir: PathBuf,
        /// The offending name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A whole JSON file could not be parsed or serialised.
    #[error("{}: JSON: {source}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (it carries line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A line of a JSON-lines file is malformed.
    #[error("{}:{line}: {message}", .path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A record handed to a writer is unusable (for example a metrics record without `step`).
    #[error("{}: invalid record: {message}", .path.display())]
    InvalidRecord {
        /// The file the record was meant for.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The sled database is already open (by this process or another one).
    #[error(
        "{}: the store is already open by this or another process (sled lock held)",
        .path.display()
    )]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// Any other sled error.
    #[error("{}: sled: {source}", .path.display())]
    Sled {
        /// The database directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: sled::Error,
    },
    /// A value in the store is not valid JSON.
    #[error("{}: tree `{tree}`, {key}: corrupt value: {source}", .path.display())]
    Corrupt {
        /// The database directory.
        path: PathBuf,
        /// The sled tree.
        tree: &'static str,
        /// The key, decoded for humans.
        key: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A plot could not be drawn or encoded.
    #[error("{}: plot: {message}", .path.display())]
    Plot {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
