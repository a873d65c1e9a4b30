//! The `math` verifier: extract the final answer, then decide equivalence with the ground
//! truth, cheapest test first — normalised strings, exact rationals, symbolic expressions by
//! numeric evaluation at pseudo-random points, structured answers (tuples, intervals, sets,
//! matrices, equations, inequalities, text, multiple choice).

use num_bigint::BigInt;
use num_rational::BigRational;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::expr::{
    close, eval_exact, eval_num, expand_pm, free_vars, has_percent, has_pm, infinity_sign, lex,
    sample_value, size, Budget, Expr, ExprError, Parser, Tok, C,
};
use crate::extract::{extract_ground_truth, extract_with, Method, Modes};
use crate::normalize::{choice_letter, is_text_answer, key, normalize, plain_decimal_comma};
use crate::{Outcome, RewardMapping, Status, Verifier, VerifyInput};

/// How `%` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PercentMode {
    /// `50%` equals both `0.5` and `50`.
    #[default]
    Either,
    /// `50%` equals `0.5` only.
    Fraction,
    /// `50%` equals `50` only (the sign is decoration).
    Number,
}

/// How numbers written with a decimal point are compared with other numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// When either side is a decimal literal, both are rounded to this many decimals before
    /// comparing (Math-Verify's `float_rounding`, 6 by default): `0.1666667` equals
    /// `\frac{1}{6}`, `0.17` does not.
    Decimals(u32),
    /// Both sides are rounded to the number of decimals the prediction's literal shows (the
    /// gold's when only the gold has one): `0.17` and `1.3333` equal `\frac{1}{6}` and
    /// `\frac{4}{3}`. For tasks that ask for a rounded answer.
    Printed,
    /// No rounding: exact rationals, else the relative tolerance.
    Exact,
}

impl Default for Precision {
    fn default() -> Self {
        Precision::Decimals(6)
    }
}

/// What the extraction looks for, as Math-Verify's extraction configs
/// (`LatexExtractionConfig`, `ExprExtractionConfig`, `StringExtractionConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extraction {
    /// LaTeX: `\boxed{}` (several joined), "the final answer is $…$", math spans (`$…$`,
    /// `\(…\)`, `\[…\]`), an answer phrase holding math.
    Latex,
    /// Plain expressions: GSM8K's `#### N`, an answer phrase, the last standalone number
    /// (with `last_number_fallback`), a whole response that is one bare expression.
    Expression,
    /// A multiple-choice letter out of `choices`: "the answer is (B)", "Answer: B", a lone
    /// `(B)` / `**B**` / `B` ending the response.
    String,
}

/// Settings of the math verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MathConfig {
    /// Relative tolerance of numeric comparisons (exact rationals are compared exactly).
    pub rel_tol: f64,
    /// How decimal literals are compared (rounded to 6 decimals by default, as Math-Verify).
    pub precision: Precision,
    /// What the extraction looks for (default `["latex", "expression"]`: boxed first, then
    /// the final-answer phrases, then the last math span or number).
    pub extraction: Vec<Extraction>,
    /// The letters `"string"` extraction accepts (default A–E).
    pub choices: Vec<String>,
    /// Whether the last number of a response counts as its answer when nothing else is found
    /// (only with `"expression"` extraction).
    pub last_number_fallback: bool,
    /// How `%` is read.
    pub percent: PercentMode,
    /// Whether `3,5` means 3.5 (otherwise a list); `1,234` is always a thousands separator.
    pub decimal_comma: bool,
    /// When true, `x = 3` does not match `3`: equations only match equations.
    pub strict_variables: bool,
    /// Whether an inequality answers a gold written as a set (`0 \le y \le 5` for `[0,5]`).
    /// A gold inequality always accepts the interval it describes; the other way round is
    /// off by default, as Math-Verify's `allow_set_relation_comp` (a gold interval usually
    /// means the task asked for interval notation).
    pub relation_matches_set: bool,
    /// Longer responses are `invalid`.
    pub max_response_bytes: usize,
    /// The extraction reads the last this many bytes of a response (after `</think>` when the
    /// answer follows it): answers close a response, and the scans stay short on hostile
    /// input. Each KiB read costs 16 units of `work_budget`.
    pub scan_bytes: usize,
    /// Longer extracted answers are `invalid`.
    pub max_answer_chars: usize,
    /// Work units per call (tokens, nodes, big-integer words); exhausted → `error`.
    pub work_budget: u64,
    /// Number of random points for expressions with variables.
    pub sample_points: u32,
    /// Scores per status.
    pub rewards: RewardMapping,
}

impl Default for MathConfig {
    fn default() -> Self {
        MathConfig {
            rel_tol: 1e-9,
            precision: Precision::default(),
            extraction: vec![Extraction::Latex, Extraction::Expression],
            choices: ["A", "B", "C", "D", "E"].map(String::from).to_vec(),
            last_number_fallback: true,
            percent: PercentMode::Either,
            decimal_comma: false,
            strict_variables: false,
            relation_matches_set: false,
            max_response_bytes: 1 << 20,
            scan_bytes: 1 << 16,
            max_answer_chars: 1000,
            work_budget: 50_000,
            sample_points: 4,
            rewards: RewardMapping::default(),
        }
    }
}

/// Relations in equations and inequalities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// One expression.
    Expr(Expr),
    /// `(a, b, …)` or `[a, b, c, …]`: ordered.
    Tuple(Vec<Answer>),
    /// An interval with open/closed ends.
    Interval {
        lo: Expr,
        hi: Expr,
        lo_closed: bool,
        hi_closed: bool,
    },
    /// A union of intervals (`\cup`).
    Union(Vec<Answer>),
    /// `\{a, b\}`, a bare list `a, b`, or the two values of `a \pm b`: unordered.
    Set(Vec<Answer>),
    /// `pmatrix`/`bmatrix` rows.
    Matrix(Vec<Vec<Expr>>),
    /// `a = b = …`.
    Equation(Vec<Expr>),
    /// `a < b ≤ c …`.
    Ineq(Vec<Expr>, Vec<Rel>),
    /// Words (lowercased).
    Text(String),
    /// A multiple-choice letter.
    Choice(char),
}

