//! `exec` (issue 6): a second process in a running container, on both
//! platforms. It shares the container's kernel (its files, its `/proc`),
//! gets this command's stdio, runs as asked (`--env`, `--cwd`, `--user`),
//! and its exit status becomes `exec`'s. Bad requests get a clear error.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ringfence_tests::{
    for_each_platform, ringfence_bin, Bundle, BundleBuilder, Platform, Ringfence, RunOutput,
    TempDir,
};

/// A busybox container whose init sleeps, with the applets the tests use.
fn busybox_sleeper() -> Bundle {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/test.sh does)"
    );
    let bytes = fs::read(busybox).expect("read busybox");
    let mut b = BundleBuilder::empty().executable("/bin/busybox", bytes.clone());
    for applet in ["sh", "cat", "sleep", "id", "pwd", "grep"] {
        b = b.executable(&format!("/bin/{applet}"), bytes.clone());
    }
    b.executable("/bin/not-a-program", b"just text\n".to_vec())
        .argv(["/bin/sleep", "120"])
        .env(["PATH=/bin", "FROM_SPEC=spec"])
        .build()
}

/// A running container (`run --detach`), force-deleted when dropped.
struct Running<'a> {
    rf: &'a Ringfence,
    id: &'a str,
}

impl<'a> Running<'a> {
    fn start(rf: &'a Ringfence, bundle: &Bundle, id: &'a str, files: &TempDir) -> Running<'a> {
        let out = fs::File::create(files.path().join(format!("{id}.out"))).expect("out file");
        let err = fs::File::create(files.path().join(format!("{id}.err"))).expect("err file");
        // The sandbox process keeps these files (as runc's init keeps the
        // caller's stdio), so this waits for the `run` process only.
        let mut child = Command::new(ringfence_bin())
            .arg("--root")
            .arg(rf.root())
            .arg("--platform")
            .arg(rf.platform().name())
            .arg("--log")
            .arg(rf.log())
            .args(["run", "--detach", "--bundle"])
            .arg(bundle.dir())
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn ringfence run -d");
        let status = wait_limited(&mut child, "run --detach");
        assert!(
            status.success(),
            "run --detach failed: {status}; stderr {:?}",
            fs::read_to_string(files.path().join(format!("{id}.err"))).unwrap_or_default()
        );
        Running { rf, id }
    }

    fn exec(&self, args: &[&str]) -> RunOutput {
        let mut all = vec!["exec", self.id];
        all.extend_from_slice(args);
        let out = self.rf.invoke(&all);
        out.expect_no_panic();
        out
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let _ = self.rf.invoke(["delete", "--force", self.id]);
    }
}

