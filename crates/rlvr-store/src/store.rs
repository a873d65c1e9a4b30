//! The sled store of a run: rollouts, metrics and resumable state.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, StoreError};

const ROLLOUTS: &str = "rollouts";
const METRICS: &str = "metrics";
const STATE: &str = "state";

/// The sled database of a run (normally `<run dir>/store`).
///
/// Three trees, values JSON:
/// - `rollouts`, keyed by `(step, index)` as two big-endian `u64`s, so iteration is in step
///   order and, within a step, in index order;
/// - `metrics`, keyed by `step` (big-endian `u64`);
/// - `state`, keyed by UTF-8 strings (resumable trainer state such as data-loader positions).
///
/// Durability: sled flushes in the background, but the trainer calls [`Store::flush`] at
/// every step boundary, so a kill loses at most the step in flight; resume then calls
/// [`Store::truncate_after`] with the last checkpointed step to drop anything newer.
///
/// sled holds an exclusive lock on the database while it is open: a second `Store::open` of
/// the same directory (from this or another process) fails with [`StoreError::Locked`] after
/// retrying for 2 s (sled releases the lock of a closed database from a background thread).
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    rollouts: sled::Tree,
    metrics: sled::Tree,
    state: sled::Tree,
}

fn rollout_key(step: u64, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&step.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

fn describe_key(tree: &str, key: &[u8]) -> String {
    let u = |b: &[u8]| <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes);
    match (tree, key.len()) {
        (ROLLOUTS, 16) => match (u(&key[..8]), u(&key[8..])) {
            (Some(s), Some(i)) => format!("step {s}, index {i}"),
            _ => format!("key {key:?}"),
        },
        (METRICS, 8) => match u(key) {
            Some(s) => format!("step {s}"),
            None => format!("key {key:?}"),
        },
        _ => format!("key {:?}", String::from_utf8_lossy(key)),
    }
}

fn is_lock_error(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.raw_os_error() == Some(11)
                || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}

impl Store {
    /// Opens (creating if needed) the sled database in directory `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let sled_err = |source: sled::Error| {
            if is_lock_error(&source) {
                StoreError::Locked {
                    path: path.to_path_buf(),
                }
            } else {
                StoreError::Sled {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        // sled releases its file lock from a background thread shortly after the last handle
        // is dropped: a reopen right after a close retries for a moment before calling the
        // database locked.
        let mut tries = 0;
        let db = loop {
            match sled::Config::new().path(path).open() {
                Err(e) if is_lock_error(&e) && tries < 40 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.map_err(sled_err)?,
            }
        };
        let rollouts = db.open_tree(ROLLOUTS).map_err(sled_err)?;
        let metrics = db.open_tree(METRICS).map_err(sled_err)?;
        let state = db.open_tree(STATE).map_err(sled_err)?;
        Ok(Store {
            path: path.to_path_buf(),
            db,
            rollouts,
            metrics,
            state,
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sled_err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    fn encode(&self, tree: &'static str, key: &[u8], v: &Value) -> Result<Vec<u8>> {
        // Serialising a `Value` cannot fail in practice, but report it rather than panic.
        serde_json::to_vec(v).map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            tree,
            key: describe_key(tree, key),
            source,
        })
    }

    fn decode(&self, tree: &'static str, key: &[u8], bytes: &[u8]) -> Result<Value> {
        serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            tree,
            key: describe_key(tree, key),
            source,
        })
    }

    /// Stores the rollouts of `step`, index = position in `rollouts`, replacing (atomically)
    /// any rollouts previously stored for that step.
    pub fn put_rollouts(&self, step: u64, rollouts: &[Value]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for kv in self.rollouts.scan_prefix(step.to_be_bytes()) {
            let (k, _) = kv.map_err(|e| self.sled_err(e))?;
            batch.remove(k);
        }
        for (i, v) in rollouts.iter().enumerate() {
            let key = rollout_key(step, i as u64);
            let bytes = self.encode(ROLLOUTS, &key, v)?;
            batch.insert(&key[..], bytes);
        }
        self.rollouts
            .apply_batch(batch)
            .map_err(|e| self.sled_err(e))
    }

