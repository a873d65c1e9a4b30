//! Behaviour of the Docker sandbox against a real engine.
//!
//! Needs a running engine and the image: `sandbox/docker/start-dockerd.sh` and
//! `sandbox/docker/build-image.sh`. Without them each test prints a skip message and passes,
//! except with `CI=true`, where it fails.
//!
//! Each test uses its own sandbox (small warm pool), shuts it down at the end — also when the
//! test body panics — and checks that no container with its instance label is left.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::FutureExt;
use rlvr_sandbox::docker::{DockerConfig, DockerSandbox, INSTANCE_LABEL, LABEL, OWNER_LABEL};
use rlvr_sandbox::{BackendKind, BlockingRunner, Limits, Program, RunResult, Sandbox, Status};

const SETUP: &str = "sandbox/docker/start-dockerd.sh && sandbox/docker/build-image.sh";

fn config(concurrency: usize, warm_pool: usize) -> DockerConfig {
    DockerConfig {
        concurrency,
        warm_pool: Some(warm_pool),
        ..Default::default()
    }
}

/// Connects, or explains how to set up (and fails under `CI=true`).
async fn connect(cfg: DockerConfig) -> Option<DockerSandbox> {
    match DockerSandbox::connect(cfg).await {
        Ok(sb) => Some(sb),
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("the Docker sandbox is required under CI=true: {e} (run {SETUP})");
            }
            eprintln!("SKIPPED: Docker sandbox unavailable: {e}\n  to run these tests: {SETUP}");
            None
        }
    }
}