const MAX_NEST: usize = 24;

fn rel_of(t: &Tok) -> Option<Rel> {
    Some(match t {
        Tok::Eq => Rel::Eq,
        Tok::Lt => Rel::Lt,
        Tok::Le => Rel::Le,
        Tok::Gt => Rel::Gt,
        Tok::Ge => Rel::Ge,
        Tok::Ne => Rel::Ne,
        _ => return None,
    })
}

/// Splits `toks` at depth-0 positions where `is_sep` holds.
fn split_top<'t>(toks: &'t [Tok], is_sep: &dyn Fn(&Tok) -> bool) -> Vec<&'t [Tok]> {
    split_top_seps(toks, is_sep).0
}

/// [`split_top`], also returning the separators.
fn split_top_seps<'t>(
    toks: &'t [Tok],
    is_sep: &dyn Fn(&Tok) -> bool,
) -> (Vec<&'t [Tok]>, Vec<&'t Tok>) {
    let mut parts = Vec::new();
    let mut seps = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (k, t) in toks.iter().enumerate() {
        match t {
            Tok::LParen
            | Tok::LBrack
            | Tok::LBrace
            | Tok::LSet
            | Tok::MatBegin
            | Tok::Floor(true)
            | Tok::Ceil(true) => depth += 1,
            Tok::RParen
            | Tok::RBrack
            | Tok::RBrace
            | Tok::RSet
            | Tok::MatEnd
            | Tok::Floor(false)
            | Tok::Ceil(false) => depth -= 1,
            _ => {}
        }
        if depth == 0 && is_sep(t) {
            parts.push(&toks[start..k]);
            seps.push(t);
            start = k + 1;
        }
    }
    parts.push(&toks[start..]);
    (parts, seps)
}

