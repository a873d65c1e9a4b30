//! Preference losses: values computed by hand from the formulas, finite-difference gradient
//! checks, and each loss decreasing when the chosen log-prob rises.

use candle_core::{DType, Device, Tensor, Var};
use rlvr_train::preference::{
    dpo_loss, ipo_loss, kto_loss, orpo_loss, rrhf_loss, simpo_loss, KlReference, PreferenceLoss,
};

fn t(v: &[f64]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn scalar(x: &Tensor) -> f64 {
    x.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

const PC: [f64; 3] = [-12.0, -30.5, -7.25];
const PR: [f64; 3] = [-14.0, -29.0, -9.0];
const RC: [f64; 3] = [-12.5, -31.0, -7.0];
const RR: [f64; 3] = [-13.0, -29.5, -8.5];
const LC: [usize; 3] = [10, 25, 4];
const LR: [usize; 3] = [12, 20, 6];

/// Checks d loss / d x against central differences of `f` (in f64), for a loss of (N,)
/// inputs where `f(x)` returns the loss.
fn fd_check(x0: &[f64], f: &dyn Fn(&Tensor) -> PreferenceLoss, what: &str) {
    let var = Var::from_tensor(&t(x0)).unwrap();
    let out = f(var.as_tensor());
    let grads = out.loss.backward().unwrap();
    let g = grads
        .get(var.as_tensor())
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let h = 1e-6;
    for i in 0..x0.len() {
        let mut up = x0.to_vec();
        up[i] += h;
        let mut dn = x0.to_vec();
        dn[i] -= h;
        let fd = (scalar(&f(&t(&up)).loss) - scalar(&f(&t(&dn)).loss)) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() <= 1e-6 * fd.abs().max(1e-3),
            "{what}: d/dx[{i}] autograd {} vs finite difference {fd}",
            g[i]
        );
    }
}

/// The loss falls when chosen log-probs rise (by `delta` each).
fn decreases(x0: &[f64], f: &dyn Fn(&Tensor) -> PreferenceLoss, what: &str) {
    let base = scalar(&f(&t(x0)).loss);
    let up: Vec<f64> = x0.iter().map(|x| x + 0.3).collect();
    let after = scalar(&f(&t(&up)).loss);
    assert!(after < base, "{what}: {after} is not below {base}");
}

#[test]
fn dpo() {
    let beta = 0.1;
    let out = dpo_loss(&t(&PC), &t(&PR), &t(&RC), &t(&RR), beta, 0.0).unwrap();
    let mut want = 0.0;
    for i in 0..3 {
        let h = (PC[i] - PR[i]) - (RC[i] - RR[i]);
        want += -sig(beta * h).ln() / 3.0;
    }
    close(scalar(&out.loss), want, 1e-12, "dpo loss");
    close(
        out.metric("rewards/chosen").unwrap(),
        beta * (0.5 + 0.5 - 0.25) / 3.0,
        1e-12,
        "chosen",
    );
    close(
        out.metric("rewards/rejected").unwrap(),
        beta * (-1.0 + 0.5 - 0.5) / 3.0,
        1e-12,
        "rejected",
    );
    // margins 0.15, 0.0, 0.025 → accuracy 2/3
    close(
        out.metric("rewards/accuracies").unwrap(),
        2.0 / 3.0,
        1e-12,
        "accuracies",
    );
    // label smoothing (cDPO)
    let ls = dpo_loss(&t(&PC), &t(&PR), &t(&RC), &t(&RR), beta, 0.1).unwrap();
    let mut want = 0.0;
    for i in 0..3 {
        let h = beta * ((PC[i] - PR[i]) - (RC[i] - RR[i]));
        want += (-0.9 * sig(h).ln() - 0.1 * sig(-h).ln()) / 3.0;
    }
    close(scalar(&ls.loss), want, 1e-12, "cdpo loss");
    let f = |x: &Tensor| dpo_loss(x, &t(&PR), &t(&RC), &t(&RR), beta, 0.1).unwrap();
    fd_check(&PC, &f, "dpo d/dchosen");
    decreases(&PC, &f, "dpo");
    let g = |x: &Tensor| dpo_loss(&t(&PC), x, &t(&RC), &t(&RR), beta, 0.0).unwrap();
    fd_check(&PR, &g, "dpo d/drejected");
}

#[test]
fn ipo() {
    let beta = 0.5;
    let out = ipo_loss(&t(&PC), &t(&PR), &t(&RC), &t(&RR), beta).unwrap();
    let want: f64 = (0..3)
        .map(|i| ((PC[i] - PR[i]) - (RC[i] - RR[i]) - 1.0).powi(2) / 3.0)
        .sum();
    close(scalar(&out.loss), want, 1e-12, "ipo");
    let f = |x: &Tensor| ipo_loss(x, &t(&PR), &t(&RC), &t(&RR), beta).unwrap();
    fd_check(&PC, &f, "ipo");
    // h < 1/(2β) for every pair here, so raising the chosen log-prob lowers the loss
    decreases(&PC, &f, "ipo");
}

#[test]
fn kto() {
    let (beta, wd, wu) = (0.1, 1.0, 1.33);
    let pol = [-10.0, -20.0, -5.0, -8.0];
    let reference = [-11.0, -19.0, -5.5, -7.0];
    let desirable = [true, false, true, false];
    let klp = [-30.0, -40.0];
    let klr = [-31.0, -40.5];
    let z0 = (1.0 + 0.5) / 2.0;
    let kl = KlReference::Mismatched {
        policy: &t(&klp),
        reference: &t(&klr),
    };
    let out = kto_loss(&t(&pol), &t(&reference), &desirable, kl, beta, wd, wu).unwrap();
    let mut want = 0.0;
    for i in 0..4 {
        let r = pol[i] - reference[i];
        want += if desirable[i] {
            wd * (1.0 - sig(beta * (r - z0)))
        } else {
            wu * (1.0 - sig(beta * (z0 - r)))
        } / 4.0;
    }
    close(scalar(&out.loss), want, 1e-12, "kto");
    close(out.metric("kl").unwrap(), z0, 1e-12, "kl");
    close(
        out.metric("rewards/chosen").unwrap(),
        beta * (1.0 + 0.5) / 2.0,
        1e-12,
        "chosen",
    );
    // a negative KL estimate is clamped at 0
    let neg = kto_loss(
        &t(&pol),
        &t(&reference),
        &desirable,
        KlReference::Value(-3.0),
        beta,
        wd,
        wu,
    )
    .unwrap();
    assert_eq!(neg.metric("kl"), Some(0.0));
    let f = |x: &Tensor| {
        kto_loss(
            x,
            &t(&reference),
            &desirable,
            KlReference::Value(z0),
            beta,
            wd,
            wu,
        )
        .unwrap()
    };
    fd_check(&pol, &f, "kto");
    // raise only the desirable (chosen) examples
    let base = scalar(&f(&t(&pol)).loss);
    let up: Vec<f64> = pol
        .iter()
        .zip(&desirable)
        .map(|(x, &d)| if d { x + 0.3 } else { *x })
        .collect();
    assert!(scalar(&f(&t(&up)).loss) < base);
    assert!(kto_loss(
        &t(&pol),
        &t(&reference),
        &desirable[..3],
        KlReference::Value(0.0),
        beta,
        wd,
        wu
    )
    .is_err());
}

#[test]
fn orpo() {
    let lambda = 0.1;
    let out = orpo_loss(&t(&PC), &t(&PR), &LC, &LR, lambda).unwrap();
    let mut nll = 0.0;
    let mut lor = 0.0;
    for i in 0..3 {
        let (c, r) = (PC[i] / LC[i] as f64, PR[i] / LR[i] as f64);
        let odds = (c - (1.0 - c.exp()).ln()) - (r - (1.0 - r.exp()).ln());
        nll += -c / 3.0;
        lor += -sig(odds).ln() / 3.0;
    }
    close(scalar(&out.loss), nll + lambda * lor, 1e-12, "orpo");
    close(out.metric("nll_loss").unwrap(), nll, 1e-12, "nll");
    let f = |x: &Tensor| orpo_loss(x, &t(&PR), &LC, &LR, lambda).unwrap();
    fd_check(&PC, &f, "orpo");
    decreases(&PC, &f, "orpo");
    // log-probs must be negative
    assert!(orpo_loss(&t(&[0.5, -1.0, -1.0]), &t(&PR), &LC, &LR, lambda).is_err());
    assert!(orpo_loss(&t(&PC), &t(&PR), &LC[..2], &LR, lambda).is_err());
}

#[test]
fn simpo() {
    let (beta, gamma) = (2.0, 0.5);
    let out = simpo_loss(&t(&PC), &t(&PR), &LC, &LR, beta, gamma).unwrap();
    let want: f64 = (0..3)
        .map(|i| {
            let m = beta * PC[i] / LC[i] as f64 - beta * PR[i] / LR[i] as f64 - gamma;
            -sig(m).ln() / 3.0
        })
        .sum();
    close(scalar(&out.loss), want, 1e-12, "simpo");
    close(
        out.metric("rewards/chosen").unwrap(),
        (0..3).map(|i| beta * PC[i] / LC[i] as f64).sum::<f64>() / 3.0,
        1e-12,
        "chosen reward",
    );
    let f = |x: &Tensor| simpo_loss(x, &t(&PR), &LC, &LR, beta, gamma).unwrap();
    fd_check(&PC, &f, "simpo");
    decreases(&PC, &f, "simpo");
    assert!(simpo_loss(&t(&PC), &t(&PR), &[0, 1, 1], &LR, beta, gamma).is_err());
}

#[test]
fn rrhf() {
    // two queries, three responses each
    let logps = [[-10.0, -6.0, -9.0], [-3.0, -8.0, -4.0]];
    let lengths = vec![vec![5, 3, 3], vec![3, 4, 2]];
    let rewards = vec![vec![1.0, 0.0, 0.5], vec![0.2, 0.9, 0.1]];
    let w = 1.0;
    let s = [[-2.0, -2.0, -3.0], [-1.0, -2.0, -2.0]];
    // query 0: best 0 (s=-2). pairs r_i<r_j: (1,0): max(0,-2+2)=0, (1,2): max(0,-2+3)=1, (2,0): max(0,-3+2)=0 → 1
    // query 1: best 1 (s=-2). pairs: (0,1): max(0,-1+2)=1, (2,1): 0, (2,0): max(0,-2+1)=0 → 1
    let want = ((1.0 + 2.0) + (1.0 + 2.0)) / 2.0;
    let x = Tensor::new(&logps, &Device::Cpu).unwrap();
    let out = rrhf_loss(&x, &lengths, &rewards, w).unwrap();
    close(scalar(&out.loss), want, 1e-12, "rrhf");
    close(out.metric("rank_loss").unwrap(), 1.0, 1e-12, "rank");
    close(
        out.metric("sft_loss").unwrap(),
        -(s[0][0] + s[1][1]) / 2.0,
        1e-12,
        "sft",
    );
    // finite differences on a point without ties
    let x0 = [[-10.5, -6.2, -9.1], [-3.3, -8.4, -4.5]];
    let var = Var::from_tensor(&Tensor::new(&x0, &Device::Cpu).unwrap()).unwrap();
    let grads = rrhf_loss(var.as_tensor(), &lengths, &rewards, w)
        .unwrap()
        .loss
        .backward()
        .unwrap();
    let g = grads
        .get(var.as_tensor())
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let eval = |x: [[f64; 3]; 2]| {
        scalar(
            &rrhf_loss(
                &Tensor::new(&x, &Device::Cpu).unwrap(),
                &lengths,
                &rewards,
                w,
            )
            .unwrap()
            .loss,
        )
    };
    for q in 0..2 {
        for i in 0..3 {
            let (mut up, mut dn) = (x0, x0);
            up[q][i] += 1e-6;
            dn[q][i] -= 1e-6;
            let fd = (eval(up) - eval(dn)) / 2e-6;
            assert!(
                (fd - g[q][i]).abs() < 1e-6,
                "rrhf d/dx[{q}][{i}]: {} vs {fd}",
                g[q][i]
            );
        }
    }
    // raising the best (chosen) response's log-prob lowers the loss
    let mut up = x0;
    up[0][0] += 0.3;
    up[1][1] += 0.3;
    assert!(eval(up) < eval(x0));
    assert!(rrhf_loss(&x, &lengths[..1], &rewards, w).is_err());
}

#[test]
fn f32_and_bad_input() {
    let f = |v: &[f64]| t(v).to_dtype(DType::F32).unwrap();
    let a = dpo_loss(&f(&PC), &f(&PR), &f(&RC), &f(&RR), 0.1, 0.0).unwrap();
    let b = dpo_loss(&t(&PC), &t(&PR), &t(&RC), &t(&RR), 0.1, 0.0).unwrap();
    close(scalar(&a.loss), scalar(&b.loss), 1e-6, "dpo f32");
    assert!(dpo_loss(&t(&PC), &t(&PR[..2]), &t(&RC), &t(&RR), 0.1, 0.0).is_err());
    assert!(dpo_loss(&t(&[]), &t(&[]), &t(&[]), &t(&[]), 0.1, 0.0).is_err());
    assert!(dpo_loss(&t(&PC), &t(&PR), &t(&RC), &t(&RR), 0.0, 0.0).is_err());
    assert!(ipo_loss(&t(&PC), &t(&PR), &t(&RC), &t(&RR), -1.0).is_err());
}
