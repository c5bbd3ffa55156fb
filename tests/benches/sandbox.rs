//! The project's benchmark: `cargo bench -p ringfence-tests --bench sandbox`.
//!
//! Every figure is measured against native **in the same run**, with the
//! native and sandboxed repetitions interleaved so that the machine's noise
//! falls on both sides alike. Each figure is the median of its repetitions.
//!
//! The measures (BENCHMARKS.md explains them at more length):
//! 1. **getppid round trip**: `c/bench_getppid.c` times `N` calls of
//!    `syscall(SYS_getppid)` with `CLOCK_MONOTONIC` around the loop (after a
//!    warm-up) and prints ns/op. Run natively and inside the sandbox on each
//!    platform.
//! 2. **Raw `PTRACE_SYSEMU` floor**: this file's own minimal tracer (a forked
//!    child loops on `getppid`; the parent, pinned with it to one CPU, loops
//!    `PTRACE_SYSEMU` + `waitpid` + `GETREGS` + `SETREGS`). The ptrace
//!    platform's getppid cannot be much cheaper than this; their ratio is our
//!    overhead over the floor.
//! 3. **`ringfence run` of a static `true`** (`c/bench_true.c`), end to end
//!    wall time, against native spawn + exec + wait of the same binary; plus
//!    the `ru_maxrss` of the `ringfence` process (from `wait4`) and its RSS
//!    outside the guest-memory mapping, sampled during the getppid runs.
//! 4. **stdout throughput**: `c/bench_lines.c` writes 10,000 lines of 20 bytes
//!    with one `write(2)` each into a pipe the bench drains; wall time of the
//!    whole run and the program's own time per line.
//! 5. **Issue 4's operations**, each a program that times its own loop and
//!    prints `ns_per_op=`: fork + exec + wait of a static `true`
//!    (`c/bench_forkexec.c`), a one-byte pipe ping-pong between two
//!    processes (`c/bench_pipe.c`), a futex wake/wait ping-pong between two
//!    threads (`c/bench_futex.c`), and `clock_gettime(CLOCK_MONOTONIC)`,
//!    which goes through the vDSO (`c/vdso_time.c bench`).
//!
//! A platform that cannot run (no `/dev/kvm`, no ringfence binary, or
//! `ringfence run` fails on it) is reported as unavailable with the reason;
//! the bench goes on with the others. Results are printed as a Markdown
//! table and written to `target/bench-results.md`. The process exits 1 only
//! if a native measure fails (the bench itself is broken).
//!
//! Environment:
//! - `RINGFENCE_BENCH_PLATFORMS=ptrace,kvm` (the default): the platforms.
//! - `RINGFENCE_BENCH_QUICK=1`: tiny sizes, one repetition (a smoke test;
//!   also what happens when the target runs without `--bench`, as under
//!   `cargo test --benches`). Written to `target/bench-results-quick.md`.
//! - `RINGFENCE_BIN`, `RINGFENCE_TEST_NO_BUILD`: as for the tests (by default
//!   `cargo build --release -p vmm --bin ringfence` runs first).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use ringfence_tests::bundle::DEFAULT_ENV;
use ringfence_tests::{compile, ringfence_bin, Bundle, Link, Platform, TempDir};

/// The platforms to measure, comma-separated.
const PLATFORMS_ENV: &str = "RINGFENCE_BENCH_PLATFORMS";
/// Forces the quick (smoke) sizes.
const QUICK_ENV: &str = "RINGFENCE_BENCH_QUICK";
/// Platforms measured when `RINGFENCE_BENCH_PLATFORMS` is unset.
const DEFAULT_PLATFORMS: &str = "ptrace,kvm";
/// The most one run may take before its process group is killed (the
/// longest run, getppid under ptrace, takes about 2 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the sandbox's memory is sampled during the getppid runs.
const RSS_SAMPLE_PERIOD: Duration = Duration::from_millis(50);
/// Bytes per line written by `bench_lines`.
const LINE_BYTES: usize = 20;
/// Where the program sits in each bundle (the harness's default).
const PROG: &str = "/bin/prog";
const MIB: f64 = 1024.0 * 1024.0;

/// Targets from issue 3, "Speed it must reach".
const TARGET_KVM_GETPPID_RATIO: f64 = 4.0;
/// Targets from issue 4 (ratios against native, every platform).
const TARGET_FORKEXEC_RATIO: f64 = 5.0;
const TARGET_PIPE_RATIO: f64 = 5.0;
const TARGET_FUTEX_RATIO: f64 = 5.0;
const TARGET_CLOCK_RATIO: f64 = 2.0;
const TARGET_RUN_TRUE_SECS: f64 = 0.050;
const TARGET_RSS_BYTES: f64 = 20.0 * MIB;

/// How much work each measure does.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Repetitions of the getppid, raw-floor and stdout measures.
    reps: usize,
    /// Repetitions of the `run` of `true`.
    true_reps: usize,
    /// getppid calls per run, natively and under KVM.
    getppid_fast: u64,
    /// getppid calls per run under ptrace (about 10 µs each).
    getppid_ptrace: u64,
    /// Round trips per repetition of the raw `PTRACE_SYSEMU` loop.
    raw: u64,
    /// Lines written per stdout run.
    lines: u64,
    /// fork+exec+wait rounds per run: natively and under KVM, under ptrace.
    forkexec: (u64, u64),
    /// Pipe round trips per run.
    pipe: (u64, u64),
    /// Futex round trips per run.
    futex: (u64, u64),
    /// clock_gettime calls per run (no syscall: the same everywhere).
    clock: (u64, u64),
}

const FULL: Sizes = Sizes {
    reps: 5,
    true_reps: 20,
    getppid_fast: 2_000_000,
    getppid_ptrace: 200_000,
    raw: 100_000,
    lines: 10_000,
    forkexec: (200, 50),
    pipe: (20_000, 2_000),
    futex: (20_000, 2_000),
    clock: (5_000_000, 5_000_000),
};

const QUICK: Sizes = Sizes {
    reps: 1,
    true_reps: 2,
    getppid_fast: 100_000,
    getppid_ptrace: 5_000,
    raw: 5_000,
    lines: 1_000,
    forkexec: (5, 2),
    pipe: (500, 50),
    futex: (500, 50),
    clock: (100_000, 100_000),
};

