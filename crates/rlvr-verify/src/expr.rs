//! A small LaTeX/plain-text math parser and two evaluators: exact (big rationals) and numeric
//! (complex `f64`, variables at pseudo-random points). Every step spends from a [`Budget`], so
//! pathological input ends with [`ExprError::Budget`] instead of hanging; recursion depth is
//! capped too.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    /// The work budget ran out.
    #[error("work budget exhausted")]
    Budget,
    /// Nesting deeper than the parser allows.
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// Neither side could be evaluated (overflow, outside every function's domain).
    #[error("cannot decide: {0}")]
    Undecidable(String),
    /// Not an expression this parser understands (position in tokens, reason).
    #[error("parse error at token {pos}: {msg}")]
    Parse { pos: usize, msg: String },
}

type R<T> = Result<T, ExprError>;

/// A work counter: every token, node and big-integer digit costs one unit.
#[derive(Debug, Clone)]
pub struct Budget {
    left: u64,
}

impl Budget {
    /// A budget of `units`.
    pub fn new(units: u64) -> Self {
        Budget { left: units }
    }

    /// Spends `n` units; `Err(Budget)` when they are not there.
    pub fn spend(&mut self, n: u64) -> R<()> {
        if self.left < n {
            self.left = 0;
            return Err(ExprError::Budget);
        }
        self.left -= n;
        Ok(())
    }

    /// Units left.
    pub fn left(&self) -> u64 {
        self.left
    }
}

/// Maximum nesting depth of the parser.
pub const MAX_DEPTH: usize = 400;

/// Lexical tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Num(String),
    Var(String),
    Func(Func),
    Pi,
    Inf,
    Frac,
    Sqrt,
    Binom,
    Plus,
    Minus,
    Pm,
    Mul,
    Div,
    Pow,
    Under,
    Bang,
    Percent,
    Comma,
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    Ne,
    /// `\approx`, `≈`.
    Approx,
    In,
    Cup,
    LParen,
    RParen,
    LBrack,
    RBrack,
    LBrace,
    RBrace,
    LSet,
    RSet,
    Bar,
    Amp,
    RowSep,
    MatBegin,
    MatEnd,
    Floor(bool),
    Ceil(bool),
}

/// Functions of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Log,
    Exp,
}

const WORD_FUNCS: &[(&str, Func)] = &[
    ("arcsin", Func::Asin),
    ("arccos", Func::Acos),
    ("arctan", Func::Atan),
    ("sinh", Func::Sinh),
    ("cosh", Func::Cosh),
    ("tanh", Func::Tanh),
    ("sin", Func::Sin),
    ("cos", Func::Cos),
    ("tan", Func::Tan),
    ("sec", Func::Sec),
    ("csc", Func::Csc),
    ("cot", Func::Cot),
    ("log", Func::Log),
    ("ln", Func::Ln),
    ("exp", Func::Exp),
];

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

/// Whether `w` is a function or constant name the lexer reads as one token.
pub fn is_math_word(w: &str) -> bool {
    WORD_FUNCS.iter().any(|(n, _)| *n == w) || matches!(w, "sqrt" | "pi" | "infty" | "inf" | "frac")
}

