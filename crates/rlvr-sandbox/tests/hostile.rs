//! The hostile-program suite (`common/hostile.rs`, 44 programs) in both sandboxes, each
//! program with its expected classification per backend, then checks of the host: the canary
//! file intact, nobody reached the host's loopback, no leftover containers or processes, and
//! memory back to its baseline. Under CI=true a missing backend fails; elsewhere it skips.

mod common;

use std::sync::Arc;

use rlvr_sandbox::docker::{DockerConfig, DockerSandbox};
use rlvr_sandbox::Sandbox;

/// The two suites run one after the other: the host checks (processes, memory) must not see
/// the other suite's containers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Processes on the host (entries of /proc that are pids).
fn host_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

fn check_memory(before: u64) {
    let after = common::mem_available_mb();
    println!("MemAvailable before {before} MiB, after {after} MiB");
    assert!(
        after + 512 >= before,
        "host memory did not come back: {before} MiB available before, {after} after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_suite_wasm() {
    let _serial = SERIAL.lock().await;
    let Some(sb) = common::wasm() else { return };
    let before = common::mem_available_mb();
    let procs = host_processes();
    let sb: Arc<dyn Sandbox> = sb;
    common::run_hostile(sb.clone()).await;
    drop(sb);
    // WASM runs in this process: no process may have been created.
    assert!(
        host_processes() <= procs + 2,
        "{procs} processes before, {} after",
        host_processes()
    );
    check_memory(before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_suite_docker() {
    let _serial = SERIAL.lock().await;
    let cfg = DockerConfig {
        concurrency: 2,
        ..DockerConfig::default()
    };
    let sb = match DockerSandbox::connect(cfg).await {
        Ok(sb) => Arc::new(sb),
        Err(e) => {
            common::missing(&format!(
                "the Docker sandbox is unavailable: {e} (run sandbox/docker/build-image.sh)"
            ));
            return;
        }
    };
    let before = common::mem_available_mb();
    let procs = host_processes();
    let dynsb: Arc<dyn Sandbox> = sb.clone();
    common::run_hostile(dynsb).await;
    sb.shutdown().await;
    // nothing of this sandbox is left on the engine
    let filters = std::collections::HashMap::from([(
        "label",
        vec![format!(
            "{}={}",
            rlvr_sandbox::docker::INSTANCE_LABEL,
            sb.instance_id()
        )],
    )]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let left = sb.docker().list_containers(Some(opts)).await.unwrap();
    assert!(left.is_empty(), "containers left: {left:?}");
    // the containers' processes are gone (allow for unrelated activity on the host)
    let mut now = host_processes();
    for _ in 0..50 {
        if now <= procs + 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        now = host_processes();
    }
    assert!(
        now <= procs + 5,
        "{procs} host processes before, {now} after"
    );
    check_memory(before);
}
