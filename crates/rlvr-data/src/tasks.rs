//! Built-in verifiable task generators: problems made on the fly, no download needed.
//!
//! [`ArithmeticTask`] makes multi-digit addition, subtraction and multiplication by a digit,
//! with adjustable difficulty (operand digits), a fixed held-out split (a problem belongs to
//! it by a hash of its operands, so training never sees a held-out problem), and worked
//! solutions (`<think>` one line per digit, right to left, `</think><answer>N</answer>`) for a
//! supervised warm-up.
//!
//! ```
//! use rlvr_data::tasks::{ArithmeticConfig, ArithmeticTask, Split};
//! let task = ArithmeticTask::new(ArithmeticConfig::default()).unwrap();
//! let p = task.problem(7, 0, Split::Train);
//! assert_eq!(p.answer(), p.a as i64 + p.b as i64);
//! assert!(p.worked_solution().ends_with(&format!("<answer>{}</answer>", p.answer())));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::rng::{mix64, SplitMix64};
use crate::{Example, Prompt};

/// An arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArithOp {
    /// `a+b`.
    Add,
    /// `a-b` with `a ≥ b`.
    Sub,
    /// `a*d` with a one-digit `d`.
    Mul,
}

impl ArithOp {
    /// The operator character.
    pub fn symbol(self) -> char {
        match self {
            ArithOp::Add => '+',
            ArithOp::Sub => '-',
            ArithOp::Mul => '*',
        }
    }

    fn name(self) -> &'static str {
        match self {
            ArithOp::Add => "add",
            ArithOp::Sub => "sub",
            ArithOp::Mul => "mul",
        }
    }
}

/// Settings of the arithmetic task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArithmeticConfig {
    /// Fewest digits of an operand (default 1).
    pub min_digits: u32,
    /// Most digits of an operand (default 3; at most 18).
    pub max_digits: u32,
    /// Operations, drawn uniformly (default `["add"]`).
    pub ops: Vec<ArithOp>,
    /// Share of all problems, in thousandths, that belongs to the held-out split (default
    /// 100 = 10%). Membership is a hash of the problem, so the splits never overlap.
    pub heldout_permille: u32,
    /// Optional system message of the prompt.
    pub system_prompt: Option<String>,
}

impl Default for ArithmeticConfig {
    fn default() -> Self {
        ArithmeticConfig {
            min_digits: 1,
            max_digits: 3,
            ops: vec![ArithOp::Add],
            heldout_permille: 100,
            system_prompt: None,
        }
    }
}

/// Which split a problem is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Problems outside the held-out split.
    Train,
    /// The held-out split.
    Heldout,
}

/// One arithmetic problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArithProblem {
    /// First operand.
    pub a: u64,
    /// Second operand.
    pub b: u64,
    /// Operation.
    pub op: ArithOp,
}

impl ArithProblem {
    /// The question text, e.g. `347+589`.
    pub fn question(&self) -> String {
        format!("{}{}{}", self.a, self.op.symbol(), self.b)
    }

    /// The exact result.
    pub fn answer(&self) -> i64 {
        let (a, b) = (self.a as i64, self.b as i64);
        match self.op {
            ArithOp::Add => a + b,
            ArithOp::Sub => a - b,
            ArithOp::Mul => a * b,
        }
    }

    /// A worked solution: one `<think>` line per digit of `a`, right to left, then the answer.
    /// `347+589`: `<think>7+9=16\n4+8+1=13\n3+5+1=9</think><answer>936</answer>`.
    pub fn worked_solution(&self) -> String {
        let da = digits_rev(self.a);
        let db = digits_rev(self.b);
        let mut lines = Vec::new();
        let mut carry: i64 = 0;
        match self.op {
            ArithOp::Add => {
                for i in 0..da.len().max(db.len()) {
                    let (x, y) = (at(&da, i), at(&db, i));
                    let s = x + y + carry;
                    lines.push(if carry > 0 {
                        format!("{x}+{y}+{carry}={s}")
                    } else {
                        format!("{x}+{y}={s}")
                    });
                    carry = s / 10;
                }
            }
            ArithOp::Sub => {
                for i in 0..da.len() {
                    let (x, y) = (at(&da, i), at(&db, i));
                    let r = x - y - carry;
                    let mut line = if carry > 0 {
                        format!("{x}-{y}-{carry}={r}")
                    } else {
                        format!("{x}-{y}={r}")
                    };
                    if r < 0 {
                        line.push_str(&format!("+10={}", r + 10));
                        carry = 1;
                    } else {
                        carry = 0;
                    }
                    lines.push(line);
                }
            }
            ArithOp::Mul => {
                let d = self.b as i64;
                for (i, &x) in da.iter().enumerate() {
                    let p = x * d + carry;
                    lines.push(if i > 0 && carry > 0 {
                        format!("{x}*{d}+{carry}={p}")
                    } else {
                        format!("{x}*{d}={p}")
                    });
                    carry = p / 10;
                }
            }
        }
        format!(
            "<think>{}</think><answer>{}</answer>",
            lines.join("\n"),
            self.answer()
        )
    }

