//! `RunDir::create(None, ..)` uses the current directory, which is process-wide: this test
//! binary holds that single test only.

use rlvr_store::RunDir;

#[test]
fn default_run_dir_is_under_runs_in_the_current_directory() {
    let base = tempfile::tempdir().unwrap();
    std::env::set_current_dir(base.path()).unwrap();
    let run = RunDir::create(None, "ppo").unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(run.path().parent().unwrap(), cwd.join("runs"));
    let name = run.path().file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with("-ppo"), "{name}");
    assert_eq!(name.len(), "YYYYmmdd-HHMMSS-ppo".len(), "{name}");
    assert!(run.checkpoints_dir().is_dir());
}
