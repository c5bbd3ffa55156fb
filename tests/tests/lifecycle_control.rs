//! The lifecycle's control verbs on a running container (issue 6): `kill`
//! reaching the application's handler, `pause`/`resume`, and `events
//! --stats`. Shares its helpers with `lifecycle.rs` (`common/`).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ringfence_tests::{compile, for_each_platform, Bundle, BundleBuilder, Link};
use serde_json::Value;

mod common;
use common::*;

/// `kill` reaches the application: its own SIGTERM handler runs and the
/// container exits with the handler's status, as under runc.
#[test]
fn kill_runs_the_applications_signal_handler() {
    let bundle = Bundle::builder(&compile("term_handler", Link::Static)).build();
    for_each_platform(|p| {
        let env = Env::new(p);
        let created = env.create(&bundle, "handler");
        created.expect_ok();
        env.verb(&["start", "handler"]).expect_code(0);
        let started = Instant::now();
        while !created.stdout().contains("ready") {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the program never got ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // SIGHUP is ignored by the program: it keeps running.
        env.verb(&["kill", "handler", "HUP"]).expect_code(0);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(env.state("handler")["status"], "running");
        env.verb(&["kill", "handler", "TERM"]).expect_code(0);
        env.verb(&["wait", "handler"])
            .expect_code(0)
            .expect_stdout("0\n");
        assert_eq!(created.stdout(), "ready\nhandled signal 15\n");
        env.verb(&["delete", "handler"]).expect_code(0);
    });
}

/// A busybox shell that writes `t` lines as fast as it can, for ever.
fn busy_writer() -> Bundle {
    busybox_shell("while :; do echo t; done")
}

/// A busybox container whose init runs `sh -c script`.
fn busybox_shell(script: &str) -> Bundle {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/test.sh does)"
    );
    let bytes = fs::read(busybox).expect("read busybox");
    BundleBuilder::empty()
        .executable("/bin/busybox", bytes.clone())
        .executable("/bin/sh", bytes.clone())
        .executable("/bin/sleep", bytes)
        .argv(["/bin/sh", "-c", script])
        .env(["PATH=/bin"])
        .build()
}

/// Force-deletes these containers when dropped, so that a failing test
/// leaves no sandbox process running.
struct Reaper<'a> {
    env: &'a Env,
    ids: &'a [&'a str],
}

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for id in self.ids {
            let _ = self.env.rf.invoke(["delete", "--force", id]);
        }
    }
}