    /// A direct answer without worked steps: `<think></think><answer>N</answer>`.
    pub fn direct_solution(&self) -> String {
        format!("<think></think><answer>{}</answer>", self.answer())
    }

    fn hash(&self) -> u64 {
        mix64(
            self.a
                ^ 0x9e37_79b9_7f4a_7c15
                ^ self.b.rotate_left(29)
                ^ (self.op as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
        )
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

fn at(d: &[i64], i: usize) -> i64 {
    d.get(i).copied().unwrap_or(0)
}

/// Errors of the task settings.
#[derive(Debug, thiserror::Error)]
#[error("arithmetic task: {0}")]
pub struct TaskError(String);

/// The arithmetic task generator.
#[derive(Clone, Debug)]
pub struct ArithmeticTask {
    cfg: ArithmeticConfig,
}

impl ArithmeticTask {
    /// Checks the settings.
    pub fn new(cfg: ArithmeticConfig) -> Result<Self, TaskError> {
        if cfg.min_digits == 0 || cfg.min_digits > cfg.max_digits || cfg.max_digits > 18 {
            return Err(TaskError(format!(
                "need 1 <= min_digits <= max_digits <= 18 (got {}..{})",
                cfg.min_digits, cfg.max_digits
            )));
        }
        if cfg.ops.is_empty() {
            return Err(TaskError("ops is empty".into()));
        }
        if cfg.heldout_permille == 0 || cfg.heldout_permille >= 1000 {
            return Err(TaskError(format!(
                "heldout_permille must lie in 1..=999 (got {})",
                cfg.heldout_permille
            )));
        }
        Ok(ArithmeticTask { cfg })
    }

    /// The settings.
    pub fn config(&self) -> &ArithmeticConfig {
        &self.cfg
    }

    /// Whether a problem belongs to the held-out split.
    pub fn is_heldout(&self, p: &ArithProblem) -> bool {
        p.hash() % 1000 < self.cfg.heldout_permille as u64
    }

    fn operand(&self, rng: &mut SplitMix64, digits: u32) -> u64 {
        let lo = if digits == 1 {
            0
        } else {
            10u64.pow(digits - 1)
        };
        let hi = 10u64.pow(digits);
        lo + rng.below(hi - lo)
    }

    /// The `index`-th problem of the stream `seed` in `split` (deterministic).
    pub fn problem(&self, seed: u64, index: u64, split: Split) -> ArithProblem {
        let mut rng = SplitMix64::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ index);
        rng.next_u64();
        let span = (self.cfg.max_digits - self.cfg.min_digits + 1) as u64;
        loop {
            let op = self.cfg.ops[rng.below(self.cfg.ops.len() as u64) as usize];
            let da = self.cfg.min_digits + rng.below(span) as u32;
            let a = self.operand(&mut rng, da);
            let p = match op {
                ArithOp::Add => {
                    let db = self.cfg.min_digits + rng.below(span) as u32;
                    ArithProblem {
                        a,
                        b: self.operand(&mut rng, db),
                        op,
                    }
                }
                ArithOp::Sub => {
                    let db = self.cfg.min_digits + rng.below(span) as u32;
                    let b = self.operand(&mut rng, db);
                    ArithProblem {
                        a: a.max(b),
                        b: a.min(b),
                        op,
                    }
                }
                ArithOp::Mul => ArithProblem {
                    a,
                    b: rng.below(10),
                    op,
                },
            };
            if self.is_heldout(&p) == (split == Split::Heldout) {
                return p;
            }
        }
    }

    /// `n` distinct held-out problems (fewer if the space is smaller), in a fixed order.
    pub fn heldout(&self, seed: u64, n: usize) -> Vec<ArithProblem> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut i = 0u64;
        while out.len() < n && i < 100 * n as u64 + 1000 {
            let p = self.problem(seed ^ 0x4845_4c44, i, Split::Heldout);
            if seen.insert((p.a, p.b, p.op)) {
                out.push(p);
            }
            i += 1;
        }
        out
    }

    /// The example (prompt, ground truth) of a problem, in the verifier line schema.
    pub fn example(&self, p: &ArithProblem, id: String) -> Example {
        let mut messages = Vec::new();
        if let Some(s) = &self.cfg.system_prompt {
            messages.push(json!({"role": "system", "content": s}));
        }
        messages.push(json!({"role": "user", "content": p.question()}));
        Example {
            id,
            prompt: Prompt::Messages(messages),
            ground_truth: json!(p.answer().to_string()),
            data_source: "arithmetic".into(),
            extra_info: json!({
                "op": p.op.name(),
                "a": p.a,
                "b": p.b,
                "digits": digits_rev(p.a).len().max(digits_rev(p.b).len()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_solutions_are_right() {
        let p = ArithProblem {
            a: 347,
            b: 589,
            op: ArithOp::Add,
        };
        assert_eq!(
            p.worked_solution(),
            "<think>7+9=16\n4+8+1=13\n3+5+1=9</think><answer>936</answer>"
        );
        let p = ArithProblem {
            a: 95,
            b: 17,
            op: ArithOp::Add,
        };
        assert_eq!(
            p.worked_solution(),
            "<think>5+7=12\n9+1+1=11</think><answer>112</answer>"
        );
        let p = ArithProblem {
            a: 503,
            b: 78,
            op: ArithOp::Sub,
        };
        assert_eq!(
            p.worked_solution(),
            "<think>3-8=-5+10=5\n0-7-1=-8+10=2\n5-0-1=4</think><answer>425</answer>"
        );
        let p = ArithProblem {
            a: 347,
            b: 9,
            op: ArithOp::Mul,
        };
        assert_eq!(
            p.worked_solution(),
            "<think>7*9=63\n4*9+6=42\n3*9+4=31</think><answer>3123</answer>"
        );
    }

    #[test]
    fn splits_are_disjoint_and_deterministic() {
        let task = ArithmeticTask::new(ArithmeticConfig {
            ops: vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul],
            ..ArithmeticConfig::default()
        })
        .unwrap();
        let held = task.heldout(3, 200);
        assert_eq!(held.len(), 200);
        assert_eq!(held, task.heldout(3, 200));
        let held_set: std::collections::HashSet<_> =
            held.iter().map(|p| (p.a, p.b, p.op)).collect();
        for i in 0..5000 {
            let p = task.problem(11, i, Split::Train);
            assert!(!held_set.contains(&(p.a, p.b, p.op)));
            assert!(!task.is_heldout(&p));
            assert!(p.answer() >= 0);
            assert_eq!(p, task.problem(11, i, Split::Train));
        }
        // The held-out share is close to the configured 10%.
        let mut rng = SplitMix64::new(5);
        let n = 20_000;
        let held = (0..n)
            .filter(|_| {
                let p = ArithProblem {
                    a: rng.below(1000),
                    b: rng.below(1000),
                    op: ArithOp::Add,
                };
                task.is_heldout(&p)
            })
            .count();
        assert!((1600..2400).contains(&held), "{held}");
    }

    #[test]
    fn every_answer_follows_from_its_lines() {
        let task = ArithmeticTask::new(ArithmeticConfig {
            min_digits: 1,
            max_digits: 6,
            ops: vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul],
            ..ArithmeticConfig::default()
        })
        .unwrap();
        for i in 0..2000 {
            let p = task.problem(1, i, Split::Train);
            let s = p.worked_solution();
            let ans: i64 = s
                .split("<answer>")
                .nth(1)
                .unwrap()
                .trim_end_matches("</answer>")
                .parse()
                .unwrap();
            assert_eq!(ans, p.answer(), "{}", p.question());
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        for cfg in [
            ArithmeticConfig {
                min_digits: 0,
                ..Default::default()
            },
            ArithmeticConfig {
                min_digits: 4,
                max_digits: 3,
                ..Default::default()
            },
            ArithmeticConfig {
                ops: vec![],
                ..Default::default()
            },
        ] {
            assert!(ArithmeticTask::new(cfg).is_err());
        }
    }
}
