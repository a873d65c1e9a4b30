//! Completions → verifier jobs: the glue between the rollout engine's [`Completion`]s and
//! [`rlvr_rewards`]' pool. It lives here rather than in rlvr-rewards because `Completion` is
//! rlvr-rollout's, and rlvr-rollout depends on the model (rlvr-rewards must not).

use rlvr_data::Example;
use rlvr_rewards::{Job, Verifiers};
use rlvr_rollout::Completion;

use crate::prompts::metadata;

/// One verifier call per completion; `example_of(prompt_index)` gives its example.
pub fn verify_jobs<'e>(
    completions: &[Completion],
    example_of: impl Fn(usize) -> &'e Example,
    verifiers: &Verifiers,
) -> Vec<Job> {
    completions
        .iter()
        .map(|c| {
            let ex = example_of(c.prompt_index);
            Job {
                verifier: verifiers.for_source(&ex.data_source).clone(),
                response: response_text(c),
                ground_truth: ex.ground_truth.clone(),
                metadata: metadata(ex),
            }
        })
        .collect()
}

/// The text a verifier sees: everything before a stop string, else the whole completion.
pub fn response_text(c: &Completion) -> String {
    match c.stop_offset {
        Some(off) => c.text[..off].to_string(),
        None => c.text.clone(),
    }
}
