"""Hard (gold, response) pairs for the math verifier, grouped in the families of the
"agree with Math-Verify on the hard cases" issue, each labelled by Math-Verify itself.

    python3 bench/verify/make_hard_pairs.py            # writes bench/verify/hard_pairs.jsonl
    python3 bench/verify/make_hard_pairs.py --no-oracle OUT.jsonl   # pairs only, no labels

Every pair is built from fixed tables (no randomness). `intended` is what the pair was built to
be: equal or not, numbers compared at 6 decimals as Math-Verify does by default (so `0.1666667`
equals `\frac{1}{6}` and `0.17` does not; the `printed` precision mode of rlvr accepts both);
`mathverify` is Math-Verify's verdict with its defaults:
`parse("$" + gold + "$")` and `parse(response)` with the default extraction configs (LaTeX and
plain expressions), `verify(gold, pred)` with the default `float_rounding=6`, strict mode, and
timeouts disabled. Math-Verify runs from the cached venv of `run.sh`
(`$RLVR_MATHVERIFY_VENV`, default `$HOME/.cache/rlvr-mathverify-venv`, `math-verify==0.9.0`).

Each line: {"id", "batch", "family", "case", "gold", "response", "intended", "mathverify"}.
Batch 1 was written first and used while changing the verifier; batch 2 was written afterwards
and held out (its first measurement is reported apart).
"""
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))

# --- response shapes: how a model would write the answer -----------------------------------


def boxed(x):
    return f"We simplify step by step and check the result.\n\nTherefore the answer is $\\boxed{{{x}}}$."


def final_is(x):
    return f"Putting everything together, the final answer is ${x}$."


def answer_colon(x):
    return f"Let me work it out.\nAnswer: {x}"


def answer_is_plain(x):
    return f"After simplifying, the answer is {x}."


SHAPES = {"boxed": boxed, "final_is": final_is, "answer_colon": answer_colon, "plain": answer_is_plain}

pairs = []


def add(family, case, gold, response, intended):
    pairs.append(
        {"family": family, "case": case, "gold": gold, "response": response, "intended": intended}
    )


def add_shapes(family, case, gold, answer, intended, shapes):
    for s in shapes:
        add(family, f"{case}/{s}", gold, SHAPES[s](answer), intended)


# --- number formats -------------------------------------------------------------------------
F = "number_format"
for gold, eq, ne in [
    ("2500", "2 500", "2 600"),
    ("1234567", "1 234 567", "1 234 568"),
    ("10000", "10 000", "1 000"),
    ("45000", "45 000", "4 500"),
    ("3200", "3 200", "3 300"),
]:
    add_shapes(F, "thousands_space", gold, eq, True, ["boxed", "answer_colon", "plain"])
    add_shapes(F, "thousands_space", gold, ne, False, ["boxed", "answer_colon", "plain"])
for gold, eq, ne in [
    ("3.75", "3,75", "3,76"),
    ("0.5", "0,5", "0,6"),
    ("12.25", "12,25", "12,5"),
    ("2.5", "2,5", "2,05"),
]:
    add_shapes(F, "decimal_comma", gold, eq, True, ["boxed", "answer_colon", "plain"])
    add_shapes(F, "decimal_comma", gold, ne, False, ["boxed", "answer_colon"])
for gold, eq, ne in [
    ("0.25", ".25", ".025"),
    ("\\frac{1}{2}", ".5", ".05"),
    ("-\\frac{3}{4}", "-.75", "-.7"),
    ("0.125", ".125", ".1251"),
]:
    add_shapes(F, "leading_dot", gold, eq, True, ["boxed", "answer_colon", "plain"])
    add_shapes(F, "leading_dot", gold, ne, False, ["boxed", "answer_colon"])
for gold, eq, ne in [
    ("\\frac{7}{4}", "7/4", "4/7"),
    ("\\frac{3}{8}", "3/8", "3/7"),
    ("-\\frac{5}{2}", "-5/2", "5/2"),
    ("\\dfrac{12}{5}", "12/5", "12/6"),
    ("7/4", "\\frac{7}{4}", "\\frac{7}{3}"),
    ("\\frac{1}{3}", "1/3", "0.33"),
]:
    add_shapes(F, "plain_fraction", gold, eq, True, ["boxed", "answer_colon", "plain"])
    add_shapes(F, "plain_fraction", gold, ne, False, ["boxed", "plain"])