/// Index of the bracket closing the one at 0 (any bracket kind closes: intervals mix them).
fn matching_close(toks: &[Tok]) -> Option<usize> {
    let mut depth = 0i32;
    for (k, t) in toks.iter().enumerate() {
        match t {
            Tok::LParen | Tok::LBrack | Tok::LBrace | Tok::LSet | Tok::MatBegin => depth += 1,
            Tok::RParen | Tok::RBrack | Tok::RBrace | Tok::RSet | Tok::MatEnd => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_expr(toks: &[Tok], budget: &mut Budget) -> Result<Expr, ExprError> {
    if toks.is_empty() {
        return Err(ExprError::Parse {
            pos: 0,
            msg: "empty".into(),
        });
    }
    Parser::new(toks, budget).parse_all()
}

fn expr_answer(e: Expr, budget: &mut Budget) -> Result<Answer, ExprError> {
    Ok(if has_pm(&e) {
        Answer::Set(
            expand_pm(&e, budget)?
                .into_iter()
                .map(Answer::Expr)
                .collect(),
        )
    } else {
        Answer::Expr(e)
    })
}

fn parse_elems(
    parts: &[&[Tok]],
    budget: &mut Budget,
    nest: usize,
) -> Result<Vec<Answer>, ExprError> {
    let mut out = Vec::new();
    for p in parts {
        match parse_tokens(p, budget, nest + 1)? {
            Answer::Set(xs) if parts.len() > 1 => out.extend(xs),
            a => out.push(a),
        }
    }
    Ok(out)
}

/// Parses tokens into a structured answer.
pub fn parse_tokens(toks: &[Tok], budget: &mut Budget, nest: usize) -> Result<Answer, ExprError> {
    if nest > MAX_NEST {
        return Err(ExprError::TooDeep(MAX_NEST));
    }
    budget.spend(toks.len() as u64 + 1)?;
    // `x \in S` → S
    let by_in = split_top(toks, &|t| *t == Tok::In);
    if by_in.len() > 1 {
        return parse_tokens(by_in[by_in.len() - 1], budget, nest + 1);
    }
    let by_cup = split_top(toks, &|t| *t == Tok::Cup);
    if by_cup.len() > 1 {
        let parts = by_cup
            .iter()
            .map(|p| parse_tokens(p, budget, nest + 1))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Answer::Union(parts));
    }
    let by_comma = split_top(toks, &|t| *t == Tok::Comma);
    if by_comma.len() > 1 {
        return Ok(Answer::Set(parse_elems(&by_comma, budget, nest)?));
    }
    // `a ≈ b`, as Math-Verify reads it: `b` when `a` is a lone variable, else `a`
    let by_approx = split_top(toks, &|t| *t == Tok::Approx);
    if by_approx.len() > 1 {
        let pick = if matches!(by_approx[0], [Tok::Var(_)]) {
            by_approx[1]
        } else {
            by_approx[0]
        };
        return parse_tokens(pick, budget, nest + 1);
    }
    let (parts, seps) = split_top_seps(toks, &|t| rel_of(t).is_some());
    if parts.len() > 1 {
        let rels: Vec<Rel> = seps.iter().filter_map(|t| rel_of(t)).collect();
        // a labelled answer: `(a, b) = (1, 4)` → `(1, 4)`
        let is_label = |p: &[Tok]| {
            p.contains(&Tok::Comma)
                && p.iter().all(|t| {
                    matches!(
                        t,
                        Tok::Var(_)
                            | Tok::Comma
                            | Tok::LParen
                            | Tok::RParen
                            | Tok::LBrack
                            | Tok::RBrack
                    )
                })
        };
        if rels.iter().all(|r| *r == Rel::Eq) && is_label(parts[0]) {
            return parse_tokens(parts[parts.len() - 1], budget, nest + 1);
        }
        let exprs = parts
            .iter()
            .map(|p| parse_expr(p, budget))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if rels.iter().all(|r| *r == Rel::Eq) {
            Answer::Equation(exprs)
        } else {
            Answer::Ineq(exprs, rels)
        });
    }
    let n = toks.len();
    if n >= 2 && matching_close(toks) == Some(n - 1) {
        let (open, close) = (&toks[0], &toks[n - 1]);
        let inner = &toks[1..n - 1];
        // `\left[\begin{array}…\end{array}\right]`: the brackets only draw the matrix
        if matches!(open, Tok::LParen | Tok::LBrack)
            && matches!(close, Tok::RParen | Tok::RBrack)
            && inner.first() == Some(&Tok::MatBegin)
            && matching_close(inner) == Some(inner.len() - 1)
        {
            return parse_tokens(inner, budget, nest + 1);
        }
        match (open, close) {
            (Tok::LBrace, Tok::RBrace) => return parse_tokens(inner, budget, nest + 1),
            (Tok::MatBegin, Tok::MatEnd) => {
                let mut rows = Vec::new();
                for row in split_top(inner, &|t| *t == Tok::RowSep) {
                    if row.is_empty() {
                        continue;
                    }
                    let cells = split_top(row, &|t| *t == Tok::Amp)
                        .iter()
                        .map(|c| parse_expr(c, budget))
                        .collect::<Result<Vec<_>, _>>()?;
                    rows.push(cells);
                }
                return Ok(Answer::Matrix(rows));
            }
            (Tok::LSet, Tok::RSet) => {
                let parts = split_top(inner, &|t| *t == Tok::Comma);
                if inner.is_empty() {
                    return Ok(Answer::Set(Vec::new()));
                }
                return Ok(Answer::Set(parse_elems(&parts, budget, nest)?));
            }
            (Tok::LParen | Tok::LBrack, Tok::RParen | Tok::RBrack) => {
                let parts = split_top(inner, &|t| *t == Tok::Comma);
                if parts.len() > 1 {
                    let mixed = !(matches!(open, Tok::LParen) && matches!(close, Tok::RParen));
                    if parts.len() == 2 && mixed {
                        let lo = parse_expr(parts[0], budget)?;
                        let hi = parse_expr(parts[1], budget)?;
                        return Ok(Answer::Interval {
                            lo,
                            hi,
                            lo_closed: *open == Tok::LBrack,
                            hi_closed: *close == Tok::RBrack,
                        });
                    }
                    let elems = parts
                        .iter()
                        .map(|p| parse_tokens(p, budget, nest + 1))
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(Answer::Tuple(elems));
                }
            }
            _ => {}
        }
    }
    if toks.first() == Some(&Tok::MatBegin) {
        if let Some(m) = matrix_arithmetic(toks, budget, nest)? {
            return Ok(m);
        }
    }
    let e = parse_expr(toks, budget)?;
    expr_answer(e, budget)
}

/// Sums and products of matrices (`A + B`, `A - B`, `A B`, `A \cdot B`), evaluated entry by
/// entry as expressions; `None` when `toks` is not such a chain.
fn matrix_arithmetic(
    toks: &[Tok],
    budget: &mut Budget,
    nest: usize,
) -> Result<Option<Answer>, ExprError> {
    let mut acc: Option<Vec<Vec<Expr>>> = None;
    let mut op = Tok::Plus;
    let mut k = 0;
    while k < toks.len() {
        if k > 0 {
            if matches!(toks[k], Tok::Plus | Tok::Minus | Tok::Mul) {
                op = toks[k].clone();
                k += 1;
            } else {
                op = Tok::Mul;
            }
        }
        let rest = &toks[k..];
        let Some(end) = matching_close(rest).filter(|_| rest.first() == Some(&Tok::MatBegin))
        else {
            return Ok(None);
        };
        let Answer::Matrix(m) = parse_tokens(&rest[..=end], budget, nest + 1)? else {
            return Ok(None);
        };
        budget.spend(m.iter().map(|r| r.len() as u64).sum::<u64>() * 4)?;
        acc = Some(match acc {
            None => m,
            Some(a) => match matrix_op(&a, &m, &op) {
                Some(r) => r,
                None => return Ok(None),
            },
        });
        k += end + 1;
    }
    Ok(acc.filter(|_| k > 0).map(Answer::Matrix))
}

/// `a op b` for matrices of matching shapes (`+`, `-`: same shape; product: inner sizes).
fn matrix_op(a: &[Vec<Expr>], b: &[Vec<Expr>], op: &Tok) -> Option<Vec<Vec<Expr>>> {
    let bx = |e: &Expr| Box::new(e.clone());
    match op {
        Tok::Plus | Tok::Minus => {
            if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
                return None;
            }
            Some(
                a.iter()
                    .zip(b)
                    .map(|(x, y)| {
                        x.iter()
                            .zip(y)
                            .map(|(p, q)| match op {
                                Tok::Plus => Expr::Add(bx(p), bx(q)),
                                _ => Expr::Sub(bx(p), bx(q)),
                            })
                            .collect()
                    })
                    .collect(),
            )
        }
        _ => {
            let inner = b.len();
            if inner == 0
                || a.iter().any(|r| r.len() != inner)
                || b.iter().any(|r| r.len() != b[0].len())
            {
                return None;
            }
            Some(
                a.iter()
                    .map(|row| {
                        (0..b[0].len())
                            .map(|j| {
                                (0..inner)
                                    .map(|t| Expr::Mul(bx(&row[t]), bx(&b[t][j])))
                                    .reduce(|x, y| Expr::Add(Box::new(x), Box::new(y)))
                                    .expect("inner > 0")
                            })
                            .collect()
                    })
                    .collect(),
            )
        }
    }
}

/// Parses a normalised answer string.
pub fn parse_answer(norm: &str, budget: &mut Budget) -> Result<Answer, ExprError> {
    if let Some(c) = choice_letter(norm) {
        return Ok(Answer::Choice(c));
    }
    if is_text_answer(norm) {
        return Ok(Answer::Text(norm.to_lowercase()));
    }
    let toks = lex(norm, budget)?;
    parse_tokens(&toks, budget, 0)
}

/// Comparison context.
struct Cmp<'a> {
    cfg: &'a MathConfig,
    budget: &'a mut Budget,
}

