//! The WASM sandbox: behaviour on friendly programs, limits, isolation between runs (the
//! hostile suite is in `hostile.rs`).

mod common;

use rlvr_sandbox::{Limits, Program, Sandbox, Status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friendly_programs() {
    let Some(sb) = common::wasm() else { return };
    let r = sb
        .run(Program::python("print(sum(range(10)))"), Limits::default())
        .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.stdout, "45\n");
    assert_eq!(r.exit_code, Some(0));
    assert!(r.fuel_used.unwrap() > 10_000_000, "{r:?}");

    // the same program uses the same fuel (a reproducible budget)
    let r2 = sb
        .run(Program::python("print(sum(range(10)))"), Limits::default())
        .await;
    assert_eq!(r.fuel_used, r2.fuel_used);

    // stdin, argv and files
    let mut p = Program::python(
        "import sys\nprint(sys.stdin.read().upper(), sys.argv[1:], open('data/x.txt').read())",
    )
    .with_stdin("hello");
    p.argv = vec!["a".into(), "b".into()];
    p.files.insert("data/x.txt".into(), "filedata".into());
    let r = sb.run(p, Limits::default()).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.stdout, "HELLO ['a', 'b'] filedata\n");

    // the stdlib modules programs commonly use
    let r = sb
        .run(
            Program::python(
                "import json, re, math, collections, itertools, functools, fractions, decimal, \
                 heapq, bisect, string, typing, hashlib, statistics\nprint('ok')",
            ),
            Limits::default(),
        )
        .await;
    assert_eq!(r.stdout, "ok\n", "{r:?}");

    // an exception: nonzero exit with the traceback on stderr
    let r = sb
        .run(
            Program::python("def f():\n    raise ValueError('boom')\nf()"),
            Limits::default(),
        )
        .await;
    assert_eq!(r.status, Status::NonzeroExit);
    assert_eq!(r.exit_code, Some(1));
    assert!(r.stderr.contains("ValueError: boom"), "{}", r.stderr);

    // exit codes pass through
    let r = sb
        .run(
            Program::python("import sys; sys.exit(3)"),
            Limits::default(),
        )
        .await;
    assert_eq!((r.status, r.exit_code), (Status::NonzeroExit, Some(3)));

    // output caps are exact and flagged
    let limits = Limits {
        output_bytes: 1000,
        ..Limits::default()
    };
    let r = sb.run(Program::python("print('a' * 5000)"), limits).await;
    assert_eq!(r.status, Status::OutputLimit);
    assert!(r.stdout_truncated && !r.stderr_truncated);
    assert_eq!(r.stdout.len(), 1000);

    // scratch files do not survive a run
    let r = sb
        .run(
            Program::python("open('/tmp/left', 'w').write('x')"),
            Limits::default(),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let r = sb
        .run(
            Program::python("import os; print(os.listdir('/tmp'))"),
            Limits::default(),
        )
        .await;
    assert_eq!(r.stdout, "[]\n", "{r:?}");

    // a bad program spec is a sandbox_error, not a panic
    let mut p = Program::python("print(1)");
    p.files.insert("../escape".into(), "x".into());
    let r = sb.run(p, Limits::default()).await;
    assert_eq!(r.status, Status::SandboxError);
    assert!(r.stderr.contains("plain relative path"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold() {
    let Some(sb) = common::wasm() else { return };
    let quick = Limits {
        timeout_ms: 1_000,
        ..Limits::default()
    };
    let t = std::time::Instant::now();
    let r = sb
        .run(Program::python("import time; time.sleep(60)"), quick)
        .await;
    assert_eq!(r.status, Status::Timeout, "{r:?}");
    assert!(t.elapsed().as_secs_f64() < 3.0, "{:?}", t.elapsed());

    // without a fuel budget (the default budget can run out first on a fast machine)
    let unmetered = Limits {
        fuel: None,
        ..quick
    };
    let r = sb.run(Program::python("while True: pass"), unmetered).await;
    assert_eq!(r.status, Status::Timeout, "{r:?}");

    let r = sb
        .run(
            Program::python("while True: pass"),
            Limits {
                fuel: Some(300_000_000),
                ..Limits::default()
            },
        )
        .await;
    assert_eq!(r.status, Status::OutOfFuel, "{r:?}");
    assert_eq!(r.fuel_used, Some(300_000_000));

    let r = sb
        .run(Program::python("x = bytearray(1 << 30)"), Limits::default())
        .await;
    assert_eq!(r.status, Status::OutOfMemory, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_are_isolated() {
    let Some(sb) = common::wasm() else { return };
    let mut hs = Vec::new();
    for i in 0..12 {
        let sb = sb.clone();
        hs.push(tokio::spawn(async move {
            let src = format!(
                "import os\nopen('/tmp/me', 'w').write('{i}')\nprint(open('/tmp/me').read(), len(os.listdir('/tmp')))"
            );
            sb.run(Program::python(src), Limits::default()).await
        }));
    }
    for (i, h) in hs.into_iter().enumerate() {
        let r = h.await.unwrap();
        assert_eq!(r.stdout, format!("{i} 1\n"), "{r:?}");
    }
}
