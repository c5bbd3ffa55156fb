//! Running `ringfence` (or a program natively) with a timeout, and the
//! captured result.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{fs, thread};

use crate::bundle::Bundle;
use crate::platform::Platform;
use crate::tmp::TempDir;

/// Seconds a run may take when `RINGFENCE_TEST_TIMEOUT` is unset.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// How long stdout/stderr may stay open after the process has exited.
const PIPE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The most bytes of a stream shown in a failure message.
const SHOW_BYTES: usize = 4096;

/// The `ringfence` binary under test.
///
/// With `RINGFENCE_BIN` set, that file. Otherwise
/// `target/<profile>/ringfence`, beside the test executable's `deps/`
/// directory. `cargo test` does not build another package's binary for
/// these tests, so when the tests run under cargo (`CARGO` is set) and
/// `RINGFENCE_TEST_NO_BUILD` is not, this first runs
/// `cargo build -p vmm --bin ringfence` with the test's profile, once per
/// test process; that also keeps a stale binary from being tested.
///
/// # Panics
/// If there is no such file or the build fails; the message says what to
/// do. (Every later call panics the same way.)
pub fn ringfence_bin() -> &'static Path {
    // The outcome is kept, failure included, so that one failed build is
    // reported by every test without building again.
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_ringfence) {
        Ok(bin) => bin,
        Err(msg) => panic!("{msg}"),
    }
}

fn find_ringfence() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("RINGFENCE_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            return Err(format!("RINGFENCE_BIN={} is not a file", bin.display()));
        }
        return Ok(bin);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/NAME-HASH -> target/<profile>/ringfence
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join("ringfence");
    if let Some(cargo) = std::env::var_os("CARGO") {
        if !crate::env_flag("RINGFENCE_TEST_NO_BUILD") {
            build_ringfence(&cargo, &profile_dir)?;
        }
    }
    if !bin.is_file() {
        return Err(format!(
            "the ringfence binary was not found at {}: run `cargo build -p vmm` (or `cargo build`) \
             first, or set RINGFENCE_BIN=/path/to/ringfence",
            bin.display()
        ));
    }
    Ok(bin)
}

