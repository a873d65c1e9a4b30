//! DAPO shaping and dynamic sampling; pass@k / maj@k / mean@k.

use candle_core::{Device, Tensor};
use rlvr_train::dapo::{
    keep_group, overlong_filter_mask, soft_overlong_penalty, DynamicSampler, DynamicSamplingConfig,
    OnExhausted, RefillPolicy, SamplingStatus,
};
use rlvr_train::metrics::{maj_at_k, mean_at_k, pass_at_k};

#[test]
fn overlong_punishment_and_filter() {
    let p = |l| soft_overlong_penalty(l, 100, 20, 1.0).unwrap();
    assert_eq!(p(80), 0.0);
    assert!((p(90) + 0.5).abs() < 1e-15);
    assert_eq!(p(100), -1.0);
    assert_eq!(p(1000), -1.0);
    assert!((soft_overlong_penalty(90, 100, 20, 0.5).unwrap() + 0.25).abs() < 1e-15);
    assert!(soft_overlong_penalty(10, 100, 0, 1.0).is_err());
    assert!(soft_overlong_penalty(10, 10, 20, 1.0).is_err());
    let mask = Tensor::new(&[[1.0f32, 1.0], [1.0, 0.0], [1.0, 1.0]], &Device::Cpu).unwrap();
    let f = overlong_filter_mask(&mask, &[false, false, true]).unwrap();
    assert_eq!(
        f.to_vec2::<f32>().unwrap(),
        vec![vec![1.0, 1.0], vec![1.0, 0.0], vec![0.0, 0.0]]
    );
    assert!(overlong_filter_mask(&mask, &[true]).is_err());
}

#[test]
fn group_filter() {
    assert!(keep_group(&[1.0], 0.0).unwrap());
    assert!(!keep_group(&[1.0, 1.0, 1.0], 0.0).unwrap());
    assert!(!keep_group(&[0.1 * 3.0, 0.1 * 3.0], 0.0).unwrap());
    assert!(keep_group(&[0.0, 1.0], 0.0).unwrap());
    assert!(!keep_group(&[0.0, 0.1], 0.2).unwrap());
    assert!(keep_group(&[], 0.0).is_err());
}

#[test]
fn dynamic_sampling_fills_the_batch() {
    let cfg = DynamicSamplingConfig {
        max_rounds: 3,
        ..DynamicSamplingConfig::default()
    };
    let mut s = DynamicSampler::new(cfg, 3).unwrap();
    // round 1: one informative group out of three
    let st = s
        .offer(vec![
            ("a", vec![1.0, 1.0]),
            ("b", vec![0.0, 1.0]),
            ("c", vec![0.0, 0.0]),
        ])
        .unwrap();
    assert!(matches!(
        st,
        SamplingStatus::NeedMore { kept: 1, rounds: 1 }
    ));
    assert_eq!(s.stats().dropped, 2);
    // round 2: three more pass → exactly the target, surplus discarded
    let st = s
        .offer(vec![
            ("d", vec![0.0, 1.0]),
            ("e", vec![0.2, 1.0]),
            ("f", vec![0.5]),
        ])
        .unwrap();
    match st {
        SamplingStatus::Ready(batch) => assert_eq!(batch, vec!["b", "d", "e"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.pending(), 0);
    // the cap: three rounds without enough groups is an error by default
    for _ in 0..2 {
        assert!(matches!(
            s.offer(vec![("x", vec![1.0, 1.0])]).unwrap(),
            SamplingStatus::NeedMore { .. }
        ));
    }
    assert!(s.offer(vec![("x", vec![1.0, 1.0])]).is_err());
    // carry-over keeps the surplus; train_partial returns what it has
    let cfg = DynamicSamplingConfig {
        max_rounds: 2,
        refill: RefillPolicy::CarryOver,
        on_exhausted: OnExhausted::TrainPartial,
        ..DynamicSamplingConfig::default()
    };
    let mut s = DynamicSampler::new(cfg, 2).unwrap();
    let groups: Vec<(u32, Vec<f64>)> = (0..3).map(|i| (i, vec![0.0, 1.0])).collect();
    assert!(matches!(s.offer(groups).unwrap(), SamplingStatus::Ready(b) if b == vec![0, 1]));
    assert_eq!(s.pending(), 1);
    assert!(matches!(
        s.offer(vec![]).unwrap(),
        SamplingStatus::NeedMore { kept: 1, .. }
    ));
    assert!(matches!(s.offer(vec![]).unwrap(), SamplingStatus::Partial(b) if b == vec![2]));
    assert!(DynamicSampler::<u8>::new(DynamicSamplingConfig::default(), 0).is_err());
}

#[test]
fn pass_maj_mean_at_k() {
    assert_eq!(pass_at_k(5, 0, 3).unwrap(), 0.0);
    assert_eq!(pass_at_k(5, 3, 3).unwrap(), 1.0);
    assert!((pass_at_k(5, 1, 1).unwrap() - 0.2).abs() < 1e-15);
    // 1 − C(3,2)/C(5,2) = 1 − 3/10
    assert!((pass_at_k(5, 2, 2).unwrap() - 0.7).abs() < 1e-15);
    assert!(
        pass_at_k(3, 4, 1).is_err() && pass_at_k(3, 1, 4).is_err() && pass_at_k(3, 1, 0).is_err()
    );
    let answers = [Some("4"), Some("5"), Some("5"), Some("4"), None];
    let correct = [true, false, false, true, false];
    assert_eq!(maj_at_k(&answers, &correct, 1).unwrap(), 1.0);
    assert_eq!(maj_at_k(&answers, &correct, 3).unwrap(), 0.0);
    assert_eq!(
        maj_at_k(&answers, &correct, 4).unwrap(),
        1.0,
        "tie goes to the first answer"
    );
    assert_eq!(maj_at_k(&[None::<&str>], &[false], 1).unwrap(), 0.0);
    assert!(maj_at_k(&answers, &correct[..2], 1).is_err());
    assert!((mean_at_k(&[1.0, 0.0, 0.5], 2).unwrap() - 0.5).abs() < 1e-15);
    assert!(mean_at_k(&[1.0], 2).is_err());
}