/// Containers carrying `label` (`key=value`), running or not.
async fn containers_with(sb: &DockerSandbox, label: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![label])]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    sb.docker()
        .list_containers(Some(opts))
        .await
        .expect("listing containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Runs `body` with a fresh sandbox, then shuts it down and checks nothing of it remains.
async fn with_sandbox<F, Fut>(cfg: DockerConfig, body: F)
where
    F: FnOnce(Arc<DockerSandbox>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(sb) = connect(cfg).await else {
        return;
    };
    let sb = Arc::new(sb);
    let outcome = AssertUnwindSafe(body(sb.clone())).catch_unwind().await;
    sb.shutdown().await;
    let left = containers_with(&sb, &format!("{INSTANCE_LABEL}={}", sb.instance_id())).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(left.is_empty(), "containers left after shutdown: {left:?}");
}

fn limits() -> Limits {
    Limits::default()
}

async fn run(sb: &DockerSandbox, program: Program, limits: Limits) -> RunResult {
    let r = sb.run(program, limits).await;
    assert_eq!(r.backend, BackendKind::Docker);
    assert_eq!(r.fuel_used, None);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_say_how_to_fix() {
    let missing_engine = DockerConfig {
        socket: Some("/nonexistent/docker.sock".into()),
        ..config(1, 0)
    };
    let e = DockerSandbox::connect(missing_engine)
        .await
        .err()
        .expect("no engine there");
    assert!(
        e.to_string().contains("sandbox/docker/start-dockerd.sh"),
        "{e}"
    );

    // The image check needs an engine.
    let Some(sb) = connect(config(1, 0)).await else {
        return;
    };
    sb.shutdown().await;
    let missing_image = DockerConfig {
        image: "rlvr-sandbox-does-not-exist:0".into(),
        ..config(1, 0)
    };
    let e = DockerSandbox::connect(missing_image)
        .await
        .err()
        .expect("no such image");
    assert!(
        e.to_string().contains("sandbox/docker/build-image.sh"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_and_fresh_scratch() {
    with_sandbox(config(2, 2), |sb| async move {
        let r = run(&sb, Program::python("print('hello, world')"), limits()).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.stdout, "hello, world\n");
        assert_eq!(r.stderr, "");
        assert!(!r.stdout_truncated && !r.stderr_truncated);
        assert!(r.wall_ms > 0.0 && r.wall_ms < 5000.0, "{}", r.wall_ms);

        // Single-use containers: what one program leaves in /tmp is gone for the next.
        let w = "open('/tmp/marker', 'w').write('x'); print('written')";
        let r = run(&sb, Program::python(w), limits()).await;
        assert_eq!(r.stdout, "written\n", "{r:?}");
        let c = "import os; print(os.path.exists('/tmp/marker'))";
        for _ in 0..3 {
            let r = run(&sb, Program::python(c), limits()).await;
            assert_eq!(r.stdout, "False\n", "{r:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_delivered() {
    with_sandbox(config(2, 1), |sb| async move {
        let src = "import sys\ndata = sys.stdin.read()\nsys.stdout.write(data.upper())";
        let p = Program::python(src).with_stdin("abc\ndéf\n");
        let r = run(&sb, p, limits()).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(r.stdout, "ABC\nDÉF\n");

        // Larger than a pipe buffer, and line by line with input().
        let big: String = (0..20_000).map(|i| format!("{i}\n")).collect();
        let src = "import sys\nn = 0\nfor line in sys.stdin:\n    n += int(line)\nprint(n)";
        let r = run(&sb, Program::python(src).with_stdin(big), limits()).await;
        assert_eq!(
            r.stdout,
            format!("{}\n", (0..20_000u64).sum::<u64>()),
            "{r:?}"
        );
        let src = "a = input(); b = input(); print(int(a) + int(b))";
        let r = run(&sb, Program::python(src).with_stdin("2\n40\n"), limits()).await;
        assert_eq!(r.stdout, "42\n", "{r:?}");

        // Megabytes.
        let src = "import sys; data = sys.stdin.read(); print(len(data), data[-3:])";
        let r = run(
            &sb,
            Program::python(src).with_stdin("x".repeat(3 << 20) + "end"),
            limits(),
        )
        .await;
        assert_eq!(r.stdout, format!("{} end\n", (3 << 20) + 3), "{r:?}");

        // No stdin: EOF at once.
        let r = run(
            &sb,
            Program::python("import sys; print(repr(sys.stdin.read()))"),
            limits(),
        )
        .await;
        assert_eq!(r.stdout, "''\n", "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argv_files_cwd_user_env() {
    with_sandbox(config(2, 1), |sb| async move {
        let src = "import os, sys, helper\n\
                   print(sys.argv[1:])\n\
                   print(open('data/in.txt').read())\n\
                   print(helper.X, os.getcwd(), os.getuid(), os.getgid())\n\
                   print(sorted(k for k in os.environ if k != 'HOSTNAME'))";
        let p = Program {
            argv: vec!["a".into(), "b c".into(), "--flag".into()],
            files: BTreeMap::from([
                ("data/in.txt".to_string(), "line1\nline2".to_string()),
                ("helper.py".to_string(), "X = 5\n".to_string()),
            ]),
            ..Program::python(src)
        };
        let r = run(&sb, p, limits()).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines[0], "['a', 'b c', '--flag']");
        assert_eq!(lines[1..3], ["line1", "line2"]);
        assert_eq!(lines[3], "5 /tmp 65534 65534");
        // Only the image's and the sandbox's fixed variables: nothing from the host.
        assert_eq!(
            lines[4], "['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE']",
            "{r:?}"
        );

        // Invalid file names are refused before anything runs.
        let bad = Program {
            files: BTreeMap::from([("../x".to_string(), String::new())]),
            ..Program::python("print(1)")
        };
        let r = run(&sb, bad, limits()).await;
        assert_eq!(r.status, Status::SandboxError, "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonzero_exit_and_traceback() {
    with_sandbox(config(2, 2), |sb| async move {
        let src = "def f():\n    raise ValueError('boom')\nprint('before')\nf()";
        let r = run(&sb, Program::python(src), limits()).await;
        assert_eq!(r.status, Status::NonzeroExit, "{r:?}");
        assert_eq!(r.exit_code, Some(1));
        assert_eq!(r.stdout, "before\n");
        assert!(
            r.stderr.contains("Traceback (most recent call last)"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("/tmp/main.py"), "{}", r.stderr);
        assert!(
            r.stderr.trim_end().ends_with("ValueError: boom"),
            "{}",
            r.stderr
        );

        let r = run(&sb, Program::python("import sys; sys.exit(3)"), limits()).await;
        assert_eq!(
            (r.status, r.exit_code),
            (Status::NonzeroExit, Some(3)),
            "{r:?}"
        );

        let src = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)";
        let r = run(&sb, Program::python(src), limits()).await;
        assert_eq!(
            (r.status, r.exit_code),
            (Status::Killed, Some(143)),
            "{r:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts() {
    with_sandbox(config(2, 2), |sb| async move {
        let l = Limits {
            timeout_ms: 2000,
            ..limits()
        };
        let progs = [
            "import time\nprint('start', flush=True)\ntime.sleep(100)",
            "while True:\n    pass",
        ];
        let t0 = Instant::now();
        let results =
            futures_util::future::join_all(progs.iter().map(|p| run(&sb, Program::python(*p), l)))
                .await;
        let elapsed = t0.elapsed();
        for r in &results {
            assert_eq!(r.status, Status::Timeout, "{r:?}");
            assert_eq!(r.exit_code, None);
            // Killed at its 2 s limit, not at the program's 100 s (bounds leave room for a
            // loaded machine).
            assert!(r.wall_ms >= 1900.0 && r.wall_ms < 8000.0, "{}", r.wall_ms);
        }
        assert_eq!(results[0].stdout, "start\n");
        assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit() {
    with_sandbox(config(2, 2), |sb| async move {
        let l = Limits {
            memory_mb: 256,
            timeout_ms: 20_000,
            ..limits()
        };
        let t0 = Instant::now();
        let r = run(&sb, Program::python("b = bytearray(1 << 30)\nprint(len(b))"), l).await;
        assert_eq!(r.status, Status::OutOfMemory, "{r:?}");
        assert_eq!(r.stdout, "");
        // Under the 20 s timeout: the memory cap ended it.
        assert!(t0.elapsed() < Duration::from_secs(19));

        // A child OOM-killed while the parent exits 0 still counts (exit code 137 then).
        let src = "import subprocess, sys\n\
                   rc = subprocess.run([sys.executable, '-c', 'b = bytearray(1 << 30)']).returncode\n\
                   print('child', rc)";
        for _ in 0..3 {
            let r = run(&sb, Program::python(src), l).await;
            assert_eq!((r.status, r.exit_code), (Status::OutOfMemory, Some(137)), "{r:?}");
            assert_eq!(r.stdout, "child -9\n");
        }

        // Under the cap is fine (and this run uses a container made for its own limits).
        let small = Limits {
            memory_mb: 128,
            ..l
        };
        let r = run(&sb, Program::python("b = bytearray(50 << 20)\nprint(len(b) >> 20)"), small).await;
        assert_eq!((r.status, r.stdout.as_str()), (Status::Ok, "50\n"), "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_limit() {
    with_sandbox(config(2, 2), |sb| async move {
        let cap = 100_000;
        let l = Limits {
            output_bytes: cap,
            timeout_ms: 10_000,
            ..limits()
        };
        let t0 = Instant::now();
        let src = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)";
        let r = run(&sb, Program::python(src), l).await;
        assert_eq!(r.status, Status::OutputLimit, "{}", r.stderr);
        assert_eq!(r.stdout.len(), cap);
        assert!(r.stdout.bytes().all(|b| b == b'x'));
        assert!(r.stdout_truncated && !r.stderr_truncated);
        // Under the 10 s timeout: the output cap ended it.
        assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());

        let src = "import sys\nwhile True:\n    sys.stderr.write('e' * 1000 + '\\n')";
        let r = run(&sb, Program::python(src), l).await;
        assert_eq!(r.status, Status::OutputLimit);
        assert_eq!(r.stderr.len(), cap);
        assert!(r.stderr_truncated && !r.stdout_truncated);

        // Exactly the cap is not over it.
        let src = format!("import sys; sys.stdout.write('y' * {cap})");
        let r = run(&sb, Program::python(src), l).await;
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.stdout.len(), cap);
        assert!(!r.stdout_truncated);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_bomb_is_contained_and_cleaned_up() {
    with_sandbox(config(1, 1), |sb| async move {
        let l = Limits {
            timeout_ms: 3000,
            ..limits()
        };
        let src = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass";
        let t0 = Instant::now();
        let r = run(&sb, Program::python(src), l).await;
        assert!(
            matches!(r.status, Status::Timeout | Status::Killed),
            "{r:?}"
        );
        // Killed and cleaned up within a bound that allows for a loaded machine.
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());

        // The pids limit holds: a thread bomb stops at it with an error.
        let src = "import threading, time\nn = 0\ntry:\n    while True:\n        \
                   threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n        \
                   n += 1\nexcept RuntimeError as e:\n    print('stopped', n < 64, e)";
        let r = run(&sb, Program::python(src), l).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert!(r.stdout.starts_with("stopped True"), "{r:?}");

        // The engine still works afterwards.
        let r = run(&sb, Program::python("print('alive')"), limits()).await;
        assert_eq!(r.stdout, "alive\n", "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_network_and_read_only_root() {
    with_sandbox(config(2, 2), |sb| async move {
        let src = "import socket\n\
                   try:\n    socket.create_connection(('1.1.1.1', 80), timeout=3)\n    print('CONNECTED')\n\
                   except OSError as e:\n    print('OSError', e.errno)\n\
                   try:\n    socket.getaddrinfo('example.com', 80)\n    print('RESOLVED')\n\
                   except OSError as e:\n    print('OSError')";
        let r = run(&sb, Program::python(src), limits()).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert!(!r.stdout.contains("CONNECTED") && !r.stdout.contains("RESOLVED"), "{r:?}");
        assert!(r.stdout.starts_with("OSError"), "{r:?}");

        let src = "import errno\n\
                   for path in ['/x', '/usr/x', '/etc/passwd']:\n\
                   \x20   try:\n\
                   \x20       open(path, 'a').write('x')\n\
                   \x20       print(path, 'WRITTEN')\n\
                   \x20   except OSError as e:\n\
                   \x20       print(path, errno.errorcode[e.errno])\n\
                   open('/tmp/ok', 'w').write('fine')\n\
                   print(open('/tmp/ok').read())";
        let r = run(&sb, Program::python(src), limits()).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert!(!r.stdout.contains("WRITTEN"), "{r:?}");
        assert!(r.stdout.contains("/usr/x EROFS"), "{r:?}");
        assert!(r.stdout.ends_with("fine\n"), "{r:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs() {
    with_sandbox(config(4, 4), |sb| async move {
        let t0 = Instant::now();
        let runs = (0..8).map(|i| {
            let sb = sb.clone();
            tokio::spawn(async move {
                let src = format!("import sys\nprint({i} * int(sys.stdin.read()))");
                sb.run(Program::python(src).with_stdin("3"), Limits::default())
                    .await
            })
        });
        let results = futures_util::future::join_all(runs).await;
        for (i, r) in results.into_iter().enumerate() {
            let r = r.expect("task");
            assert_eq!(r.status, Status::Ok, "{r:?}");
            assert_eq!(r.stdout, format!("{}\n", 3 * i));
        }
        eprintln!("8 runs, 4 at a time: {:?}", t0.elapsed());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_pool_container_is_replaced() {
    with_sandbox(config(1, 1), |sb| async move {
        // Kill the ready pool container behind the sandbox's back.
        let mine = containers_with(&sb, &format!("{INSTANCE_LABEL}={}", sb.instance_id())).await;
        assert_eq!(mine.len(), 1, "{mine:?}");
        sb.docker()
            .kill_container(&mine[0], None)
            .await
            .expect("killing the pool container");
        let r = run(&sb, Program::python("print('still fine')"), limits()).await;
        assert_eq!(
            (r.status, r.stdout.as_str()),
            (Status::Ok, "still fine\n"),
            "{r:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pool_containers_exit_by_themselves_and_runs_go_on() {
    let cfg = DockerConfig {
        pool_idle_exit_s: 2,
        ..config(1, 1)
    };
    with_sandbox(cfg, |sb| async move {
        let mine = containers_with(&sb, &format!("{INSTANCE_LABEL}={}", sb.instance_id())).await;
        assert_eq!(mine.len(), 1, "{mine:?}");
        // Idle for longer than the limit: the ready container exits by itself (polled: on a
        // loaded machine its 2 s timer may start late; a container that never exits fails).
        let t0 = Instant::now();
        let state = loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let state = sb
                .docker()
                .inspect_container(&mine[0], None)
                .await
                .expect("inspect")
                .state
                .unwrap_or_default();
            if state.running == Some(false) || t0.elapsed() > Duration::from_secs(30) {
                break state;
            }
        };
        assert_eq!(state.running, Some(false), "{state:?}");
        assert!(
            t0.elapsed() >= Duration::from_secs(1),
            "exited before its idle limit"
        );
        assert_eq!(state.exit_code, Some(125), "{state:?}");
        // The next run is served all the same.
        let r = run(&sb, Program::python("print('after idle')"), limits()).await;
        assert_eq!(
            (r.status, r.stdout.as_str()),
            (Status::Ok, "after idle\n"),
            "{r:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_dead_processes_are_reaped_at_connect() {
    let Some(first) = connect(config(1, 0)).await else {
        return;
    };
    // Containers "left" by a dead process of this machine, and by a process elsewhere.
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let dead = format!("{}/{}/4294967295", boot.trim(), ns.to_string_lossy());
    let mut ids = Vec::new();
    for owner in [dead.as_str(), "another-machine/pid:[1]/1"] {
        let body = ContainerCreateBody {
            image: Some(first.config().image.clone()),
            cmd: Some(vec!["python3".into(), "-c".into(), "pass".into()]),
            labels: Some(HashMap::from([
                (LABEL.to_string(), "1".to_string()),
                (
                    INSTANCE_LABEL.to_string(),
                    format!("test-orphan-{}", ids.len()),
                ),
                (OWNER_LABEL.to_string(), owner.to_string()),
            ])),
            ..Default::default()
        };
        let c = first
            .docker()
            .create_container(None, body)
            .await
            .expect("create");
        ids.push(c.id);
    }
    first.shutdown().await;
    with_sandbox(config(1, 1), |sb| async move {
        let dead_left = containers_with(&sb, &format!("{INSTANCE_LABEL}=test-orphan-0")).await;
        assert!(
            dead_left.is_empty(),
            "the dead process's container was not removed"
        );
        let other = containers_with(&sb, &format!("{INSTANCE_LABEL}=test-orphan-1")).await;
        assert_eq!(
            other,
            vec![ids[1].clone()],
            "another machine's container must stay"
        );
        let opts = RemoveContainerOptionsBuilder::new().force(true).build();
        sb.docker()
            .remove_container(&ids[1], Some(opts))
            .await
            .expect("remove");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_child_does_not_hold_the_run() {
    with_sandbox(config(1, 1), |sb| async move {
        // The child keeps stdout open after the program exits; the program is the container's
        // main process, so its exit ends the container and the run at once.
        let src = "import subprocess, sys\n\
                   subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n\
                   print('parent done')";
        let l = Limits {
            timeout_ms: 10_000,
            ..limits()
        };
        let t0 = Instant::now();
        let r = run(&sb, Program::python(src), l).await;
        assert_eq!((r.status, r.exit_code), (Status::Ok, Some(0)), "{r:?}");
        assert_eq!(r.stdout, "parent done\n");
        // Neither the child's 60 s nor the 10 s timeout: the parent's exit ended the run.
        assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());
    })
    .await;
}

/// The way synchronous callers use it: connect on one runtime, run through a
/// `BlockingRunner` (its own runtime), shut down from outside any runtime.
#[test]
fn blocking_runner_from_another_runtime() {
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(sb) = setup.block_on(connect(config(2, 2))) else {
        return;
    };
    drop(setup);
    let sb = Arc::new(sb);
    let runner = BlockingRunner::new(sb.clone(), 2).expect("runner");
    let jobs = (0..4)
        .map(|i| {
            (
                Program::python(format!("print({i} + 1)")),
                Limits::default(),
            )
        })
        .collect();
    let results = runner.run_all(jobs);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(r.stdout, format!("{}\n", i + 1));
    }
    let left = runner.handle().block_on(async {
        sb.shutdown().await;
        containers_with(&sb, &format!("{INSTANCE_LABEL}={}", sb.instance_id())).await
    });
    assert!(left.is_empty(), "containers left after shutdown: {left:?}");
    let r = runner.run(Program::python("print(1)"), Limits::default());
    assert_eq!(
        r.status,
        Status::SandboxError,
        "runs after shutdown fail: {r:?}"
    );
}

/// Removes every `org.rlvr.sandbox=1` container, other sandboxes' included: run it alone
/// (`cargo test -p rlvr-sandbox --test docker -- --ignored cleanup_leftovers`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "removes every sandbox container on the engine; run alone"]
async fn cleanup_leftovers() {
    let Some(sb) = connect(config(1, 2)).await else {
        return;
    };
    assert!(!containers_with(&sb, &format!("{LABEL}=1")).await.is_empty());
    let n = sb.cleanup_leftovers().await;
    assert!(n >= 2, "{n}");
    assert!(containers_with(&sb, &format!("{LABEL}=1")).await.is_empty());
    // The pool was emptied: runs still work with fresh containers.
    let r = sb.run(Program::python("print(7)"), Limits::default()).await;
    assert_eq!(r.stdout, "7\n", "{r:?}");
    sb.shutdown().await;
    assert!(containers_with(&sb, &format!("{LABEL}=1")).await.is_empty());
}

/// Latency and throughput figures (`-- --ignored --nocapture bench`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_latency_and_throughput() {
    with_sandbox(config(4, 4), |sb| async move {
        let p = Program::python("print(sum(range(1000)))");
        // Sequential: the pool refills between runs.
        let mut lat = Vec::new();
        let mut wall = Vec::new();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(600)).await; // let the pool refill
            let t0 = Instant::now();
            let r = sb.run(p.clone(), Limits::default()).await;
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            wall.push(r.wall_ms);
            assert_eq!(r.status, Status::Ok, "{r:?}");
        }
        lat.sort_by(f64::total_cmp);
        wall.sort_by(f64::total_cmp);
        eprintln!(
            "warm pool, sequential: run() p50 {:.0} ms (p10 {:.0}, p90 {:.0}); wall_ms p50 {:.0} ms",
            lat[10], lat[2], lat[18], wall[10]
        );
        // Without a ready container (fresh container per run).
        let odd = Limits {
            memory_mb: 255,
            ..Limits::default()
        };
        let mut cold = Vec::new();
        for _ in 0..10 {
            let t0 = Instant::now();
            let r = sb.run(p.clone(), odd).await;
            cold.push(t0.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(r.status, Status::Ok, "{r:?}");
        }
        cold.sort_by(f64::total_cmp);
        eprintln!("fresh container per run: run() p50 {:.0} ms", cold[5]);
        // Throughput, 4 at a time, 40 programs.
        let t0 = Instant::now();
        let runs = (0..40).map(|_| {
            let sb = sb.clone();
            let p = p.clone();
            tokio::spawn(async move { sb.run(p, Limits::default()).await })
        });
        let results = futures_util::future::join_all(runs).await;
        let secs = t0.elapsed().as_secs_f64();
        assert!(results.iter().all(|r| r.as_ref().unwrap().status == Status::Ok));
        eprintln!("throughput, 4 concurrent: {:.1} programs/s (40 in {secs:.1} s)", 40.0 / secs);
    })
    .await;
}