/// `cargo build -p vmm --bin ringfence` for the profile whose output
/// directory is `profile_dir`.
fn build_ringfence(cargo: &OsStr, profile_dir: &Path) -> Result<(), String> {
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "vmm", "--bin", "ringfence"]);
    match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let shown = describe(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{shown}` failed ({}), so there is no ringfence binary to test \
             (set RINGFENCE_BIN to test a binary built elsewhere):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The timeout for one run.
pub fn timeout() -> Duration {
    let secs = std::env::var("RINGFENCE_TEST_TIMEOUT")
        .ok()
        .map(|s| {
            s.trim().parse::<u64>().unwrap_or_else(|_| {
                panic!("RINGFENCE_TEST_TIMEOUT={s:?} is not a number of seconds")
            })
        })
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Duration::from_secs(secs)
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    fn from_status(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => unreachable!("a reaped process either exited or was killed"),
        }
    }

    /// The status a shell (and runc, and ringfence) reports: the exit code,
    /// or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// What was run, for messages.
    pub what: String,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// How the process ended.
    pub exit: Exit,
    /// How long it took.
    pub elapsed: Duration,
    /// ringfence's `--log` file, if any.
    pub log: Option<PathBuf>,
}

impl RunOutput {
    /// stdout as UTF-8 (lossy).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as UTF-8 (lossy).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// A description of the run for failure messages: command, status,
    /// streams (shortened) and the tail of the log.
    pub fn context(&self) -> String {
        let mut s = format!(
            "\n  ran: {}\n  ended: {} after {:.2?}\n",
            self.what, self.exit, self.elapsed
        );
        let _ = write!(
            s,
            "  stdout ({} bytes):\n{}",
            self.stdout.len(),
            show(&self.stdout)
        );
        let _ = write!(
            s,
            "  stderr ({} bytes):\n{}",
            self.stderr.len(),
            show(&self.stderr)
        );
        if let Some(log) = &self.log {
            match fs::read_to_string(log) {
                Ok(text) => {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(40)..];
                    let _ = write!(
                        s,
                        "  log {} (last {} lines):\n{}\n",
                        log.display(),
                        tail.len(),
                        indent(&tail.join("\n"))
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = writeln!(s, "  log {}: not written", log.display());
                }
                Err(e) => {
                    let _ = writeln!(s, "  log {}: {e}", log.display());
                }
            }
        }
        s
    }

    /// Asserts how the process ended.
    #[track_caller]
    pub fn expect_exit(&self, exit: Exit) -> &Self {
        assert!(
            self.exit == exit,
            "expected {exit}, got {}{}",
            self.exit,
            self.context()
        );
        self
    }

    /// Asserts the exit code (for a ringfence run: the program's status, or
    /// 128 + signal).
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        self.expect_exit(Exit::Code(code))
    }

    /// Asserts stdout byte for byte.
    #[track_caller]
    pub fn expect_stdout(&self, expected: &str) -> &Self {
        if self.stdout != expected.as_bytes() {
            panic!(
                "stdout differs\n{}{}",
                diff(expected, &self.stdout_str()),
                self.context()
            );
        }
        self
    }

    /// Asserts stderr byte for byte.
    #[track_caller]
    pub fn expect_stderr(&self, expected: &str) -> &Self {
        if self.stderr != expected.as_bytes() {
            panic!(
                "stderr differs\n{}{}",
                diff(expected, &self.stderr_str()),
                self.context()
            );
        }
        self
    }

    /// Asserts that nothing on stderr says a Rust panic happened.
    #[track_caller]
    pub fn expect_no_panic(&self) -> &Self {
        let err = self.stderr_str();
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "ringfence panicked{}",
            self.context()
        );
        self
    }

    /// Asserts that this sandboxed run behaved like `native`: same stdout,
    /// same stderr, and an exit status equal to native's shell code (a
    /// native death by signal N is ringfence's exit code 128+N).
    #[track_caller]
    pub fn expect_same_as_native(&self, native: &RunOutput) -> &Self {
        let want = Exit::Code(native.exit.shell_code());
        assert!(
            self.exit == want,
            "sandbox ended with {}, native with {} (expected sandbox {want}){}\n--- native:{}",
            self.exit,
            native.exit,
            self.context(),
            native.context()
        );
        if self.stdout != native.stdout {
            panic!(
                "stdout differs from native (left: native, right: sandbox)\n{}{}\n--- native:{}",
                diff(&native.stdout_str(), &self.stdout_str()),
                self.context(),
                native.context()
            );
        }
        if self.stderr != native.stderr {
            panic!(
                "stderr differs from native (left: native, right: sandbox)\n{}{}\n--- native:{}",
                diff(&native.stderr_str(), &self.stderr_str()),
                self.context(),
                native.context()
            );
        }
        self
    }
}

/// A ringfence invocation context: one platform and a private `--root` (and
/// log file) in a temporary directory.
#[derive(Debug)]
pub struct Ringfence {
    platform: Platform,
    work: TempDir,
    /// Extra environment of the ringfence process.
    envs: Vec<(String, String)>,
}

impl Ringfence {
    /// A context with a fresh, empty `--root`.
    pub fn new(platform: Platform) -> Ringfence {
        let work = TempDir::new(&format!("state-{}", platform.name()));
        fs::create_dir(work.path().join("root")).expect("create --root dir");
        Ringfence {
            platform,
            work,
            envs: Vec::new(),
        }
    }

    /// Run ringfence with `key=value` in its environment too.
    pub fn env(mut self, key: &str, value: &str) -> Ringfence {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// The platform.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The directory passed as `--root`.
    pub fn root(&self) -> PathBuf {
        self.work.path().join("root")
    }

    /// The file passed as `--log`.
    pub fn log(&self) -> PathBuf {
        self.work.path().join("ringfence.log")
    }

    /// The entries of `--root`, sorted.
    pub fn root_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `ringfence --root R --platform P --log L --log-format text [--debug]
    /// ARGS...`, run to completion with the timeout.
    pub fn invoke<I, S>(&self, args: I) -> RunOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(ringfence_bin());
        cmd.arg("--root")
            .arg(self.root())
            .arg("--platform")
            .arg(self.platform.name())
            .arg("--log")
            .arg(self.log())
            .arg("--log-format")
            .arg("text");
        if crate::env_flag("RINGFENCE_TEST_DEBUG") {
            cmd.arg("--debug");
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd.args(args);
        let what = describe(&cmd);
        run_with_timeout(cmd, what, Some(self.log()))
    }

    /// `ringfence --root R ARGS...`: no other global flags (for tests of the
    /// command line itself).
    pub fn invoke_raw<I, S>(&self, args: I) -> RunOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(ringfence_bin());
        cmd.arg("--root").arg(self.root()).args(args);
        let what = describe(&cmd);
        run_with_timeout(cmd, what, None)
    }

    /// `ringfence ... run --bundle DIR ID`.
    pub fn run(&self, bundle: &Bundle, id: &str) -> RunOutput {
        self.invoke([
            OsStr::new("run"),
            OsStr::new("--bundle"),
            bundle.dir().as_os_str(),
            OsStr::new(id),
        ])
    }

    /// [`Ringfence::run`] with `--debug`, and the log it wrote (the
    /// sentry's statistics: see [`crate::log_numbers`]).
    pub fn run_debug(&self, bundle: &Bundle, id: &str) -> (RunOutput, String) {
        let out = self.invoke([
            OsStr::new("--debug"),
            OsStr::new("run"),
            OsStr::new("--bundle"),
            bundle.dir().as_os_str(),
            OsStr::new(id),
        ]);
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        (out, log)
    }
}