# decimals printed to a few places against exact values (equal or not at 6 decimals)
for gold, pred, intended in [
    ("\\frac{1}{6}", "0.1666667", True),
    ("\\frac{1}{6}", "0.166667", True),
    ("\\frac{1}{6}", "0.17", False),
    ("\\frac{1}{6}", "0.1667", False),
    ("\\frac{1}{6}", "0.16", False),
    ("\\frac{4}{3}", "1.333333", True),
    ("\\frac{4}{3}", "1.3333333", True),
    ("\\frac{4}{3}", "1.3333", False),
    ("\\frac{4}{3}", "1.34", False),
    ("\\frac{2}{3}", "0.666667", True),
    ("\\frac{2}{3}", "0.6667", False),
    ("\\frac{2}{3}", "0.666", False),
    ("\\frac{1}{7}", "0.142857", True),
    ("\\frac{1}{7}", "0.142858", False),
    ("\\sqrt{2}", "1.414214", True),
    ("\\sqrt{2}", "1.41", False),
    ("\\sqrt{2}", "1.42", False),
    ("\\pi", "3.141593", True),
    ("\\pi", "3.14", False),
    ("\\pi", "3.15", False),
    ("2\\sqrt{3}", "3.464102", True),
    ("\\frac{22}{7}", "3.142857", True),
    ("\\frac{22}{7}", "3.141593", False),
]:
    add_shapes(F, "printed_precision", gold, pred, intended, ["boxed", "answer_colon"])
for gold, pred, intended in [
    ("\\left[0, \\frac{4}{3}\\right]", "[0, 1.333333]", True),
    ("\\left[0, \\frac{4}{3}\\right]", "[0, 1.3333]", False),
    ("\\left[0, \\frac{4}{3}\\right]", "[0, 1.34]", False),
    ("\\left(\\frac{1}{6}, 1\\right)", "(0.166667, 1)", True),
    ("\\left(\\frac{1}{6}, 1\\right)", "(0.17, 1)", False),
    ("\\begin{pmatrix} \\frac{1}{3} \\\\ \\frac{4}{3} \\end{pmatrix}",
     "\\begin{pmatrix} 0.333333 \\\\ 1.333333 \\end{pmatrix}", True),
    ("\\begin{pmatrix} \\frac{1}{3} \\\\ \\frac{4}{3} \\end{pmatrix}",
     "\\begin{pmatrix} 0.3333 \\\\ 1.3333 \\end{pmatrix}", False),
    ("\\begin{pmatrix} \\frac{1}{3} \\\\ \\frac{4}{3} \\end{pmatrix}",
     "\\begin{pmatrix} 0.3 \\\\ 1.4 \\end{pmatrix}", False),
    ("\\begin{pmatrix} \\frac{1}{2} & \\frac{2}{3} \\end{pmatrix}",
     "\\begin{pmatrix} 0.5 & 0.666667 \\end{pmatrix}", True),
]:
    add_shapes(F, "precision_structured", gold, pred, intended, ["boxed"])

