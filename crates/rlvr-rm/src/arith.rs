//! Reward-model data from the built-in arithmetic task (addition): worked solutions and
//! corrupted copies whose only fault is an inconsistency a small model can learn to see:
//!
//! - **carry**: a step uses a carry different from the one the previous step produced
//!   (`16` then `4+8=12` instead of `4+8+1=13`); the step's own sum, the later steps and the
//!   answer are computed consistently from it, so the answer is wrong;
//! - **answer**: the final answer's leading part differs from the last computed line
//!   (`…3+5+1=9</think><answer>836</answer>`).
//!
//! Steps are the lines of the solution (the response split on `"\n"`, the PRM's default
//! separator): the first carries `<think>`, the last `</think><answer>N</answer>`. Step labels
//! are `+` before the first wrong step, `-` on it, and none after it (PRM800K's labellers stop
//! at the first error; what a later step does on a wrong footing is not what a PRM is asked).

use rlvr_data::rng::SplitMix64;
use rlvr_data::tasks::{ArithOp, ArithProblem, ArithmeticConfig, ArithmeticTask, Split};
use serde_json::{json, Value};

use crate::data::Record;
use crate::error::{Result, RmError};

/// Which fault a corrupted solution has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// Step `k ≥ 1` uses the wrong carry.
    Carry(usize),
    /// The answer's leading part differs from the last line's result.
    Answer,
}

/// A (possibly corrupted) worked solution.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    /// The response text, in the format of `ArithProblem::worked_solution`.
    pub text: String,
    /// Its steps (the text split on `"\n"`).
    pub steps: Vec<String>,
    /// The answer it ends with.
    pub answer: i64,
    /// The first wrong step (`None` for a clean solution).
    pub first_wrong: Option<usize>,
}

impl Solution {
    /// Step labels: `1` before the first wrong step, `0` on it, none after it.
    pub fn labels(&self) -> Vec<Option<f32>> {
        (0..self.steps.len())
            .map(|i| match self.first_wrong {
                Some(k) if i > k => None,
                Some(k) if i == k => Some(0.0),
                _ => Some(1.0),
            })
            .collect()
    }
}

fn digits_rev(mut n: u64) -> Vec<i64> {
    let mut d = vec![(n % 10) as i64];
    n /= 10;
    while n > 0 {
        d.push((n % 10) as i64);
        n /= 10;
    }
    d
}

/// The worked solution of `a + b`, with an optional corruption (a carry corruption at a step
/// that does not exist, or at step 0, is an error). `answer_delta` is added to the last line's
/// result in the answer for [`Corruption::Answer`].
pub fn solve_add(
    a: u64,
    b: u64,
    corruption: Option<Corruption>,
    answer_delta: i64,
) -> Result<Solution> {
    let (da, db) = (digits_rev(a), digits_rev(b));
    let n = da.len().max(db.len());
    if let Some(Corruption::Carry(k)) = corruption {
        if k == 0 || k >= n {
            return Err(RmError::Input(format!(
                "a carry corruption needs a step in 1..{n}, got {k}"
            )));
        }
    }
    let mut lines = Vec::with_capacity(n);
    let mut sums = Vec::with_capacity(n);
    let mut carry = 0i64;
    for i in 0..n {
        let (x, y) = (
            da.get(i).copied().unwrap_or(0),
            db.get(i).copied().unwrap_or(0),
        );
        if corruption == Some(Corruption::Carry(i)) {
            carry = 1 - carry;
        }
        let s = x + y + carry;
        lines.push(if carry > 0 {
            format!("{x}+{y}+{carry}={s}")
        } else {
            format!("{x}+{y}={s}")
        });
        sums.push(s);
        carry = s / 10;
    }
    let mut last = sums[n - 1];
    if corruption == Some(Corruption::Answer) {
        if answer_delta == 0 {
            return Err(RmError::Input(
                "an answer corruption needs a non-zero delta".into(),
            ));
        }
        last += answer_delta;
        let floor = if n > 1 { 1 } else { 0 };
        if last < floor {
            last = sums[n - 1] + answer_delta.abs();
        }
    }
    let mut answer = last;
    for s in sums[..n - 1].iter().rev() {
        answer = answer * 10 + s % 10;
    }
    let text = format!(
        "<think>{}</think><answer>{answer}</answer>",
        lines.join("\n")
    );
    let steps = text.split('\n').map(str::to_string).collect();
    let first_wrong = match corruption {
        None => None,
        Some(Corruption::Carry(k)) => Some(k),
        Some(Corruption::Answer) => Some(n - 1),
    };
    Ok(Solution {
        text,
        steps,
        answer,
        first_wrong,
    })
}