#[track_caller]
fn wait_for_output(d: &Detached, more_than: usize) {
    let start = Instant::now();
    while d.stdout().len() <= more_than {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no output past {more_than} bytes within 20 s{}",
            d.context()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// runc's `pause`/`resume`: the state says `paused`, nothing runs, the
/// verbs that need another state refuse, `resume` goes on, and SIGKILL
/// ends a paused container while other signals wait for `resume`.
#[test]
fn pause_and_resume() {
    let writer = busy_writer();
    let sleeper = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        let _reaper = Reaper {
            env: &env,
            ids: &["p", "q"],
        };
        let created = env.create(&writer, "p");
        created.expect_ok();
        env.verb(&["start", "p"]).expect_code(0);
        wait_for_output(&created, 0);

        env.verb(&["pause", "p"]).expect_code(0);
        let st = env.state("p");
        assert_eq!(st["status"], "paused", "{st:#}");
        assert!(pid_of(&st) > 0, "{st:#}");
        let listed = env.verb(&["list", "--format", "json"]);
        let v: Value = serde_json::from_slice(&listed.stdout).expect("list JSON");
        assert_eq!(v[0]["status"], "paused", "{v:#}");
        env.verb(&["ps", "--format", "json", "p"]).expect_code(0);
        env.expect_fails(&["pause", "p"], "not running");
        env.expect_fails(&["start", "p"], "paused");
        env.expect_fails(&["delete", "p"], "paused");
        // Nothing runs while paused: the output stops growing.
        thread::sleep(Duration::from_millis(50));
        let frozen = created.stdout().len();
        thread::sleep(Duration::from_millis(300));
        assert_eq!(
            created.stdout().len(),
            frozen,
            "output grew while paused{}",
            created.context()
        );

        env.verb(&["resume", "p"]).expect_code(0);
        assert_eq!(env.state("p")["status"], "running");
        env.expect_fails(&["resume", "p"], "not paused");
        wait_for_output(&created, frozen);

        // SIGKILL ends a paused container.
        env.verb(&["pause", "p"]).expect_code(0);
        env.verb(&["kill", "p", "KILL"]).expect_code(0);
        env.verb(&["wait", "p"])
            .expect_code(0)
            .expect_stdout("137\n");
        assert_eq!(env.state("p")["status"], "stopped");
        env.expect_fails(&["pause", "p"], "not running");
        env.expect_fails(&["resume", "p"], "not paused");
        env.verb(&["delete", "p"]).expect_code(0);

        // A paused created container: no start until resumed. SIGTERM to
        // a paused one waits for `resume`.
        env.create(&sleeper, "q").expect_ok();
        env.verb(&["pause", "q"]).expect_code(0);
        assert_eq!(env.state("q")["status"], "paused");
        env.expect_fails(&["start", "q"], "paused");
        env.verb(&["resume", "q"]).expect_code(0);
        assert_eq!(env.state("q")["status"], "created");
        env.verb(&["start", "q"]).expect_code(0);
        env.verb(&["pause", "q"]).expect_code(0);
        env.verb(&["kill", "q", "TERM"]).expect_code(0);
        thread::sleep(Duration::from_millis(200));
        assert_eq!(env.state("q")["status"], "paused");
        env.verb(&["resume", "q"]).expect_code(0);
        env.verb(&["wait", "q"])
            .expect_code(0)
            .expect_stdout("143\n");
        env.verb(&["delete", "q"]).expect_code(0);
        env.expect_fails(&["pause", "ghost"], "does not exist");
        env.expect_fails(&["resume", "ghost"], "does not exist");
        assert!(env.rf.root_entries().is_empty());
    });
}

/// `events --stats`: one runc-shaped stats event.
#[test]
fn events_stats_prints_one_stats_event() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        let _reaper = Reaper {
            env: &env,
            ids: &["ev"],
        };
        env.create(&bundle, "ev").expect_ok();
        env.verb(&["start", "ev"]).expect_code(0);
        let out = env.verb(&["events", "--stats", "ev"]);
        out.expect_code(0);
        let text = out.stdout_str();
        assert_eq!(text.lines().count(), 1, "{}", out.context());
        let v: Value = serde_json::from_str(&text).expect("stats JSON");
        assert_eq!(v["type"], "stats", "{v:#}");
        assert_eq!(v["id"], "ev", "{v:#}");
        assert!(
            v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
            "{v:#}"
        );
        assert!(
            v["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1,
            "{v:#}"
        );
        env.expect_fails(&["events", "--interval", "soon", "ev"], "interval");
        env.verb(&["delete", "--force", "ev"]).expect_code(0);
        env.expect_fails(&["events", "--stats", "ev"], "does not exist");
    });
}

/// A connection to container `id`'s control socket.
fn connect(env: &Env, id: &str) -> UnixStream {
    let sock = env.rf.root().join(id).join("ctl.sock");
    let s = UnixStream::connect(&sock).expect("connect ctl.sock");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    s
}

/// Sends one request line on `s`, with `fds` as SCM_RIGHTS; the answer.
fn ask(s: &UnixStream, request: &str, fds: &[RawFd]) -> Value {
    let line = format!("{request}\n");
    if fds.is_empty() {
        (&*s).write_all(line.as_bytes()).expect("send");
    } else {
        let iov = [std::io::IoSlice::new(line.as_bytes())];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(fds)];
        let n = nix::sys::socket::sendmsg::<()>(
            s.as_raw_fd(),
            &iov,
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .expect("sendmsg");
        assert_eq!(n, line.len(), "short sendmsg");
    }
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("answer");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?}: {e}"))
}