# --- relations ------------------------------------------------------------------------------
F = "relation"
for gold, pred, intended, case in [
    ("y \\ge -2", "y >= -2", True, "ge_spelling"),
    ("y \\ge -2", "y \\geq -2", True, "ge_spelling"),
    ("y \\geq -2", "y\\ge-2", True, "ge_spelling"),
    ("y \\ge -2", "y \\geqslant -2", True, "ge_spelling"),
    ("y \\ge -2", "y ≥ -2", True, "ge_spelling"),
    ("y \\ge -2", "y > -2", False, "ge_spelling"),
    ("y \\ge -2", "y \\le -2", False, "ge_spelling"),
    ("y \\ge -2", "y >= 2", False, "ge_spelling"),
    ("x \\le 7", "x <= 7", True, "le_spelling"),
    ("x \\leq 7", "x \\le 7", True, "le_spelling"),
    ("x \\le 7", "x < 7", False, "le_spelling"),
    ("x < 5", "x \\lt 5", True, "lt_gt"),
    ("x > 5", "x \\gt 5", True, "lt_gt"),
    ("x < 5", "5 > x", True, "lt_gt"),
    ("x < 5", "5 \\gt x", True, "lt_gt"),
    ("x < 5", "x \\gt 5", False, "lt_gt"),
    ("x < 5", "x \\le 5", False, "lt_gt"),
    ("x \\neq 2", "x != 2", True, "ne_spelling"),
    ("x \\neq 2", "x \\ne 2", True, "ne_spelling"),
    ("x \\ne 2", "x \\neq 2", True, "ne_spelling"),
    ("x \\neq 2", "x ≠ 2", True, "ne_spelling"),
    ("x \\neq 2", "x \\neq 3", False, "ne_spelling"),
    ("x \\neq 2", "x = 2", False, "ne_spelling"),
    ("y > -3", "-y < 3", True, "negated_mirror"),
    ("x \\le 4", "-x \\ge -4", True, "negated_mirror"),
    ("a \\ge 1", "-a \\le -1", True, "negated_mirror"),
    ("y > -3", "-y > 3", False, "negated_mirror"),
    ("x \\le 4", "-x \\le -4", False, "negated_mirror"),
    ("x \\le 4", "4 \\ge x", True, "mirror"),
    ("x > 1", "1 < x", True, "mirror"),
    ("x > 1", "1 > x", False, "mirror"),
    ("y \\in [0,5]", "0 \\le y \\le 5", True, "ineq_interval"),
    ("[0,5]", "0 \\le y \\le 5", True, "ineq_interval"),
    ("0 \\le y \\le 5", "[0, 5]", True, "ineq_interval"),
    ("0 \\le y \\le 5", "y \\in [0, 5]", True, "ineq_interval"),
    ("(2, \\infty)", "x > 2", True, "ineq_interval"),
    ("x > 2", "(2, \\infty)", True, "ineq_interval"),
    ("x > 2", "x \\in (2, \\infty)", True, "ineq_interval"),
    ("(-\\infty, 3]", "x \\le 3", True, "ineq_interval"),
    ("[0,5]", "0 < y \\le 5", False, "ineq_interval"),
    ("(2, \\infty)", "x \\ge 2", False, "ineq_interval"),
    ("0 \\le y \\le 5", "[0, 6]", False, "ineq_interval"),
    ("0 \\le y \\le 5", "0 \\le y \\le 5", True, "ineq_same"),
    ("-1 < x < 3", "-1 < x < 3", True, "ineq_same"),
    ("-1 < x < 3", "-1 < x \\le 3", False, "ineq_same"),
    ("4", "y = 2+2 = 3+1 = 4", True, "chain"),
    ("10", "x = 3 + 7 = 10", True, "chain"),
    ("6", "2 \\cdot 3 = 6", True, "chain"),
    ("12", "AB = 3 \\cdot 4 = 12", True, "chain"),
    ("\\frac{1}{2}", "P = \\frac{3}{6} = \\frac{1}{2}", True, "chain"),
    ("5", "y = 2+2 = 4", False, "chain"),
    ("12", "AB = 12 = 13", False, "chain"),
    ("3.14", "\\pi \\approx 3.14", True, "approx"),
    ("\\pi", "\\pi \\approx 3.14", True, "approx"),
    ("1.41", "\\sqrt{2} \\approx 1.41", True, "approx"),
    ("0.33", "x \\approx 0.33", True, "approx"),
    ("0.33", "x \\approx 0.34", False, "approx"),
    ("x = 3", "x=3", True, "equation"),
    ("3", "x = 3", True, "equation"),
    ("x = 3", "3", True, "equation"),
    ("y = 2x + 1", "y = 1 + 2x", True, "equation"),
    ("x = 3", "x = 4", False, "equation"),
]:
    add_shapes(F, case, gold, pred, intended, ["boxed"])
for gold, pred, intended in [
    ("y \\ge -2", "y >= -2", True),
    ("x \\neq 2", "x != 2", True),
    ("x < 5", "x > 5", False),
]:
    add_shapes(F, "plain_relation", gold, pred, intended, ["answer_colon"])

