//! Docker backend: every program runs in a fresh, single-use, hardened container.
//!
//! # How a run goes
//! 1. A permit of the run semaphore is taken ([`DockerConfig::concurrency`] runs at once).
//! 2. A container is taken from the warm pool: containers created and started ahead with the
//!    pool's limits ([`DockerConfig::pool_limits`]). Their main process, under `tini`
//!    (`init: true`), is a small Python bootstrap blocked on reading its stdin. A run whose
//!    memory/pids/scratch limits differ from the pool's gets a container created on demand,
//!    since a container's limits are fixed when it is created.
//! 3. The run attaches to the container and writes a length-prefixed JSON payload (source,
//!    files, stdin, argv). The bootstrap writes `/tmp/main.py` and the files into the
//!    container's tmpfs `/tmp`, runs `python3 -B -u /tmp/main.py ARGV…` in `/tmp` as its
//!    child and feeds the program's stdin to it through a pipe. When the program exits, the
//!    bootstrap exits with its code (250 if the memory cgroup counted an OOM kill), which
//!    stops the container and every process left in it.
//! 4. stdout/stderr are read from the attached stream and capped at
//!    [`Limits::output_bytes`] each; the wall clock ([`Limits::timeout`]) is enforced here by
//!    killing the container.
//! 5. When the stream closes, the stopped container's state gives the exit code and the
//!    engine's `OOMKilled` flag. The container is removed in the background: it is never
//!    reused, so files in `/tmp` and stray processes cannot leak into the next program.
//!
//! Measured on a busy 2-core machine (Docker 20.10, `print(sum(range(1000)))`): a run through
//! a ready pool container takes ~67 ms (p50; `wall_ms` ~62 ms) against ~230 ms for the same
//! hardened `docker run --rm`; 4 at a time give ~8 programs/s, about what `docker run` gives
//! (~7.7/s), since each program still costs one container's creation and removal. A pool of
//! sleeping containers with one `docker exec` per program was tried first: ~95 ms per run at
//! best, as the exec and the kill needed before the engine reports `OOMKilled` are extra
//! engine round trips.
//!
//! # Hardening (every container)
//! `network_mode: none`, read-only rootfs, `/tmp` a tmpfs of [`Limits::scratch_mb`] MiB,
//! `memory = memory_swap =` [`Limits::memory_mb`], `pids_limit =` [`Limits::pids`] (`tini`
//! and the bootstrap are 2 of them, and the bootstrap's ~10 MB count against the memory
//! limit), user `65534:65534`, all capabilities dropped, `no-new-privileges`, logging driver
//! `none`, optional CPU cap ([`DockerConfig::cpus`]), labels [`LABEL`]` = 1`,
//! [`INSTANCE_LABEL`] and [`OWNER_LABEL`]. The environment is the image's plus a fixed list;
//! nothing is inherited from the host.
//!
//! # Cleaning up
//! [`DockerSandbox::shutdown`] removes everything a sandbox created. Containers of a process
//! that died without it are removed by the next [`DockerSandbox::connect`] on the same machine
//! (the owner label names the process), and their ready containers exit by themselves after
//! [`DockerConfig::pool_idle_exit_s`] without a program; [`DockerSandbox::cleanup_leftovers`]
//! removes every sandbox container on the engine.
//!
//! # Results
//! Exit 0 → `ok`; the bootstrap's 250 (an OOM kill counted by the container's memory cgroup,
//! a child's included — the program's own exit code is then lost and 137 is reported), the
//! engine's `OOMKilled` flag, or a final `MemoryError` traceback line → `out_of_memory`; any
//! other exit 128+n (signal n; 137 when the program killed the bootstrap itself) → `killed`;
//! 125 with the bootstrap's own message (the files did not fit in `/tmp`) → `sandbox_error`;
//! other codes → `nonzero_exit`. Our own stops: `timeout`, `output_limit`. Any engine failure is a
//! `sandbox_error` result; every engine call has a timeout.
//!
//! Setup: `sandbox/docker/start-dockerd.sh` (engine) and `sandbox/docker/build-image.sh`
//! (image `rlvr-sandbox-python:3.11`); measured facts in `shared/notes/sandbox-docker.md`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, ContainerSummary, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, warn};

use crate::{BackendKind, Limits, Program, RunResult, Sandbox, SandboxError, Status};

/// The image used when neither the config nor `$RLVR_SANDBOX_IMAGE` names one.
pub const DEFAULT_IMAGE: &str = "rlvr-sandbox-python:3.11";
/// Label (value `1`) on every container this backend creates; [`DockerSandbox::cleanup_leftovers`]
/// removes every container carrying it.
pub const LABEL: &str = "org.rlvr.sandbox";
/// Label whose value is [`DockerSandbox::instance_id`]: which sandbox created a container.
pub const INSTANCE_LABEL: &str = "org.rlvr.sandbox.instance";
/// Label naming the process that created a container (`<boot id>/<pid namespace>/<pid>`), so
/// that [`DockerSandbox::connect`] can remove the containers of processes that died without
/// [`DockerSandbox::shutdown`].
pub const OWNER_LABEL: &str = "org.rlvr.sandbox.owner";

