//! From per-step scores of a process reward model to one response score.

use serde::{Deserialize, Serialize};

/// How step probabilities (each in `[0, 1]`) become a response score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// The weakest step (Lightman et al. 2023, Wang et al. 2024). The default.
    #[default]
    Min,
    /// The product of the step probabilities (all steps right, if independent).
    Product,
    /// The last step's probability.
    Last,
    /// The mean step probability.
    Mean,
}

impl Aggregation {
    /// Every aggregation, in documentation order.
    pub const ALL: [Aggregation; 4] = [
        Aggregation::Min,
        Aggregation::Product,
        Aggregation::Last,
        Aggregation::Mean,
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Min => "min",
            Aggregation::Product => "product",
            Aggregation::Last => "last",
            Aggregation::Mean => "mean",
        }
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The response score of step probabilities; `None` when there are no steps.
    pub fn apply(self, steps: &[f32]) -> Option<f32> {
        if steps.is_empty() {
            return None;
        }
        Some(match self {
            Aggregation::Min => steps.iter().copied().fold(f32::INFINITY, f32::min),
            Aggregation::Product => steps.iter().map(|&p| p as f64).product::<f64>() as f32,
            Aggregation::Last => *steps.last().expect("non-empty"),
            Aggregation::Mean => {
                (steps.iter().map(|&p| p as f64).sum::<f64>() / steps.len() as f64) as f32
            }
        })
    }
}

/// Index of the first step whose probability is below `threshold` (the step the model
/// blames first), `None` when every step passes.
pub fn first_below(steps: &[f32], threshold: f32) -> Option<usize> {
    steps.iter().position(|&p| p < threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: [f32; 4] = [0.9, 0.5, 0.8, 0.6];

    fn close(a: Option<f32>, b: f32) {
        let a = a.expect("a score");
        assert!((a - b).abs() < 1e-6, "{a} != {b}");
    }

    #[test]
    fn min_is_the_weakest_step() {
        close(Aggregation::Min.apply(&STEPS), 0.5);
        close(Aggregation::Min.apply(&[0.3]), 0.3);
    }

    #[test]
    fn product_multiplies() {
        close(Aggregation::Product.apply(&STEPS), 0.9 * 0.5 * 0.8 * 0.6);
        close(Aggregation::Product.apply(&[1.0, 0.0, 1.0]), 0.0);
    }

    #[test]
    fn last_takes_the_final_step() {
        close(Aggregation::Last.apply(&STEPS), 0.6);
        close(Aggregation::Last.apply(&[0.1, 0.99]), 0.99);
    }

    #[test]
    fn mean_averages() {
        close(
            Aggregation::Mean.apply(&STEPS),
            (0.9 + 0.5 + 0.8 + 0.6) / 4.0,
        );
    }

    #[test]
    fn no_steps_no_score_and_names_round_trip() {
        for a in Aggregation::ALL {
            assert_eq!(a.apply(&[]), None);
            assert_eq!(Aggregation::parse(a.name()), Some(a));
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json, serde_json::json!(a.name()));
        }
        assert_eq!(Aggregation::parse("max"), None);
        assert_eq!(Aggregation::default(), Aggregation::Min);
    }

    #[test]
    fn first_below_finds_the_first_failing_step() {
        assert_eq!(first_below(&STEPS, 0.55), Some(1));
        assert_eq!(first_below(&STEPS, 0.5), None);
        assert_eq!(first_below(&[0.2, 0.1], 0.5), Some(0));
        assert_eq!(first_below(&[], 0.5), None);
    }
}
