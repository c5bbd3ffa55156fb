//! The runc lifecycle through a long-lived sandbox process (issue 6):
//! `create` → `state` → `start` → `wait` → `delete`, `kill` of a running
//! container, kill -9 of the sandbox process, host signals, duplicate and
//! unknown ids, `list`, and `state` compared with Debian's runc.
//!
//! `create` and `run --detach` leave a sandbox process that keeps the
//! caller's stdout and stderr, as runc's init does. They are therefore run
//! with stdout/stderr in files ([`Detached`]), not through the harness's
//! pipe-draining runner, and the files then hold the container's output.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ringfence_tests::{compile, for_each_platform, Bundle, Link, Platform, Ringfence, TempDir};
use serde_json::Value;

mod common;
use common::*;

#[test]
fn whole_lifecycle() {
    let bundle = Bundle::builder(&compile("exit_code", Link::Static))
        .args(["7"])
        .build();
    let canonical = fs::canonicalize(bundle.dir()).expect("canonical bundle");
    for_each_platform(|p| {
        let env = Env::new(p);
        let pid_file = env.files.path().join("pid");
        let b = bundle.dir().to_string_lossy().into_owned();
        let created = env.detached(&[
            "create",
            "--bundle",
            &b,
            "--pid-file",
            &pid_file.to_string_lossy(),
            "life",
        ]);
        created.expect_ok();
        assert_eq!(created.stdout(), "", "{}", created.context());

        let st = env.state("life");
        assert_eq!(st["status"], "created", "{st:#}");
        assert_eq!(st["id"], "life");
        let pid = pid_of(&st);
        assert!(pid > 0 && alive(pid), "sandbox pid {pid} not alive: {st:#}");
        assert_eq!(
            fs::read_to_string(&pid_file).expect("pid file"),
            pid.to_string()
        );
        assert_eq!(st["bundle"], canonical.to_string_lossy().as_ref());
        assert_eq!(
            st["rootfs"],
            canonical.join("rootfs").to_string_lossy().as_ref()
        );
        assert!(st["created"].as_str().is_some_and(|c| c.ends_with('Z')));
        assert_eq!(st["owner"], "");

        env.verb(&["start", "life"]).expect_code(0);
        let st = env.state("life");
        assert!(
            st["status"] == "running" || st["status"] == "stopped",
            "{st:#}"
        );
        env.verb(&["wait", "life"])
            .expect_code(0)
            .expect_stdout("7\n");
        let st = env.state("life");
        assert_eq!(st["status"], "stopped", "{st:#}");
        assert_eq!(st["pid"], 0, "{st:#}");
        wait_gone(pid);
        // The container wrote to create's stdout, as under runc.
        assert_eq!(
            created.stdout(),
            "exiting with 7 via exit\n",
            "{}",
            created.context()
        );
        // A stopped container can be waited for again, but not restarted.
        env.verb(&["wait", "life"])
            .expect_code(0)
            .expect_stdout("7\n");
        env.expect_fails(&["start", "life"], "stopped");

        env.verb(&["delete", "life"]).expect_code(0);
        env.expect_fails(&["state", "life"], "does not exist");
        assert!(
            env.rf.root_entries().is_empty(),
            "{:?}",
            env.rf.root_entries()
        );
    });
}