/// The samples of one series, or why it could not be measured.
type Samples = Result<Vec<f64>, String>;

/// Adds one repetition's result to a series; the first failure ends it.
fn push(series: &mut Samples, sample: Result<f64, String>) {
    if let Ok(samples) = series {
        match sample {
            Ok(v) => samples.push(v),
            Err(e) => *series = Err(e),
        }
    }
}

fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn med(series: &Samples) -> Result<f64, String> {
    match series {
        Ok(v) if v.is_empty() => Err("no samples".into()),
        Ok(v) => Ok(median(v)),
        Err(e) => Err(e.clone()),
    }
}

/// What native runs measured.
#[derive(Debug)]
struct Native {
    getppid: Samples,
    true_wall: Samples,
    true_rss: Samples,
    lines_wall: Samples,
    lines_ns: Samples,
    raw_sysemu: Samples,
    /// Issue 4's operations, in [`OpBench`] order: ns per operation.
    ops: Vec<Samples>,
}

/// What one platform measured.
#[derive(Debug)]
struct Sandbox {
    platform: Platform,
    /// Why it cannot run here, if it cannot.
    unavailable: Option<String>,
    /// Its private `--root` and `--log`.
    state: TempDir,
    /// Runs so far (each gets its own container id).
    runs: usize,
    getppid: Samples,
    true_wall: Samples,
    true_rss: Samples,
    lines_wall: Samples,
    lines_ns: Samples,
    /// Issue 4's operations, in [`OpBench`] order: ns per operation.
    ops: Vec<Samples>,
    /// Peak RSS outside the guest-memory mapping during the getppid runs.
    rss_outside_guest: Option<u64>,
    /// The guest-memory mapping's size, for the notes.
    guest_mapping: Option<u64>,
}

impl Sandbox {
    fn new(platform: Platform) -> Sandbox {
        let state = TempDir::new(&format!("bench-{}", platform.name()));
        fs::create_dir(state.path().join("root")).expect("create --root dir");
        Sandbox {
            platform,
            unavailable: platform.unavailable(),
            state,
            runs: 0,
            getppid: Ok(Vec::new()),
            true_wall: Ok(Vec::new()),
            true_rss: Ok(Vec::new()),
            lines_wall: Ok(Vec::new()),
            lines_ns: Ok(Vec::new()),
            ops: Vec::new(),
            rss_outside_guest: None,
            guest_mapping: None,
        }
    }

    fn available(&self) -> bool {
        self.unavailable.is_none()
    }

    /// `ringfence --root R --platform P --log L run --bundle B bench-N`.
    fn command(&mut self, bin: &Path, bundle: &Bundle) -> Command {
        self.runs += 1;
        let mut cmd = Command::new(bin);
        cmd.arg("--root")
            .arg(self.state.path().join("root"))
            .arg("--platform")
            .arg(self.platform.name())
            .arg("--log")
            .arg(self.log())
            .arg("run")
            .arg("--bundle")
            .arg(bundle.dir())
            .arg(format!("bench-{}", self.runs));
        cmd
    }

    fn log(&self) -> PathBuf {
        self.state.path().join("ringfence.log")
    }

    fn stderr_file(&self) -> PathBuf {
        self.state.path().join("stderr")
    }

    /// Runs `bundle` in the sandbox. A failure says why, with the end of
    /// stderr or of the log.
    fn run(&mut self, bin: &Path, bundle: &Bundle, sample_rss: bool) -> Result<Outcome, String> {
        let cmd = self.command(bin, bundle);
        let log_start = fs::metadata(self.log()).map_or(0, |m| m.len());
        let out = run(cmd, &self.stderr_file(), sample_rss, RUN_TIMEOUT).map_err(|e| match self
            .log_line(log_start)
        {
            Some(log) => format!("{e}; log: {log}"),
            None => e,
        })?;
        if out.exit_code() != Some(0) {
            let why = last_line(&out.stderr)
                .or_else(|| self.log_line(log_start))
                .unwrap_or_default();
            return Err(format!(
                "`ringfence run` ended with {}: {why}",
                out.describe_status()
            ));
        }
        Ok(out)
    }

    /// The last line this run wrote to the log (which began at `start`).
    fn log_line(&self, start: u64) -> Option<String> {
        let log = fs::read(self.log()).ok()?;
        let new = log.get(usize::try_from(start).ok()?..)?;
        last_line(&String::from_utf8_lossy(new))
    }
}

/// `text` cut to `max` characters.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}...", text.chars().take(max).collect::<String>())
    } else {
        text.to_string()
    }
}

/// The last non-empty line of `text`, shortened.
fn last_line(text: &str) -> Option<String> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    Some(shorten(line, 200))
}

/// One finished run.
#[derive(Debug)]
struct Outcome {
    /// From just before the spawn to the exit (after stdout reached EOF).
    wall: Duration,
    /// The wait status.
    status: i32,
    /// `ru_maxrss` from `wait4`, in bytes.
    max_rss: u64,
    stdout: Vec<u8>,
    stderr: String,
    /// The peak of the RSS samples, if sampled.
    rss_sample: Option<RssSample>,
}

impl Outcome {
    fn exit_code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }

    fn describe_status(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {:#x}", self.status)
        }
    }
}

/// Guest memory is one mapping at least this big (512 MiB by default, and the
/// bench's bundles set no memory limit); nothing else in ringfence maps so
/// much (glibc's malloc arenas reserve 64 MiB each).
const GUEST_MAPPING_MIN: u64 = 128 << 20;

/// RSS of a process outside its guest-memory mapping.
#[derive(Debug, Clone, Copy)]
struct RssSample {
    /// RSS of every mapping but guest memory, bytes.
    outside: u64,
    /// The guest-memory mapping's size, bytes, if it was mapped.
    guest: Option<u64>,
}

impl RssSample {
    /// The peak of two samples: the larger `outside`, the larger `guest`.
    fn max(self, other: RssSample) -> RssSample {
        RssSample {
            outside: self.outside.max(other.outside),
            guest: self.guest.max(other.guest),
        }
    }
}