# --- structures -----------------------------------------------------------------------------
F = "structure"
M = "1 & 2 \\\\ 3 & 4"
for gold, pred, intended, case in [
    (f"\\begin{{pmatrix}} {M} \\end{{pmatrix}}", f"\\begin{{bmatrix}} {M} \\end{{bmatrix}}", True, "matrix_env"),
    (f"\\begin{{pmatrix}} {M} \\end{{pmatrix}}",
     f"\\left[\\begin{{array}}{{cc}} {M} \\end{{array}}\\right]", True, "matrix_env"),
    (f"\\begin{{bmatrix}} {M} \\end{{bmatrix}}",
     f"\\left(\\begin{{array}}{{cc}} {M} \\end{{array}}\\right)", True, "matrix_env"),
    (f"\\begin{{pmatrix}} {M} \\end{{pmatrix}}", f"\\begin{{matrix}} {M} \\end{{matrix}}", True, "matrix_env"),
    (f"\\begin{{pmatrix}} {M} \\end{{pmatrix}}", f"\\begin{{Bmatrix}} {M} \\end{{Bmatrix}}", True, "matrix_env"),
    (f"\\begin{{pmatrix}} {M} \\end{{pmatrix}}", f"\\begin{{smallmatrix}} {M} \\end{{smallmatrix}}", True,
     "matrix_env"),
    (f"\\begin{{pmatrix}} {M} \\end{{pmatrix}}",
     "\\begin{bmatrix} 1 & 3 \\\\ 2 & 4 \\end{bmatrix}", False, "matrix_env"),
    (f"\\begin{{pmatrix}} {M} \\end{{pmatrix}}",
     "\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 5 \\end{array}\\right]", False, "matrix_env"),
    ("\\begin{pmatrix} 2 \\\\ -1 \\\\ 3 \\end{pmatrix}", "\\begin{bmatrix} 2 \\\\ -1 \\\\ 3 \\end{bmatrix}",
     True, "matrix_env"),
    ("\\begin{pmatrix} 2 \\\\ -1 \\\\ 3 \\end{pmatrix}",
     "\\left[\\begin{array}{c} 2 \\\\ -1 \\\\ 3 \\end{array}\\right]", True, "matrix_env"),
    ("\\begin{pmatrix} 2 \\\\ -1 \\\\ 3 \\end{pmatrix}", "\\begin{bmatrix} 2 \\\\ 1 \\\\ 3 \\end{bmatrix}",
     False, "matrix_env"),
    ("\\begin{pmatrix} \\frac{1}{2} & 0 \\\\ 0 & 1 \\end{pmatrix}",
     "\\begin{bmatrix} 0.5 & 0 \\\\ 0 & 1 \\end{bmatrix}", True, "matrix_env"),
    ("(1,2), (3,4)", "(3,4), (1,2)", True, "unordered_solutions"),
    ("(1,2), (3,4)", "(3,4); (1,2)", True, "unordered_solutions"),
    ("(1,2), (3,4)", "(1,2) \\text{ or } (3,4)", True, "unordered_solutions"),
    ("(1,2), (3,4)", "(2,1), (4,3)", False, "unordered_solutions"),
    ("(1,2), (3,4)", "(1,2), (3,5)", False, "unordered_solutions"),
    ("\\{1, 2, 3\\}", "\\{3, 1, 2\\}", True, "unordered_solutions"),
    ("\\{1, 2, 3\\}", "3, 2, 1", True, "unordered_solutions"),
    ("1, 2, 3", "\\{2, 3, 1\\}", True, "unordered_solutions"),
    ("\\{1, 2, 3\\}", "\\{1, 2, 4\\}", False, "unordered_solutions"),
    ("-3, 2", "2, -3", True, "unordered_solutions"),
    ("-3, 2", "2; -3", True, "unordered_solutions"),
    ("-3, 2", "x = 2 \\text{ or } x = -3", True, "unordered_solutions"),
    ("-3, 2", "x = 2, x = -3", True, "unordered_solutions"),
    ("-3, 2", "x=-3 \\text{ and } x=2", True, "unordered_solutions"),
    ("-3, 2", "2, 3", False, "unordered_solutions"),
    ("-3, 2", "x = 2 \\text{ or } x = 3", False, "unordered_solutions"),
    ("\\frac{1}{2}, -1", "-1, 0.5", True, "unordered_solutions"),
    ("(1,4)", "(a,b)=(1,4)", True, "labelled"),
    ("(1,4)", "(a, b) = (1, 4)", True, "labelled"),
    ("(1,4)", "(a,b)=(4,1)", False, "labelled"),
    ("6, 2", "PQ=6, RS=2", True, "labelled"),
    ("6, 2", "PQ = 6, RS = 3", False, "labelled"),
    ("3, 4", "x=3, y=4", True, "labelled"),
    ("3, 4", "x = 3, y = 5", False, "labelled"),
    ("5", "n = 5", True, "labelled"),
    ("5", "AB = 5", True, "labelled"),
    ("5", "n = 6", False, "labelled"),
    ("5", "5 \\text{ cm}", True, "units"),
    ("5", "5\\,\\text{cm}", True, "units"),
    ("5", "5 \\mathrm{~cm}", True, "units"),
    ("12", "12 \\text{ meters}", True, "units"),
    ("12", "12\\text{ m}^2", True, "units"),
    ("30", "30^\\circ", True, "units"),
    ("18", "\\$18", True, "units"),
    ("45", "45 \\text{ minutes}", True, "units"),
    ("5", "6 \\text{ cm}", False, "units"),
    ("12", "13 \\text{ meters}", False, "units"),
    ("3:8", "3:8", True, "ratio"),
    ("3:8", "\\frac{3}{8}", True, "ratio"),
    ("\\frac{3}{8}", "3:8", True, "ratio"),
    ("3:8", "3 : 8", True, "ratio"),
    ("3:8", "6:16", True, "ratio"),
    ("3:8", "8:3", False, "ratio"),
    ("2:3", "3:2", False, "ratio"),
    ("2:3", "0.666667", True, "ratio"),
]:
    add_shapes(F, case, gold, pred, intended, ["boxed"])
