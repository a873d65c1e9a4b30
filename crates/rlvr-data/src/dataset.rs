//! A loaded dataset, deterministic hold-out splits and per-epoch shuffles.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::example::Example;
use crate::rng;

/// Stream of the hold-out permutation, apart from the epochs' streams (0, 1, 2, ...).
const HOLDOUT_STREAM: u64 = 0x0068_6F6C_646F_7574; // "holdout"

/// Examples in file order, with the file they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// The examples, in the file's order.
    pub examples: Vec<Example>,
    /// The file they were read from.
    pub source: PathBuf,
}

/// How many examples to hold out: a count, or a fraction of the dataset (rounded to the
/// nearest count).
///
/// In configuration an integer is a count and a float a fraction; as a string, `"50"`,
/// `"0.1"` or `"10%"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Holdout {
    /// This many examples.
    Count(usize),
    /// This fraction (0 to 1) of the examples.
    Fraction(f64),
}

impl From<usize> for Holdout {
    fn from(n: usize) -> Holdout {
        Holdout::Count(n)
    }
}

impl From<f64> for Holdout {
    fn from(f: f64) -> Holdout {
        Holdout::Fraction(f)
    }
}

impl FromStr for Holdout {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Holdout> {
        let s = s.trim();
        let bad = || {
            DataError::InvalidHoldout(format!(
                "\"{s}\" is not a count, a fraction or a percentage"
            ))
        };
        if let Some(pct) = s.strip_suffix('%') {
            let p: f64 = pct.trim().parse().map_err(|_| bad())?;
            return Ok(Holdout::Fraction(p / 100.0));
        }
        if let Ok(n) = s.parse::<usize>() {
            return Ok(Holdout::Count(n));
        }
        s.parse::<f64>().map(Holdout::Fraction).map_err(|_| bad())
    }
}

impl Holdout {
    /// The number of examples held out of `len`.
    pub fn count(self, len: usize) -> Result<usize> {
        match self {
            Holdout::Count(n) if n <= len => Ok(n),
            Holdout::Count(n) => Err(DataError::InvalidHoldout(format!(
                "{n} examples asked for, the dataset has {len}"
            ))),
            Holdout::Fraction(f) if (0.0..=1.0).contains(&f) => {
                Ok(((f * len as f64).round() as usize).min(len))
            }
            Holdout::Fraction(f) => Err(DataError::InvalidHoldout(format!(
                "fraction {f} is not between 0 and 1"
            ))),
        }
    }
}

impl Dataset {
    /// A dataset from examples.
    pub fn new(examples: Vec<Example>, source: PathBuf) -> Dataset {
        Dataset { examples, source }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The examples in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Example> {
        self.examples.iter()
    }

    /// `(train, heldout)`: a seeded random choice of `holdout` examples, the rest for
    /// training; both keep the file's order. The same seed always picks the same examples
    /// (the generator is [`rng::SplitMix64`], part of this crate).
    pub fn split_holdout(
        &self,
        holdout: impl Into<Holdout>,
        seed: u64,
    ) -> Result<(Dataset, Dataset)> {
        let k = holdout.into().count(self.len())?;
        let mut held = vec![false; self.len()];
        for &i in rng::permutation(self.len(), seed, HOLDOUT_STREAM)
            .iter()
            .take(k)
        {
            held[i] = true;
        }
        let (mut train, mut heldout) = (Vec::new(), Vec::new());
        for (ex, h) in self.examples.iter().zip(held) {
            if h { &mut heldout } else { &mut train }.push(ex.clone());
        }
        Ok((
            Dataset::new(train, self.source.clone()),
            Dataset::new(heldout, self.source.clone()),
        ))
    }

    /// The order in which to visit the examples in `epoch`: a permutation of `0..len`
    /// determined by `(seed, epoch)` alone (SplitMix64 + Fisher–Yates).
    pub fn shuffled_order(&self, seed: u64, epoch: u64) -> Vec<usize> {
        rng::permutation(self.len(), seed, epoch)
    }

    /// Writes the examples as JSONL in verl's schema ([`Example::to_verl_record`]); loading
    /// the file with the default mapping gives the same examples.
    pub fn write_jsonl(&self, path: &Path) -> Result<()> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        for ex in &self.examples {
            serde_json::to_writer(&mut out, &ex.to_verl_record()).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
        }
        out.flush().map_err(io)
    }
}

impl<'a> IntoIterator for &'a Dataset {
    type Item = &'a Example;
    type IntoIter = std::slice::Iter<'a, Example>;
    fn into_iter(self) -> Self::IntoIter {
        self.examples.iter()
    }
}