/// Reads `/proc/PID/smaps` and sums the RSS of every mapping but guest
/// memory: the largest mapping, if it is at least [`GUEST_MAPPING_MIN`]
/// (the KVM guest RAM region, or ptrace's memfd "physical memory" mapped
/// in the sentry). Before guest memory is mapped and after it is gone, the
/// whole RSS counts.
fn rss_sample(pid: i32) -> Option<RssSample> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let kib = |rest: &str| -> u64 {
        rest.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let (mut total, mut size, mut largest, mut largest_rss) = (0u64, 0u64, 0u64, 0u64);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Size:") {
            size = kib(rest);
        } else if let Some(rest) = line.strip_prefix("Rss:") {
            let rss = kib(rest);
            total += rss;
            if size > largest {
                (largest, largest_rss) = (size, rss);
            }
        }
    }
    if total == 0 {
        return None;
    }
    Some(if largest >= GUEST_MAPPING_MIN {
        RssSample {
            outside: total - largest_rss,
            guest: Some(largest),
        }
    } else {
        RssSample {
            outside: total,
            guest: None,
        }
    })
}

/// Runs `cmd` in its own process group: stdin `/dev/null`, stdout a pipe
/// drained here, stderr into `stderr_file`. Waits for the exit with
/// `waitid(WNOWAIT)` (the wall time stops there), kills anything left in the
/// process group while the zombie still pins its id, then reaps with
/// `wait4` for the rusage. A watchdog thread, started before the clock, kills
/// the group after `timeout` and, if asked, samples the RSS meanwhile.
fn run(
    mut cmd: Command,
    stderr_file: &Path,
    sample_rss: bool,
    timeout: Duration,
) -> Result<Outcome, String> {
    let err =
        File::create(stderr_file).map_err(|e| format!("create {}: {e}", stderr_file.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .process_group(0);
    let (pid_tx, pid_rx) = mpsc::channel::<i32>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || watchdog(&pid_rx, &done_rx, timeout, sample_rss));

    ringfence_tests::settle();
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            drop(pid_tx);
            let _ = watchdog.join();
            return Err(format!("cannot start {:?}: {e}", cmd.get_program()));
        }
    };
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    let _ = pid_tx.send(pid);
    let mut stdout = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_end(&mut stdout);
    wait_exited(pid);
    let wall = start.elapsed();
    let _ = done_tx.send(());
    let (timed_out, rss_sample) = watchdog.join().expect("watchdog thread");

    // SAFETY: kill has no memory-safety preconditions. `pid` is our
    // unreaped child, so its id (and process-group id) cannot have been
    // reused; this only reaches what is left in that group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid, writable and live for the
        // call; `pid` is our child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4({pid}): {e}"));
        }
    }
    // `child` was reaped above; dropping it neither waits nor kills.
    drop(child);
    let stderr = fs::read(stderr_file)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if timed_out {
        let tail = last_line(&stderr).map_or_else(String::new, |l| format!("; stderr: {l}"));
        return Err(format!("timed out after {timeout:?} and was killed{tail}"));
    }
    read.map_err(|e| format!("reading stdout: {e}"))?;
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    Ok(Outcome {
        wall,
        status,
        max_rss,
        stdout,
        stderr,
        rss_sample,
    })
}

/// Blocks until child `pid` has exited, without reaping it.
fn wait_exited(pid: i32) {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value of this C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is valid and writable for the call; `pid` is our
        // child. WNOWAIT leaves it a zombie for wait4.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// The watchdog of one run: gets the pid, then waits for `done`, sampling
/// the RSS every [`RSS_SAMPLE_PERIOD`] if asked, and kills the process
/// group at the deadline. Returns whether it killed, and the peak sample.
fn watchdog(
    pid_rx: &Receiver<i32>,
    done: &Receiver<()>,
    timeout: Duration,
    sample: bool,
) -> (bool, Option<RssSample>) {
    let Ok(pid) = pid_rx.recv() else {
        return (false, None);
    };
    let deadline = Instant::now() + timeout;
    let mut peak: Option<RssSample> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // SAFETY: kill has no memory-safety preconditions. The main
            // thread has not reaped `pid` (it reports `done` only after
            // the exit and reaps after this thread is joined), so the id
            // is still ours.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = done.recv();
            return (true, peak);
        }
        let wait = if sample {
            RSS_SAMPLE_PERIOD.min(left)
        } else {
            left
        };
        match done.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return (false, peak),
            Err(RecvTimeoutError::Timeout) => {
                if sample {
                    if let Some(s) = rss_sample(pid) {
                        peak = Some(peak.map_or(s, |p| p.max(s)));
                    }
                }
            }
        }
    }
}

/// The program of `bundle` run natively: `rootfs/bin/prog` with
/// `argv[0] = /bin/prog`, `args`, the container's environment and cwd `/` of
/// the rootfs.
fn native_command(bundle: &Bundle, args: &[String]) -> Command {
    let mut cmd = Command::new(bundle.rootfs().join(&PROG[1..]));
    cmd.arg0(PROG)
        .args(args)
        .env_clear()
        .current_dir(bundle.rootfs());
    for kv in DEFAULT_ENV {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        cmd.env(k, v);
    }
    cmd
}

fn run_native(bundle: &Bundle, args: &[String], stderr_file: &Path) -> Result<Outcome, String> {
    let out = run(
        native_command(bundle, args),
        stderr_file,
        false,
        RUN_TIMEOUT,
    )?;
    if out.exit_code() != Some(0) {
        return Err(format!(
            "native run ended with {}: {}",
            out.describe_status(),
            last_line(&out.stderr).unwrap_or_default()
        ));
    }
    Ok(out)
}

/// The number after `key=` in `text`.
fn field(text: &str, key: &str) -> Result<f64, String> {
    let pat = format!("{key}=");
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&pat))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            format!(
                "no `{pat}` in output {:?}",
                last_line(text).unwrap_or_default()
            )
        })
}

fn getppid_ns(out: Result<Outcome, String>) -> Result<f64, String> {
    let out = out?;
    field(&String::from_utf8_lossy(&out.stdout), "ns_per_op")
}

/// Checks a run of `true`, then returns (wall seconds, max RSS bytes).
fn true_run(out: Result<Outcome, String>) -> Result<(f64, f64), String> {
    let out = out?;
    if !out.stdout.is_empty() {
        return Err(format!("`true` wrote {} bytes to stdout", out.stdout.len()));
    }
    Ok((out.wall.as_secs_f64(), out.max_rss as f64))
}

