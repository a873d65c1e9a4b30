//! Datasets for training and evaluation.
//!
//! - [`load_file`] reads `.jsonl`, `.json` and `.parquet` files in verl's schema or the
//!   plain question/answer one into a [`Dataset`] of [`Example`]s; a [`FieldMapping`] names
//!   other fields, extracts final answers ([`AnswerExtract`]) and fills a
//!   [`PromptTemplate`].
//! - [`builtin()`] describes the built-in sets (`gsm8k`, `math500`, `aime24`, `aime25`,
//!   `amc23`, `humaneval`) kept under `<shared>/datasets`; [`resolve_dataset`] takes a
//!   built-in name or a path; [`default_shared_dir`] finds the shared folder.
//! - [`Dataset::split_holdout`] and [`Dataset::shuffled_order`] are deterministic in their
//!   seed, with this crate's own generator ([`rng`]).
//!
//! Errors ([`DataError`]) name the file, the 1-based line/item/row and the field, e.g.
//! `data.jsonl:17: field "answer": missing`; loading never panics.
#![warn(missing_docs)]

pub mod builtin;
pub mod dataset;
pub mod error;
pub mod example;
pub mod extract;
pub mod load;
pub mod mapping;
mod parquet_rows;
pub mod rng;
pub mod tasks;
pub mod template;

pub use builtin::{
    builtin, builtin_split, default_shared_dir, resolve_dataset, resolve_dataset_with, BuiltinSpec,
    BUILTIN_NAMES,
};
pub use dataset::{Dataset, Holdout};
pub use error::{DataError, Location, Result, TemplateError, Unit};
pub use example::{Example, Prompt};
pub use load::load_file;
pub use mapping::{AnswerExtract, FieldMapping, GroundTruthKind, PromptFormat};
pub use template::PromptTemplate;