    /// The rollouts of `step`, in index order (empty if none were stored).
    pub fn rollouts(&self, step: u64) -> Result<Vec<Value>> {
        self.rollouts
            .scan_prefix(step.to_be_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                self.decode(ROLLOUTS, &k, &v)
            })
            .collect()
    }

    /// Number of rollouts stored, over all steps.
    pub fn rollout_count(&self) -> usize {
        self.rollouts.len()
    }

    /// The steps that have rollouts, ascending.
    pub fn rollout_steps(&self) -> Result<Vec<u64>> {
        let mut steps: Vec<u64> = Vec::new();
        for k in self.rollouts.iter().keys() {
            let k = k.map_err(|e| self.sled_err(e))?;
            let step = k
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            if let Some(s) = step {
                if steps.last() != Some(&s) {
                    steps.push(s);
                }
            }
        }
        Ok(steps)
    }

    /// Stores the metrics of `step`, replacing any previous value.
    pub fn put_metrics(&self, step: u64, metrics: &Value) -> Result<()> {
        let key = step.to_be_bytes();
        let bytes = self.encode(METRICS, &key, metrics)?;
        self.metrics
            .insert(key, bytes)
            .map(|_| ())
            .map_err(|e| self.sled_err(e))
    }

    /// All stored metrics as `(step, value)`, in step order.
    pub fn metrics(&self) -> Result<Vec<(u64, Value)>> {
        self.metrics
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.sled_err(e))?;
                let step = <[u8; 8]>::try_from(&k[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        path: self.path.clone(),
                        tree: METRICS,
                        key: describe_key(METRICS, &k),
                        source: serde::de::Error::custom("metrics key is not 8 bytes"),
                    })?;
                Ok((step, self.decode(METRICS, &k, &v)?))
            })
            .collect()
    }

    /// Stores a state value under `key`, replacing any previous value.
    pub fn put_state(&self, key: &str, value: &Value) -> Result<()> {
        let bytes = self.encode(STATE, key.as_bytes(), value)?;
        self.state
            .insert(key.as_bytes(), bytes)
            .map(|_| ())
            .map_err(|e| self.sled_err(e))
    }

    /// The state value stored under `key`, if any.
    pub fn get_state(&self, key: &str) -> Result<Option<Value>> {
        match self
            .state
            .get(key.as_bytes())
            .map_err(|e| self.sled_err(e))?
        {
            Some(v) => Ok(Some(self.decode(STATE, key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Removes rollouts and metrics with a step greater than `step` (resume calls this with
    /// the step of the checkpoint it restarts from). State is left alone. Returns the number
    /// of entries removed. Each tree is truncated atomically.
    pub fn truncate_after(&self, step: u64) -> Result<usize> {
        let Some(first) = step.checked_add(1) else {
            return Ok(0);
        };
        let mut removed = 0;
        for (tree, start) in [
            (&self.rollouts, rollout_key(first, 0).to_vec()),
            (&self.metrics, first.to_be_bytes().to_vec()),
        ] {
            let mut batch = sled::Batch::default();
            for k in tree.range(start..).keys() {
                batch.remove(k.map_err(|e| self.sled_err(e))?);
                removed += 1;
            }
            tree.apply_batch(batch).map_err(|e| self.sled_err(e))?;
        }
        Ok(removed)
    }

    /// Writes everything to disk (`sled::Db::flush`). The trainer calls this at every step
    /// boundary so a kill loses at most the step in flight.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled_err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_step_then_index_order() {
        let mut keys = vec![
            rollout_key(256, 0),
            rollout_key(1, 300),
            rollout_key(2, 1),
            rollout_key(1, 2),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                rollout_key(1, 2),
                rollout_key(1, 300),
                rollout_key(2, 1),
                rollout_key(256, 0)
            ]
        );
    }

    #[test]
    fn describes_keys() {
        assert_eq!(
            describe_key(ROLLOUTS, &rollout_key(3, 4)),
            "step 3, index 4"
        );
        assert_eq!(describe_key(METRICS, &7u64.to_be_bytes()), "step 7");
        assert_eq!(describe_key(STATE, b"loader"), "key \"loader\"");
    }
}