/// Checks the lines written, then returns (wall seconds, ns per line).
fn lines_run(out: Result<Outcome, String>, n: u64) -> Result<(f64, f64), String> {
    let out = out?;
    let want = usize::try_from(n).expect("line count fits usize") * LINE_BYTES;
    if out.stdout.len() != want {
        return Err(format!(
            "stdout had {} bytes, expected {want}",
            out.stdout.len()
        ));
    }
    let last = format!("line {:010} ...\n", n - 1);
    if !out.stdout.starts_with(b"line 0000000000 ...\n") || !out.stdout.ends_with(last.as_bytes()) {
        return Err("stdout does not hold the expected lines".into());
    }
    Ok((out.wall.as_secs_f64(), field(&out.stderr, "ns_per_line")?))
}

// ---------------------------------------------------------------------------
// Issue 4's operations.

/// One of issue 4's measures: a program that times its own loop and prints
/// `ns_per_op=`, run natively and on every platform with a target ratio.
#[derive(Debug)]
struct OpBench {
    /// The row's name (the count is added).
    title: &'static str,
    /// Its name in the Spread table and the progress lines.
    key: &'static str,
    /// Target: at most this many times native, on every platform.
    target: f64,
    /// Operations per run natively and under KVM, and under ptrace.
    n: (u64, u64),
    /// Arguments natively (the same as `fast`'s).
    native_args: Vec<String>,
    /// The bundle natively and under KVM, and under ptrace (smaller N).
    fast: Bundle,
    slow: Bundle,
}

impl OpBench {
    /// `make_args(n)` gives the program's arguments for `n` operations.
    fn new(
        title: &'static str,
        key: &'static str,
        target: f64,
        n: (u64, u64),
        builder: impl Fn() -> ringfence_tests::BundleBuilder,
        make_args: impl Fn(u64) -> Vec<String>,
    ) -> OpBench {
        OpBench {
            title,
            key,
            target,
            n,
            native_args: make_args(n.0),
            fast: builder().args(make_args(n.0)).build(),
            slow: builder().args(make_args(n.1)).build(),
        }
    }

    fn bundle(&self, p: Platform) -> &Bundle {
        match p {
            Platform::Ptrace => &self.slow,
            Platform::Kvm => &self.fast,
        }
    }

    fn count(&self, p: Option<Platform>) -> u64 {
        match p {
            Some(Platform::Ptrace) => self.n.1,
            _ => self.n.0,
        }
    }
}

/// The bench's issue-4 measures.
fn op_benches(sizes: &Sizes) -> Vec<OpBench> {
    let true_bytes = fs::read(&compile("bench_true", Link::Static).path).expect("read bench_true");
    let forkexec = compile("bench_forkexec", Link::Static);
    let pipe = compile("bench_pipe", Link::Static);
    let futex = compile("bench_futex", Link::Static);
    let clock = compile("vdso_time", Link::Static);
    vec![
        OpBench::new(
            "fork+exec+wait of a static true",
            "fork+exec+wait",
            TARGET_FORKEXEC_RATIO,
            sizes.forkexec,
            // A relative path: `/bin/true` of the container, and of the
            // bundle's rootfs (the native cwd).
            || Bundle::builder(&forkexec).executable("/bin/true", true_bytes.clone()),
            |n| vec![n.to_string(), "bin/true".into()],
        ),
        OpBench::new(
            "pipe ping-pong, 2 processes, per round trip",
            "pipe round trip",
            TARGET_PIPE_RATIO,
            sizes.pipe,
            || Bundle::builder(&pipe),
            |n| vec![n.to_string()],
        ),
        OpBench::new(
            "futex wake/wait ping-pong, 2 threads, per round trip",
            "futex round trip",
            TARGET_FUTEX_RATIO,
            sizes.futex,
            || Bundle::builder(&futex),
            |n| vec![n.to_string()],
        ),
        OpBench::new(
            "clock_gettime(CLOCK_MONOTONIC), vDSO",
            "clock_gettime",
            TARGET_CLOCK_RATIO,
            sizes.clock,
            || Bundle::builder(&clock),
            |n| vec!["bench".into(), n.to_string()],
        ),
    ]
}

/// ns per operation from a run's `ns_per_op=`.
fn op_ns(out: Result<Outcome, String>) -> Result<f64, String> {
    let out = out?;
    field(&String::from_utf8_lossy(&out.stdout), "ns_per_op")
}

/// Nanoseconds, in ms or µs when large.
fn fmt_op(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 10_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        fmt_ns(ns)
    }
}

// ---------------------------------------------------------------------------
// The raw PTRACE_SYSEMU floor.

/// One repetition: `n` round trips of `PTRACE_SYSEMU` + `waitpid` +
/// `GETREGS` + `SETREGS` (after a warm-up), with tracer and tracee pinned to
/// the CPU the bench is on. Returns ns per round trip.
fn raw_sysemu(n: u64) -> Result<f64, String> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: an all-zero cpu_set_t is the empty set, a valid value.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a valid, writable cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(0);
    // SAFETY: as above, the empty set.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is a CPU number below CPU_SETSIZE (it came from the
    // kernel) and `one` is a valid set.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: `one` is a valid cpu_set_t of `size` bytes.
    if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
        return Err(format!(
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    let result = traced_child(n, &one);
    // SAFETY: `old` is the valid set read above.
    unsafe { libc::sched_setaffinity(0, size, &old) };
    result
}

/// Forks the tracee, measures, and always kills and reaps it.
fn traced_child(n: u64, cpus: &libc::cpu_set_t) -> Result<f64, String> {
    // SAFETY: the bench is single-threaded here (every watchdog thread has
    // been joined), and the child only makes raw system calls (ptrace,
    // raise, syscall, _exit) before it is killed: nothing that allocates or
    // takes a lock.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: in the child: async-signal-safe system calls only. It
        // asks to be traced, stops itself so the parent can take over,
        // then loops on getppid, each call caught by PTRACE_SYSEMU.
        unsafe {
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                libc::_exit(1);
            }
            libc::raise(libc::SIGSTOP);
            loop {
                libc::syscall(libc::SYS_getppid);
            }
        }
    }
    let result = trace(pid, n, cpus);
    // SAFETY: kill and waitpid on our own unreaped child; `status` is a
    // valid, writable int.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        libc::waitpid(pid, &mut status, libc::__WALL);
    }
    result
}

