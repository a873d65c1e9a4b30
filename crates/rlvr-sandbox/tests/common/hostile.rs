//! The hostile-program suite: programs that try to break out of or exhaust a sandbox, each with
//! the classification expected from each backend. A program prints `ESCAPED` only if its attack
//! worked; the runner also checks that no host secret shows up in its output.
#![allow(dead_code)]

use rlvr_sandbox::{Limits, Status};

/// Host facts substituted into the programs.
pub struct Host {
    /// A canary file on the host: must stay unread and intact.
    pub canary: String,
    /// Its content.
    pub canary_text: String,
    /// A secret put in the test process's environment.
    pub secret: String,
    /// The repository root.
    pub repo: String,
    /// `~/.cargo`.
    pub cargo_home: String,
    /// A TCP port listening on the host's loopback.
    pub port: u16,
}

/// One hostile program.
pub struct Case {
    pub name: &'static str,
    pub source: String,
    pub stdin: String,
    pub limits: Limits,
    /// Expected status in the WASM sandbox.
    pub wasm: Status,
    /// Expected status in the Docker sandbox.
    pub docker: Status,
}

fn limits() -> Limits {
    Limits {
        timeout_ms: 3_000,
        memory_mb: 256,
        fuel: Some(20_000_000_000),
        output_bytes: 64 * 1024,
        pids: 64,
        scratch_mb: 16,
        scratch_files: 2_000,
    }
}