/// A detached `exec` of `sh -c script` over the socket, with these stdio
/// files; the process's id from the answer.
fn exec_detached(env: &Env, id: &str, script: &str, stdio: [&fs::File; 3]) -> u64 {
    let req = serde_json::json!({
        "op": "exec", "args": ["/bin/sh", "-c", script], "env": ["PATH=/bin"], "detach": true
    });
    let fds = stdio.map(|f| f.as_raw_fd());
    let v = ask(&connect(env, id), &req.to_string(), &fds);
    assert_eq!(v["ok"], true, "{v}");
    v["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in the answer: {v}"))
}

/// The control API's `wait-pid`: the status of one `exec`'d process (by
/// the id its detached `exec` answered with), parked until it ends and
/// still there after, and of the init (`pid` 1); bad requests refused.
#[test]
fn wait_pid_reports_one_process() {
    let bundle = busybox_shell("sleep 120");
    for_each_platform(|p| {
        let env = Env::new(p);
        let _reaper = Reaper {
            env: &env,
            ids: &["wp"],
        };
        env.create(&bundle, "wp").expect_ok();
        let idle = connect(&env, "wp");
        let v = ask(&idle, r#"{"op":"wait-pid","id":1}"#, &[]);
        assert_eq!(v["ok"], false, "{p:?}: nothing exec'd yet: {v}");
        env.verb(&["start", "wp"]).expect_code(0);

        let out_path = env.files.path().join("wp-exec.out");
        let out = fs::File::create(&out_path).expect("out file");
        let null = fs::File::open("/dev/null").expect("/dev/null");
        let quick = exec_detached(&env, "wp", "echo quick; exit 7", [&null, &out, &out]);
        let v = ask(
            &connect(&env, "wp"),
            &format!(r#"{{"op":"wait-pid","id":{quick}}}"#),
            &[],
        );
        assert_eq!(v, serde_json::json!({"ok": true, "status": 7}), "{p:?}");
        assert_eq!(fs::read_to_string(&out_path).expect("out"), "quick\n");
        // Asked again after the end: the same status.
        let v = ask(&idle, &format!(r#"{{"op":"wait-pid","id":{quick}}}"#), &[]);
        assert_eq!(v["status"], 7, "{p:?}: {v}");

        // One that waits for its stdin: parked until the test writes.
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let (r, mut w) = (fs::File::from(r), fs::File::from(w));
        let slow = exec_detached(&env, "wp", "read x; exit 3", [&r, &out, &out]);
        drop(r);
        let (tx, rx) = mpsc::channel();
        let conn = connect(&env, "wp");
        let waiter = thread::spawn(move || {
            let v = ask(&conn, &format!(r#"{{"op":"wait-pid","id":{slow}}}"#), &[]);
            let _ = tx.send(v);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(500)).is_err(),
            "{p:?}: wait-pid answered while the process runs"
        );
        w.write_all(b"go\n").expect("write stdin");
        let v = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("wait-pid answer");
        assert_eq!(v, serde_json::json!({"ok": true, "status": 3}), "{p:?}");
        waiter.join().expect("waiter");

        for bad in [
            r#"{"op":"wait-pid","id":99999}"#,
            r#"{"op":"wait-pid","id":1,"pid":1}"#,
            r#"{"op":"wait-pid","pid":5}"#,
        ] {
            let v = ask(&idle, bad, &[]);
            assert_eq!(v["ok"], false, "{p:?}: {bad}: {v}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }

        // The init, by pid 1.
        let (tx, rx) = mpsc::channel();
        let conn = connect(&env, "wp");
        let waiter = thread::spawn(move || {
            let _ = tx.send(ask(&conn, r#"{"op":"wait-pid","pid":1}"#, &[]));
        });
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        env.verb(&["kill", "wp", "KILL"]).expect_code(0);
        let v = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("wait-pid answer");
        assert_eq!(v, serde_json::json!({"ok": true, "status": 137}), "{p:?}");
        waiter.join().expect("waiter");
        env.verb(&["delete", "wp"]).expect_code(0);
    });
}
