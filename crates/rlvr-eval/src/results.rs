//! Per-sample and per-problem results: what `samples.jsonl` holds and what the run's store
//! caches.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One scored sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// Which of the problem's samples (0-based; maj@K and mean@K use the first K).
    pub sample: usize,
    /// The response the verifier saw.
    pub response: String,
    /// The verifier's reward.
    pub score: f64,
    /// `correct`, `incorrect`, `invalid` or `error`.
    pub status: String,
    /// The verifier's details (for `error` samples of a failed prompt: the reason).
    pub details: Value,
    /// Generated tokens.
    pub tokens: usize,
    /// Cut at the token limit.
    pub truncated: bool,
    /// Why generation ended (`error` when the prompt's sampling failed).
    pub finish_reason: String,
    /// The reranker's score (`--rerank`), when the run reranks and the reranker judged the
    /// sample (not for stand-ins of a failed prompt, nor on a reranker error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank_score: Option<f64>,
}

impl SampleRecord {
    /// Whether the verifier judged it correct.
    pub fn is_correct(&self) -> bool {
        self.status == "correct"
    }

    /// Whether the sample was generated (rather than standing for a failed prompt).
    pub fn generated(&self) -> bool {
        self.finish_reason != "error"
    }
}

/// One problem with its samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemResult {
    /// Position in the dataset (also the key of its random streams and of the cache).
    pub index: usize,
    /// The example's id.
    pub id: String,
    /// The example's data source.
    pub data_source: String,
    /// The example's `extra_info` (subsets are grouped by its fields).
    pub extra_info: Value,
    /// The prompt as sent.
    pub prompt: String,
    /// Why the problem was left out of the metrics (a prompt over the length limit), if it
    /// was; it then has no samples.
    pub skipped: Option<String>,
    /// The samples, in sample order.
    pub samples: Vec<SampleRecord>,
}

impl ProblemResult {
    /// Number of correct samples.
    pub fn correct(&self) -> usize {
        self.samples.iter().filter(|s| s.is_correct()).count()
    }

    /// The lines of `samples.jsonl` for this problem: `problem`, `id`, `data_source`,
    /// `sample`, `prompt`, `response`, `score`, `status`, `details`, `tokens`, `truncated`,
    /// `finish_reason`, and `rerank_score` when the run reranks.
    pub fn sample_lines(&self) -> Vec<Value> {
        self.samples
            .iter()
            .map(|s| {
                let mut line = json!({
                    "problem": self.index,
                    "id": self.id,
                    "data_source": self.data_source,
                    "sample": s.sample,
                    "prompt": self.prompt,
                    "response": s.response,
                    "score": s.score,
                    "status": s.status,
                    "details": s.details,
                    "tokens": s.tokens,
                    "truncated": s.truncated,
                    "finish_reason": s.finish_reason,
                });
                if let Some(r) = s.rerank_score {
                    line["rerank_score"] = json!(r);
                }
                line
            })
            .collect()
    }
}