fn wait_limited(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{what} did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// `ringfence exec ID ARGS...` with stdin from `input`; (code, stdout).
fn exec_with_stdin(rf: &Ringfence, id: &str, args: &[&str], input: &Path) -> (i32, String) {
    let mut child = Command::new(ringfence_bin())
        .arg("--root")
        .arg(rf.root())
        .arg("--platform")
        .arg(rf.platform().name())
        .args(["exec", id])
        .args(args)
        .stdin(fs::File::open(input).expect("open input"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringfence exec");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = wait_limited(&mut child, "exec with stdin");
    (
        status.code().unwrap_or(-1),
        reader.join().unwrap_or_default(),
    )
}

#[test]
fn exec_runs_a_process_in_the_running_container() {
    let bundle = busybox_sleeper();
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let files = TempDir::new("exec-out");
        let c = Running::start(&rf, &bundle, "ex", &files);

        // Arguments, stdout, stderr and the exit code.
        let out = c.exec(&[
            "/bin/sh",
            "-c",
            "echo out:$1; echo err:$2 >&2; exit 7",
            "sh",
            "one",
            "two",
        ]);
        out.expect_code(7)
            .expect_stdout("out:one\n")
            .expect_stderr("err:two\n");

        // The same kernel as init: its process is in /proc, and files
        // written by one exec are there for the next.
        c.exec(&["/bin/cat", "/proc/1/cmdline"])
            .expect_code(0)
            .expect_stdout("/bin/sleep\x00120\x00");
        c.exec(&["/bin/sh", "-c", "echo kept > /tmp/note"])
            .expect_code(0);
        c.exec(&["/bin/cat", "/tmp/note"])
            .expect_code(0)
            .expect_stdout("kept\n");

        // The spec's environment by default; --env adds and overrides.
        c.exec(&["/bin/sh", "-c", "echo $FROM_SPEC"])
            .expect_code(0)
            .expect_stdout("spec\n");
        c.exec(&[
            "--env",
            "FROM_SPEC=cli",
            "--env",
            "NEW=1",
            "/bin/sh",
            "-c",
            "echo $FROM_SPEC$NEW",
        ])
        .expect_code(0)
        .expect_stdout("cli1\n");

        // --cwd and --user.
        c.exec(&["--cwd", "/proc", "/bin/pwd"])
            .expect_code(0)
            .expect_stdout("/proc\n");
        c.exec(&["--user", "1000:1001", "/bin/sh", "-c", "id -u; id -g"])
            .expect_code(0)
            .expect_stdout("1000\n1001\n");

        // stdin is this command's.
        let input = files.path().join("input");
        fs::write(&input, "line one\nline two\n").expect("write input");
        let (code, stdout) = exec_with_stdin(&rf, "ex", &["/bin/cat"], &input);
        assert_eq!(
            (code, stdout.as_str()),
            (0, "line one\nline two\n"),
            "{p:?}: exec cat with stdin"
        );

        // A signal ends the process with 128+N.
        c.exec(&["/bin/sh", "-c", "kill -TERM $$"]).expect_code(143);

        // Programs that cannot start: 127 and 126, as a shell says, and why.
        let out = c.exec(&["/bin/no-such-program"]);
        out.expect_code(127);
        assert!(
            out.stderr_str().contains("no such file"),
            "{}",
            out.context()
        );
        let out = c.exec(&["/bin/not-a-program"]);
        assert_eq!(out.exit.shell_code(), 126, "{}", out.context());

        // The container is still running, untouched by all this.
        let state = rf.invoke(["state", "ex"]);
        state.expect_code(0);
        assert!(
            state.stdout_str().contains("\"running\""),
            "{}",
            state.context()
        );
    });
}

/// `exec --detach --pid-file`, as containerd's shim runs it: the command
/// returns at once, and the pid it names is a host process that ends with
/// the exec'd process's status (seen here as its subreaper, as the shim is).
#[test]
fn exec_detach_leaves_a_process_that_ends_with_the_exec() {
    let bundle = busybox_sleeper();
    // SAFETY: prctl with these arguments has no memory-safety preconditions.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let files = TempDir::new("exec-out");
        let _c = Running::start(&rf, &bundle, "ex", &files);
        let pid_file = files.path().join("exec.pid");
        let out = files.path().join("exec.out");
        let mut child = Command::new(ringfence_bin())
            .arg("--root")
            .arg(rf.root())
            .arg("--platform")
            .arg(rf.platform().name())
            .args(["exec", "--detach", "--pid-file"])
            .arg(&pid_file)
            .args(["ex", "/bin/sh", "-c", "read line; echo got $line; exit 5"])
            .stdin(Stdio::piped())
            .stdout(fs::File::create(&out).expect("out file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ringfence exec --detach");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let status = wait_limited(&mut child, "exec --detach");
        assert!(status.success(), "{p:?}: exec --detach failed: {status}");
        let pid: i32 = fs::read_to_string(&pid_file)
            .expect("pid file written")
            .trim()
            .parse()
            .expect("pid file holds a pid");
        // The process waits for its input: the command returned before it ended.
        std::io::Write::write_all(&mut stdin, b"word\n").expect("write stdin");
        drop(stdin);
        let mut st = 0;
        // SAFETY: waitpid writes only to `st`; `pid` is our (adopted) child.
        let got = unsafe { libc::waitpid(pid, &mut st, 0) };
        assert_eq!(got, pid, "{p:?}: waitpid of the exec's pid");
        assert!(libc::WIFEXITED(st), "{p:?}: status {st:#x}");
        assert_eq!(libc::WEXITSTATUS(st), 5, "{p:?}: the exec's exit status");
        assert_eq!(
            fs::read_to_string(&out).unwrap_or_default(),
            "got word\n",
            "{p:?}"
        );
    });
}