for gold, resp, intended in [
    ("2, 5", "The roots are $\\boxed{2}$ and $\\boxed{5}$.", True),
    ("2, 5", "The roots are $\\boxed{5}$ and $\\boxed{2}$.", True),
    ("2, 5", "So $x = \\boxed{2}$ or $x = \\boxed{5}$.", True),
    ("2, 5", "The roots are $\\boxed{2}$ and $\\boxed{6}$.", False),
    ("5", "First $\\boxed{3}$ was wrong; the answer is $\\boxed{5}$.", True),
    ("3", "First $\\boxed{3}$ was wrong; the answer is $\\boxed{5}$.", False),
    ("(1,4)", "We get $\\boxed{(a,b)=(1,4)}$.", True),
    ("-3, 2", "The solutions are $x=-3$ and $x=2$, so $\\boxed{x=-3, 2}$.", True),
]:
    add(F, "several_boxed", gold, resp, intended)

# --- extraction from free text ----------------------------------------------------------------
F = "extraction"
COT = (
    "Let $a_1 = 3$ and $a_{n+1} = 2a_n - 1$. Then $a_2 = 5$, $a_3 = 9$ and in general "
    "$a_n = 2^n + 1$. We need the smallest $n$ with $a_n > 1000$; since $2^9 = 512$ and "
    "$2^{10} = 1024$, "
)
for gold, resp, intended, case in [
    ("12", "Final answer: the smallest $k$ is 12.", True, "final_answer_phrase"),
    ("12", "Final answer: the smallest $k$ is 13.", False, "final_answer_phrase"),
    ("12", "The final answer is 12. I hope it is correct.", True, "final_answer_phrase"),
    ("12", "The final answer is $12$. I hope it is correct.", True, "final_answer_phrase"),
    ("\\frac{3}{4}", "The final answer is $\\frac{3}{4}$. I hope it is correct.", True, "final_answer_phrase"),
    ("\\frac{3}{4}", "The final answer is $\\frac{4}{3}$. I hope it is correct.", False, "final_answer_phrase"),
    ("7", "**Final Answer**: 7", True, "final_answer_phrase"),
    ("7", "**Final answer:** $7$", True, "final_answer_phrase"),
    ("7", "The answer is: 7", True, "final_answer_phrase"),
    ("7", "Answer: $x = 7$", True, "final_answer_phrase"),
    ("7", "Answer: $x = 8$", False, "final_answer_phrase"),
    ("10", COT + "the answer is $n = 10$.", True, "last_math_span"),
    ("10", COT + "we get $n = 10$.", True, "last_math_span"),
    ("10", COT + "we get \\(n = 10\\).", True, "last_math_span"),
    ("10", COT + "we get\n\\[ n = 10 \\]", True, "last_math_span"),
    ("10", COT + "we get $n = 9$.", False, "last_math_span"),
    ("10", COT + "so $n=10$ is the smallest such index, as required.", True, "last_math_span"),
    ("9", COT + "so $n=10$ is the smallest such index, as required.", False, "last_math_span"),
    ("\\frac{1}{2}", "The probability is $\\frac{1}{2}$ since the cases are symmetric.", True, "last_math_span"),
    ("\\frac{1}{2}", "Both are $\\frac{1}{3}$ and $\\frac{1}{2}$, so it is $\\frac{1}{2}$.", True,
     "last_math_span"),
    ("\\frac{1}{3}", "Both are $\\frac{1}{3}$ and $\\frac{1}{2}$, so it is $\\frac{1}{2}$.", False,
     "last_math_span"),
    ("5", "<think>\nMaybe the answer is 3. No, recheck: 2+3 = 5.\n</think>\nThe answer is $\\boxed{5}$.",
     True, "think_block"),
    ("5", "<think>\nThe answer is 3? Let me check.\n</think>\nThe answer is 5.", True, "think_block"),
    ("3", "<think>\nThe answer is 3? Let me check.\n</think>\nThe answer is 5.", False, "think_block"),
    ("5", "<think>\nI think $x=3$, wait, it is 5.\n</think>\nSo $x = 5$.", True, "think_block"),
    ("42", "She buys 6 packs of 7 pens, so she has 6 * 7 = 42 pens.", True, "plain_number"),
    ("42", "She buys 6 packs of 7 pens, so she has 42 pens in total.", True, "plain_number"),
    ("41", "She buys 6 packs of 7 pens, so she has 42 pens in total.", False, "plain_number"),
    ("18", "The total cost is \\$18.", True, "plain_number"),
    ("1250", "So the company earns 1,250 dollars.", True, "plain_number"),
    ("0.75", "So the ratio is 3/4.", True, "plain_number"),
]:
    add(F, case, gold, resp, intended)