/// `ringfence ARGS...` with no global flags, in directory `cwd`.
pub fn ringfence_in<I, S>(cwd: &Path, args: I) -> RunOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(ringfence_bin());
    cmd.args(args).current_dir(cwd);
    let what = format!("(in {}) {}", cwd.display(), describe(&cmd));
    run_with_timeout(cmd, what, None)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured, in its
/// own process group. After the timeout the whole group is killed and the
/// caller panics. Also panics if, once the process has exited, its output
/// pipes stay open or members of its process group are still alive (a
/// leaked child).
/// `cmd.spawn()`, again while it fails with ETXTBSY: a program a test has
/// just written may still be open for writing in a child that another
/// test thread forked and has not yet exec'd (the fd is close-on-exec, so
/// the window is short).
pub fn spawn_retrying(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

pub fn run_with_timeout(mut cmd: Command, what: String, log: Option<PathBuf>) -> RunOutput {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = spawn_retrying(&mut cmd).unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pgid = i32::try_from(child.id()).expect("pid fits i32");
    let (tx_out, rx_out) = mpsc::channel();
    let (tx_err, rx_err) = mpsc::channel();
    let out = child.stdout.take().expect("stdout piped");
    let err = child.stderr.take().expect("stderr piped");
    spawn_reader(out, tx_out);
    spawn_reader(err, tx_err);

    let limit = timeout();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= limit => {
                kill_group(pgid);
                let _ = child.wait();
                let deadline = Instant::now() + PIPE_CLOSE_GRACE;
                let left = || deadline.saturating_duration_since(Instant::now());
                let stdout = rx_out.recv_timeout(left()).unwrap_or_default();
                let stderr = rx_err.recv_timeout(left()).unwrap_or_default();
                let partial = RunOutput {
                    what,
                    stdout,
                    stderr,
                    exit: Exit::Signal(libc::SIGKILL),
                    elapsed: start.elapsed(),
                    log,
                };
                panic!(
                    "timed out after {limit:?} (RINGFENCE_TEST_TIMEOUT); killed{}",
                    partial.context()
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    let elapsed = start.elapsed();
    let deadline = Instant::now() + PIPE_CLOSE_GRACE;
    let stdout = rx_out.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    let stderr = rx_err.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    let leftover = group_alive(pgid, Duration::from_secs(2));
    if leftover {
        kill_group(pgid);
    }
    let output = RunOutput {
        what,
        stdout: stdout.clone().unwrap_or_default(),
        stderr: stderr.clone().unwrap_or_default(),
        exit: Exit::from_status(status),
        elapsed,
        log,
    };
    assert!(
        stdout.is_ok() && stderr.is_ok(),
        "the process exited but its stdout/stderr stayed open for {PIPE_CLOSE_GRACE:?} \
         (a leaked child holds them){}",
        output.context()
    );
    assert!(
        !leftover,
        "processes of its process group were still alive 2 s after it exited (killed them){}",
        output.context()
    );
    output
}

fn spawn_reader(mut from: impl Read + Send + 'static, to: mpsc::Sender<Vec<u8>>) {
    thread::Builder::new()
        .name("output-reader".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = from.read_to_end(&mut buf);
            let _ = to.send(buf);
        })
        .expect("spawn reader thread");
}

fn kill_group(pgid: i32) {
    // SAFETY: kill has no memory-safety preconditions; a negative pid names
    // the process group we created for this child.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Whether any process is still in group `pgid` after waiting up to `grace`.
fn group_alive(pgid: i32, grace: Duration) -> bool {
    let start = Instant::now();
    loop {
        // SAFETY: signal 0 only checks for existence; no memory is involved.
        let alive = unsafe { libc::kill(-pgid, 0) } == 0;
        if !alive {
            return false;
        }
        if start.elapsed() >= grace {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOW_BYTES)]);
    let more = if bytes.len() > SHOW_BYTES {
        format!("\n    ... ({} more bytes)", bytes.len() - SHOW_BYTES)
    } else {
        String::new()
    };
    format!("{}{more}\n", indent(&text))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A line diff good enough for short outputs: the first differing line and
/// both texts.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let first = (0..e.len().max(a.len()))
        .find(|&i| e.get(i) != a.get(i))
        .unwrap_or(e.len());
    let mut s = format!(
        "  first difference at line {}:\n    expected: {:?}\n    actual:   {:?}\n",
        first + 1,
        e.get(first),
        a.get(first)
    );
    if expected.len() <= SHOW_BYTES {
        let _ = write!(s, "  expected (whole):\n{}\n", indent(expected));
    } else {
        let _ = writeln!(s, "  expected: {} bytes", expected.len());
    }
    s
}