/// Waits for the next stop of the tracee and returns its stop signal.
fn wait_stop(pid: i32) -> Result<i32, String> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable int; `pid` is our child.
    if unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } != pid {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFSTOPPED(status) {
        return Err(format!("tracee did not stop (wait status {status:#x})"));
    }
    Ok(libc::WSTOPSIG(status))
}

fn trace(pid: i32, n: u64, cpus: &libc::cpu_set_t) -> Result<f64, String> {
    let os_err = |what: &str| format!("{what}: {}", std::io::Error::last_os_error());
    // SAFETY: `cpus` is a valid cpu_set_t of the size given.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), cpus) } != 0 {
        return Err(os_err("sched_setaffinity(tracee)"));
    }
    let sig = wait_stop(pid)?;
    if sig != libc::SIGSTOP {
        return Err(format!("tracee stopped with signal {sig}, not SIGSTOP"));
    }
    let options = libc::PTRACE_O_EXITKILL | libc::PTRACE_O_TRACESYSGOOD;
    // SAFETY: PTRACE_SETOPTIONS on our stopped tracee; `data` is the option
    // bits, no pointer.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) } != 0 {
        return Err(os_err("PTRACE_SETOPTIONS"));
    }
    // SAFETY: getpid has no preconditions.
    let ppid = unsafe { libc::getpid() } as u64;
    // SAFETY: an all-zero user_regs_struct is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    let warm_up = (n / 10).max(100);
    let mut start = Instant::now();
    for i in 0..warm_up + n {
        if i == warm_up {
            start = Instant::now();
        }
        // SAFETY: resumes our stopped tracee until its next syscall entry,
        // which is not executed; addr and data are unused (0 = no signal).
        if unsafe { libc::ptrace(libc::PTRACE_SYSEMU, pid, 0, 0) } != 0 {
            return Err(os_err("PTRACE_SYSEMU"));
        }
        let sig = wait_stop(pid)?;
        if sig != libc::SIGTRAP | 0x80 {
            return Err(format!("tracee stopped with {sig:#x}, not a syscall stop"));
        }
        // SAFETY: `regs` is a valid, writable user_regs_struct, which is
        // what PTRACE_GETREGS fills on x86-64.
        if unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) } != 0 {
            return Err(os_err("PTRACE_GETREGS"));
        }
        if regs.orig_rax != libc::SYS_getppid as u64 {
            return Err(format!(
                "tracee made syscall {}, not getppid",
                regs.orig_rax
            ));
        }
        regs.rax = ppid;
        // SAFETY: `regs` is a valid user_regs_struct read from the tracee
        // with only rax (the syscall's result) changed.
        if unsafe { libc::ptrace(libc::PTRACE_SETREGS, pid, 0, &regs) } != 0 {
            return Err(os_err("PTRACE_SETREGS"));
        }
    }
    Ok(start.elapsed().as_nanos() as f64 / n as f64)
}

// ---------------------------------------------------------------------------
// Reporting.

fn fmt_thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_ns(ns: f64) -> String {
    if ns < 100.0 {
        format!("{ns:.1} ns")
    } else {
        format!("{} ns", fmt_thousands(ns.round() as u64))
    }
}

fn fmt_ms(secs: f64) -> String {
    let ms = secs * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn fmt_mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / MIB)
}

fn fmt_ratio(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**NOT met**"
    }
}

/// One row of the results table.
#[derive(Debug)]
struct Row {
    measure: String,
    platform: String,
    native: String,
    sandbox: String,
    ratio: String,
    target: String,
}

/// A row comparing `sandbox` with `native`, formatted with `fmt`; `target`
/// turns the ratio and the sandbox value (NaN when missing) into the target
/// cell.
fn row(
    measure: &str,
    platform: &str,
    native: &Samples,
    sandbox: &Samples,
    fmt: fn(f64) -> String,
    target: &dyn Fn(f64, f64) -> String,
) -> Row {
    let n = med(native);
    let s = med(sandbox);
    let (ratio, target) = match (&n, &s) {
        (Ok(n), Ok(s)) => (fmt_ratio(s / n), target(s / n, *s)),
        (_, Ok(s)) => ("—".into(), target(f64::NAN, *s)),
        _ => ("—".into(), target(f64::NAN, f64::NAN)),
    };
    Row {
        measure: measure.into(),
        platform: platform.into(),
        native: n.map_or_else(|e| format!("failed: {e}"), fmt),
        sandbox: s.map_or_else(|e| format!("failed: {e}"), fmt),
        ratio,
        target,
    }
}

fn no_target(_: f64, _: f64) -> String {
    "—".into()
}