/// The suite.
pub fn cases(h: &Host) -> Vec<Case> {
    use Status::*;
    let sub = |s: &str| {
        s.replace("CANARY_TEXT", &h.canary_text)
            .replace("CANARY", &h.canary)
            .replace("REPO", &h.repo)
            .replace("CARGO_HOME", &h.cargo_home)
            .replace("PORT", &h.port.to_string())
    };
    let case = |name: &'static str, src: &str, wasm: Status, docker: Status| Case {
        name,
        source: sub(src),
        stdin: String::new(),
        limits: limits(),
        wasm,
        docker,
    };
    let mut v = vec![
        // --- resource exhaustion ---
        case("fork_bomb", "import os\nwhile True:\n    os.fork()\n", NonzeroExit, NonzeroExit),
        case(
            "thread_bomb",
            "import threading, time\nts = []\nwhile True:\n    t = threading.Thread(target=time.sleep, args=(100,))\n    t.start()\n    ts.append(t)\n",
            NonzeroExit,
            // the pids limit stops the bomb; the threads already started keep it alive
            Timeout,
        ),
        case("memory_bomb", "x = bytearray(1 << 30)\nprint(len(x))\n", OutOfMemory, OutOfMemory),
        case(
            "memory_creep",
            "xs = []\nwhile True:\n    xs.append(b'x' * (1 << 20) + bytes(len(xs)))\n",
            OutOfMemory,
            OutOfMemory,
        ),
        case("busy_loop", "while True:\n    pass\n", OutOfFuel, Timeout),
        case("long_sleep", "import time\ntime.sleep(3600)\n", Timeout, Timeout),
        case(
            "sleep_in_loop",
            "import time\nwhile True:\n    time.sleep(0.001)\n",
            Timeout,
            Timeout,
        ),
        case("output_flood", "while True:\n    print('x' * 1000)\n", OutputLimit, OutputLimit),
        case(
            "stderr_flood",
            "import sys\nwhile True:\n    sys.stderr.write('y' * 1000)\n",
            OutputLimit,
            OutputLimit,
        ),
        case(
            "one_huge_write",
            "import sys\nsys.stdout.write('z' * (8 << 20))\n",
            OutputLimit,
            OutputLimit,
        ),
        case(
            "many_files",
            "for i in range(100000):\n    open(f'/tmp/f{i}', 'w').write('x')\nprint('ESCAPED')\n",
            OutputLimit,
            NonzeroExit,
        ),
        case(
            "disk_fill",
            "with open('/tmp/big', 'wb') as f:\n    for i in range(4096):\n        f.write(b'\\0' * (1 << 20))\nprint('ESCAPED')\n",
            OutputLimit,
            NonzeroExit,
        ),
        case(
            "zip_bomb",
            "import zlib\nd = zlib.compressobj()\nblob = d.compress(b'\\0' * (64 << 20)) + d.flush()\nwith open('/tmp/bomb', 'wb') as f:\n    for _ in range(64):\n        f.write(zlib.decompress(blob))\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "deep_recursion",
            "import sys\nsys.setrecursionlimit(10 ** 7)\nx = []\nfor _ in range(10 ** 6):\n    x = [x]\nprint(repr(x)[:10])\n",
            Killed,
            Killed,
        ),
        case(
            "recursion_error",
            "def f(n):\n    return f(n + 1)\nf(0)\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "huge_integer",
            "x = 10 ** (10 ** 8)\nprint(len(str(x)))\n",
            OutOfFuel,
            Timeout,
        ),
        // --- reading the host ---
        case("read_shadow", "print(open('/etc/shadow').read())\nprint('ESCAPED')\n", NonzeroExit, NonzeroExit),
        case("read_canary", "print(open('CANARY').read())\nprint('ESCAPED')\n", NonzeroExit, NonzeroExit),
        case("read_repo", "print(open('REPO/Cargo.toml').read())\nprint('ESCAPED')\n", NonzeroExit, NonzeroExit),
        case("read_cargo_home", "import os\nprint(os.listdir('CARGO_HOME'))\nprint('ESCAPED')\n", NonzeroExit, NonzeroExit),
        case(
            "dotdot_escape",
            "print(open('../../../../../../..' + 'CANARY').read())\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "list_root",
            "import os\nnames = os.listdir('/')\nprint(names)\nif 'work' in names or 'root' in names and os.path.isdir('/root/.cargo'):\n    print('ESCAPED')\n",
            // WASI shows only the preopened scratch dir (empty) as `/`
            Ok,
            Ok,
        ),
        case(
            "symlink_escape",
            "import os\nos.symlink('/', '/tmp/root')\nprint(open('/tmp/root' + 'CANARY').read())\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "proc_environ",
            "print(open('/proc/1/environ', 'rb').read())\nprint(open('/proc/self/environ', 'rb').read())\n",
            NonzeroExit,
            // the container's own environment: no host secret in it (checked)
            Ok,
        ),
        case("env_dump", "import os\nprint(dict(os.environ))\n", Ok, Ok),
        // --- writing the host ---
        case("write_canary", "open('CANARY', 'w').write('owned')\nprint('ESCAPED')\n", NonzeroExit, NonzeroExit),
        case("write_outside_scratch", "open('/usr/pwned', 'w').write('x')\nprint('ESCAPED')\n", NonzeroExit, NonzeroExit),
        case(
            "write_stdlib",
            "import os\nopen(os.__file__, 'wb').write(b'x')\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "write_dotdot",
            "open('/tmp/../../../../tmp/../pwned', 'w').write('x')\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case("write_device", "open('/dev/sda', 'wb').write(b'x')\nprint('ESCAPED')\n", NonzeroExit, NonzeroExit),
        // --- network ---
        case(
            "socket_connect",
            "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "host_loopback",
            "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=2)\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "dns_lookup",
            "import socket\nprint(socket.getaddrinfo('example.com', 80))\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "http_request",
            "import urllib.request\nurllib.request.urlopen('http://1.1.1.1/', timeout=2)\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        // --- processes and signals ---
        case(
            "subprocess",
            "import subprocess\nsubprocess.run(['cat', '/etc/hostname'])\nprint('ESCAPED')\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case(
            "os_system",
            "import os, sys\nr = os.system('echo ESCAPED')\nsys.exit(0 if r == 0 else 5)\n",
            NonzeroExit,
            NonzeroExit,
        ),
        case("exec_shell", "import os\nos.execv('/bin/sh', ['sh', '-c', 'echo ESCAPED'])\n", NonzeroExit, NonzeroExit),
        case(
            "ignore_signals",
            "import signal\nfor s in ('SIGTERM', 'SIGINT', 'SIGHUP'):\n    try:\n        signal.signal(getattr(signal, s), signal.SIG_IGN)\n    except Exception:\n        pass\nwhile True:\n    pass\n",
            OutOfFuel,
            Timeout,
        ),
        // kill(-1) reaches only the container's own processes (its supervisor included)
        case("kill_everything", "import os, time\nos.kill(-1, 9)\ntime.sleep(1)\n", NonzeroExit, Killed),
        case("exit_code", "import os\nos._exit(7)\n", NonzeroExit, NonzeroExit),
        case(
            "ctypes_segfault",
            "import ctypes\nctypes.string_at(0)\n",
            NonzeroExit,
            Killed,
        ),
    ];
    // huge stdin: 32 MiB read and counted
    let mut c = case(
        "huge_stdin",
        "import sys\nn = len(sys.stdin.buffer.read())\nprint(n)\n",
        Ok,
        Ok,
    );
    c.stdin = "0123456789abcdef".repeat(2 << 20);
    v.push(c);
    // CPU hogs get a small budget (~0.1 s of CPU) so that WASM stops them by fuel long before
    // the wall clock, however loaded the machine is
    for c in v.iter_mut() {
        if ["busy_loop", "huge_integer", "ignore_signals"].contains(&c.name) {
            c.limits.fuel = Some(2_000_000_000);
        }
    }
    // without a fuel budget the wall clock stops a busy loop in WASM too
    let mut c = case(
        "busy_loop_no_fuel",
        "while True:\n    pass\n",
        Timeout,
        Timeout,
    );
    c.limits.fuel = None;
    v.push(c);
    // a fuel budget: the WASM sandbox stops computation deterministically
    let mut c = case("fuel_budget", "while True:\n    pass\n", OutOfFuel, Timeout);
    c.limits.fuel = Some(200_000_000);
    v.push(c);
    v
}
