//! Property tests: the parser and the math verifier never panic and stay fast on arbitrary
//! input, and exact arithmetic agrees with integer facts.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rlvr_verify::expr::{lex, Budget, Parser};
use rlvr_verify::math::{answers_equal, Extraction, MathConfig, MathVerifier};
use rlvr_verify::{Verifier, VerifyInput};
use serde_json::Value;

/// LaTeX-ish fragments, so that random strings reach deep into the parser.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\\frac".to_string()),
        Just("\\sqrt".to_string()),
        Just("\\boxed{".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("\\{".to_string()),
        Just("\\}".to_string()),
        Just("^".to_string()),
        Just("_".to_string()),
        Just("!".to_string()),
        Just("\\pi".to_string()),
        Just("\\infty".to_string()),
        Just("\\pm".to_string()),
        Just("\\cup".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("\\le".to_string()),
        Just("\\sin".to_string()),
        Just("\\log_".to_string()),
        Just("\\text{".to_string()),
        Just("\\begin{pmatrix}".to_string()),
        Just("\\end{pmatrix}".to_string()),
        Just("\\\\".to_string()),
        Just("&".to_string()),
        Just("%".to_string()),
        Just("\\%".to_string()),
        Just("\\!".to_string()),
        Just("\\left(".to_string()),
        Just("\\right)".to_string()),
        Just("^\\circ".to_string()),
        Just("$".to_string()),
        Just(" ".to_string()),
        Just("-".to_string()),
        Just("+".to_string()),
        Just("/".to_string()),
        Just("e".to_string()),
        Just("i".to_string()),
        "[a-z]",
        "[0-9]{1,6}",
        "[0-9]+\\.[0-9]+",
        "[0-9]e[0-9]{1,5}",
        any::<char>().prop_map(|c| c.to_string()),
        // the grammar of the hard pairs: relations, ratios, lists, spans, several boxes
        prop_oneof![
            Just("\\approx".to_string()),
            Just(":".to_string()),
            Just(";".to_string()),
            Just("!=".to_string()),
            Just(">=".to_string()),
            Just(" or ".to_string()),
            Just("\\text{ and }".to_string()),
            Just("</think>".to_string()),
            Just("\\(".to_string()),
            Just("\\)".to_string()),
            Just("\\[".to_string()),
            Just("\\]".to_string()),
            Just("$$".to_string()),
            Just("\n".to_string()),
            Just("\\begin{array}{cc}".to_string()),
            Just("\\end{array}".to_string()),
            Just("\\begin{Bmatrix}".to_string()),
            Just("\\end{Bmatrix}".to_string()),
            Just("0.1666667".to_string()),
            Just(".5".to_string()),
            Just("Final answer: ".to_string()),
            Just("$\\boxed{2}$ and $\\boxed{".to_string()),
        ],
        // the forms read since the Math-Verify test-suite comparison
        prop_oneof![
            Just("\\quad".to_string()),
            Just("\\text{ for part (a) and }".to_string()),
            Just(" papers and ".to_string()),
            Just("{,}".to_string()),
            Just("\\\\frac".to_string()),
            Just("\\\\left(".to_string()),
            Just("p=5,q=2;".to_string()),
            Just("|AB|=".to_string()),
            Just("f(x)<".to_string()),
            Just("1000,99".to_string()),
            Just("0,111".to_string()),
            Just("Final Answer: The final answer is $".to_string()),
            Just(". I hope it is correct.".to_string()),
            Just("(B)".to_string()),
            Just("**C**".to_string()),
            Just("\\\\ \\end{pmatrix}".to_string()),
        ],
    ]
}

fn latexish() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|v| v.concat())
}

/// Wall clock on a possibly loaded CI machine (one preempted case must not fail 400): the
/// bound catches an unbounded blow-up, not a slower CPU; typical cases take well under 10 ms.
const BOUND: Duration = Duration::from_secs(2);

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics(s in latexish()) {
        let t = Instant::now();
        let mut b = Budget::new(200_000);
        if let Ok(toks) = lex(&s, &mut b) {
            let _ = Parser::new(&toks, &mut b).parse_all();
        }
        prop_assert!(t.elapsed() < BOUND, "{s:?} took {:?}", t.elapsed());
    }

    #[test]
    fn verifier_never_panics_and_is_bounded(gold in latexish(), pred in latexish(), raw in ".{0,200}") {
        let all_modes = MathVerifier::new(MathConfig {
            extraction: vec![Extraction::String, Extraction::Latex, Extraction::Expression],
            relation_matches_set: true,
            ..MathConfig::default()
        });
        for v in [MathVerifier::default(), all_modes] {
        for resp in [format!("\\boxed{{{pred}}}"), raw.clone(), format!("The answer is {pred}.")] {
            let gt = Value::String(gold.clone());
            let t = Instant::now();
            let o = v.verify(&VerifyInput { response: &resp, ground_truth: &gt, metadata: &Value::Null });
            prop_assert!(t.elapsed() < BOUND, "{resp:?} vs {gold:?} took {:?}", t.elapsed());
            prop_assert!(o.score.is_finite());
            prop_assert!(o.details.is_object());
        }
        }
    }

    #[test]
    fn fractions_equal_their_decimals(n in -100_000i64..100_000, e2 in 0u32..6, e5 in 0u32..6) {
        let d = 2i64.pow(e2) * 5i64.pow(e5);
        let dec = format!("{}", n as f64 / d as f64);
        let frac = format!("\\frac{{{n}}}{{{d}}}");
        prop_assert!(answers_equal(&frac, &dec), "{} vs {}", frac, dec);
        let off = format!("{}", n as f64 / d as f64 + 1.0 / 128.0);
        prop_assert!(!answers_equal(&frac, &off), "{} vs {}", frac, off);
    }

    #[test]
    fn integers_compare_exactly(a in any::<i64>(), b in any::<i64>()) {
        prop_assert_eq!(answers_equal(&a.to_string(), &b.to_string()), a == b);
    }
}
