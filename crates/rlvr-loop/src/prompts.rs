//! Where prompts come from (the built-in generator or a dataset, in a deterministic order
//! indexed by a position that checkpoints save) and how they become token ids.

use std::sync::Mutex;

use rlvr_data::tasks::{ArithmeticTask, Split};
use rlvr_data::Example;

pub use rlvr_eval::prompts::{metadata, prompt_ids, prompt_text, prompt_text_and_ids};

/// The training prompt stream.
pub enum PromptSource {
    /// The built-in arithmetic generator (training split).
    Arithmetic {
        /// The generator.
        task: ArithmeticTask,
        /// Stream seed.
        seed: u64,
    },
    /// A dataset, reshuffled every epoch ([`PromptSource::dataset`] builds it).
    Dataset {
        /// The examples.
        examples: Vec<Example>,
        /// Shuffle seed.
        seed: u64,
        /// The current epoch's order, computed once per epoch (not once per prompt).
        order: Mutex<Option<(u64, Vec<usize>)>>,
    },
}

impl PromptSource {
    /// A dataset source shuffled with `seed`.
    pub fn dataset(examples: Vec<Example>, seed: u64) -> Self {
        PromptSource::Dataset {
            examples,
            seed,
            order: Mutex::new(None),
        }
    }

    /// The example at stream position `pos` (deterministic).
    pub fn at(&self, pos: u64) -> Example {
        match self {
            PromptSource::Arithmetic { task, seed } => {
                let p = task.problem(*seed, pos, Split::Train);
                task.example(&p, format!("arithmetic-train-{pos}"))
            }
            PromptSource::Dataset {
                examples,
                seed,
                order,
            } => {
                let n = examples.len() as u64;
                let epoch = pos / n;
                let mut cached = order.lock().unwrap_or_else(|e| e.into_inner());
                if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    *cached = Some((
                        epoch,
                        rlvr_data::rng::permutation(examples.len(), *seed, epoch),
                    ));
                }
                let (_, perm) = cached.as_ref().expect("set above");
                examples[perm[(pos % n) as usize]].clone()
            }
        }
    }

    /// Number of distinct examples (None = unbounded generator).
    pub fn len(&self) -> Option<usize> {
        match self {
            PromptSource::Arithmetic { .. } => None,
            PromptSource::Dataset { examples, .. } => Some(examples.len()),
        }
    }

    /// Whether the source has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}