/// Splits normalised answer text into tokens. Spends one budget unit per character.
pub fn lex(s: &str, budget: &mut Budget) -> R<Vec<Tok>> {
    let cs: Vec<char> = s.chars().collect();
    budget.spend(cs.len() as u64)?;
    let mut out = Vec::new();
    let mut i = 0;
    let err = |i: usize, m: &str| ExprError::Parse {
        pos: i,
        msg: m.to_string(),
    };
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() || c == '~' {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && i + 1 < cs.len() && cs[i + 1].is_ascii_digit()) {
            let st = i;
            while i < cs.len() && cs[i].is_ascii_digit() {
                i += 1;
            }
            if i < cs.len() && cs[i] == '.' && i + 1 < cs.len() && cs[i + 1].is_ascii_digit() {
                i += 1;
                while i < cs.len() && cs[i].is_ascii_digit() {
                    i += 1;
                }
            } else if i < cs.len() && cs[i] == '.' && (i + 1 == cs.len()) {
                i += 1; // "5." trailing dot
            }
            // scientific notation: 1.5e-3, 2E10
            if i < cs.len() && (cs[i] == 'e' || cs[i] == 'E') {
                let mut j = i + 1;
                if j < cs.len() && (cs[j] == '+' || cs[j] == '-') {
                    j += 1;
                }
                if j < cs.len() && cs[j].is_ascii_digit() {
                    while j < cs.len() && cs[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let text: String = cs[st..i].iter().collect();
            // a number with a base subscript (204_5, 4210_{5}) is an opaque symbol
            if i < cs.len() && cs[i] == '_' {
                let (sub, j) = subscript(&cs, i + 1);
                if !sub.is_empty() && sub.chars().all(|c| c.is_ascii_alphanumeric()) {
                    out.push(Tok::Var(format!("{text}_{sub}")));
                    i = j;
                    continue;
                }
            }
            out.push(Tok::Num(text));
            continue;
        }
        if c.is_alphabetic() {
            // known words first (sin, sqrt, pi, ...), else one letter = one variable
            let st = i;
            let mut j = i;
            while j < cs.len() && cs[j].is_ascii_alphabetic() {
                j += 1;
            }
            let word: String = cs[st..j].iter().collect();
            if let Some((len, tok)) = word_prefix(&word) {
                out.push(tok);
                i += len;
                continue;
            }
            let mut name = c.to_string();
            i += 1;
            if i < cs.len() && cs[i] == '_' {
                let (sub, j) = subscript(&cs, i + 1);
                if !sub.is_empty() {
                    name = format!("{name}_{sub}");
                    i = j;
                }
            }
            out.push(Tok::Var(name));
            continue;
        }
        if c == '\\' {
            let st = i + 1;
            let mut j = st;
            while j < cs.len() && cs[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j == st {
                // escaped symbol
                let n = cs.get(st).copied();
                i = st + 1;
                match n {
                    Some('{') => out.push(Tok::LSet),
                    Some('}') => out.push(Tok::RSet),
                    Some('%') => out.push(Tok::Percent),
                    Some('\\') => out.push(Tok::RowSep),
                    Some(',') | Some(';') | Some(':') | Some('!') | Some(' ') | Some('$') => {}
                    Some('|') => out.push(Tok::Bar),
                    _ => return Err(err(i, "stray backslash")),
                }
                continue;
            }
            let cmd: String = cs[st..j].iter().collect();
            i = j;
            let tok = match cmd.as_str() {
                "frac" | "dfrac" | "tfrac" | "cfrac" => Tok::Frac,
                "sqrt" => Tok::Sqrt,
                "binom" | "dbinom" | "tbinom" | "choose" => Tok::Binom,
                "pi" => Tok::Pi,
                "infty" | "infinity" => Tok::Inf,
                "cdot" | "times" | "ast" => Tok::Mul,
                "div" => Tok::Div,
                "pm" | "mp" => Tok::Pm,
                "le" | "leq" | "leqslant" => Tok::Le,
                "ge" | "geq" | "geqslant" => Tok::Ge,
                "lt" => Tok::Lt,
                "gt" => Tok::Gt,
                "ne" | "neq" => Tok::Ne,
                "approx" | "simeq" | "thickapprox" => Tok::Approx,
                "in" => Tok::In,
                "cup" => Tok::Cup,
                "lfloor" => Tok::Floor(true),
                "rfloor" => Tok::Floor(false),
                "lceil" => Tok::Ceil(true),
                "rceil" => Tok::Ceil(false),
                "vert" | "mid" => Tok::Bar,
                "circ" | "left" | "right" | "big" | "Big" | "bigg" | "Bigg" | "displaystyle"
                | "quad" | "qquad" | "limits" => continue,
                "begin" | "end" => {
                    let (env, k) = braced_word(&cs, i);
                    i = k;
                    if env.ends_with("matrix") || env == "array" {
                        out.push(if cmd == "begin" {
                            Tok::MatBegin
                        } else {
                            Tok::MatEnd
                        });
                        // skip an array column spec {cc}
                        if env == "array" && cmd == "begin" {
                            let (_, k2) = braced_word(&cs, i);
                            i = k2;
                        }
                        continue;
                    }
                    return Err(err(i, "unsupported environment"));
                }
                other => {
                    if let Some((_, f)) = WORD_FUNCS.iter().find(|(n, _)| *n == other) {
                        Tok::Func(*f)
                    } else if GREEK.contains(&other) {
                        Tok::Var(other.to_string())
                    } else {
                        return Err(err(i, "unknown command"));
                    }
                }
            };
            out.push(tok);
            continue;
        }
        let t = match c {
            '+' => Tok::Plus,
            '-' | '−' | '–' => Tok::Minus,
            '±' => Tok::Pm,
            '*' | '·' | '×' => Tok::Mul,
            '/' | '÷' => Tok::Div,
            '^' => Tok::Pow,
            '_' => Tok::Under,
            '!' => {
                if cs.get(i + 1) == Some(&'=') {
                    i += 1;
                    Tok::Ne
                } else {
                    Tok::Bang
                }
            }
            '%' => Tok::Percent,
            // `;` separates answers like `,`; `3:8` is a ratio
            ',' | ';' => Tok::Comma,
            ':' => Tok::Div,
            '≈' => Tok::Approx,
            '=' => Tok::Eq,
            '<' => {
                if cs.get(i + 1) == Some(&'=') {
                    i += 1;
                    Tok::Le
                } else {
                    Tok::Lt
                }
            }
            '>' => {
                if cs.get(i + 1) == Some(&'=') {
                    i += 1;
                    Tok::Ge
                } else {
                    Tok::Gt
                }
            }
            '≤' => Tok::Le,
            '≥' => Tok::Ge,
            '≠' => Tok::Ne,
            '∈' => Tok::In,
            '∪' => Tok::Cup,
            'π' => Tok::Pi,
            '∞' => Tok::Inf,
            '√' => Tok::Sqrt,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBrack,
            ']' => Tok::RBrack,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '|' => Tok::Bar,
            '&' => Tok::Amp,
            '°' | '$' | '\'' => {
                i += 1;
                continue;
            }
            _ => return Err(err(i, &format!("unexpected character {c:?}"))),
        };
        out.push(t);
        i += 1;
    }
    Ok(out)
}

fn word_prefix(word: &str) -> Option<(usize, Tok)> {
    for (n, f) in WORD_FUNCS {
        if word.starts_with(n) {
            return Some((n.len(), Tok::Func(*f)));
        }
    }
    for (n, t) in [
        ("sqrt", Tok::Sqrt),
        ("infty", Tok::Inf),
        ("inf", Tok::Inf),
        ("pi", Tok::Pi),
    ] {
        if word.starts_with(n) {
            return Some((n.len(), t));
        }
    }
    None
}

fn subscript(cs: &[char], i: usize) -> (String, usize) {
    if i < cs.len() && cs[i] == '{' {
        let mut j = i + 1;
        while j < cs.len() && cs[j] != '}' && cs[j] != '{' {
            j += 1;
        }
        if j < cs.len() && cs[j] == '}' {
            let s: String = cs[i + 1..j].iter().filter(|c| !c.is_whitespace()).collect();
            return (s, j + 1);
        }
        return (String::new(), i);
    }
    if i < cs.len() && cs[i].is_ascii_alphanumeric() {
        return (cs[i].to_string(), i + 1);
    }
    (String::new(), i)
}

fn braced_word(cs: &[char], mut i: usize) -> (String, usize) {
    while i < cs.len() && cs[i] == ' ' {
        i += 1;
    }
    if i < cs.len() && cs[i] == '{' {
        let mut j = i + 1;
        while j < cs.len() && cs[j] != '}' {
            j += 1;
        }
        let w: String = cs[(i + 1).min(j)..j].iter().collect();
        return (w, (j + 1).min(cs.len()));
    }
    (String::new(), i)
}

/// Expression trees.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(BigRational),
    /// A number written with a decimal point (`0.1666667`, `1.5e-3`): its exact value and
    /// the number of decimals it shows (comparisons may round to them).
    Float(BigRational, u32),
    Var(String),
    Pi,
    E,
    I,
    Inf,
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    /// `a ± b`, expanded into two answers by [`expand_pm`].
    PlusMinus(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Sqrt(Box<Expr>),
    Root(Box<Expr>, Box<Expr>),
    Func(Func, Box<Expr>),
    LogBase(Box<Expr>, Box<Expr>),
    Fact(Box<Expr>),
    Percent(Box<Expr>),
    Abs(Box<Expr>),
    Floor(Box<Expr>),
    Ceil(Box<Expr>),
    Binom(Box<Expr>, Box<Expr>),
}

fn b(e: Expr) -> Box<Expr> {
    Box::new(e)
}

/// Parses a number literal (`12`, `3.25`, `.5`, `1.5e-3`) exactly.
pub fn parse_number(s: &str, budget: &mut Budget) -> R<BigRational> {
    budget.spend(s.len() as u64)?;
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(k) => (&s[..k], s[k + 1..].parse::<i64>().unwrap_or(0)),
        None => (s, 0),
    };
    let mant = mant.trim_end_matches('.');
    let (ip, fp) = match mant.find('.') {
        Some(k) => (&mant[..k], &mant[k + 1..]),
        None => (mant, ""),
    };
    let digits = format!("{ip}{fp}");
    let n: BigInt = if digits.is_empty() {
        BigInt::zero()
    } else {
        digits.parse().map_err(|_| ExprError::Parse {
            pos: 0,
            msg: format!("bad number {s}"),
        })?
    };
    let scale = exp - fp.len() as i64;
    if scale.abs() > 4000 {
        return Err(ExprError::Budget);
    }
    budget.spend(scale.unsigned_abs())?;
    let ten = BigInt::from(10);
    let p = num_traits::pow(ten, scale.unsigned_abs() as usize);
    Ok(if scale >= 0 {
        BigRational::from_integer(n * p)
    } else {
        BigRational::new(n, p)
    })
}

/// The number of decimals a literal shows (`1.250` → 3, `1.5e-3` → 4), or `None` when it
/// has no decimal point (an integer).
pub fn shown_decimals(s: &str) -> Option<u32> {
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(k) => (&s[..k], s[k + 1..].parse::<i64>().unwrap_or(0)),
        None => (s, 0),
    };
    let k = mant.find('.')?;
    let frac = (mant.len() - k - 1) as i64;
    Some((frac - exp).clamp(0, 64) as u32)
}

/// Recursive-descent parser over a token slice.
pub struct Parser<'a, 'b> {
    toks: &'a [Tok],
    pos: usize,
    depth: usize,
    budget: &'b mut Budget,
}

impl<'a, 'b> Parser<'a, 'b> {
    /// A parser over `toks`.
    pub fn new(toks: &'a [Tok], budget: &'b mut Budget) -> Self {
        Parser {
            toks,
            pos: 0,
            depth: 0,
            budget,
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn err<T>(&self, msg: &str) -> R<T> {
        Err(ExprError::Parse {
            pos: self.pos,
            msg: msg.to_string(),
        })
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok) -> R<()> {
        if self.eat(t) {
            Ok(())
        } else {
            self.err(&format!("expected {t:?}"))
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        self.budget.spend(1)?;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::TooDeep(MAX_DEPTH));
        }
        Ok(())
    }

    /// Parses the whole slice as one expression.
    pub fn parse_all(mut self) -> R<Expr> {
        let e = self.expr()?;
        if self.pos != self.toks.len() {
            return self.err("trailing tokens");
        }
        Ok(e)
    }

    /// additive := term (('+' | '-' | '±') term)*
    pub fn expr(&mut self) -> R<Expr> {
        self.enter()?;
        let mut lhs = self.term()?;
        loop {
            self.budget.spend(1)?;
            match self.peek() {
                Some(Tok::Plus) => {
                    self.pos += 1;
                    lhs = Expr::Add(b(lhs), b(self.term()?));
                }
                Some(Tok::Minus) => {
                    self.pos += 1;
                    lhs = Expr::Sub(b(lhs), b(self.term()?));
                }
                Some(Tok::Pm) => {
                    self.pos += 1;
                    lhs = Expr::PlusMinus(b(lhs), b(self.term()?));
                }
                _ => break,
            }
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn starts_primary(&self) -> bool {
        matches!(
            self.peek(),
            Some(
                Tok::Num(_)
                    | Tok::Var(_)
                    | Tok::Func(_)
                    | Tok::Pi
                    | Tok::Inf
                    | Tok::Frac
                    | Tok::Sqrt
                    | Tok::Binom
                    | Tok::LParen
                    | Tok::LBrace
                    | Tok::Floor(true)
                    | Tok::Ceil(true)
            )
        )
    }

    /// term := unary (('*' | '/' | implicit) unary)*
    fn term(&mut self) -> R<Expr> {
        self.enter()?;
        let mut lhs = self.unary()?;
        loop {
            self.budget.spend(1)?;
            match self.peek() {
                Some(Tok::Mul) => {
                    self.pos += 1;
                    lhs = Expr::Mul(b(lhs), b(self.unary()?));
                }
                Some(Tok::Div) => {
                    self.pos += 1;
                    lhs = Expr::Div(b(lhs), b(self.unary()?));
                }
                _ if self.starts_primary() => {
                    let is_frac = self.peek() == Some(&Tok::Frac);
                    let rhs = self.power()?;
                    // mixed number: 3\frac{1}{2} = 3 + 1/2
                    let mixed = is_frac
                        && matches!(&rhs, Expr::Div(n, d) if matches!(**n, Expr::Num(_)) && matches!(**d, Expr::Num(_)));
                    lhs = match (mixed, lhs) {
                        (true, Expr::Num(n)) if n.is_integer() => {
                            Expr::Add(b(Expr::Num(n)), b(rhs))
                        }
                        (true, Expr::Neg(inner)) if matches!(&*inner, Expr::Num(n) if n.is_integer()) => {
                            Expr::Neg(b(Expr::Add(inner, b(rhs))))
                        }
                        (_, l) => Expr::Mul(b(l), b(rhs)),
                    };
                }
                _ => break,
            }
        }
        self.depth -= 1;
        Ok(lhs)
    }

    /// unary := ('-' | '+') unary | power
    fn unary(&mut self) -> R<Expr> {
        self.enter()?;
        let e = if self.eat(&Tok::Minus) {
            Expr::Neg(b(self.unary()?))
        } else if self.eat(&Tok::Plus) {
            self.unary()?
        } else if self.eat(&Tok::Pm) {
            Expr::PlusMinus(b(Expr::Num(BigRational::zero())), b(self.unary()?))
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(e)
    }

    /// power := postfix ('^' exponent)?   (right-associative)
    fn power(&mut self) -> R<Expr> {
        self.enter()?;
        let base = self.postfix()?;
        let e = if self.eat(&Tok::Pow) {
            let ex = self.exponent()?;
            let p = Expr::Pow(b(base), b(ex));
            self.post_ops(p)?
        } else {
            base
        };
        self.depth -= 1;
        Ok(e)
    }

    fn exponent(&mut self) -> R<Expr> {
        if self.eat(&Tok::Minus) {
            return Ok(Expr::Neg(b(self.exponent()?)));
        }
        // x^23 means x^{23} only with braces; a bare digit string is one token anyway.
        self.power()
    }

    fn post_ops(&mut self, mut e: Expr) -> R<Expr> {
        loop {
            self.budget.spend(1)?;
            if self.eat(&Tok::Bang) {
                e = Expr::Fact(b(e));
            } else if self.eat(&Tok::Percent) {
                e = Expr::Percent(b(e));
            } else {
                return Ok(e);
            }
        }
    }

    fn postfix(&mut self) -> R<Expr> {
        let p = self.primary()?;
        self.post_ops(p)
    }

    fn group(&mut self) -> R<Expr> {
        // `{...}` or a single primary (for \frac12-style arguments).
        if self.eat(&Tok::LBrace) {
            let e = self.expr()?;
            self.expect(&Tok::RBrace)?;
            Ok(e)
        } else {
            self.primary()
        }
    }

    fn primary(&mut self) -> R<Expr> {
        self.enter()?;
        let t = match self.peek() {
            Some(t) => t.clone(),
            None => return self.err("unexpected end"),
        };
        self.pos += 1;
        let e = match t {
            Tok::Num(s) => {
                let q = parse_number(&s, self.budget)?;
                match shown_decimals(&s) {
                    Some(d) => Expr::Float(q, d),
                    None => Expr::Num(q),
                }
            }
            Tok::Var(v) => match v.as_str() {
                "e" => Expr::E,
                "i" => Expr::I,
                _ => Expr::Var(v),
            },
            Tok::Pi => Expr::Pi,
            Tok::Inf => Expr::Inf,
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(&Tok::RParen)?;
                e
            }
            Tok::LBrace => {
                let e = self.expr()?;
                self.expect(&Tok::RBrace)?;
                e
            }
            Tok::Bar => {
                let e = self.expr()?;
                self.expect(&Tok::Bar)?;
                Expr::Abs(b(e))
            }
            Tok::Floor(true) => {
                let e = self.expr()?;
                self.expect(&Tok::Floor(false))?;
                Expr::Floor(b(e))
            }
            Tok::Ceil(true) => {
                let e = self.expr()?;
                self.expect(&Tok::Ceil(false))?;
                Expr::Ceil(b(e))
            }
            Tok::Frac => {
                let n = self.group()?;
                let d = self.group()?;
                Expr::Div(b(n), b(d))
            }
            Tok::Binom => {
                let n = self.group()?;
                let k = self.group()?;
                Expr::Binom(b(n), b(k))
            }
            Tok::Sqrt => {
                if self.eat(&Tok::LBrack) {
                    let idx = self.expr()?;
                    self.expect(&Tok::RBrack)?;
                    let a = self.group()?;
                    Expr::Root(b(a), b(idx))
                } else {
                    Expr::Sqrt(b(self.group()?))
                }
            }
            Tok::Func(f) => {
                // \log_2 x, \sin^2 x, \sin(x), \sin x
                let mut base = None;
                if f == Func::Log && self.eat(&Tok::Under) {
                    base = Some(self.group()?);
                }
                let mut pw = None;
                if self.eat(&Tok::Pow) {
                    pw = Some(self.exponent()?);
                }
                let arg = if self.peek() == Some(&Tok::LParen) || self.peek() == Some(&Tok::LBrace)
                {
                    self.primary()?
                } else {
                    self.unary_arg()?
                };
                let mut e = match base {
                    Some(bs) => Expr::LogBase(b(arg), b(bs)),
                    None => Expr::Func(f, b(arg)),
                };
                if let Some(p) = pw {
                    e = if matches!(&p, Expr::Neg(x) if matches!(**x, Expr::Num(ref n) if n.is_one()))
                    {
                        // \sin^{-1} = arcsin
                        match e {
                            Expr::Func(Func::Sin, a) => Expr::Func(Func::Asin, a),
                            Expr::Func(Func::Cos, a) => Expr::Func(Func::Acos, a),
                            Expr::Func(Func::Tan, a) => Expr::Func(Func::Atan, a),
                            other => Expr::Pow(b(other), b(p)),
                        }
                    } else {
                        Expr::Pow(b(e), b(p))
                    };
                }
                e
            }
            _ => {
                self.pos -= 1;
                return self.err(&format!("unexpected {t:?}"));
            }
        };
        self.depth -= 1;
        Ok(e)
    }

    /// Argument of a function written without parentheses: `\sin 2x` reads `\sin(2x)`
    /// (a product of primaries and powers, stopping at + - and relations).
    fn unary_arg(&mut self) -> R<Expr> {
        let mut e = self.power()?;
        while self.starts_primary() && !matches!(self.peek(), Some(Tok::Func(_))) {
            self.budget.spend(1)?;
            e = Expr::Mul(b(e), b(self.power()?));
        }
        Ok(e)
    }
}

/// Expands every `a ± b` into `a + b` and `a - b` (at most 16 results). Every node copied is
/// paid for from the budget.
pub fn expand_pm(e: &Expr, budget: &mut Budget) -> R<Vec<Expr>> {
    const MAX: usize = 16;
    type F = fn(Box<Expr>, Box<Expr>) -> Expr;
    fn combine(xs: &[Expr], ys: &[Expr], f: F, out: &mut Vec<Expr>, budget: &mut Budget) -> R<()> {
        for x in xs {
            for y in ys {
                if out.len() >= MAX {
                    return Ok(());
                }
                budget.spend(size(x) + size(y))?;
                out.push(f(b(x.clone()), b(y.clone())));
            }
        }
        Ok(())
    }
    fn go(e: &Expr, budget: &mut Budget) -> R<Vec<Expr>> {
        budget.spend(1)?;
        if !has_pm(e) {
            budget.spend(size(e))?;
            return Ok(vec![e.clone()]);
        }
        let mut out = Vec::new();
        match e {
            Expr::PlusMinus(a, c) => {
                let (xs, ys) = (go(a, budget)?, go(c, budget)?);
                combine(&xs, &ys, Expr::Add, &mut out, budget)?;
                combine(&xs, &ys, Expr::Sub, &mut out, budget)?;
            }
            Expr::Add(a, c) => combine(
                &go(a, budget)?,
                &go(c, budget)?,
                Expr::Add,
                &mut out,
                budget,
            )?,
            Expr::Sub(a, c) => combine(
                &go(a, budget)?,
                &go(c, budget)?,
                Expr::Sub,
                &mut out,
                budget,
            )?,
            Expr::Mul(a, c) => combine(
                &go(a, budget)?,
                &go(c, budget)?,
                Expr::Mul,
                &mut out,
                budget,
            )?,
            Expr::Div(a, c) => combine(
                &go(a, budget)?,
                &go(c, budget)?,
                Expr::Div,
                &mut out,
                budget,
            )?,
            Expr::Neg(a) => out.extend(go(a, budget)?.into_iter().map(|x| Expr::Neg(b(x)))),
            other => out.push(other.clone()),
        }
        Ok(out)
    }
    go(e, budget)
}

/// Whether the tree holds a `±`.
pub fn has_pm(e: &Expr) -> bool {
    match e {
        Expr::PlusMinus(..) => true,
        Expr::Add(a, c) | Expr::Sub(a, c) | Expr::Mul(a, c) | Expr::Div(a, c) => {
            has_pm(a) || has_pm(c)
        }
        Expr::Neg(a) => has_pm(a),
        _ => false,
    }
}

/// Number of nodes of the tree (what cloning or traversing it costs).
pub fn size(e: &Expr) -> u64 {
    1 + match e {
        Expr::Add(a, c)
        | Expr::Sub(a, c)
        | Expr::PlusMinus(a, c)
        | Expr::Mul(a, c)
        | Expr::Div(a, c)
        | Expr::Pow(a, c)
        | Expr::Root(a, c)
        | Expr::LogBase(a, c)
        | Expr::Binom(a, c) => size(a) + size(c),
        Expr::Neg(a)
        | Expr::Sqrt(a)
        | Expr::Func(_, a)
        | Expr::Fact(a)
        | Expr::Percent(a)
        | Expr::Abs(a)
        | Expr::Floor(a)
        | Expr::Ceil(a) => size(a),
        _ => 0,
    }
}

/// Whether the tree holds a `%`.
pub fn has_percent(e: &Expr) -> bool {
    match e {
        Expr::Percent(_) => true,
        Expr::Add(a, c)
        | Expr::Sub(a, c)
        | Expr::PlusMinus(a, c)
        | Expr::Mul(a, c)
        | Expr::Div(a, c)
        | Expr::Pow(a, c)
        | Expr::Root(a, c)
        | Expr::LogBase(a, c)
        | Expr::Binom(a, c) => has_percent(a) || has_percent(c),
        Expr::Neg(a)
        | Expr::Sqrt(a)
        | Expr::Func(_, a)
        | Expr::Fact(a)
        | Expr::Abs(a)
        | Expr::Floor(a)
        | Expr::Ceil(a) => has_percent(a),
        _ => false,
    }
}

/// Free variable names, sorted and deduplicated.
pub fn free_vars(e: &Expr) -> Vec<String> {
    fn go(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Var(v) => out.push(v.clone()),
            Expr::Add(a, c)
            | Expr::Sub(a, c)
            | Expr::PlusMinus(a, c)
            | Expr::Mul(a, c)
            | Expr::Div(a, c)
            | Expr::Pow(a, c)
            | Expr::Root(a, c)
            | Expr::LogBase(a, c)
            | Expr::Binom(a, c) => {
                go(a, out);
                go(c, out);
            }
            Expr::Neg(a)
            | Expr::Sqrt(a)
            | Expr::Func(_, a)
            | Expr::Fact(a)
            | Expr::Percent(a)
            | Expr::Abs(a)
            | Expr::Floor(a)
            | Expr::Ceil(a) => go(a, out),
            _ => {}
        }
    }
    let mut v = Vec::new();
    go(e, &mut v);
    v.sort();
    v.dedup();
    v
}

/// Whether the tree is `±∞`; returns its sign.
pub fn infinity_sign(e: &Expr) -> Option<i8> {
    match e {
        Expr::Inf => Some(1),
        Expr::Neg(a) => infinity_sign(a).map(|s| -s),
        _ => None,
    }
}

/// Largest power (in bits of numerator + denominator) computed exactly.
const MAX_EXACT_BITS: u64 = 8192;

/// Largest integer exponent evaluated exactly.
const MAX_EXACT_EXP: u64 = 10_000;

/// Exact evaluation over the rationals: `Ok(None)` when the value is not rational or uses
/// something other than + − × ÷, integer powers, perfect-square roots, factorials, binomials,
/// floor/ceil/abs and percent (`percent_scale` divides by 100).
pub fn eval_exact(e: &Expr, percent_scale: bool, budget: &mut Budget) -> R<Option<BigRational>> {
    budget.spend(1)?;
    let cost = |q: &BigRational| (q.numer().bits() + q.denom().bits()) / 64 + 1;
    macro_rules! ev {
        ($x:expr) => {
            match eval_exact($x, percent_scale, budget)? {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    Ok(Some(match e {
        Expr::Num(q) | Expr::Float(q, _) => q.clone(),
        Expr::Add(a, c) => {
            let (x, y) = (ev!(a), ev!(c));
            budget.spend(cost(&x) * cost(&y))?;
            x + y
        }
        Expr::Sub(a, c) => {
            let (x, y) = (ev!(a), ev!(c));
            budget.spend(cost(&x) * cost(&y))?;
            x - y
        }
        Expr::Mul(a, c) => {
            let (x, y) = (ev!(a), ev!(c));
            if (cost(&x) + cost(&y)) * 64 > 4 * MAX_EXACT_BITS {
                return Ok(None);
            }
            budget.spend(cost(&x) * cost(&y))?;
            x * y
        }
        Expr::Div(a, c) => {
            let (x, y) = (ev!(a), ev!(c));
            if y.is_zero() {
                return Ok(None);
            }
            budget.spend(cost(&x) * cost(&y))?;
            x / y
        }
        Expr::Neg(a) => -ev!(a),
        Expr::Percent(a) => {
            let x = ev!(a);
            if percent_scale {
                x / BigRational::from_integer(100.into())
            } else {
                x
            }
        }
        Expr::Pow(a, c) => {
            let (x, y) = (ev!(a), ev!(c));
            if !y.is_integer() {
                return Ok(None);
            }
            let Some(n) = y.numer().to_i64() else {
                return Ok(None);
            };
            if n.unsigned_abs() > MAX_EXACT_EXP {
                return Ok(None);
            }
            if x.is_zero() && n < 0 {
                return Ok(None);
            }
            let bits = x.numer().bits() + x.denom().bits();
            let result_bits = bits.saturating_mul(n.unsigned_abs());
            if result_bits > MAX_EXACT_BITS {
                // too big to be worth exact arithmetic: the numeric path decides
                return Ok(None);
            }
            budget.spend(result_bits / 32 + 1)?;
            let p = num_traits::pow(x, n.unsigned_abs() as usize);
            if n < 0 {
                p.recip()
            } else {
                p
            }
        }
        Expr::Sqrt(a) => {
            let x = ev!(a);
            if x.is_negative() {
                return Ok(None);
            }
            let (n, d) = (x.numer().sqrt(), x.denom().sqrt());
            budget.spend(cost(&x))?;
            let r = BigRational::new(n, d);
            if &r * &r == x {
                r
            } else {
                return Ok(None);
            }
        }
        Expr::Fact(a) => {
            let x = ev!(a);
            let Some(n) = x.to_integer().to_u64().filter(|_| x.is_integer()) else {
                return Ok(None);
            };
            if n > 1000 {
                return Ok(None);
            }
            // Σ words(k!) word operations
            budget.spend(n * n / 16 + 1)?;
            let mut acc = BigInt::one();
            for k in 2..=n {
                acc *= k;
            }
            BigRational::from_integer(acc)
        }
        Expr::Binom(a, c) => {
            let (x, y) = (ev!(a), ev!(c));
            let (Some(n), Some(k)) = (
                x.to_integer().to_u64().filter(|_| x.is_integer()),
                y.to_integer().to_u64().filter(|_| y.is_integer()),
            ) else {
                return Ok(None);
            };
            if k > n || n > 5000 {
                return Ok(Some(BigRational::zero()));
            }
            budget.spend(n + 1)?;
            let k = k.min(n - k);
            let mut acc = BigInt::one();
            for j in 0..k {
                acc = acc * (n - j) / (j + 1);
            }
            BigRational::from_integer(acc)
        }
        Expr::Abs(a) => ev!(a).abs(),
        Expr::Floor(a) => BigRational::from_integer(ev!(a).floor().to_integer()),
        Expr::Ceil(a) => BigRational::from_integer(ev!(a).ceil().to_integer()),
        _ => return Ok(None),
    }))
}

/// A complex number for numeric evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct C {
    pub re: f64,
    pub im: f64,
}

impl C {
    fn r(re: f64) -> C {
        C { re, im: 0.0 }
    }
    fn add(self, o: C) -> C {
        C {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    fn sub(self, o: C) -> C {
        C {
            re: self.re - o.re,
            im: self.im - o.im,
        }
    }
    fn mul(self, o: C) -> C {
        C {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    fn div(self, o: C) -> C {
        let d = o.re * o.re + o.im * o.im;
        C {
            re: (self.re * o.re + self.im * o.im) / d,
            im: (self.im * o.re - self.re * o.im) / d,
        }
    }
    fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    fn is_real(self) -> bool {
        self.im.abs() <= 1e-12 * (1.0 + self.re.abs())
    }
    fn ln(self) -> C {
        C {
            re: self.abs().ln(),
            im: self.im.atan2(self.re),
        }
    }
    fn exp(self) -> C {
        let m = self.re.exp();
        C {
            re: m * self.im.cos(),
            im: m * self.im.sin(),
        }
    }
    fn pow(self, o: C) -> C {
        if o.is_real() && o.re.fract() == 0.0 && o.re.abs() <= 64.0 {
            let n = o.re as i32;
            let mut acc = C::r(1.0);
            for _ in 0..n.unsigned_abs() {
                acc = acc.mul(self);
            }
            return if n < 0 { C::r(1.0).div(acc) } else { acc };
        }
        if self.is_real() && o.is_real() && self.re >= 0.0 {
            return C::r(self.re.powf(o.re));
        }
        if self.re == 0.0 && self.im == 0.0 {
            return C::r(0.0);
        }
        o.mul(self.ln()).exp()
    }
    fn sqrt(self) -> C {
        if self.is_real() && self.re >= 0.0 {
            return C::r(self.re.sqrt());
        }
        self.pow(C::r(0.5))
    }
    fn sin(self) -> C {
        C {
            re: self.re.sin() * self.im.cosh(),
            im: self.re.cos() * self.im.sinh(),
        }
    }
    fn cos(self) -> C {
        C {
            re: self.re.cos() * self.im.cosh(),
            im: -self.re.sin() * self.im.sinh(),
        }
    }
    fn real_only(self, f: fn(f64) -> f64) -> C {
        if self.is_real() {
            C::r(f(self.re))
        } else {
            C::r(f64::NAN)
        }
    }
}

/// Numeric evaluation with `vars` bound (unbound variables give NaN).
pub fn eval_num(
    e: &Expr,
    vars: &dyn Fn(&str) -> Option<f64>,
    percent_scale: bool,
    budget: &mut Budget,
) -> R<C> {
    budget.spend(1)?;
    let mut ev = |x: &Expr| eval_num(x, vars, percent_scale, budget);
    Ok(match e {
        Expr::Num(q) | Expr::Float(q, _) => C::r(q.to_f64().unwrap_or(f64::NAN)),
        Expr::Var(v) => C::r(vars(v).unwrap_or(f64::NAN)),
        Expr::Pi => C::r(std::f64::consts::PI),
        Expr::E => C::r(std::f64::consts::E),
        Expr::I => C { re: 0.0, im: 1.0 },
        Expr::Inf => C::r(f64::INFINITY),
        Expr::Add(a, c) => ev(a)?.add(ev(c)?),
        Expr::Sub(a, c) => ev(a)?.sub(ev(c)?),
        Expr::PlusMinus(..) => C::r(f64::NAN),
        Expr::Mul(a, c) => ev(a)?.mul(ev(c)?),
        Expr::Div(a, c) => ev(a)?.div(ev(c)?),
        Expr::Pow(a, c) => {
            let (x, y) = (ev(a)?, ev(c)?);
            x.pow(y)
        }
        Expr::Neg(a) => C::r(0.0).sub(ev(a)?),
        Expr::Sqrt(a) => ev(a)?.sqrt(),
        Expr::Root(a, n) => {
            let (x, k) = (ev(a)?, ev(n)?);
            if x.is_real() && k.is_real() && x.re < 0.0 && (k.re % 2.0).abs() == 1.0 {
                C::r(-(-x.re).powf(1.0 / k.re))
            } else {
                x.pow(C::r(1.0).div(k))
            }
        }
        Expr::Func(f, a) => {
            let x = ev(a)?;
            match f {
                Func::Sin => x.sin(),
                Func::Cos => x.cos(),
                Func::Tan => x.sin().div(x.cos()),
                Func::Sec => C::r(1.0).div(x.cos()),
                Func::Csc => C::r(1.0).div(x.sin()),
                Func::Cot => x.cos().div(x.sin()),
                Func::Asin => x.real_only(f64::asin),
                Func::Acos => x.real_only(f64::acos),
                Func::Atan => x.real_only(f64::atan),
                Func::Sinh => x.real_only(f64::sinh),
                Func::Cosh => x.real_only(f64::cosh),
                Func::Tanh => x.real_only(f64::tanh),
                Func::Ln => x.ln(),
                Func::Log => x.ln().div(C::r(10f64.ln())),
                Func::Exp => x.exp(),
            }
        }
        Expr::LogBase(a, base) => {
            let (x, bs) = (ev(a)?, ev(base)?);
            x.ln().div(bs.ln())
        }
        Expr::Fact(a) => {
            let x = ev(a)?;
            if x.is_real() && x.re >= 0.0 && x.re.fract() == 0.0 && x.re <= 170.0 {
                C::r((1..=x.re as u64).fold(1.0, |acc, k| acc * k as f64))
            } else {
                C::r(f64::NAN)
            }
        }
        Expr::Percent(a) => {
            let x = ev(a)?;
            if percent_scale {
                x.div(C::r(100.0))
            } else {
                x
            }
        }
        Expr::Abs(a) => C::r(ev(a)?.abs()),
        Expr::Floor(a) => ev(a)?.real_only(f64::floor),
        Expr::Ceil(a) => ev(a)?.real_only(f64::ceil),
        Expr::Binom(a, c) => {
            let (n, k) = (ev(a)?, ev(c)?);
            if !(n.is_real() && k.is_real()) || k.re.fract() != 0.0 || k.re < 0.0 || k.re > 1e4 {
                C::r(f64::NAN)
            } else {
                let mut acc = 1.0;
                for j in 0..k.re as u64 {
                    acc = acc * (n.re - j as f64) / (j as f64 + 1.0);
                }
                C::r(acc)
            }
        }
    })
}

/// Whether two numeric values agree within a relative tolerance (infinities by sign).
pub fn close(a: C, b: C, rel_tol: f64) -> bool {
    if a.re.is_infinite() || b.re.is_infinite() {
        return a.re == b.re && a.im.is_finite() && b.im.is_finite();
    }
    let scale = 1f64.max(a.abs()).max(b.abs());
    a.sub(b).abs() <= rel_tol * scale
}

/// Deterministic pseudo-random value for variable `name` at sample point `k` (in 0.35..2.35,
/// avoiding integers and common special points).
pub fn sample_value(name: &str, k: u32) -> f64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ (k as u64).wrapping_mul(0x9e3779b97f4a7c15);
    for byte in name.bytes() {
        h ^= byte as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    0.35 + (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0
}
