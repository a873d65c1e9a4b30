//! Where prompts come from (the built-in generator or a dataset, in a deterministic order
//! indexed by a position that checkpoints save) and how they become token ids.

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
    /// A dataset, reshuffled every epoch.
    Dataset {
        /// The examples.
        examples: Vec<Example>,
        /// Shuffle seed.
        seed: u64,
    },
}

impl PromptSource {
    /// The example at stream position `pos` (deterministic).
    pub fn at(&self, pos: u64) -> Example {
        match self {
            PromptSource::Arithmetic { task, seed } => {
                let p = task.problem(*seed, pos, Split::Train);
                task.example(&p, format!("arithmetic-train-{pos}"))
            }
            PromptSource::Dataset { examples, seed } => {
                let n = examples.len() as u64;
                let epoch = pos / n;
                let order = rlvr_data::rng::permutation(examples.len(), *seed, epoch);
                examples[order[(pos % n) as usize]].clone()
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