#[test]
fn kill_a_long_running_container() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        // Default signal: SIGTERM.
        env.create(&bundle, "term").expect_ok();
        env.verb(&["start", "term"]).expect_code(0);
        assert_eq!(env.state("term")["status"], "running");
        env.expect_fails(&["start", "term"], "already running");
        env.expect_fails(&["kill", "term", "NOSUCHSIG"], "invalid signal");
        env.expect_fails(&["kill", "term", "65"], "invalid signal");
        // Signal 0 and an ignored-by-default signal leave it running.
        env.verb(&["kill", "term", "0"]).expect_code(0);
        env.verb(&["kill", "term", "WINCH"]).expect_code(0);
        assert_eq!(env.state("term")["status"], "running");
        let started = Instant::now();
        env.verb(&["kill", "term"]).expect_code(0);
        env.verb(&["wait", "term"])
            .expect_code(0)
            .expect_stdout("143\n");
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(env.state("term")["status"], "stopped");
        env.expect_fails(&["kill", "term", "KILL"], "not running");
        env.verb(&["delete", "term"]).expect_code(0);

        // --all with a name, and a created (never started) container.
        env.create(&bundle, "all").expect_ok();
        env.verb(&["start", "all"]).expect_code(0);
        env.verb(&["kill", "--all", "all", "SIGKILL"])
            .expect_code(0);
        env.verb(&["wait", "all"])
            .expect_code(0)
            .expect_stdout("137\n");
        env.verb(&["delete", "all"]).expect_code(0);

        let created = env.create(&bundle, "created");
        created.expect_ok();
        env.verb(&["kill", "created", "9"]).expect_code(0);
        env.verb(&["wait", "created"])
            .expect_code(0)
            .expect_stdout("137\n");
        env.verb(&["delete", "created"]).expect_code(0);
        // It never ran: nothing on its stdout.
        assert_eq!(created.stdout(), "");
        assert!(env.rf.root_entries().is_empty());
    });
}

#[test]
fn kill_stop_holds_a_container_until_cont() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        env.create(&bundle, "jobs").expect_ok();
        env.verb(&["start", "jobs"]).expect_code(0);
        env.verb(&["kill", "jobs", "STOP"]).expect_code(0);
        // A stopped process takes SIGTERM only once continued.
        env.verb(&["kill", "jobs", "TERM"]).expect_code(0);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(env.state("jobs")["status"], "running");
        env.verb(&["kill", "jobs", "CONT"]).expect_code(0);
        env.verb(&["wait", "jobs"])
            .expect_code(0)
            .expect_stdout("143\n");
        env.verb(&["delete", "jobs"]).expect_code(0);
    });
}

#[test]
fn delete_refuses_a_running_container_unless_forced() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        env.create(&bundle, "busy").expect_ok();
        env.verb(&["start", "busy"]).expect_code(0);
        let pid = pid_of(&env.state("busy"));
        env.expect_fails(&["delete", "busy"], "not stopped");
        assert_eq!(env.state("busy")["status"], "running");
        env.verb(&["delete", "--force", "busy"]).expect_code(0);
        wait_gone(pid);
        assert!(env.rf.root_entries().is_empty());
        // A created container is deleted without --force.
        env.create(&bundle, "idle").expect_ok();
        let pid = pid_of(&env.state("idle"));
        env.verb(&["delete", "idle"]).expect_code(0);
        wait_gone(pid);
        assert!(env.rf.root_entries().is_empty());
    });
}

#[test]
fn sandbox_killed_with_sigkill_is_stopped_and_deletable() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        env.create(&bundle, "doomed").expect_ok();
        env.verb(&["start", "doomed"]).expect_code(0);
        let pid = pid_of(&env.state("doomed"));
        send_signal(pid, libc::SIGKILL);
        wait_gone(pid);
        let st = env.state("doomed");
        assert_eq!(st["status"], "stopped", "{st:#}");
        assert_eq!(st["pid"], 0, "{st:#}");
        env.expect_fails(&["kill", "doomed"], "not running");
        env.verb(&["delete", "doomed"]).expect_code(0);
        env.expect_fails(&["state", "doomed"], "does not exist");
        assert!(env.rf.root_entries().is_empty());
    });
}

#[test]
fn host_signals_to_the_sandbox_reach_the_container() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        for (sig, status) in [(libc::SIGTERM, "143\n"), (libc::SIGINT, "130\n")] {
            env.create(&bundle, "sig").expect_ok();
            env.verb(&["start", "sig"]).expect_code(0);
            let pid = pid_of(&env.state("sig"));
            send_signal(pid, sig);
            env.verb(&["wait", "sig"])
                .expect_code(0)
                .expect_stdout(status);
            wait_gone(pid);
            env.verb(&["delete", "sig"]).expect_code(0);
        }
    });
}