/// The user programs run as (`nobody:nogroup` in the image).
const USER: &str = "65534:65534";
/// Limit for engine calls that create or start containers.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit for quick engine calls (attach, inspect, kill, remove, list).
const QUICK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `shutdown` waits for in-flight runs and background work.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);
/// Environment of the containers (besides the image's `ENV`); nothing comes from the host.
const ENV: [&str; 4] = [
    "PATH=/usr/bin:/bin",
    "LANG=C.UTF-8",
    "HOME=/tmp",
    "PYTHONDONTWRITEBYTECODE=1",
];

/// The main process of every container (`python3 -I -S -B -c BOOTSTRAP`, under `tini`).
///
/// Reads `[8-byte big-endian length][JSON {source, files, stdin, argv}]` from fd 0, writes the
/// files and `/tmp/main.py`, runs the program as its child with its stdin fed through a pipe
/// (not stored in `/tmp`), made the OOM killer's first choice (`oom_score_adj` 1000). When the
/// program ends, it exits with the program's code (128+n for signal n) — or 250 if the
/// container's memory cgroup counted any OOM kill (a child's included): the kernel's counter
/// is exact, where the engine's `OOMKilled` flag can miss an OOM that races with the exit.
/// A container left idle in the pool for [`DockerConfig::pool_idle_exit_s`] (its process gone
/// without a shutdown, or no work) exits by itself, freeing its memory; a run that finds it
/// stopped takes a fresh container, and should one reach it at that very moment, the run is a
/// `sandbox_error` (exit 125 with the bootstrap's message), never a verdict.
const BOOTSTRAP: &str = r#"import os, json, select
if not select.select([0], [], [], IDLE_EXIT_S)[0]:
    os.write(2, b'rlvr-sandbox: no program came within IDLE_EXIT_S s in the pool; exiting\n')
    os._exit(125)
def rd(n):
    b = bytearray()
    while len(b) < n:
        c = os.read(0, n - len(b))
        if not c:
            os.write(2, b'rlvr-sandbox: the program payload was cut short\n')
            os._exit(125)
        b += c
    return bytes(b)
p = json.loads(rd(int.from_bytes(rd(8), 'big')))
os.chdir('/tmp')
def wr(name, text):
    d = os.path.dirname(name)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(name, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
try:
    for name, text in p['files'].items():
        wr(name, text)
    wr('main.py', p['source'])
except OSError as e:
    os.write(2, ('rlvr-sandbox: writing the program files into /tmp: %s\n' % e).encode())
    os._exit(125)
data = p['stdin'].encode('utf-8')
argv = ['python3', '-B', '-u', '/tmp/main.py'] + p['argv']
del p
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.dup2(r, 0)
    os.close(r)
    try:
        with open('/proc/self/oom_score_adj', 'w') as f:
            f.write('1000')
    except OSError:
        pass
    os.execv('/usr/bin/python3', argv)
os.close(r)
def feed():
    v = memoryview(data)
    try:
        while v:
            v = v[os.write(w, v[:1 << 16]):]
    except OSError:
        pass
    os.close(w)
import threading
threading.Thread(target=feed, daemon=True).start()
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
if code < 0:
    code = 128 - code
for name in ('/sys/fs/cgroup/memory/memory.oom_control', '/sys/fs/cgroup/memory.events'):
    try:
        with open(name) as f:
            for line in f:
                if line.startswith('oom_kill ') and int(line.split()[1]) > 0:
                    code = 250
        break
    except OSError:
        pass
os._exit(code)
"#;

/// Settings of the Docker backend. Every field has a default, so `{}` is a valid config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Image with `python3` (no shell needed). Default: `$RLVR_SANDBOX_IMAGE`, else
    /// [`DEFAULT_IMAGE`]. Built by `sandbox/docker/build-image.sh`.
    pub image: String,
    /// How many programs run at once (default 4); more wait for a slot.
    pub concurrency: usize,
    /// How many started containers are kept ready; `None` (default) = `concurrency`, `0`
    /// disables the pool (every run creates its container, ~0.15–0.3 s more per run). Each
    /// ready container holds an idle Python process (~10 MB).
    pub warm_pool: Option<usize>,
    /// Engine socket (`/var/run/docker.sock` or `unix:///…`). Default: `$DOCKER_HOST` when it
    /// is a `unix://` URL, else `/var/run/docker.sock`.
    pub socket: Option<String>,
    /// The limits pool containers are created with (memory, pids and scratch size matter).
    /// Runs with other values of those three get a fresh container. Default: [`Limits::default`].
    pub pool_limits: Limits,
    /// CPUs a container may use (`nano_cpus`), e.g. `1.0`; `None` (default) = no cap.
    pub cpus: Option<f64>,
    /// A ready container that gets no program for this many seconds exits by itself (default
    /// 900), so that containers of a process that ended without [`Sandbox::shutdown`] stop
    /// holding memory; the next `connect` on the machine removes them.
    pub pool_idle_exit_s: u64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            image: std::env::var("RLVR_SANDBOX_IMAGE")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
            concurrency: 4,
            warm_pool: None,
            socket: None,
            pool_limits: Limits::default(),
            cpus: None,
            pool_idle_exit_s: 900,
        }
    }
}