/// Generator of reward-model data from the arithmetic task.
#[derive(Clone, Debug)]
pub struct ArithRmData {
    task: ArithmeticTask,
    seed: u64,
}

impl ArithRmData {
    /// A generator over addition problems with `min_digits..=max_digits` digit operands.
    pub fn new(min_digits: u32, max_digits: u32, seed: u64) -> Result<Self> {
        let task = ArithmeticTask::new(ArithmeticConfig {
            min_digits,
            max_digits,
            ops: vec![ArithOp::Add],
            ..ArithmeticConfig::default()
        })
        .map_err(|e| RmError::config("arithmetic", e.to_string()))?;
        Ok(ArithRmData { task, seed })
    }

    /// The `i`-th problem of a split.
    pub fn problem(&self, i: u64, split: Split) -> ArithProblem {
        self.task.problem(self.seed, i, split)
    }

    /// The prompt of a problem: one user message with the question, as the RL loop asks it.
    pub fn prompt(p: &ArithProblem) -> Value {
        json!([{"role": "user", "content": p.question()}])
    }

    /// The clean solution and a corrupted copy of the `i`-th problem of a split (the kind of
    /// corruption, the step and the answer change drawn from `(seed, i, split)`).
    pub fn pair(&self, i: u64, split: Split) -> (ArithProblem, Solution, Solution) {
        let p = self.problem(i, split);
        let stream = i.wrapping_mul(2) + u64::from(split == Split::Heldout);
        let mut rng = SplitMix64::for_stream(self.seed ^ 0x0c02_20b7, stream);
        let n = digits_rev(p.a).len().max(digits_rev(p.b).len());
        let corruption = if n >= 2 && rng.below(2) == 0 {
            Corruption::Carry(1 + rng.below(n as u64 - 1) as usize)
        } else {
            Corruption::Answer
        };
        let mag = 1 + rng.below(3) as i64;
        let delta = if rng.below(2) == 0 { mag } else { -mag };
        let clean = solve_add(p.a, p.b, None, 0).expect("a clean solution");
        let bad = solve_add(p.a, p.b, Some(corruption), delta).expect("a valid corruption");
        (p, clean, bad)
    }

    /// `n` preference pairs `{prompt, chosen: clean, rejected: corrupted}`.
    pub fn pairs(&self, n: usize, split: Split) -> Vec<Record> {
        (0..n as u64)
            .map(|i| {
                let (p, good, bad) = self.pair(i, split);
                Record::Pair {
                    prompt: Self::prompt(&p),
                    chosen: good.text,
                    rejected: bad.text,
                }
            })
            .collect()
    }

    /// `2n` labelled responses: the clean (label 1) and corrupted (label 0) solutions of `n`
    /// problems.
    pub fn points(&self, n: usize, split: Split) -> Vec<Record> {
        (0..n as u64)
            .flat_map(|i| {
                let (p, good, bad) = self.pair(i, split);
                [(good, 1.0), (bad, 0.0)].map(|(s, label)| Record::Point {
                    prompt: Self::prompt(&p),
                    response: s.text,
                    label,
                })
            })
            .collect()
    }

    /// Step-labelled siblings of `n` problems: the clean solution and its corrupted copy of
    /// each (`2n` records), which share their steps up to the corrupted one — the pairs the
    /// PRM's step-level Bradley–Terry term learns from.
    pub fn step_siblings(&self, n: usize, split: Split) -> Vec<Record> {
        (0..n as u64)
            .flat_map(|i| {
                let (p, good, bad) = self.pair(i, split);
                [good, bad].map(|s| Record::Steps {
                    prompt: Self::prompt(&p),
                    labels: s.labels(),
                    steps: s.steps,
                })
            })
            .collect()
    }