#[test]
fn foreground_run_is_a_container_too() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        thread::scope(|s| {
            let run = s.spawn(|| env.rf.run(&bundle, "fg"));
            // `state` works while `run` serves the container.
            let start = Instant::now();
            loop {
                let out = env.rf.invoke(["state", "fg"]);
                if out.exit.shell_code() == 0 && out.stdout_str().contains("\"running\"") {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "never running");
                thread::sleep(Duration::from_millis(10));
            }
            env.verb(&["kill", "fg", "KILL"]).expect_code(0);
            let out = run.join().expect("run thread");
            out.expect_no_panic().expect_code(137);
            // The kill may come before the program has printed anything.
            let stdout = out.stdout_str();
            assert!(
                stdout.is_empty() || stdout == "sleeper started\n",
                "{}",
                out.context()
            );
        });
        assert!(env.rf.root_entries().is_empty());
    });
}

#[test]
fn detached_run_starts_the_container() {
    let bundle = Bundle::builder(&compile("exit_code", Link::Static))
        .args(["3"])
        .build();
    for_each_platform(|p| {
        let env = Env::new(p);
        let b = bundle.dir().to_string_lossy().into_owned();
        let run = env.detached(&["run", "--detach", "--bundle", &b, "det"]);
        run.expect_ok();
        env.verb(&["wait", "det"])
            .expect_code(0)
            .expect_stdout("3\n");
        assert_eq!(run.stdout(), "exiting with 3 via exit\n");
        env.verb(&["delete", "det"]).expect_code(0);
    });
}

#[test]
fn duplicate_and_unknown_ids() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        env.create(&bundle, "dup").expect_ok();
        let pid = pid_of(&env.state("dup"));
        let again = env.create(&bundle, "dup");
        assert_ne!(again.code, 0, "{}", again.context());
        assert!(
            again.stderr().contains("already exists"),
            "{}",
            again.context()
        );
        // The first one is untouched.
        let st = env.state("dup");
        assert_eq!(st["status"], "created");
        assert_eq!(pid_of(&st), pid);
        env.verb(&["delete", "dup"]).expect_code(0);

        for verb in [
            &["state", "ghost"][..],
            &["start", "ghost"],
            &["kill", "ghost"],
            &["delete", "ghost"],
            &["wait", "ghost"],
            &["ps", "ghost"],
        ] {
            env.expect_fails(verb, "does not exist");
        }
        // runc: delete --force of an unknown id succeeds.
        env.verb(&["delete", "--force", "ghost"]).expect_code(0);
        // A bad id is rejected before anything is created.
        let bad = env.create(&bundle, "../escape");
        assert_ne!(bad.code, 0, "{}", bad.context());
        assert!(env.rf.root_entries().is_empty());
    });
}

#[test]
fn list_shows_every_container() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        env.verb(&["list", "--format", "json"])
            .expect_code(0)
            .expect_stdout("null\n");
        env.verb(&["list", "-q"]).expect_code(0).expect_stdout("");
        env.create(&bundle, "b-two").expect_ok();
        env.create(&bundle, "a-one").expect_ok();
        env.verb(&["start", "b-two"]).expect_code(0);
        env.verb(&["list", "-q"])
            .expect_code(0)
            .expect_stdout("a-one\nb-two\n");
        let out = env.verb(&["list", "--format", "json"]);
        out.expect_code(0);
        let v: Value = serde_json::from_slice(&out.stdout).expect("list JSON");
        let items = v.as_array().expect("a JSON array");
        assert_eq!(items.len(), 2, "{v:#}");
        assert_eq!(items[0]["id"], "a-one");
        assert_eq!(items[0]["status"], "created");
        assert_eq!(items[1]["id"], "b-two");
        assert_eq!(items[1]["status"], "running");
        assert_eq!(items[1]["owner"], "root");
        let out = env.verb(&["list"]);
        out.expect_code(0);
        let text = out.stdout_str();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        );
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(row[0], "b-two");
        assert_eq!(row[2], "running");
        assert_eq!(row[5], "root");
        // ps of a running container lists its sandbox process.
        let pid = pid_of(&env.state("b-two"));
        let out = env.verb(&["ps", "--format", "json", "b-two"]);
        out.expect_code(0);
        let pids: Vec<i64> = serde_json::from_slice(&out.stdout).expect("ps JSON");
        assert!(pids.contains(&i64::from(pid)), "{pids:?} lacks {pid}");
        let out = env.verb(&["ps", "b-two"]);
        out.expect_code(0);
        assert!(out.stdout_str().starts_with("UID"), "{}", out.context());
        assert!(out.stdout_str().contains(&pid.to_string()));
        for id in ["a-one", "b-two"] {
            env.verb(&["delete", "--force", id]).expect_code(0);
        }
        env.verb(&["list", "--format", "json"])
            .expect_code(0)
            .expect_stdout("null\n");
    });
}

