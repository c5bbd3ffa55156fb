//! Shared by the lifecycle test files: detached runs with their output in
//! files, a private `--root` that force-deletes its containers, and small
//! process helpers. Each test file uses only some of them.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ringfence_tests::{
    compile, ringfence_bin, Bundle, Link, Platform, Ringfence, RunOutput, TempDir,
};
use serde_json::Value;

/// A `create` or `run --detach` whose output went to files.
pub struct Detached {
    pub code: i32,
    pub out: PathBuf,
    pub err: PathBuf,
    pub what: String,
    pub log: PathBuf,
}

impl Detached {
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    pub fn context(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        format!(
            "\n  ran: {}\n  exit code: {}\n  stdout: {:?}\n  stderr: {:?}\n  log tail:\n{}",
            self.what,
            self.code,
            self.stdout(),
            self.stderr(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    #[track_caller]
    pub fn expect_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success{}", self.context());
        self
    }
}

/// One platform, a private `--root`, and a directory for output files.
pub struct Env {
    pub rf: Ringfence,
    pub files: TempDir,
}

impl Env {
    pub fn new(p: Platform) -> Env {
        Env {
            rf: Ringfence::new(p),
            files: TempDir::new("lifecycle-out"),
        }
    }

    /// `ringfence GLOBAL... ARGS...` with stdout and stderr in files, stdin
    /// from /dev/null; waits for that process only (not for the sandbox it
    /// leaves behind).
    pub fn detached(&self, args: &[&str]) -> Detached {
        let n = fs::read_dir(self.files.path()).map_or(0, |d| d.count());
        let out = self.files.path().join(format!("{n}.out"));
        let err = self.files.path().join(format!("{n}.err"));
        let mut cmd = Command::new(ringfence_bin());
        cmd.arg("--root")
            .arg(self.rf.root())
            .arg("--platform")
            .arg(self.rf.platform().name())
            .arg("--log")
            .arg(self.rf.log())
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("create stdout file"))
            .stderr(fs::File::create(&err).expect("create stderr file"));
        let what = format!("ringfence {}", args.join(" "));
        let mut child = cmd.spawn().expect("spawn ringfence");
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("{what} did not return within 60 s");
            }
            thread::sleep(Duration::from_millis(2));
        };
        Detached {
            code: status.code().unwrap_or(-1),
            out,
            err,
            what,
            log: self.rf.log(),
        }
    }

    pub fn create(&self, bundle: &Bundle, id: &str) -> Detached {
        let b = bundle.dir().to_string_lossy().into_owned();
        self.detached(&["create", "--bundle", &b, id])
    }

    pub fn verb(&self, args: &[&str]) -> RunOutput {
        let out = self.rf.invoke(args);
        out.expect_no_panic();
        out
    }

    /// `state ID`, parsed.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.verb(&["state", id]);
        out.expect_code(0);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON: {e}{}", out.context()))
    }

    #[track_caller]
    pub fn expect_fails(&self, args: &[&str], mention: &str) -> RunOutput {
        let out = self.verb(args);
        assert_ne!(
            out.exit.shell_code(),
            0,
            "expected failure{}",
            out.context()
        );
        assert!(
            out.stderr_str().contains(mention),
            "stderr should mention {mention:?}{}",
            out.context()
        );
        out
    }
}

/// A test that fails midway leaves no sandbox process running.
impl Drop for Env {
    fn drop(&mut self) {
        for id in self.rf.root_entries() {
            let _ = self.rf.invoke(["delete", "--force", &id]);
        }
    }
}

pub fn pid_of(state: &Value) -> i32 {
    let pid = state["pid"].as_i64().unwrap_or(0);
    i32::try_from(pid).unwrap_or(0)
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            !matches!(rest.split_whitespace().next(), Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

#[track_caller]
pub fn wait_gone(pid: i32) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process {pid} still alive after 10 s"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

pub fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; `pid` is a sandbox
    // process this test created.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

pub fn sleeper(seconds: &str) -> Bundle {
    Bundle::builder(&compile("sleeper", Link::Static))
        .args([seconds])
        .build()
}