impl DockerConfig {
    /// The effective pool size: `warm_pool`, or `concurrency` when unset.
    pub fn warm_pool_size(&self) -> usize {
        self.warm_pool.unwrap_or(self.concurrency)
    }

    /// The socket path to connect to.
    fn socket_path(&self) -> String {
        let raw = self
            .socket
            .clone()
            .or_else(|| {
                std::env::var("DOCKER_HOST")
                    .ok()
                    .filter(|h| h.starts_with("unix://"))
            })
            .unwrap_or_else(|| "/var/run/docker.sock".to_string());
        raw.trim_start_matches("unix://").to_string()
    }
}

/// Runs programs in single-use hardened containers fed from a warm pool. See the module docs.
///
/// Share it behind an `Arc`. There is no `Drop` cleanup: call [`DockerSandbox::shutdown`]
/// when done (see "Cleaning up" in the module docs for what happens otherwise).
pub struct DockerSandbox {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    cfg: DockerConfig,
    instance: String,
    owner: Option<String>,
    runs: Semaphore,
    pool: Mutex<PoolState>,
    /// Signalled when a pool container becomes ready or a pool creation ends.
    pool_changed: Notify,
    closed: AtomicBool,
    /// `shutdown` stopped waiting for in-flight runs and removed their containers.
    forced: AtomicBool,
    background: Mutex<usize>,
}

#[derive(Default)]
struct PoolState {
    ready: VecDeque<String>,
    creating: usize,
    /// Pool creations that failed so far.
    failed: u64,
}

/// How reading a program's output ended.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// The program exited with this code (the container's).
    Exited(Option<i64>),
    Timeout,
    OutputLimit,
    /// The engine failed after the program started.
    Engine(String),
}

/// What one run produced.
struct RunOutcome {
    end: End,
    /// The container's `OOMKilled` once stopped (`None`: not read).
    oom: Option<bool>,
    stdout: CappedBuf,
    stderr: CappedBuf,
    wall: Duration,
}

/// A byte buffer that keeps at most `cap` bytes and remembers whether more came.
struct CappedBuf {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedBuf {
    fn new(cap: usize) -> Self {
        CappedBuf {
            buf: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Appends `bytes`; returns true when the cap was exceeded (the excess is dropped).
    fn push(&mut self, bytes: &[u8]) -> bool {
        let room = self.cap.saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.buf.extend_from_slice(&bytes[..room]);
            self.truncated = true;
            true
        } else {
            self.buf.extend_from_slice(bytes);
            false
        }
    }

    /// Lossy UTF-8; a multi-byte character cut by the cap is dropped rather than replaced.
    fn into_string(mut self) -> String {
        if self.truncated {
            if let Err(e) = std::str::from_utf8(&self.buf) {
                if e.error_len().is_none() {
                    self.buf.truncate(e.valid_up_to());
                }
            }
        }
        match String::from_utf8(self.buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

/// Runs `fut` with a time limit, turning both failures into a message.
async fn engine<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T, BollardError>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("Docker engine error while {what}: {e}")),
        Err(_) => Err(format!(
            "the Docker engine did not answer within {} s while {what}",
            limit.as_secs()
        )),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A unique-enough id for this sandbox's containers (pid, time, counter).
fn new_instance_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{:x}-{n}", std::process::id(), nanos)
}

/// This process as `<boot id>/<pid namespace>/<pid>`; `None` off Linux or without `/proc`.
fn owner_id() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!(
        "{}/{}/{}",
        boot.trim(),
        ns.to_string_lossy(),
        std::process::id()
    ))
}

/// Whether `owner` (an [`OWNER_LABEL`] value) is a process of this machine and pid namespace
/// that no longer exists. Unknown owners (another machine or namespace) are never dead.
fn owner_is_dead(owner: &str, me: &str) -> bool {
    let (Some((theirs, pid)), Some((mine, _))) = (owner.rsplit_once('/'), me.rsplit_once('/'))
    else {
        return false;
    };
    theirs == mine
        && pid.parse::<u32>().is_ok()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The bytes written to the bootstrap's stdin.
fn payload(program: &Program) -> Vec<u8> {
    let json = serde_json::json!({
        "source": program.source,
        "files": program.files,
        "stdin": program.stdin,
        "argv": program.argv,
    });
    let body = serde_json::to_vec(&json).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Whether stderr ends with a Python `MemoryError` traceback line.
fn memory_error(stderr: &str) -> bool {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with("MemoryError"))
}

/// The bootstrap's exit code when the memory cgroup counted an OOM kill (reported as 137).
const OOM_EXIT: i64 = 250;

/// The status of a run. `oom` is the container's `OOMKilled` after it stopped (`None` when
/// it could not be read); the bootstrap's [`OOM_EXIT`] reports OOM kills the flag misses.
fn classify(end: &End, oom: Option<bool>, stderr: &str) -> Status {
    match end {
        End::Timeout => Status::Timeout,
        End::OutputLimit => Status::OutputLimit,
        End::Engine(_) => Status::SandboxError,
        End::Exited(code) => {
            if oom == Some(true) {
                return Status::OutOfMemory;
            }
            match code {
                Some(0) => Status::Ok,
                // The bootstrap's report of an OOM kill counted by the memory cgroup.
                Some(OOM_EXIT) => Status::OutOfMemory,
                // The bootstrap could not set the program up (its own message is on stderr).
                Some(125) if stderr.contains("rlvr-sandbox:") => Status::SandboxError,
                // A signal: the program's, or the bootstrap's own SIGKILL (e.g. the program
                // killed every process it could see) when the cgroup counted no OOM kill.
                Some(c) if (129..=192).contains(c) => Status::Killed,
                Some(_) if memory_error(stderr) => Status::OutOfMemory,
                Some(_) => Status::NonzeroExit,
                None => Status::SandboxError,
            }
        }
    }
}

/// Removes a container in the background if a run is dropped before it handed it back.
struct ContainerGuard {
    inner: Arc<Inner>,
    id: Option<String>,
}

impl ContainerGuard {
    fn disarm(mut self) -> String {
        self.id.take().unwrap_or_default()
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.inner.discard(id);
        }
    }
}

/// Counts a background task while it lives (also when its runtime drops it).
struct BackgroundGuard(Arc<Inner>);

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        let mut n = lock(&self.0.background);
        *n = n.saturating_sub(1);
    }
}