# --- the other direction: things that are not answers ----------------------------------------
F = "not_an_answer"
for gold, resp, intended, case in [
    ("7", "The code is QX7B.", False, "letters_and_digits"),
    ("7", "QX7B", False, "letters_and_digits"),
    ("2", "Use the key A2B9 to open it.", False, "letters_and_digits"),
    ("9", "Use the key A2B9 to open it.", False, "letters_and_digits"),
    ("3", "I used model GPT3X for this.", False, "letters_and_digits"),
    ("7", "The code is QX7B, and the answer is 7.", True, "letters_and_digits"),
    ("5", "Ref: ab5cd", False, "letters_and_digits"),
    ("7", "So the value is $\n7\n$ as computed.", True, "split_delimiter"),
    ("7", "So the value is \\(\n7\n\\) as computed", True, "split_delimiter"),
    ("7", "The value is $\n7", True, "split_delimiter"),
    ("7", "The value is $x\n= 7$", True, "split_delimiter"),
    ("7", "I cannot determine the value.", False, "no_answer"),
    ("7", "", False, "no_answer"),
    ("7", "The answer is $\\boxed{}$.", False, "no_answer"),
    ("7", "The answer is seven.", False, "no_answer"),
]:
    add(F, case, gold, resp, intended)

# --- batch 2: held out. Written after the verifier was changed to agree on batch 1, and
# measured before looking at rlvr's answers on it (the README gives both figures).
BATCH1 = len(pairs)
F = "number_format"
for gold, resp, intended in [
    ("12500", "The total is 12 500 dollars.", True),
    ("1000000", "Answer: 1 000 000", True),
    ("1000000", "Answer: 1 000 001", False),
    ("12500", "$\\boxed{12\\,500}$", True),
    ("12500", "$\\boxed{12{,}500}$", True),
    ("12500", "$\\boxed{12\\ 500}$", True),
    ("12500", "$\\boxed{1\\,250}$", False),
    ("\\frac{3}{4}", "Answer: 0,75", True),
    ("1.5", "the answer is 1,5", True),
    ("15", "Answer: 1,5", False),
    ("\\frac34", "$\\boxed{.75}$", True),
    ("-\\frac{1}{2}", "$\\boxed{-.5}$", True),
    ("-\\frac{1}{2}", "$\\boxed{-.25}$", False),
    ("\\frac{22}{7}", "Answer: 22/7", True),
    ("-\\frac13", "Answer: -1/3", True),
    ("22/7", "$\\boxed{\\frac{22}{7}}$", True),
    ("\\frac{22}{7}", "Answer: 7/22", False),
    ("\\frac13", "$\\boxed{0.3333333}$", True),
    ("e", "$\\boxed{2.718282}$", True),
    ("\\frac{\\sqrt{2}}{2}", "$\\boxed{0.707107}$", True),
    ("\\frac{\\sqrt2}2", "$\\boxed{0.7071}$", False),
    ("\\frac{3}{2}", "$\\boxed{1.5}$", True),
    ("\\frac{1}{7}", "$\\boxed{0.142857142857}$", True),
    ("\\frac{1}{7}", "$\\boxed{0.142}$", False),
    ("\\left(\\frac13, \\frac23\\right)", "$\\boxed{(0.333333, 0.666667)}$", True),
    ("\\begin{pmatrix} \\frac{1}{2} \\\\ \\frac{1}{3} \\end{pmatrix}",
     "$\\boxed{\\begin{bmatrix} 0.5 \\\\ 0.333333 \\end{bmatrix}}$", True),
    ("\\begin{pmatrix} \\frac{1}{2} \\\\ \\frac{1}{3} \\end{pmatrix}",
     "$\\boxed{\\begin{bmatrix} 0.5 \\\\ 0.34 \\end{bmatrix}}$", False),
]:
    add(F, "batch2", gold, resp, intended)