#[test]
fn exec_refuses_what_it_cannot_do() {
    let bundle = busybox_sleeper();
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let files = TempDir::new("exec-out");
        let fails = |args: &[&str], mention: &str| {
            let out = rf.invoke(args);
            out.expect_no_panic();
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
        };
        fails(&["exec", "nobody", "/bin/sh"], "nobody");
        let c = Running::start(&rf, &bundle, "ex", &files);
        fails(&["exec", "--tty", "ex", "/bin/sh"], "terminal");
        fails(&["exec", "--user", "root", "ex", "/bin/sh"], "--user");
        fails(&["exec", "ex"], "");
        // A stopped container runs nothing.
        rf.invoke(["kill", "ex", "KILL"]).expect_code(0);
        let start = Instant::now();
        while !rf
            .invoke(["state", "ex"])
            .stdout_str()
            .contains("\"stopped\"")
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "container did not stop"
            );
            thread::sleep(Duration::from_millis(20));
        }
        fails(&["exec", "ex", "/bin/sh"], "stopped");
        drop(c);
    });
}

/// One request line on the container's control socket; the answer line.
fn control(rf: &Ringfence, id: &str, request: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let sock = rf.root().join(id).join("ctl.sock");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect ctl.sock");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(format!("{request}\n").as_bytes())
        .expect("send");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("answer");
    line
}

/// The control API's `signal` to one process (`pid`) and to a process
/// group (`pgid`), both container pids, reaches exactly those.
#[test]
fn control_api_signals_a_process_and_a_process_group() {
    let bundle = busybox_sleeper();
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let files = TempDir::new("exec-out");
        let c = Running::start(&rf, &bundle, "ex", &files);
        // Bad requests are refused with a reason.
        let bad = control(&rf, "ex", r#"{"op":"signal","signal":15,"pid":0}"#);
        assert!(bad.contains("\"ok\":false"), "{p:?}: {bad}");
        let bad = control(&rf, "ex", r#"{"op":"signal","signal":15,"pid":3,"pgid":3}"#);
        assert!(bad.contains("\"ok\":false"), "{p:?}: {bad}");

        thread::scope(|scope| {
            let group = scope.spawn(|| {
                c.exec(&[
                    "/bin/sh",
                    "-c",
                    "sleep 100 & echo $! > /tmp/bg; echo $$ > /tmp/pg; sleep 100",
                ])
            });
            let one = scope.spawn(|| {
                c.exec(&[
                    "/bin/sh",
                    "-c",
                    "trap 'echo got TERM; exit 5' TERM; echo $$ > /tmp/one; \
                     while :; do sleep 0.1; done",
                ])
            });
            let read = |f: &str| -> String {
                let start = Instant::now();
                loop {
                    let out = c.exec(&["/bin/cat", f]);
                    if out.exit.shell_code() == 0 && !out.stdout_str().trim().is_empty() {
                        return out.stdout_str().trim().to_string();
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "{p:?}: {f} never written"
                    );
                    thread::sleep(Duration::from_millis(20));
                }
            };
            let one_pid = read("/tmp/one");
            let ok = control(
                &rf,
                "ex",
                &format!(r#"{{"op":"signal","signal":15,"pid":{one_pid}}}"#),
            );
            assert!(ok.contains("\"ok\":true"), "{p:?}: {ok}");
            let out = one.join().expect("exec thread");
            out.expect_code(5).expect_stdout("got TERM\n");

            let pgid = read("/tmp/pg");
            read("/tmp/bg");
            let ok = control(
                &rf,
                "ex",
                &format!(r#"{{"op":"signal","signal":9,"pgid":{pgid}}}"#),
            );
            assert!(ok.contains("\"ok\":true"), "{p:?}: {ok}");
            group.join().expect("exec thread").expect_code(137);
            // The background sleep was in the group too: gone, or a zombie
            // of init (which does not reap).
            c.exec(&[
                "/bin/sh",
                "-c",
                "b=$(cat /tmp/bg); if [ -e /proc/$b ] && ! grep -q ') Z' /proc/$b/stat; \
                 then echo alive; else echo dead; fi",
            ])
            .expect_code(0)
            .expect_stdout("dead\n");
        });
        // init was spared by both.
        let state = rf.invoke(["state", "ex"]);
        assert!(
            state.stdout_str().contains("\"running\""),
            "{}",
            state.context()
        );
    });
}
