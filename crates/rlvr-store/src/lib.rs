//! Run directories and everything a training run writes to disk.
//!
//! - [`RunDir`]: the run directory layout (`runs/<YYYYmmdd-HHMMSS>-<config name>/` by default)
//!   with `config.resolved.toml`, `meta.json` ([`RunMeta`]), `summary.json`, `metrics.jsonl`,
//!   the sled store, `checkpoints/` and `plots/`.
//! - [`Store`]: the sled database (`<run dir>/store`) holding rollouts, metrics and resumable
//!   state, keyed big-endian so iteration follows step order.
//! - [`MetricsLog`]: the append-only `metrics.jsonl` (one JSON object per line, each with a
//!   `"step"`), and [`read_metrics`].
//! - [`EventWriter`]: TensorBoard event files (TFRecord framing, hand-encoded protobuf).
//! - [`plot_metrics`]: one SVG and one PNG line chart per metric key.
//!
//! Every file is written atomically (a temporary file in the same directory, then a rename)
//! except the append-only logs (`metrics.jsonl`, TensorBoard events). The crate never depends
//! on the model. Bad input is reported as a [`StoreError`] naming the file (and line or field
//! where relevant); nothing here panics on bad data.

#![warn(missing_docs)]

mod atomic;
mod error;
mod metrics_log;
mod plot;
mod run;
mod store;
mod tensorboard;

pub use atomic::write_atomic;
pub use error::{Result, StoreError};
pub use metrics_log::{read_metrics, MetricsLog};
pub use plot::plot_metrics;
pub use run::{git_revision, hostname, GitRevision, RunDir, RunMeta};
pub use store::Store;
pub use tensorboard::EventWriter;