F = "relation"
for gold, resp, intended in [
    ("x \\ge 3", "$\\boxed{x \\geqslant 3}$", True),
    ("x \\geq 3", "$\\boxed{3 \\leq x}$", True),
    ("x \\neq -1", "$\\boxed{x \\ne -1}$", True),
    ("x < 3", "$\\boxed{-2x > -6}$", True),
    ("x < 3", "$\\boxed{x > 3}$", False),
    ("7", "$\\boxed{a+b = 3+4 = 7}$", True),
    ("2", "$\\boxed{x = \\frac{6}{3} = 2}$", True),
    ("45", "$\\boxed{S_n = 45}$", True),
    ("9", "$\\boxed{f(2) = 9}$", True),
    ("9", "$\\boxed{f(2) = 8}$", False),
    ("2.45", "$\\boxed{x \\approx 2.45}$", True),
    ("\\sqrt{6}", "$\\boxed{\\sqrt{6} \\approx 2.45}$", True),
    ("x < 2", "$\\boxed{x \\in (-\\infty, 2)}$", True),
    ("x \\ge 1", "$\\boxed{[1, \\infty)}$", True),
    ("(-3, 3)", "$\\boxed{-3 < x < 3}$", True),
    ("x > 4", "Answer: x > 4", True),
    ("x > 4", "Answer: x < 4", False),
]:
    add(F, "batch2", gold, resp, intended)
F = "structure"
for gold, resp, intended in [
    ("\\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix}", "$\\boxed{\\left(\\begin{array}{c} 1 \\\\ 0 \\end{array}\\right)}$",
     True),
    ("\\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}",
     "$\\boxed{\\begin{bmatrix} 1 & 0 \\\\ 0 & -1 \\end{bmatrix}}$", False),
    ("\\pm 1", "$\\boxed{\\{-1, 1\\}}$", True),
    ("1, 2", "$\\boxed{1 \\text{ and } 2}$", True),
    ("(3,2), (2,3)", "$\\boxed{(2,3) \\text{ and } (3,2)}$", True),
    ("(3,2), (2,3)", "$\\boxed{(2,3) \\text{ and } (3,3)}$", False),
    ("(2,-1)", "$\\boxed{(x, y) = (2, -1)}$", True),
    ("2, 3", "$\\boxed{a = 2, b = 3}$", True),
    ("17", "$\\boxed{m+n = 17}$", True),
    ("17", "$\\boxed{m+n = 18}$", False),
    ("15", "$\\boxed{15\\text{ cm}^2}$", True),
    ("4", "$\\boxed{4 \\text{ hours}}$", True),
    ("1.5", "$\\boxed{\\$1.50}$", True),
    ("72", "$\\boxed{72^{\\circ}}$", True),
    ("2\\pi", "$\\boxed{2\\pi \\text{ cm}}$", True),
    ("\\frac12", "$\\boxed{1:2}$", True),
    ("1:2", "$\\boxed{2:4}$", True),
    ("1:2", "$\\boxed{2:1}$", False),
    ("3, 4", "So $\\boxed{3}$, $\\boxed{4}$.", True),
    ("\\pm 1", "$x = \\boxed{1}$ or $x = \\boxed{-1}$", True),
]:
    add(F, "batch2", gold, resp, intended)
