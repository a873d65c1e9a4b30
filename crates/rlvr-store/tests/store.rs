use rlvr_store::{Store, StoreError};
use serde_json::{json, Value};

#[test]
fn rollouts_metrics_and_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let s = Store::open(&path).unwrap();
        // Steps inserted out of order, with more than 255 rollouts so byte order matters.
        let many: Vec<Value> = (0..300).map(|i| json!({"i": i})).collect();
        s.put_rollouts(256, &[json!({"text": "late"})]).unwrap();
        s.put_rollouts(1, &many).unwrap();
        s.put_rollouts(2, &[json!("a"), json!("b")]).unwrap();
        s.put_metrics(256, &json!({"loss": 0.1})).unwrap();
        s.put_metrics(1, &json!({"loss": 1.0})).unwrap();
        s.put_metrics(2, &json!({"loss": 0.5})).unwrap();
        s.put_state("loader", &json!({"epoch": 1, "pos": 17}))
            .unwrap();
        s.flush().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.rollout_count(), 303);
    assert_eq!(s.rollout_steps().unwrap(), vec![1, 2, 256]);
    let r1 = s.rollouts(1).unwrap();
    assert_eq!(r1.len(), 300);
    for (i, v) in r1.iter().enumerate() {
        assert_eq!(v["i"], i, "index order");
    }
    assert_eq!(s.rollouts(2).unwrap(), vec![json!("a"), json!("b")]);
    assert!(s.rollouts(3).unwrap().is_empty());
    let m = s.metrics().unwrap();
    assert_eq!(
        m.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        vec![1, 2, 256]
    );
    assert_eq!(m[2].1, json!({"loss": 0.1}));
    assert_eq!(
        s.get_state("loader").unwrap(),
        Some(json!({"epoch": 1, "pos": 17}))
    );
    assert_eq!(s.get_state("nothing").unwrap(), None);
}

#[test]
fn put_rollouts_replaces_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    s.put_rollouts(5, &[json!(1), json!(2), json!(3)]).unwrap();
    s.put_rollouts(5, &[json!(9)]).unwrap();
    assert_eq!(s.rollouts(5).unwrap(), vec![json!(9)]);
    assert_eq!(s.rollout_count(), 1);
}

#[test]
fn truncate_after_drops_later_steps_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    for step in 0..6u64 {
        s.put_rollouts(step, &[json!(step), json!(step)]).unwrap();
        s.put_metrics(step, &json!({"step": step})).unwrap();
    }
    s.put_state("k", &json!(1)).unwrap();
    let removed = s.truncate_after(3).unwrap();
    assert_eq!(removed, 2 * 2 + 2);
    assert_eq!(s.rollout_steps().unwrap(), vec![0, 1, 2, 3]);
    assert_eq!(s.rollouts(3).unwrap().len(), 2);
    assert!(s.rollouts(4).unwrap().is_empty());
    assert_eq!(
        s.metrics()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(s.get_state("k").unwrap(), Some(json!(1)));
    assert_eq!(s.truncate_after(u64::MAX).unwrap(), 0);
    assert_eq!(s.truncate_after(0).unwrap(), 3 * 2 + 3);
    assert_eq!(s.rollout_count(), 2);
}

#[test]
fn second_open_while_open_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let first = Store::open(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    assert!(msg.contains("already open"), "{msg}");
    drop(first);
    // Released on drop.
    Store::open(&path).unwrap();
}

#[test]
fn corrupt_value_is_an_error_naming_tree_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = sled::open(&path).unwrap();
        let t = db.open_tree("metrics").unwrap();
        t.insert(7u64.to_be_bytes(), &b"{not json"[..]).unwrap();
        db.flush().unwrap();
    }
    let s = Store::open(&path).unwrap();
    let err = s.metrics().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{msg}");
    assert!(msg.contains("metrics") && msg.contains("step 7"), "{msg}");
}