fn rows(native: &Native, sandboxes: &[Sandbox], sizes: &Sizes, ops: &[OpBench]) -> Vec<Row> {
    let mut rows = Vec::new();
    let unavailable = |sb: &Sandbox, measure: &str| Row {
        measure: measure.into(),
        platform: sb.platform.name().into(),
        native: "—".into(),
        sandbox: format!(
            "unavailable: {}",
            shorten(sb.unavailable.as_deref().unwrap_or_default(), 90)
        ),
        ratio: "—".into(),
        target: "—".into(),
    };
    for sb in sandboxes {
        let p = sb.platform.name();
        let n = match sb.platform {
            Platform::Ptrace => sizes.getppid_ptrace,
            Platform::Kvm => sizes.getppid_fast,
        };
        let measure = format!("getppid round trip (N={})", fmt_thousands(n));
        if !sb.available() {
            rows.push(unavailable(sb, "getppid round trip"));
            continue;
        }
        let target: &dyn Fn(f64, f64) -> String = match sb.platform {
            Platform::Kvm => &|r, _| {
                if r.is_nan() {
                    format!("≤ {TARGET_KVM_GETPPID_RATIO}× native")
                } else {
                    format!(
                        "≤ {TARGET_KVM_GETPPID_RATIO}× native: {}",
                        verdict(r <= TARGET_KVM_GETPPID_RATIO)
                    )
                }
            },
            Platform::Ptrace => &no_target,
        };
        rows.push(row(
            &measure,
            p,
            &native.getppid,
            &sb.getppid,
            fmt_ns,
            target,
        ));
    }
    rows.push(row(
        &format!(
            "raw PTRACE_SYSEMU round trip, own tracer, 1 CPU (N={})",
            fmt_thousands(sizes.raw)
        ),
        "(host)",
        &native.getppid,
        &native.raw_sysemu,
        fmt_ns,
        &no_target,
    ));
    for sb in sandboxes.iter().filter(|s| s.platform == Platform::Ptrace) {
        if !sb.available() {
            continue;
        }
        let mut r = row(
            "ptrace getppid against that raw floor",
            "ptrace",
            &native.raw_sysemu,
            &sb.getppid,
            fmt_ns,
            &no_target,
        );
        r.native = format!("floor {}", r.native);
        rows.push(r);
    }
    for sb in sandboxes {
        let p = sb.platform.name();
        let measure = "`ringfence run` static true, end to end";
        if !sb.available() {
            rows.push(unavailable(sb, measure));
            continue;
        }
        rows.push(row(
            measure,
            p,
            &native.true_wall,
            &sb.true_wall,
            fmt_ms,
            &|_, s| {
                if s.is_nan() {
                    "< 50 ms".into()
                } else {
                    format!("< 50 ms: {}", verdict(s < TARGET_RUN_TRUE_SECS))
                }
            },
        ));
        let mut r = row(
            "max RSS of that run (ru_maxrss, guest memory in)",
            p,
            &native.true_rss,
            &sb.true_rss,
            fmt_mib,
            &|_, _| "(next row)".into(),
        );
        // A spawned child's ru_maxrss starts at the launcher's RSS when it
        // execs, so the native figure is the method's floor, not `true`'s.
        r.native = format!("{} (floor)", r.native);
        r.ratio = "—".into();
        rows.push(r);
        let outside = sb.rss_outside_guest.map(|b| b as f64);
        rows.push(Row {
            measure: "RSS outside guest memory (peak, getppid runs)".into(),
            platform: p.into(),
            native: "—".into(),
            sandbox: outside.map_or_else(|| "not sampled".into(), fmt_mib),
            ratio: "—".into(),
            target: match outside {
                Some(b) => format!("< 20 MiB: {}", verdict(b < TARGET_RSS_BYTES)),
                None => "< 20 MiB".into(),
            },
        });
    }
    for sb in sandboxes {
        let p = sb.platform.name();
        let measure = format!(
            "stdout {} × {LINE_BYTES}-byte lines, wall",
            fmt_thousands(sizes.lines)
        );
        if !sb.available() {
            rows.push(unavailable(sb, &measure));
            continue;
        }
        rows.push(row(
            &measure,
            p,
            &native.lines_wall,
            &sb.lines_wall,
            fmt_ms,
            &no_target,
        ));
        rows.push(row(
            "... the write loop alone, per line",
            p,
            &native.lines_ns,
            &sb.lines_ns,
            fmt_ns,
            &no_target,
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        for sb in sandboxes {
            let p = sb.platform.name();
            let measure = format!(
                "{} (N={})",
                op.title,
                fmt_thousands(op.count(Some(sb.platform)))
            );
            if !sb.available() {
                rows.push(unavailable(sb, &measure));
                continue;
            }
            let sandbox = sb
                .ops
                .get(i)
                .cloned()
                .unwrap_or_else(|| Err("not measured".into()));
            let target = op.target;
            rows.push(row(
                &measure,
                p,
                &native.ops[i],
                &sandbox,
                fmt_op,
                &move |r, _| {
                    if r.is_nan() {
                        format!("≤ {target}× native")
                    } else {
                        format!("≤ {target}× native: {}", verdict(r <= target))
                    }
                },
            ));
        }
    }
    rows
}

/// A Markdown table padded so that it also reads well in a terminal.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(s, " {cell}{} |", " ".repeat(w - width(cell)));
        }
        s.push('\n');
        s
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// The spread of every series: n, median, min, max.
fn spread(native: &Native, sandboxes: &[Sandbox], ops: &[OpBench]) -> String {
    let mut rows = Vec::new();
    let mut add = |name: String, s: &Samples, fmt: fn(f64) -> String| {
        if let Ok(v) = s {
            if v.is_empty() {
                return;
            }
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            rows.push(vec![
                name,
                v.len().to_string(),
                fmt(median(v)),
                fmt(min),
                fmt(max),
            ]);
        }
    };
    add("getppid native".into(), &native.getppid, fmt_ns);
    for sb in sandboxes {
        add(format!("getppid {}", sb.platform), &sb.getppid, fmt_ns);
    }
    add("raw PTRACE_SYSEMU floor".into(), &native.raw_sysemu, fmt_ns);
    add("run true native".into(), &native.true_wall, fmt_ms);
    for sb in sandboxes {
        add(format!("run true {}", sb.platform), &sb.true_wall, fmt_ms);
    }
    add("max RSS true native".into(), &native.true_rss, fmt_mib);
    for sb in sandboxes {
        add(
            format!("max RSS true {}", sb.platform),
            &sb.true_rss,
            fmt_mib,
        );
    }
    add(
        "stdout lines native, wall".into(),
        &native.lines_wall,
        fmt_ms,
    );
    for sb in sandboxes {
        add(
            format!("stdout lines {}, wall", sb.platform),
            &sb.lines_wall,
            fmt_ms,
        );
    }
    add(
        "stdout lines native, per line".into(),
        &native.lines_ns,
        fmt_ns,
    );
    for sb in sandboxes {
        add(
            format!("stdout lines {}, per line", sb.platform),
            &sb.lines_ns,
            fmt_ns,
        );
    }
    for (i, op) in ops.iter().enumerate() {
        add(format!("{} native", op.key), &native.ops[i], fmt_op);
        for sb in sandboxes {
            if let Some(s) = sb.ops.get(i) {
                add(format!("{} {}", op.key, sb.platform), s, fmt_op);
            }
        }
    }
    table(&["series", "n", "median", "min", "max"], &rows)
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn commit() -> String {
    let Some(head) = command_output("git", &["rev-parse", "--short", "HEAD"]) else {
        return "unknown (no git)".into();
    };
    match command_output("git", &["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{head} (with uncommitted changes in the tree)"),
        _ => head,
    }
}

/// Which binary ran, and when it was built.
fn describe_binary(bin: &Path) -> String {
    if bin.as_os_str().is_empty() {
        return "none".into();
    }
    let built = bin
        .to_str()
        .and_then(|p| command_output("date", &["-u", "-r", p, "+%Y-%m-%d %H:%M UTC"]))
        .unwrap_or_default();
    let how = if std::env::var_os("RINGFENCE_BIN").is_some() {
        "given by RINGFENCE_BIN"
    } else if std::env::var_os("RINGFENCE_TEST_NO_BUILD").is_some() {
        "not rebuilt: RINGFENCE_TEST_NO_BUILD"
    } else {
        "built from this tree by the bench"
    };
    format!("`{}` ({how}; file dated {built})", bin.display())
}

fn machine() -> String {
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), Linux {}", kernel.trim())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The `target/` directory: `target/<profile>/deps/<this exe>` up three.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

/// `ringfence_bin()` (which builds the binary), with a failed build turned
/// into an error rather than a panic.
fn find_ringfence() -> Result<PathBuf, String> {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let found = panic::catch_unwind(AssertUnwindSafe(|| ringfence_bin().to_path_buf()));
    panic::set_hook(hook);
    found.map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        // A failed build: name cargo's first error rather than the whole log.
        match msg.lines().find(|l| l.starts_with("error")) {
            Some(error) if msg.contains("failed") => {
                format!("`cargo build --release -p vmm` failed: {}", error.trim())
            }
            _ => format!(
                "no ringfence binary: {}",
                msg.lines().next().unwrap_or_default()
            ),
        }
    })
}