F = "extraction"
for gold, resp, intended in [
    ("42", "Therefore, the final answer is: $\\boxed{42}$", True),
    ("\\frac{5}{6}", "The answer is $$\\frac{5}{6}$$", True),
    ("\\sqrt{3}", "So the minimum value is \\(\\sqrt{3}\\).", True),
    ("17", "**Answer:** 17", True),
    ("24", "Hence there are 24 ways. The answer is 24.", True),
    ("5", "<think>long reasoning with $x = 4$ first</think>\n\nThe value of $x$ is $5$.", True),
    ("4", "<think>long reasoning with $x = 4$ first</think>\n\nThe value of $x$ is $5$.", False),
    ("5", "We find $a = 3$, $b = 4$, and thus $c = 5$.", True),
    ("0.75", "Final answer: 3/4", True),
    ("\\frac12", "The final answer is $x=\\frac{1}{2}$. I hope it is correct.", True),
    ("5", "In the class there are 3 boys and 5 girls.", True),
    ("3", "In the class there are 3 boys and 5 girls.", False),
]:
    add(F, "batch2", gold, resp, intended)
F = "not_an_answer"
for gold, resp, intended in [
    ("3", "Model v2X3 gave it.", False),
    ("2", "Model v2X3 gave it.", False),
    ("12", "The value is $\n12\n$.", True),
    ("0", "I don't know.", False),
    ("2", "x2 = y", False),
    ("8", "The grid is 8x8.", True),
]:
    add(F, "batch2", gold, resp, intended)

for k, p in enumerate(pairs):
    p["id"] = k
    p["batch"] = 1 if k < BATCH1 else 2


def oracle(pairs):
    """Math-Verify's verdicts, from the cached venv (installed on first use)."""
    venv = os.environ.get("RLVR_MATHVERIFY_VENV") or os.path.expanduser("~/.cache/rlvr-mathverify-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        ver = os.environ.get("MATH_VERIFY_VERSION", "0.9.0")
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--quiet", f"math-verify=={ver}"], check=True)
    code = r"""
import json, sys, logging
logging.disable(logging.WARNING)
from math_verify import parse, verify, LatexExtractionConfig, ExprExtractionConfig
cfg = [LatexExtractionConfig(), ExprExtractionConfig()]
for line in sys.stdin:
    p = json.loads(line)
    try:
        g = parse("$" + p["gold"] + "$", extraction_config=cfg, parsing_timeout=None)
        r = parse(p["response"], extraction_config=cfg, parsing_timeout=None)
        ok = bool(verify(g, r, timeout_seconds=None))
    except Exception:
        ok = False
    print(json.dumps(ok))
"""
    inp = "".join(json.dumps({"gold": p["gold"], "response": p["response"]}) + "\n" for p in pairs)
    out = subprocess.run([py, "-c", code], input=inp, capture_output=True, text=True, check=True)
    res = [json.loads(l) for l in out.stdout.splitlines()]
    assert len(res) == len(pairs)
    return res


def main():
    args = sys.argv[1:]
    if args and args[0] == "--no-oracle":
        dest = args[1] if len(args) > 1 else "-"
        verdicts = [None] * len(pairs)
    else:
        dest = args[0] if args else os.path.join(here, "hard_pairs.jsonl")
        verdicts = oracle(pairs)
    f = sys.stdout if dest == "-" else open(dest, "w")
    for p, v in zip(pairs, verdicts):
        row = {k: p[k] for k in ["id", "batch", "family", "case", "gold", "response", "intended"]}
        row["mathverify"] = v
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    fams = {}
    for p, v in zip(pairs, verdicts):
        d = fams.setdefault(p["family"], [0, 0, 0])
        d[0] += 1
        d[1] += bool(v)
        d[2] += v == p["intended"]
    for fam, (n, eq, same) in fams.items():
        print(f"{fam}: {n} pairs, Math-Verify equal on {eq}, agrees with the intended label on {same}", file=sys.stderr)
    print(f"{len(pairs)} pairs", file=sys.stderr)


if __name__ == "__main__":
    main()