/// Counts a pool creation while it lives.
struct CreatingGuard(Arc<Inner>);

impl Drop for CreatingGuard {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.0.pool);
            st.creating = st.creating.saturating_sub(1);
        }
        self.0.pool_changed.notify_waiters();
    }
}

impl DockerSandbox {
    /// Connects to the engine (negotiating the API version), checks that the image exists and
    /// starts the warm pool (waiting for it, so a container that cannot start fails here).
    ///
    /// Errors ([`SandboxError::Engine`]) say how to fix the setup: start the engine with
    /// `sandbox/docker/start-dockerd.sh`, build the image with `sandbox/docker/build-image.sh`.
    pub async fn connect(cfg: DockerConfig) -> Result<DockerSandbox, SandboxError> {
        let path = cfg.socket_path();
        let fix_engine = "start one with sandbox/docker/start-dockerd.sh";
        let docker =
            Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION).map_err(|e| {
                SandboxError::Engine(format!("no Docker engine at {path} ({e}): {fix_engine}"))
            })?;
        let docker = match tokio::time::timeout(QUICK_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                return Err(SandboxError::Engine(format!(
                    "the Docker engine at {path} does not answer ({e}): {fix_engine}"
                )))
            }
            Err(_) => {
                return Err(SandboxError::Engine(format!(
                    "the Docker engine at {path} did not answer within {} s: {fix_engine}",
                    QUICK_TIMEOUT.as_secs()
                )))
            }
        };
        match tokio::time::timeout(QUICK_TIMEOUT, docker.inspect_image(&cfg.image)).await {
            Ok(Ok(_)) => {}
            Ok(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            })) => {
                return Err(SandboxError::Engine(format!(
                "the Docker image {} does not exist: build it with sandbox/docker/build-image.sh \
                     (set RLVR_SANDBOX_IMAGE to use another image)",
                cfg.image
            )))
            }
            Ok(Err(e)) => {
                return Err(SandboxError::Engine(format!(
                    "inspecting the Docker image {}: {e}",
                    cfg.image
                )))
            }
            Err(_) => {
                return Err(SandboxError::Engine(format!(
                    "the Docker engine did not answer within {} s while inspecting the image {}",
                    QUICK_TIMEOUT.as_secs(),
                    cfg.image
                )))
            }
        }
        let inner = Arc::new(Inner {
            docker,
            runs: Semaphore::new(cfg.concurrency.max(1)),
            cfg,
            instance: new_instance_id(),
            owner: owner_id(),
            pool: Mutex::new(PoolState::default()),
            pool_changed: Notify::new(),
            closed: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            background: Mutex::new(0),
        });
        inner.reap_orphans().await;
        inner.fill_initial_pool().await?;
        debug!(instance = %inner.instance, image = %inner.cfg.image, "Docker sandbox ready");
        Ok(DockerSandbox { inner })
    }

    /// The configuration in use.
    pub fn config(&self) -> &DockerConfig {
        &self.inner.cfg
    }

    /// The value of the [`INSTANCE_LABEL`] label on this sandbox's containers.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance
    }

    /// How many pool containers are ready now.
    pub fn pool_ready(&self) -> usize {
        lock(&self.inner.pool).ready.len()
    }

    /// The engine client (for inspection by callers and tests).
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }

    /// Force-removes every container labelled `org.rlvr.sandbox=1` — this sandbox's pool and
    /// runs included, and those of other processes using the same engine: call it at start-up
    /// or when nothing else runs. Returns how many containers were removed.
    pub async fn cleanup_leftovers(&self) -> usize {
        lock(&self.inner.pool).ready.clear();
        self.inner.remove_labelled(&format!("{LABEL}=1")).await
    }

    /// Stops the sandbox: new runs return a `sandbox_error`, in-flight and queued runs may
    /// finish (for up to 30 s; those still running then end as `sandbox_error`), the pool is
    /// drained, background removals are awaited and every container still carrying this
    /// sandbox's [`INSTANCE_LABEL`] is removed. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::SeqCst);
        let permits = inner.cfg.concurrency.max(1) as u32;
        match tokio::time::timeout(SHUTDOWN_WAIT, inner.runs.acquire_many(permits)).await {
            Ok(Ok(p)) => p.forget(),
            Ok(Err(_)) => {}
            Err(_) => {
                warn!("Docker sandbox shutdown: runs still in flight after 30 s are stopped");
                inner.forced.store(true, Ordering::SeqCst);
            }
        }
        inner.runs.close();
        let ready: Vec<String> = lock(&inner.pool).ready.drain(..).collect();
        futures_util::future::join_all(ready.iter().map(|id| inner.remove(id))).await;
        let t0 = Instant::now();
        while *lock(&inner.background) > 0 && t0.elapsed() < SHUTDOWN_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = inner
            .remove_labelled(&format!("{INSTANCE_LABEL}={}", inner.instance))
            .await;
        if n > 0 {
            debug!(
                n,
                "Docker sandbox shutdown removed containers still present"
            );
        }
    }
}