fn fmt_or_failed(r: &Result<f64, String>, fmt: fn(f64) -> String) -> String {
    r.as_ref()
        .map_or_else(|e| format!("failed: {e}"), |v| fmt(*v))
}

fn main() -> ExitCode {
    let bench_mode = std::env::args().skip(1).any(|a| a == "--bench");
    let quick =
        !bench_mode || std::env::var_os(QUICK_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    let sizes = if quick { QUICK } else { FULL };
    let started = Instant::now();
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let load_start = loadavg();

    let list = std::env::var(PLATFORMS_ENV).unwrap_or_else(|_| DEFAULT_PLATFORMS.into());
    let mut sandboxes: Vec<Sandbox> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let p = Platform::parse(name)
            .unwrap_or_else(|| panic!("unknown platform {name:?} in {PLATFORMS_ENV}"));
        if !sandboxes.iter().any(|s| s.platform == p) {
            sandboxes.push(Sandbox::new(p));
        }
    }

    eprintln!("bench: building ringfence (release) and the C programs...");
    let bin = find_ringfence();
    if let Err(why) = &bin {
        for sb in &mut sandboxes {
            sb.unavailable.get_or_insert_with(|| why.clone());
        }
    }
    let bin = bin.unwrap_or_default();
    let work = TempDir::new("bench-native");
    let native_err = work.path().join("stderr");

    let getppid = compile("bench_getppid", Link::Static);
    let true_prog = compile("bench_true", Link::Static);
    let lines_prog = compile("bench_lines", Link::Static);
    let getppid_ptrace = Bundle::builder(&getppid)
        .args([sizes.getppid_ptrace.to_string()])
        .build();
    let getppid_fast = Bundle::builder(&getppid)
        .args([sizes.getppid_fast.to_string()])
        .build();
    let true_bundle = Bundle::builder(&true_prog).build();
    let lines_bundle = Bundle::builder(&lines_prog)
        .args([sizes.lines.to_string()])
        .build();
    let ops = op_benches(&sizes);
    for sb in &mut sandboxes {
        sb.ops = ops.iter().map(|_| Ok(Vec::new())).collect();
    }

    // Probe each platform with one untimed run of `true` (also a warm-up).
    for sb in sandboxes.iter_mut().filter(|s| s.available()) {
        if let Err(why) = sb.run(&bin, &true_bundle, false) {
            sb.unavailable = Some(why);
        }
    }
    for sb in &sandboxes {
        match &sb.unavailable {
            None => eprintln!("bench: platform {}: runs", sb.platform),
            Some(why) => eprintln!("bench: platform {}: UNAVAILABLE: {why}", sb.platform),
        }
    }
    let _ = run_native(&true_bundle, &[], &native_err);

    let mut native = Native {
        getppid: Ok(Vec::new()),
        true_wall: Ok(Vec::new()),
        true_rss: Ok(Vec::new()),
        lines_wall: Ok(Vec::new()),
        lines_ns: Ok(Vec::new()),
        raw_sysemu: Ok(Vec::new()),
        ops: ops.iter().map(|_| Ok(Vec::new())).collect(),
    };

    // 1. getppid, interleaved: native, then each platform, per repetition.
    let fast_arg = [sizes.getppid_fast.to_string()];
    for rep in 1..=sizes.reps {
        let mut line = format!("bench: getppid {rep}/{}:", sizes.reps);
        let ns = getppid_ns(run_native(&getppid_fast, &fast_arg, &native_err));
        let _ = write!(line, " native {}", fmt_or_failed(&ns, fmt_ns));
        push(&mut native.getppid, ns);
        for sb in sandboxes
            .iter_mut()
            .filter(|s| s.available() && s.getppid.is_ok())
        {
            let bundle = match sb.platform {
                Platform::Ptrace => &getppid_ptrace,
                Platform::Kvm => &getppid_fast,
            };
            let out = sb.run(&bin, bundle, true);
            if let Ok(Some(s)) = out.as_ref().map(|o| o.rss_sample) {
                sb.rss_outside_guest = sb.rss_outside_guest.max(Some(s.outside));
                sb.guest_mapping = sb.guest_mapping.max(s.guest);
            }
            let ns = getppid_ns(out);
            let _ = write!(line, ", {} {}", sb.platform, fmt_or_failed(&ns, fmt_ns));
            push(&mut sb.getppid, ns);
        }
        eprintln!("{line}");
    }

    // 2. The raw PTRACE_SYSEMU floor.
    for rep in 1..=sizes.reps {
        let ns = raw_sysemu(sizes.raw);
        eprintln!(
            "bench: raw PTRACE_SYSEMU {rep}/{}: {}",
            sizes.reps,
            fmt_or_failed(&ns, fmt_ns)
        );
        push(&mut native.raw_sysemu, ns);
    }

    // 3. `run` of a static true.
    for rep in 1..=sizes.true_reps {
        let mut line = format!("bench: run true {rep}/{}:", sizes.true_reps);
        let r = true_run(run_native(&true_bundle, &[], &native_err));
        let wall = r.clone().map(|v| v.0);
        let _ = write!(line, " native {}", fmt_or_failed(&wall, fmt_ms));
        push(&mut native.true_wall, wall);
        push(&mut native.true_rss, r.map(|v| v.1));
        for sb in sandboxes
            .iter_mut()
            .filter(|s| s.available() && s.true_wall.is_ok())
        {
            let r = true_run(sb.run(&bin, &true_bundle, false));
            let wall = r.clone().map(|v| v.0);
            let _ = write!(line, ", {} {}", sb.platform, fmt_or_failed(&wall, fmt_ms));
            push(&mut sb.true_wall, wall);
            push(&mut sb.true_rss, r.map(|v| v.1));
        }
        eprintln!("{line}");
    }

    // 4. stdout throughput.
    let lines_arg = [sizes.lines.to_string()];
    for rep in 1..=sizes.reps {
        let mut line = format!("bench: stdout lines {rep}/{}:", sizes.reps);
        let r = lines_run(
            run_native(&lines_bundle, &lines_arg, &native_err),
            sizes.lines,
        );
        let wall = r.clone().map(|v| v.0);
        let _ = write!(line, " native {}", fmt_or_failed(&wall, fmt_ms));
        push(&mut native.lines_wall, wall);
        push(&mut native.lines_ns, r.map(|v| v.1));
        for sb in sandboxes
            .iter_mut()
            .filter(|s| s.available() && s.lines_wall.is_ok())
        {
            let r = lines_run(sb.run(&bin, &lines_bundle, false), sizes.lines);
            let wall = r.clone().map(|v| v.0);
            let _ = write!(line, ", {} {}", sb.platform, fmt_or_failed(&wall, fmt_ms));
            push(&mut sb.lines_wall, wall);
            push(&mut sb.lines_ns, r.map(|v| v.1));
        }
        eprintln!("{line}");
    }

    // 5. Issue 4's operations, each interleaved like the others.
    for (i, op) in ops.iter().enumerate() {
        for rep in 1..=sizes.reps {
            let mut line = format!("bench: {} {rep}/{}:", op.key, sizes.reps);
            let ns = op_ns(run_native(&op.fast, &op.native_args, &native_err));
            let _ = write!(line, " native {}", fmt_or_failed(&ns, fmt_op));
            push(&mut native.ops[i], ns);
            for sb in sandboxes
                .iter_mut()
                .filter(|s| s.available() && s.ops[i].is_ok())
            {
                let ns = op_ns(sb.run(&bin, op.bundle(sb.platform), false));
                let _ = write!(line, ", {} {}", sb.platform, fmt_or_failed(&ns, fmt_op));
                push(&mut sb.ops[i], ns);
            }
            eprintln!("{line}");
        }
    }

    // The report.
    let mut md = String::new();
    let title = if quick {
        " (QUICK smoke run: not for BENCHMARKS.md)"
    } else {
        ""
    };
    let _ = writeln!(md, "## ringfence benchmark{title}\n");
    let _ = writeln!(
        md,
        "- command: `cargo bench -p ringfence-tests --bench sandbox`"
    );
    let _ = writeln!(md, "- commit: {}", commit());
    let _ = writeln!(md, "- ringfence binary: {}", describe_binary(&bin));
    let _ = writeln!(md, "- date: {date}");
    let _ = writeln!(
        md,
        "- machine: {}; load average {load_start} at the start, {} at the end",
        machine(),
        loadavg()
    );
    let plats: Vec<String> = sandboxes
        .iter()
        .map(|sb| match &sb.unavailable {
            None => format!("{} (measured)", sb.platform),
            Some(why) => format!("{} (unavailable: {why})", sb.platform),
        })
        .collect();
    let _ = writeln!(md, "- platforms: {}", plats.join("; "));
    let _ = writeln!(
        md,
        "- each figure is the median of {} repetitions ({} for `run`), native and sandboxed runs interleaved",
        sizes.reps, sizes.true_reps
    );
    for sb in sandboxes.iter().filter(|s| s.available()) {
        if let Some(g) = sb.guest_mapping {
            let _ = writeln!(
                md,
                "- {}: the guest-memory mapping left out of \"RSS outside guest memory\" is {}",
                sb.platform,
                fmt_mib(g as f64)
            );
        }
    }
    md.push('\n');
    let rows: Vec<Vec<String>> = rows(&native, &sandboxes, &sizes, &ops)
        .into_iter()
        .map(|r| {
            vec![
                r.measure, r.platform, r.native, r.sandbox, r.ratio, r.target,
            ]
        })
        .collect();
    md.push_str(&table(
        &[
            "measure",
            "platform",
            "native",
            "sandbox",
            "ratio",
            "target (issues 3 and 4)",
        ],
        &rows,
    ));
    md.push_str("\nSpread of each series:\n\n");
    md.push_str(&spread(&native, &sandboxes, &ops));
    let _ = writeln!(
        md,
        "\nTotal bench time {:.0} s.",
        started.elapsed().as_secs_f64()
    );

    println!("\n{md}");
    let file = target_dir().join(if quick {
        "bench-results-quick.md"
    } else {
        "bench-results.md"
    });
    match fs::write(&file, &md) {
        Ok(()) => eprintln!("bench: wrote {}", file.display()),
        Err(e) => eprintln!("bench: cannot write {}: {e}", file.display()),
    }

    let native_series = [
        &native.getppid,
        &native.raw_sysemu,
        &native.true_wall,
        &native.lines_wall,
    ];
    if native_series
        .iter()
        .copied()
        .chain(native.ops.iter())
        .any(|s| s.is_err())
    {
        eprintln!("bench: a native measure failed: the bench itself is broken");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