    /// Step-labelled solutions of `n` problems: every third one clean, the others corrupted.
    pub fn steps(&self, n: usize, split: Split) -> Vec<Record> {
        (0..n as u64)
            .map(|i| {
                let (p, good, bad) = self.pair(i, split);
                let s = if i % 3 == 0 { good } else { bad };
                Record::Steps {
                    prompt: Self::prompt(&p),
                    labels: s.labels(),
                    steps: s.steps,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_solutions_match_the_task() {
        for (a, b) in [(347, 589), (95, 17), (5, 7), (1000, 9), (0, 0), (9999, 1)] {
            let p = ArithProblem {
                a,
                b,
                op: ArithOp::Add,
            };
            let s = solve_add(a, b, None, 0).unwrap();
            assert_eq!(s.text, p.worked_solution());
            assert_eq!(s.answer, p.answer());
            assert_eq!(s.first_wrong, None);
            assert_eq!(s.steps.join("\n"), s.text);
            assert!(s.labels().iter().all(|l| *l == Some(1.0)));
        }
    }

    #[test]
    fn corruptions_are_local_and_wrong() {
        let s = solve_add(347, 589, Some(Corruption::Carry(1)), 0).unwrap();
        assert_eq!(
            s.text,
            "<think>7+9=16\n4+8=12\n3+5+1=9</think><answer>926</answer>"
        );
        assert_eq!(s.first_wrong, Some(1));
        assert_eq!(s.labels(), vec![Some(1.0), Some(0.0), None]);
        let s = solve_add(347, 589, Some(Corruption::Carry(2)), 0).unwrap();
        assert_eq!(
            s.text,
            "<think>7+9=16\n4+8+1=13\n3+5=8</think><answer>836</answer>"
        );
        let s = solve_add(347, 589, Some(Corruption::Answer), -1).unwrap();
        assert_eq!(
            s.text,
            "<think>7+9=16\n4+8+1=13\n3+5+1=9</think><answer>836</answer>"
        );
        assert_eq!(s.first_wrong, Some(2));
        // Adding a carry that was not there.
        let s = solve_add(12, 34, Some(Corruption::Carry(1)), 0).unwrap();
        assert_eq!(s.text, "<think>2+4=6\n1+3+1=5</think><answer>56</answer>");
        // One-digit problems: only the answer can be corrupted; it never goes negative.
        let s = solve_add(0, 0, Some(Corruption::Answer), -2).unwrap();
        assert_eq!(s.answer, 2);
        assert!(solve_add(5, 7, Some(Corruption::Carry(1)), 0).is_err());
        assert!(solve_add(55, 7, Some(Corruption::Carry(0)), 0).is_err());
    }

    #[test]
    fn generated_data_is_deterministic_and_always_wrong_when_corrupted() {
        let g = ArithRmData::new(2, 4, 3).unwrap();
        let math = rlvr_verify::registry::build("math").unwrap();
        let mut kinds = [0usize; 2];
        for i in 0..200 {
            let (p, good, bad) = g.pair(i, Split::Train);
            assert_eq!((p, good.clone(), bad.clone()), g.pair(i, Split::Train));
            assert_eq!(good.answer, p.answer());
            assert_ne!(bad.answer, p.answer(), "{p:?} {bad:?}");
            let k = bad.first_wrong.unwrap();
            kinds[usize::from(bad.steps[..k] == good.steps[..k])] += 1;
            let gt = json!(p.answer().to_string());
            for (s, want) in [
                (&good, rlvr_verify::Status::Correct),
                (&bad, rlvr_verify::Status::Incorrect),
            ] {
                let o = math.verify(&rlvr_verify::VerifyInput {
                    response: &s.text,
                    ground_truth: &gt,
                    metadata: &Value::Null,
                });
                assert_eq!(o.status, want, "{}", s.text);
            }
        }
        // The steps before the first wrong one are the clean solution's.
        assert_eq!(kinds, [0, 200]);
        assert_eq!(g.pairs(3, Split::Heldout).len(), 3);
        assert_eq!(g.points(3, Split::Train).len(), 6);
        let sib = g.step_siblings(3, Split::Train);
        assert_eq!(sib.len(), 6);
        assert_eq!(sib[0].first_wrong_step(), None);
        assert!(sib[1].first_wrong_step().is_some());
        let steps = g.steps(4, Split::Train);
        assert_eq!(steps[0].first_wrong_step(), None);
        assert!(steps[1].first_wrong_step().is_some());
    }
}