impl Inner {
    fn pool_compatible(&self, limits: &Limits) -> bool {
        let p = &self.cfg.pool_limits;
        p.memory_mb == limits.memory_mb
            && p.pids == limits.pids
            && p.scratch_mb == limits.scratch_mb
            && p.scratch_files == limits.scratch_files
    }

    fn container_body(&self, limits: &Limits) -> ContainerCreateBody {
        let memory = (limits.memory_mb.saturating_mul(1 << 20)).min(i64::MAX as u64) as i64;
        let host = HostConfig {
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!(
                    "size={}m,nr_inodes={},mode=1777",
                    limits.scratch_mb.max(1),
                    limits.scratch_files.max(16)
                ),
            )])),
            memory: Some(memory),
            memory_swap: Some(memory),
            pids_limit: Some(i64::from(limits.pids.max(1))),
            init: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ipc_mode: Some("private".into()),
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            nano_cpus: self.cfg.cpus.map(|c| (c * 1e9) as i64),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.cfg.image.clone()),
            cmd: Some(vec![
                "python3".into(),
                "-I".into(),
                "-S".into(),
                "-B".into(),
                "-c".into(),
                BOOTSTRAP.replace("IDLE_EXIT_S", &self.cfg.pool_idle_exit_s.max(1).to_string()),
            ]),
            user: Some(USER.into()),
            env: Some(ENV.iter().map(|s| s.to_string()).collect()),
            working_dir: Some("/tmp".into()),
            hostname: Some("sandbox".into()),
            labels: Some(
                [
                    (LABEL.to_string(), "1".to_string()),
                    (INSTANCE_LABEL.to_string(), self.instance.clone()),
                ]
                .into_iter()
                .chain(self.owner.clone().map(|o| (OWNER_LABEL.to_string(), o)))
                .collect(),
            ),
            // Stdin stays open for the one attach that delivers the program.
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            host_config: Some(host),
            ..Default::default()
        }
    }

    /// Creates and starts a container with `limits`.
    async fn create_container(&self, limits: &Limits) -> Result<String, String> {
        let body = self.container_body(limits);
        let created = engine(
            "creating a container",
            ENGINE_TIMEOUT,
            self.docker.create_container(None, body),
        )
        .await?;
        let id = created.id;
        if let Err(e) = engine(
            "starting a container",
            ENGINE_TIMEOUT,
            self.docker.start_container(&id, None),
        )
        .await
        {
            self.remove(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Force-removes a container, logging failures.
    async fn remove(&self, id: &str) {
        let opts = RemoveContainerOptionsBuilder::new().force(true).build();
        match engine(
            "removing a container",
            QUICK_TIMEOUT,
            self.docker.remove_container(id, Some(opts)),
        )
        .await
        {
            Ok(()) => {}
            Err(e) if e.contains("404") || e.contains("No such container") => {}
            Err(e) => warn!(container = id, "{e}"),
        }
    }

    /// Removes every container matching a `label` filter; returns how many went.
    async fn remove_labelled(&self, label: &str) -> usize {
        let Some(list) = self.list_labelled(label).await else {
            return 0;
        };
        let ids: Vec<String> = list.into_iter().filter_map(|c| c.id).collect();
        futures_util::future::join_all(ids.iter().map(|id| self.remove(id))).await;
        ids.len()
    }

    /// Every container (running or not) carrying `label`; `None` (with a warning) when the
    /// engine cannot list them.
    async fn list_labelled(&self, label: &str) -> Option<Vec<ContainerSummary>> {
        let filters = HashMap::from([("label", vec![label])]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        match engine(
            "listing containers",
            QUICK_TIMEOUT,
            self.docker.list_containers(Some(opts)),
        )
        .await
        {
            Ok(l) => Some(l),
            Err(e) => {
                warn!("{e}");
                None
            }
        }
    }

    /// Removes the containers of sandboxes whose process died (same machine and pid
    /// namespace, see [`OWNER_LABEL`]) without shutting down.
    async fn reap_orphans(&self) {
        let Some(me) = &self.owner else {
            return;
        };
        let Some(list) = self.list_labelled(OWNER_LABEL).await else {
            return;
        };
        let orphans: Vec<String> = list
            .into_iter()
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(OWNER_LABEL))
                    .is_some_and(|owner| owner_is_dead(owner, me))
            })
            .filter_map(|c| c.id)
            .collect();
        if !orphans.is_empty() {
            debug!(
                n = orphans.len(),
                "removing containers of dead sandbox processes"
            );
            futures_util::future::join_all(orphans.iter().map(|id| self.remove(id))).await;
        }
    }

    /// Spawns `fut` on the current runtime, counted until it ends (see `shutdown`).
    fn spawn_background(self: Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            warn!("no tokio runtime: background Docker work skipped");
            return;
        };
        *lock(&self.background) += 1;
        let guard = BackgroundGuard(self);
        handle.spawn(async move {
            let _guard = guard;
            fut.await;
        });
    }

    /// Fills the pool at start-up and waits for it; fails when no container could start.
    async fn fill_initial_pool(self: &Arc<Self>) -> Result<(), SandboxError> {
        let n = self.cfg.warm_pool_size();
        if n == 0 {
            return Ok(());
        }
        let limits = self.cfg.pool_limits;
        let results =
            futures_util::future::join_all((0..n).map(|_| self.create_container(&limits))).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(id) => lock(&self.pool).ready.push_back(id),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if lock(&self.pool).ready.is_empty() => Err(SandboxError::Engine(format!(
                "cannot start a sandbox container from image {}: {e}",
                self.cfg.image
            ))),
            Some(e) => {
                warn!("some pool containers failed to start: {e}");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Starts creations until ready + creating reaches the pool size.
    fn refill(self: &Arc<Self>) {
        if self.closed.load(Ordering::SeqCst) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let want = self.cfg.warm_pool_size();
        loop {
            {
                let mut st = lock(&self.pool);
                if st.ready.len() + st.creating >= want {
                    return;
                }
                st.creating += 1;
            }
            let creating = CreatingGuard(self.clone());
            let inner = self.clone();
            self.clone().spawn_background(async move {
                let _creating = creating;
                let limits = inner.cfg.pool_limits;
                match inner.create_container(&limits).await {
                    Ok(id) => {
                        let closed = inner.closed.load(Ordering::SeqCst);
                        if closed {
                            inner.remove(&id).await;
                        } else {
                            lock(&inner.pool).ready.push_back(id);
                        }
                    }
                    Err(e) => {
                        lock(&inner.pool).failed += 1;
                        warn!("refilling the Docker sandbox pool: {e}");
                    }
                }
            });
        }
    }

    /// A container for `limits`: from the pool when compatible (waiting for one being
    /// created), else a fresh one. Returns the id and whether it came from the pool.
    async fn take_container(self: &Arc<Self>, limits: &Limits) -> Result<(String, bool), String> {
        if self.pool_compatible(limits) && self.cfg.warm_pool_size() > 0 {
            let failed_before = lock(&self.pool).failed;
            let give_up = tokio::time::Instant::now() + ENGINE_TIMEOUT;
            loop {
                let notified = self.pool_changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let got = lock(&self.pool).ready.pop_front();
                self.refill();
                if let Some(id) = got {
                    return Ok((id, true));
                }
                let (creating, failed) = {
                    let st = lock(&self.pool);
                    (st.creating, st.failed)
                };
                // Nothing coming (closed, or creations failing): create one here, which
                // reports the engine's error if it fails too.
                if creating == 0 || failed != failed_before {
                    break;
                }
                // A creation is in flight: wait for it, or for a bounded time.
                if tokio::time::timeout_at(give_up, notified).await.is_err() {
                    break;
                }
            }
        }
        self.create_container(limits).await.map(|id| (id, false))
    }

    /// Kills and removes a container in the background.
    fn discard(self: &Arc<Self>, id: String) {
        let inner = self.clone();
        self.clone()
            .spawn_background(async move { inner.remove(&id).await });
    }

    /// Kills a container now (the engine returns once it has stopped).
    async fn kill(&self, id: &str) {
        let kill = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        if let Err(e) = engine(
            "killing a container",
            QUICK_TIMEOUT,
            self.docker.kill_container(id, Some(kill)),
        )
        .await
        {
            debug!(container = id, "{e}");
        }
    }

    /// Feeds the program to the bootstrap waiting in container `id` and collects what it does.
    /// `Err` means the container could not be attached to (it may have died in the pool);
    /// failures after that are in the outcome.
    async fn attach_run(
        &self,
        id: &str,
        payload: &[u8],
        limits: &Limits,
    ) -> Result<RunOutcome, String> {
        let opts = AttachContainerOptionsBuilder::new()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .logs(false)
            .build();
        let AttachContainerResults {
            mut output,
            mut input,
        } = engine(
            "attaching to a container",
            QUICK_TIMEOUT,
            self.docker.attach_container(id, Some(opts)),
        )
        .await?;
        // Attaching to a stopped container succeeds but its stream never ends: make sure this
        // one is alive (after the attach, so that a later exit closes the stream).
        let state = engine(
            "inspecting a container",
            QUICK_TIMEOUT,
            self.docker.inspect_container(id, None),
        )
        .await?
        .state
        .unwrap_or_default();
        if state.running != Some(true) {
            return Err(format!(
                "the container is not running (status {:?}, exit code {:?})",
                state.status, state.exit_code
            ));
        }
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + limits.timeout();
        let data = payload.to_vec();
        let writer = tokio::spawn(async move {
            if let Err(e) = input.write_all(&data).await {
                debug!("writing the program payload: {e}");
            }
            let _ = input.flush().await;
            // The write half stays open: the bootstrap reads exactly the payload, and the
            // program's stdin is a file.
            input
        });

        let mut stdout = CappedBuf::new(limits.output_bytes);
        let mut stderr = CappedBuf::new(limits.output_bytes);
        let mut end = None;
        while end.is_none() {
            match tokio::time::timeout_at(deadline, output.next()).await {
                Err(_) => end = Some(End::Timeout),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    end = Some(End::Engine(format!("reading the program's output: {e}")))
                }
                Ok(Some(Ok(item))) => {
                    let over = match item {
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            stdout.push(&message)
                        }
                        LogOutput::StdErr { message } => stderr.push(&message),
                        LogOutput::StdIn { .. } => false,
                    };
                    if over {
                        end = Some(End::OutputLimit);
                    }
                }
            }
        }
        let wall = start.elapsed();
        drop(output);
        writer.abort();
        let mut oom = None;
        let end = match end {
            Some(e) => e,
            // The stream closes when the container stops; its state follows right after.
            None => {
                let mut delay = Duration::from_millis(2);
                loop {
                    match engine(
                        "inspecting a container",
                        QUICK_TIMEOUT,
                        self.docker.inspect_container(id, None),
                    )
                    .await
                    {
                        Ok(info) => {
                            let state = info.state.unwrap_or_default();
                            if state.running != Some(true) {
                                oom = state.oom_killed;
                                break End::Exited(state.exit_code);
                            }
                        }
                        Err(e) => break End::Engine(e),
                    }
                    if tokio::time::Instant::now() >= deadline {
                        break End::Timeout;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
            }
        };
        Ok(RunOutcome {
            end,
            oom,
            stdout,
            stderr,
            wall,
        })
    }

    async fn run(self: &Arc<Self>, program: Program, limits: Limits) -> RunResult {
        let kind = BackendKind::Docker;
        if let Err(e) = program.validate() {
            return RunResult::sandbox_error(kind, format!("invalid program: {e}"));
        }
        if self.closed.load(Ordering::SeqCst) {
            return RunResult::sandbox_error(kind, "the Docker sandbox was shut down");
        }
        let Ok(_permit) = self.runs.acquire().await else {
            return RunResult::sandbox_error(kind, "the Docker sandbox was shut down");
        };
        let payload = payload(&program);
        let mut retried = false;
        loop {
            let (id, pooled) = match self.take_container(&limits).await {
                Ok(x) => x,
                Err(e) => return RunResult::sandbox_error(kind, e),
            };
            let guard = ContainerGuard {
                inner: self.clone(),
                id: Some(id.clone()),
            };
            let outcome = self.attach_run(&id, &payload, &limits).await;
            if let Ok(out) = &outcome {
                if !matches!(out.end, End::Exited(_)) {
                    // Stop the program now, while this run still holds its slot.
                    self.kill(&id).await;
                }
            }
            self.discard(guard.disarm());
            let out = match outcome {
                Ok(out) => out,
                Err(e) if pooled && !retried => {
                    // A pool container may have died while waiting: try a fresh one once.
                    warn!("attaching to a pool container failed, retrying: {e}");
                    retried = true;
                    continue;
                }
                Err(e) => return RunResult::sandbox_error(kind, e),
            };
            if let End::Engine(e) = &out.end {
                return RunResult::sandbox_error(kind, e.clone());
            }
            let stdout_truncated = out.stdout.truncated;
            let stderr_truncated = out.stderr.truncated;
            let stdout = out.stdout.into_string();
            let stderr = out.stderr.into_string();
            let status = classify(&out.end, out.oom, &stderr);
            if status == Status::SandboxError {
                return RunResult::sandbox_error(kind, "the engine reported no exit code");
            }
            if self.forced.load(Ordering::SeqCst)
                && matches!(status, Status::OutOfMemory | Status::Killed)
            {
                // `shutdown` gave up waiting and removed the container under the program.
                return RunResult::sandbox_error(
                    kind,
                    "the Docker sandbox was shut down during the run",
                );
            }
            let exit_code = match out.end {
                // the bootstrap's OOM report stands for the SIGKILL the OOM killer sent
                End::Exited(Some(OOM_EXIT)) => Some(137),
                End::Exited(c) => c.and_then(|c| i32::try_from(c).ok()),
                _ => None,
            };
            return RunResult {
                status,
                exit_code,
                stdout,
                stderr,
                stdout_truncated,
                stderr_truncated,
                wall_ms: out.wall.as_secs_f64() * 1000.0,
                fuel_used: None,
                backend: kind,
            };
        }
    }
}

#[async_trait::async_trait]
impl Sandbox for DockerSandbox {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    async fn shutdown(&self) {
        DockerSandbox::shutdown(self).await
    }

    async fn run(&self, program: Program, limits: Limits) -> RunResult {
        self.inner.run(program, limits).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_buffer_keeps_the_cap_and_cuts_characters_cleanly() {
        let mut b = CappedBuf::new(5);
        assert!(!b.push(b"abc"));
        assert!(!b.push(b"de"));
        assert!(b.push(b"f"));
        assert_eq!(b.into_string(), "abcde");
        let mut b = CappedBuf::new(4);
        assert!(b.push("abcé".as_bytes())); // é is 2 bytes: cut after its first byte
        assert_eq!(b.into_string(), "abc");
    }

    #[test]
    fn statuses() {
        let e = |c| End::Exited(Some(c));
        assert_eq!(classify(&e(0), Some(false), ""), Status::Ok);
        assert_eq!(classify(&e(0), Some(true), ""), Status::OutOfMemory);
        assert_eq!(classify(&e(137), Some(true), ""), Status::OutOfMemory);
        assert_eq!(classify(&e(OOM_EXIT), Some(false), ""), Status::OutOfMemory);
        assert_eq!(classify(&e(137), Some(false), ""), Status::Killed);
        assert_eq!(
            classify(
                &e(125),
                Some(false),
                "rlvr-sandbox: writing the program files"
            ),
            Status::SandboxError
        );
        assert_eq!(classify(&e(139), Some(false), ""), Status::Killed);
        assert_eq!(classify(&e(143), Some(false), ""), Status::Killed);
        assert_eq!(
            classify(&e(1), Some(false), "Traceback\nValueError: x\n"),
            Status::NonzeroExit
        );
        assert_eq!(
            classify(&e(1), Some(false), "Traceback\nMemoryError\n"),
            Status::OutOfMemory
        );
        assert_eq!(classify(&e(3), None, ""), Status::NonzeroExit);
        assert_eq!(classify(&End::Timeout, Some(true), ""), Status::Timeout);
        assert_eq!(classify(&End::OutputLimit, None, ""), Status::OutputLimit);
    }

    #[test]
    fn payload_is_length_prefixed_json() {
        let p = Program::python("print(1)").with_stdin("x");
        let bytes = payload(&p);
        let n = u64::from_be_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n, bytes.len() - 8);
        let v: serde_json::Value = serde_json::from_slice(&bytes[8..]).unwrap();
        assert_eq!(v["source"], "print(1)");
        assert_eq!(v["stdin"], "x");
    }

    #[test]
    fn dead_owners() {
        let me = owner_id().expect("Linux with /proc");
        let base = me.rsplit_once('/').unwrap().0;
        assert!(!owner_is_dead(&me, &me), "this process is alive");
        assert!(owner_is_dead(&format!("{base}/4294967295"), &me));
        assert!(!owner_is_dead("other-boot/pid:[1]/4294967295", &me));
        assert!(!owner_is_dead("garbage", &me));
    }

    #[test]
    fn config_defaults() {
        let c: DockerConfig = serde_json::from_str(r#"{"concurrency": 8}"#).unwrap();
        assert_eq!(c.warm_pool_size(), 8);
        assert_eq!(c.pool_limits, Limits::default());
        let c: DockerConfig = serde_json::from_str(r#"{"warm_pool": 0}"#).unwrap();
        assert_eq!(c.warm_pool_size(), 0);
        assert!(serde_json::from_str::<DockerConfig>(r#"{"nope": 1}"#).is_err());
    }
}