#[test]
fn features_is_runc_shaped_json() {
    let rf = Ringfence::new(Platform::Ptrace);
    let out = rf.invoke(["features"]);
    out.expect_no_panic().expect_code(0);
    let v: Value = serde_json::from_slice(&out.stdout).expect("features JSON");
    assert!(v["ociVersionMin"].is_string(), "{v:#}");
    assert!(v["ociVersionMax"].is_string(), "{v:#}");
    assert!(v["linux"]["namespaces"].is_array(), "{v:#}");
}

#[test]
fn runc_global_flags_are_accepted() {
    let rf = Ringfence::new(Platform::Ptrace);
    rf.invoke(["--systemd-cgroup", "--rootless", "false", "list", "-q"])
        .expect_no_panic()
        .expect_code(0)
        .expect_stdout("");
}

/// Runs Debian's runc with a private root, stdio in files.
fn runc(root: &Path, files: &Path, args: &[&str]) -> (i32, String, String) {
    let out = files.join("runc.out");
    let err = files.join("runc.err");
    let status = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("runc stdout file"))
        .stderr(fs::File::create(&err).expect("runc stderr file"))
        .status()
        .expect("run runc");
    (
        status.code().unwrap_or(-1),
        fs::read_to_string(out).unwrap_or_default(),
        fs::read_to_string(err).unwrap_or_default(),
    )
}

#[test]
fn state_fields_match_runc() {
    if Command::new("runc").arg("--version").output().is_err() {
        eprintln!(
            "\n!!!!! SKIPPED state_fields_match_runc: runc is not installed \
             (apt-get install -y runc) !!!!!\n"
        );
        return;
    }
    let bundle = sleeper("60");
    let work = TempDir::new("runc");
    let rroot = work.path().join("root");
    let b = bundle.dir().to_string_lossy().into_owned();
    let (code, _, err) = runc(&rroot, work.path(), &["create", "--bundle", &b, "cmp"]);
    if code != 0 {
        panic!("runc create failed ({code}): {err}");
    }
    let (_, runc_created, _) = runc(&rroot, work.path(), &["state", "cmp"]);
    let runc_created: Value = serde_json::from_str(&runc_created).expect("runc state JSON");
    runc(&rroot, work.path(), &["start", "cmp"]);
    let (_, runc_running, _) = runc(&rroot, work.path(), &["state", "cmp"]);
    let runc_running: Value = serde_json::from_str(&runc_running).expect("runc state JSON");
    runc(&rroot, work.path(), &["kill", "cmp", "KILL"]);
    let start = Instant::now();
    let runc_stopped = loop {
        let (_, s, _) = runc(&rroot, work.path(), &["state", "cmp"]);
        let v: Value = serde_json::from_str(&s).expect("runc state JSON");
        if v["status"] == "stopped" || start.elapsed() > Duration::from_secs(10) {
            break v;
        }
        thread::sleep(Duration::from_millis(10));
    };
    runc(&rroot, work.path(), &["delete", "--force", "cmp"]);

    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    for_each_platform(|p| {
        let env = Env::new(p);
        env.create(&bundle, "cmp").expect_ok();
        let ours_created = env.state("cmp");
        env.verb(&["start", "cmp"]).expect_code(0);
        let ours_running = env.state("cmp");
        env.verb(&["kill", "cmp", "KILL"]).expect_code(0);
        env.verb(&["wait", "cmp"]).expect_code(0);
        let ours_stopped = env.state("cmp");
        env.verb(&["delete", "cmp"]).expect_code(0);
        for (what, ours, theirs) in [
            ("created", &ours_created, &runc_created),
            ("running", &ours_running, &runc_running),
            ("stopped", &ours_stopped, &runc_stopped),
        ] {
            assert_eq!(
                keys(ours),
                keys(theirs),
                "{what}: ours {ours:#}, runc {theirs:#}"
            );
            for field in ["status", "id", "bundle", "rootfs", "owner", "ociVersion"] {
                assert_eq!(
                    ours[field], theirs[field],
                    "{what}: field {field}: ours {ours:#}, runc {theirs:#}"
                );
            }
            assert_eq!(
                pid_of(ours) == 0,
                pid_of(theirs) == 0,
                "{what}: pid: ours {ours:#}, runc {theirs:#}"
            );
        }
    });
}