impl Cmp<'_> {
    fn percent_modes(&self) -> &'static [bool] {
        match self.cfg.percent {
            PercentMode::Either => &[true, false],
            PercentMode::Fraction => &[true],
            PercentMode::Number => &[false],
        }
    }

    /// Expression equality: infinities by sign, exact rationals when both sides are rational,
    /// else numeric agreement at every sample point where both sides are finite.
    fn expr_eq(&mut self, a: &Expr, b: &Expr) -> Result<bool, ExprError> {
        // traversals, variable lists, comparisons: linear in the trees
        self.budget.spend(size(a) + size(b))?;
        if a == b {
            return Ok(true);
        }
        let (ia, ib) = (infinity_sign(a), infinity_sign(b));
        if ia.is_some() || ib.is_some() {
            return Ok(ia == ib);
        }
        let (va, vb) = (free_vars(a), free_vars(b));
        let mut undecided_modes = 0;
        let modes = if has_percent(a) || has_percent(b) {
            self.percent_modes()
        } else {
            &[false]
        };
        let digits = self.rounding(a, b);
        for &scale in modes {
            if va.is_empty() && vb.is_empty() {
                let x = eval_exact(a, scale, self.budget)?;
                let y = eval_exact(b, scale, self.budget)?;
                if let (Some(x), Some(y)) = (&x, &y) {
                    if x == y {
                        return Ok(true);
                    }
                    if let Some(d) = digits {
                        if self.round_q(x, d)? == self.round_q(y, d)? {
                            return Ok(true);
                        }
                    }
                    continue;
                }
            }
            let points = if va.is_empty() && vb.is_empty() {
                1
            } else {
                self.cfg.sample_points.max(1)
            };
            let (mut valid, mut undecided) = (0, 0);
            let mut all = true;
            for k in 0..points {
                let bind = |n: &str| Some(sample_value(n, k));
                let x = eval_num(a, &bind, scale, self.budget)?;
                let y = eval_num(b, &bind, scale, self.budget)?;
                let nan = |c: C| c.re.is_nan() || c.im.is_nan();
                let finite = |c: C| c.re.is_finite() && c.im.is_finite();
                // a point counts when both sides are finite, or exactly one overflowed
                if nan(x) || nan(y) || !(finite(x) || finite(y)) {
                    undecided += 1;
                    continue;
                }
                valid += 1;
                let rounded_eq = points == 1
                    && digits.is_some_and(|d| {
                        let (rx, ry) = (round_f(x, d), round_f(y, d));
                        rx.is_some() && rx == ry
                    });
                if !rounded_eq && !close(x, y, self.cfg.rel_tol) {
                    all = false;
                    break;
                }
            }
            if valid > 0 && all {
                return Ok(true);
            }
            if valid == 0 && undecided > 0 {
                undecided_modes += 1;
            }
        }
        if undecided_modes == modes.len() {
            return Err(ExprError::Undecidable(
                "no point where both sides evaluate to finite numbers".into(),
            ));
        }
        Ok(false)
    }

    /// The decimals to round both sides to before comparing, per [`Precision`]: set when one
    /// side is a decimal literal (possibly negated or a percentage), as Math-Verify rounds
    /// only atomic floats.
    fn rounding(&self, gold: &Expr, pred: &Expr) -> Option<u32> {
        fn shown(e: &Expr) -> Option<u32> {
            match e {
                Expr::Float(_, d) => Some(*d),
                Expr::Neg(x) | Expr::Percent(x) => shown(x),
                _ => None,
            }
        }
        match self.cfg.precision {
            Precision::Exact => None,
            Precision::Decimals(d) => (shown(gold).is_some() || shown(pred).is_some()).then_some(d),
            Precision::Printed => shown(pred).or_else(|| shown(gold)),
        }
        .map(|d| d.min(64))
    }

    /// `q` rounded to `d` decimals, as an integer count of `10^-d` (half away from zero).
    fn round_q(&mut self, q: &BigRational, d: u32) -> Result<BigInt, ExprError> {
        self.budget
            .spend((q.numer().bits() + q.denom().bits()) / 64 + d as u64 / 16 + 1)?;
        let scale = BigRational::from_integer(num_traits::pow(BigInt::from(10), d as usize));
        Ok((q * scale).round().to_integer())
    }

    /// `a - b` with `b - a` allowed up to a non-zero constant factor: `y = 2x+1` vs
    /// `2x + 1 - y = 0`.
    fn equations_eq(&mut self, a: &[Expr], b: &[Expr]) -> Result<bool, ExprError> {
        if a.len() != 2 || b.len() != 2 {
            if a.len() != b.len() {
                return Ok(false);
            }
            for (x, y) in a.iter().zip(b) {
                if !self.expr_eq(x, y)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        // same variable on the left: compare right sides
        if let (Expr::Var(x), Expr::Var(y)) = (&a[0], &b[0]) {
            if x == y && self.expr_eq(&a[1], &b[1])? {
                return Ok(true);
            }
        }
        let da = Expr::Sub(Box::new(a[0].clone()), Box::new(a[1].clone()));
        let db = Expr::Sub(Box::new(b[0].clone()), Box::new(b[1].clone()));
        let mut vars = free_vars(&da);
        vars.extend(free_vars(&db));
        let mut ratio: Option<C> = None;
        let mut valid = 0;
        for k in 0..self.cfg.sample_points.max(1) + 2 {
            let bind = |n: &str| Some(sample_value(n, k));
            let x = eval_num(&da, &bind, false, self.budget)?;
            let y = eval_num(&db, &bind, false, self.budget)?;
            if x.re.is_nan() || y.re.is_nan() {
                continue;
            }
            let (xa, ya) = (x.re.hypot(x.im), y.re.hypot(y.im));
            if xa < 1e-12 && ya < 1e-12 {
                continue;
            }
            if xa < 1e-12 || ya < 1e-12 {
                return Ok(false);
            }
            let r = C {
                re: (x.re * y.re + x.im * y.im) / (ya * ya),
                im: (x.im * y.re - x.re * y.im) / (ya * ya),
            };
            match ratio {
                None => ratio = Some(r),
                Some(r0) => {
                    if !close(r0, r, 1e-7) {
                        return Ok(false);
                    }
                }
            }
            valid += 1;
        }
        Ok(valid > 0 || vars.is_empty())
    }

    fn sets_eq(&mut self, a: &[Answer], b: &[Answer]) -> Result<bool, ExprError> {
        // sets: repeated elements count once (`1, 2, 2` is `1, 2`), as Math-Verify's sets
        if a.len() > 64 || b.len() > 64 {
            return Ok(false);
        }
        let mut hit = vec![false; b.len()];
        for x in a {
            let mut found = false;
            for (j, y) in b.iter().enumerate() {
                if self.eq(x, y)? {
                    hit[j] = true;
                    found = true;
                }
            }
            if !found {
                return Ok(false);
            }
        }
        Ok(hit.iter().all(|h| *h))
    }

    /// `a R b` against `c S d`: the same relation once `>`/`≥` are mirrored, and the same
    /// `lhs - rhs` (`-y < 3` is `y > -3`); `≠` either way round.
    fn single_relations_eq(
        &mut self,
        g: &[Expr],
        gr: Rel,
        p: &[Expr],
        pr: Rel,
    ) -> Result<bool, ExprError> {
        let (dg, rg) = canonical_rel(g, gr);
        let (dp, rp) = canonical_rel(p, pr);
        if rg != rp {
            return Ok(false);
        }
        if self.expr_eq(&dg, &dp)? {
            return Ok(true);
        }
        if rg == Rel::Ne {
            let neg = Expr::Neg(Box::new(dp));
            return self.expr_eq(&dg, &neg);
        }
        Ok(false)
    }

    fn seq_eq(&mut self, a: &[Answer], b: &[Answer]) -> Result<bool, ExprError> {
        if a.len() != b.len() {
            return Ok(false);
        }
        for (x, y) in a.iter().zip(b) {
            if !self.eq(x, y)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Structured equality (gold first). Pays for the size of both answers (the arms below
    /// may copy them).
    fn eq(&mut self, gold: &Answer, pred: &Answer) -> Result<bool, ExprError> {
        self.budget.spend(answer_size(gold) + answer_size(pred))?;
        use Answer as A;
        match (labelled_rows(gold), labelled_rows(pred)) {
            (None, None) => {}
            (Some((_, g)), None) => return self.eq(&rows_answer(g), pred),
            (None, Some((_, p))) => return self.eq(gold, &rows_answer(p)),
            (Some((gl, g)), Some((pl, p))) => {
                // both labelled: the prediction's values in the gold's label order
                let Some(order) = gl
                    .iter()
                    .map(|l| pl.iter().position(|m| m == l))
                    .collect::<Option<Vec<_>>>()
                    .filter(|_| gl.len() == pl.len())
                else {
                    return Ok(false);
                };
                let p = p
                    .into_iter()
                    .map(|row| order.iter().map(|&j| row[j].clone()).collect())
                    .collect();
                return self.eq(&rows_answer(g), &rows_answer(p));
            }
        }
        Ok(match (gold, pred) {
            (A::Expr(x), A::Expr(y)) => self.expr_eq(x, y)?,
            (A::Choice(a), A::Choice(b)) => a == b,
            (A::Choice(a), A::Expr(Expr::Var(v))) | (A::Expr(Expr::Var(v)), A::Choice(a)) => {
                v.len() == 1 && v.starts_with(*a)
            }
            (A::Choice(a), A::Text(t)) | (A::Text(t), A::Choice(a)) => {
                t.len() == 1 && t.eq_ignore_ascii_case(&a.to_string())
            }
            (A::Text(a), A::Text(b)) => a == b,
            (A::Set(a), A::Set(b)) => self.sets_eq(a, b)?,
            (A::Set(a), x) | (x, A::Set(a)) if a.len() == 1 => self.eq(&a[0], x)?,
            (A::Tuple(a), A::Tuple(b)) => self.seq_eq(a, b)?,
            // `(1, 3)` against `{1, 3}` / `1, 3`: the elements in the order written (Math-Verify)
            (A::Tuple(t), A::Set(a)) => self.seq_eq(t, a)?,
            (A::Set(a), A::Tuple(t)) => self.seq_eq(a, t)?,
            (
                A::Interval {
                    lo,
                    hi,
                    lo_closed: false,
                    hi_closed: false,
                },
                A::Set(a),
            ) if a.len() == 2 => {
                let (lo, hi) = (A::Expr(lo.clone()), A::Expr(hi.clone()));
                self.eq(&lo, &a[0])? && self.eq(&hi, &a[1])?
            }
            (A::Union(a), A::Union(b)) => self.sets_eq(a, b)?,
            (
                A::Interval {
                    lo: l1,
                    hi: h1,
                    lo_closed: lc1,
                    hi_closed: hc1,
                },
                A::Interval {
                    lo: l2,
                    hi: h2,
                    lo_closed: lc2,
                    hi_closed: hc2,
                },
            ) => lc1 == lc2 && hc1 == hc2 && self.expr_eq(l1, l2)? && self.expr_eq(h1, h2)?,
            (
                A::Interval {
                    lo,
                    hi,
                    lo_closed: false,
                    hi_closed: false,
                },
                A::Tuple(t),
            )
            | (
                A::Tuple(t),
                A::Interval {
                    lo,
                    hi,
                    lo_closed: false,
                    hi_closed: false,
                },
            ) if t.len() == 2 => {
                let (lo, hi) = (A::Expr(lo.clone()), A::Expr(hi.clone()));
                self.eq(&lo, &t[0])? && self.eq(&hi, &t[1])?
            }
            (A::Matrix(a), A::Matrix(b)) => {
                if a.len() != b.len() {
                    return Ok(false);
                }
                for (ra, rb) in a.iter().zip(b) {
                    if ra.len() != rb.len() {
                        return Ok(false);
                    }
                    for (x, y) in ra.iter().zip(rb) {
                        if !self.expr_eq(x, y)? {
                            return Ok(false);
                        }
                    }
                }
                true
            }
            (A::Matrix(m), A::Tuple(t)) | (A::Tuple(t), A::Matrix(m)) => {
                let flat: Vec<A> = if m.iter().all(|r| r.len() == 1) {
                    m.iter().map(|r| A::Expr(r[0].clone())).collect()
                } else if m.len() == 1 {
                    m[0].iter().cloned().map(A::Expr).collect()
                } else {
                    return Ok(false);
                };
                self.seq_eq(&flat, t)?
            }
            (A::Equation(a), A::Equation(b)) => {
                // assignment chains `y = 2+2 = 4` count as `y = 4`
                let trunc = |e: &[Expr]| -> Vec<Expr> {
                    if e.len() > 2 && only_symbols(&e[0]) {
                        vec![e[0].clone(), e[e.len() - 1].clone()]
                    } else {
                        e.to_vec()
                    }
                };
                // the copies cost what the answers weigh
                self.budget.spend(answer_size(gold) + answer_size(pred))?;
                let (a, b) = (trunc(a), trunc(b));
                self.equations_eq(&a, &b)?
            }
            // the prediction is an equation and the gold is not: its last value counts
            // (`y = 2+2 = 4`, `AB = 5`, `2 \cdot 3 = 6` against `4`, `5`, `6`); `3 = x` gives 3
            (g, A::Equation(eq)) if !self.cfg.strict_variables => {
                let last = A::Expr(eq[eq.len() - 1].clone());
                if self.eq(g, &last)? {
                    true
                } else if eq.len() == 2 && matches!(eq[1], Expr::Var(_)) {
                    self.eq(g, &A::Expr(eq[0].clone()))?
                } else {
                    false
                }
            }
            // the gold assigns a value (`x = 3`, `AB = 5`, `|AB| = 1`, `V_1 : V_2 = 11:21`): its
            // value against a plain answer
            (A::Equation(eq), p) if !self.cfg.strict_variables => {
                if only_symbols(&eq[0]) {
                    self.eq(&A::Expr(eq[eq.len() - 1].clone()), p)?
                } else if eq.len() == 2 && matches!(eq[1], Expr::Var(_)) {
                    self.eq(&A::Expr(eq[0].clone()), p)?
                } else {
                    false
                }
            }
            (A::Ineq(e1, r1), A::Ineq(e2, r2))
                if e1.len() == 2
                    && e2.len() == 2
                    && self.single_relations_eq(e1, r1[0], e2, r2[0])? =>
            {
                true
            }
            // a gold set is not answered by an inequality unless `relation_matches_set`
            (g, A::Ineq(..)) if !matches!(g, A::Ineq(..)) && !self.cfg.relation_matches_set => {
                false
            }
            (A::Ineq(..), _) | (_, A::Ineq(..)) => {
                let ga = ineq_to_interval(gold).unwrap_or_else(|| gold.clone());
                let pa = ineq_to_interval(pred).unwrap_or_else(|| pred.clone());
                if matches!(ga, A::Ineq(..)) || matches!(pa, A::Ineq(..)) {
                    match (&ga, &pa) {
                        (A::Ineq(e1, r1), A::Ineq(e2, r2)) => {
                            r1 == r2 && e1.len() == e2.len() && {
                                let mut ok = true;
                                for (x, y) in e1.iter().zip(e2) {
                                    ok = ok && self.expr_eq(x, y)?;
                                }
                                ok
                            }
                        }
                        _ => false,
                    }
                } else {
                    self.eq(&ga, &pa)?
                }
            }
            _ => false,
        })
    }
}

/// `x` rounded to `d` decimals, when it is real and small enough for `f64` to hold the digits.
fn round_f(x: C, d: u32) -> Option<i64> {
    if x.im.abs() > 1e-12 * (1.0 + x.re.abs()) {
        return None;
    }
    let v = x.re * 10f64.powi(d as i32);
    (v.is_finite() && v.abs() < 4e15).then(|| v.round() as i64)
}

/// Whether an expression is made of letters only (`x`, `AB`, `a_1`, `x + y`, `|AB|`, `A:B`,
/// `f(x)`), as Math-Verify's `is_expr_of_only_symbols`: the label side of `AB = 5`.
fn only_symbols(e: &Expr) -> bool {
    match e {
        Expr::Var(_) | Expr::E | Expr::I => true,
        Expr::Mul(a, b) | Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Div(a, b) => {
            only_symbols(a) && only_symbols(b)
        }
        Expr::Abs(a) => only_symbols(a),
        _ => false,
    }
}

/// `lhs - rhs` and the relation against 0 with `>`/`≥` turned into `<`/`≤`.
fn canonical_rel(es: &[Expr], r: Rel) -> (Expr, Rel) {
    let (a, b) = (Box::new(es[0].clone()), Box::new(es[1].clone()));
    match r {
        Rel::Gt => (Expr::Sub(b, a), Rel::Lt),
        Rel::Ge => (Expr::Sub(b, a), Rel::Le),
        r => (Expr::Sub(a, b), r),
    }
}

/// A list of assignments with distinct labels (`PQ = 6, RS = 2`: one row) or labels that
/// repeat (`p=5, q=2; p=7, q=2`: a row per repetition): the labels of a row and the rows of
/// values.
fn labelled_rows(a: &Answer) -> Option<(Vec<Expr>, Vec<Vec<Answer>>)> {
    let Answer::Set(xs) = a else {
        return None;
    };
    let mut labels = Vec::with_capacity(xs.len());
    let mut values = Vec::with_capacity(xs.len());
    for x in xs {
        match x {
            Answer::Equation(es) if es.len() == 2 && only_symbols(&es[0]) => {
                labels.push(&es[0]);
                values.push(Answer::Expr(es[1].clone()));
            }
            _ => return None,
        }
    }
    let k = labels[1..]
        .iter()
        .position(|l| *l == labels[0])
        .map_or(labels.len(), |p| p + 1);
    let periodic = k >= 2
        && labels.len() % k == 0
        && labels.iter().enumerate().all(|(i, l)| *l == labels[i % k])
        && (1..k).all(|i| !labels[..i].contains(&labels[i]));
    periodic.then(|| {
        (
            labels[..k].iter().map(|l| (*l).clone()).collect(),
            values.chunks(k).map(<[Answer]>::to_vec).collect(),
        )
    })
}

/// One row as a tuple, several as the set of their tuples.
fn rows_answer(mut rows: Vec<Vec<Answer>>) -> Answer {
    if rows.len() == 1 {
        Answer::Tuple(rows.remove(0))
    } else {
        Answer::Set(rows.into_iter().map(Answer::Tuple).collect())
    }
}

/// Number of expression nodes in an answer.
fn answer_size(a: &Answer) -> u64 {
    1 + match a {
        Answer::Expr(e) => size(e),
        Answer::Tuple(xs) | Answer::Union(xs) | Answer::Set(xs) => xs.iter().map(answer_size).sum(),
        Answer::Interval { lo, hi, .. } => size(lo) + size(hi),
        Answer::Matrix(rows) => rows.iter().flatten().map(size).sum(),
        Answer::Equation(es) | Answer::Ineq(es, _) => es.iter().map(size).sum(),
        Answer::Text(_) | Answer::Choice(_) => 0,
    }
}

/// `x > 3` → `(3, ∞)`, `-2 ≤ x ≤ 7` → `[-2, 7]`; `None` when not of that shape.
fn ineq_to_interval(a: &Answer) -> Option<Answer> {
    let Answer::Ineq(es, rels) = a else {
        return None;
    };
    let inf = || Expr::Inf;
    let ninf = || Expr::Neg(Box::new(Expr::Inf));
    let strict = |r: Rel| matches!(r, Rel::Lt | Rel::Gt);
    match (es.as_slice(), rels.as_slice()) {
        ([v, c], [r]) | ([c, v], [r]) if only_symbols(v) => {
            let var_left = only_symbols(&es[0]);
            // normalise to `x r c`
            let r = if var_left {
                *r
            } else {
                match r {
                    Rel::Lt => Rel::Gt,
                    Rel::Le => Rel::Ge,
                    Rel::Gt => Rel::Lt,
                    Rel::Ge => Rel::Le,
                    o => *o,
                }
            };
            Some(match r {
                Rel::Lt | Rel::Le => Answer::Interval {
                    lo: ninf(),
                    hi: c.clone(),
                    lo_closed: false,
                    hi_closed: !strict(r),
                },
                Rel::Gt | Rel::Ge => Answer::Interval {
                    lo: c.clone(),
                    hi: inf(),
                    lo_closed: !strict(r),
                    hi_closed: false,
                },
                _ => return None,
            })
        }
        ([lo, v, hi], [r1, r2])
            if only_symbols(v)
                && matches!(r1, Rel::Lt | Rel::Le)
                && matches!(r2, Rel::Lt | Rel::Le) =>
        {
            Some(Answer::Interval {
                lo: lo.clone(),
                hi: hi.clone(),
                lo_closed: !strict(*r1),
                hi_closed: !strict(*r2),
            })
        }
        ([hi, Expr::Var(_), lo], [r1, r2])
            if matches!(r1, Rel::Gt | Rel::Ge) && matches!(r2, Rel::Gt | Rel::Ge) =>
        {
            Some(Answer::Interval {
                lo: lo.clone(),
                hi: hi.clone(),
                lo_closed: !strict(*r2),
                hi_closed: !strict(*r1),
            })
        }
        _ => None,
    }
}

/// Result of comparing two answer strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Equal; `how` is `string` or `equivalent`.
    Equal(&'static str),
    /// Different.
    Different,
    /// The gold could not be parsed (message).
    GoldUnparsed(String),
    /// The prediction could not be parsed (message).
    PredUnparsed(String),
    /// The work budget ran out.
    Budget,
    /// Neither side could be evaluated where it mattered (reason).
    Undecidable(String),
}

/// Compares two extracted answers (gold first) under `cfg`, spending from `budget`.
pub fn compare(gold: &str, pred: &str, cfg: &MathConfig, budget: &mut Budget) -> Verdict {
    compare_with(
        gold,
        pred,
        (cfg.decimal_comma, cfg.decimal_comma),
        cfg,
        budget,
    )
}

/// [`compare`], reading `3,75` as 3.75 in the gold and in the prediction as `decimal_comma`
/// says (a number written in plain text rather than LaTeX, as Math-Verify's expression
/// extraction reads it).
pub fn compare_with(
    gold: &str,
    pred: &str,
    decimal_comma: (bool, bool),
    cfg: &MathConfig,
    budget: &mut Budget,
) -> Verdict {
    let (gn, pn) = (
        normalize(gold, decimal_comma.0),
        normalize(pred, decimal_comma.1),
    );
    if key(&gn) == key(&pn) && !gn.is_empty() {
        return Verdict::Equal("string");
    }
    let g = match parse_answer(&gn, budget) {
        Ok(a) => a,
        Err(ExprError::Budget) => return Verdict::Budget,
        Err(e) => return Verdict::GoldUnparsed(e.to_string()),
    };
    let p = match parse_answer(&pn, budget) {
        Ok(a) => a,
        Err(ExprError::Budget) => return Verdict::Budget,
        Err(e) => return Verdict::PredUnparsed(e.to_string()),
    };
    let mut cmp = Cmp { cfg, budget };
    match cmp.eq(&g, &p) {
        Ok(true) => Verdict::Equal("equivalent"),
        Ok(false) => Verdict::Different,
        Err(ExprError::Budget) => Verdict::Budget,
        Err(ExprError::Undecidable(m)) => Verdict::Undecidable(m),
        Err(e) => Verdict::PredUnparsed(e.to_string()),
    }
}

/// Whether two answer strings are equivalent under the default configuration (convenience for
/// tests and maj@K voting).
pub fn answers_equal(gold: &str, pred: &str) -> bool {
    let cfg = MathConfig::default();
    let mut budget = Budget::new(cfg.work_budget);
    matches!(compare(gold, pred, &cfg, &mut budget), Verdict::Equal(_))
}

/// The extracted, normalised answer of a response (for maj@K voting), or `None` when nothing
/// is extracted. Equal keys mean equal answers; equivalent answers may still have different
/// keys (use [`compare`] to merge them).
pub fn answer_key(response: &str, cfg: &MathConfig) -> Option<String> {
    let (a, _) = extract_with(response, &cfg.modes())?;
    let k = key(&normalize(&a, cfg.decimal_comma));
    (!k.is_empty()).then_some(k)
}

/// The math verifier (`math`).
#[derive(Debug, Clone, Default)]
pub struct MathVerifier {
    /// Settings.
    pub cfg: MathConfig,
}

impl MathVerifier {
    /// A verifier with these settings.
    pub fn new(cfg: MathConfig) -> Self {
        MathVerifier { cfg }
    }
}

/// The acceptable gold answers in a ground truth: a string, a number, a list of them, or an
/// object with an `answer` / `ground_truth` / `target` field.
pub fn gold_answers(v: &Value) -> Result<Vec<String>, String> {
    Ok(golds(v)?.into_iter().map(|g| g.0).collect())
}

/// The last `n` bytes of `s` (from a character boundary).
fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut k = s.len() - n;
    while !s.is_char_boundary(k) {
        k += 1;
    }
    &s[k..]
}

/// [`gold_answers`], each with whether it was written in plain text (no `$`, no backslash:
/// `1,22` is then a decimal comma, as Math-Verify's expression extraction reads it).
fn golds(v: &Value) -> Result<Vec<(String, bool)>, String> {
    match v {
        Value::String(s) => Ok(vec![(
            extract_ground_truth(tail(s, 1 << 16)).0,
            !s.contains(['$', '\\']),
        )]),
        Value::Number(n) => Ok(vec![(n.to_string(), true)]),
        Value::Array(xs) if !xs.is_empty() => {
            let mut out = Vec::new();
            for x in xs {
                out.extend(golds(x)?);
            }
            Ok(out)
        }
        Value::Object(m) => {
            for k in ["answer", "ground_truth", "target", "answers"] {
                if let Some(x) = m.get(k) {
                    return golds(x);
                }
            }
            Err(
                "ground truth object has no `answer`, `ground_truth`, `target` or `answers` field"
                    .into(),
            )
        }
        _ => Err(format!(
            "ground truth must be a string, number, list or object, got {v}"
        )),
    }
}

impl MathConfig {
    /// The extraction modes of [`MathConfig::extraction`].
    pub fn modes(&self) -> Modes<'_> {
        let has = |e| self.extraction.contains(&e);
        Modes {
            latex: has(Extraction::Latex),
            expression: has(Extraction::Expression),
            last_number: self.last_number_fallback,
            choices: has(Extraction::String).then_some(&self.choices[..]),
        }
    }
}

impl Verifier for MathVerifier {
    fn name(&self) -> &str {
        "math"
    }

    fn verify(&self, input: &VerifyInput<'_>) -> Outcome {
        let cfg = &self.cfg;
        let map = &cfg.rewards;
        let golds = match golds(input.ground_truth) {
            Ok(g) => g,
            Err(e) => return Outcome::error(map, e),
        };
        let golds_json: Vec<&str> = golds.iter().map(|g| g.0.as_str()).collect();
        if input.response.len() > cfg.max_response_bytes {
            return Outcome::with_status(
                Status::Invalid,
                map,
                json!({"reason": format!("response longer than {} bytes", cfg.max_response_bytes),
                    "ground_truth": golds_json}),
            );
        }
        let mut budget = Budget::new(cfg.work_budget);
        let text = tail(input.response, cfg.scan_bytes);
        if budget.spend(text.len() as u64 / 64).is_err() {
            return Outcome::with_status(
                Status::Error,
                map,
                json!({"reason": format!("work budget of {} units exhausted", cfg.work_budget),
                    "ground_truth": golds_json}),
            );
        }
        let Some((pred, method)) = extract_with(text, &cfg.modes()) else {
            return Outcome::with_status(
                Status::Invalid,
                map,
                json!({"reason": "no answer found", "ground_truth": golds_json}),
            );
        };
        if pred.chars().count() > cfg.max_answer_chars {
            return Outcome::with_status(
                Status::Invalid,
                map,
                json!({"reason": format!("answer longer than {} characters", cfg.max_answer_chars),
                    "extracted_by": method.as_str(), "ground_truth": golds_json}),
            );
        }
        // a number in plain text (`Answer: 3,75`) may use a decimal comma
        let plain_comma = cfg.decimal_comma
            || (!matches!(method, Method::Boxed | Method::FinalMath)
                && !pred.contains(['$', '\\']));
        let mut reasons = Vec::new();
        let mut status = Status::Incorrect;
        for (g, plain) in &golds {
            if g.chars().count() > cfg.max_answer_chars {
                reasons.push(format!(
                    "ground truth `{}…` too long",
                    g.chars().take(40).collect::<String>()
                ));
                status = Status::Error;
                continue;
            }
            let commas = (
                cfg.decimal_comma || (*plain && plain_decimal_comma(g)),
                plain_comma,
            );
            match compare_with(g, &pred, commas, cfg, &mut budget) {
                Verdict::Equal(how) => {
                    return Outcome::with_status(
                        Status::Correct,
                        map,
                        json!({"extracted": pred, "extracted_by": method.as_str(),
                            "ground_truth": g, "match": how}),
                    )
                }
                Verdict::Different => reasons.push(format!("differs from `{g}`")),
                Verdict::GoldUnparsed(e) => {
                    reasons.push(format!("ground truth `{g}` not understood: {e}"));
                    status = Status::Error;
                }
                Verdict::PredUnparsed(e) => {
                    reasons.push(format!("answer not understood: {e}"));
                    if status == Status::Incorrect {
                        status = Status::Invalid;
                    }
                }
                Verdict::Undecidable(m) => {
                    reasons.push(format!("cannot compare with `{g}`: {m}"));
                    status = Status::Error;
                }
                Verdict::Budget => {
                    reasons.push(format!(
                        "work budget of {} units exhausted",
                        cfg.work_budget
                    ));
                    status = Status::Error;
                    break;
                }
            }
        }
        Outcome::with_status(
            status,
            map,
            json!({"extracted": pred, "extracted_by": method.as_str(),
                "ground_truth": golds_json, "reason": reasons.join("; ")}),
        )
    }
}