#[test]
fn concurrent_verbs_on_one_id_are_serialised() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        env.create(&bundle, "race").expect_ok();
        // Four starts at once: the lock lets exactly one of them start it.
        let codes: Vec<i32> = thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| env.verb(&["start", "race"])))
                .collect();
            runs.into_iter()
                .map(|h| {
                    let out = h.join().expect("start thread");
                    if out.exit.shell_code() != 0 {
                        assert!(
                            out.stderr_str().contains("already running"),
                            "{}",
                            out.context()
                        );
                    }
                    out.exit.shell_code()
                })
                .collect()
        });
        assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1, "{codes:?}");
        // Concurrent kills and a forced delete: all finish, nothing is left.
        thread::scope(|s| {
            s.spawn(|| env.verb(&["kill", "race", "KILL"]));
            s.spawn(|| env.verb(&["delete", "--force", "race"]));
            s.spawn(|| env.verb(&["kill", "race", "TERM"]));
        });
        let out = env.verb(&["delete", "--force", "race"]);
        out.expect_code(0);
        assert!(
            env.rf.root_entries().is_empty(),
            "{:?}",
            env.rf.root_entries()
        );
    });
}

#[test]
fn create_rejects_bad_bundles_and_leaves_nothing() {
    let prog = compile("exit_code", Link::Static);
    let broken = Bundle::builder(&prog).build();
    broken.write_raw_config("{\"ociVersion\": ");
    let mut tty = Bundle::builder(&prog).build();
    let mut config = tty.config().clone();
    config["process"]["terminal"] = Value::Bool(true);
    tty.set_config(config);
    for_each_platform(|p| {
        let env = Env::new(p);
        let out = env.create(&broken, "broken");
        assert_ne!(out.code, 0, "{}", out.context());
        assert!(out.stderr().contains("config.json"), "{}", out.context());
        assert_eq!(out.stderr().lines().count(), 1, "{}", out.context());
        let out = env.create(&tty, "tty");
        assert_ne!(out.code, 0, "{}", out.context());
        assert!(out.stderr().contains("console-socket"), "{}", out.context());
        assert!(
            env.rf.root_entries().is_empty(),
            "{:?}",
            env.rf.root_entries()
        );
    });
}

#[test]
fn a_stale_state_directory_blocks_the_id_until_deleted() {
    let bundle = sleeper("60");
    for_each_platform(|p| {
        let env = Env::new(p);
        // What an aborted create leaves: the directory, no state.json.
        fs::create_dir(env.rf.root().join("stale")).expect("stale dir");
        let out = env.create(&bundle, "stale");
        assert_ne!(out.code, 0, "{}", out.context());
        assert!(out.stderr().contains("already exists"), "{}", out.context());
        env.expect_fails(&["state", "stale"], "does not exist");
        env.verb(&["list", "-q"]).expect_code(0).expect_stdout("");
        env.verb(&["delete", "--force", "stale"]).expect_code(0);
        assert!(env.rf.root_entries().is_empty());
        env.create(&bundle, "stale").expect_ok();
        env.verb(&["delete", "stale"]).expect_code(0);
    });
}
