//! Pods (issue 6): a container whose bundle names an existing sandbox
//! (CRI's `io.kubernetes.cri.sandbox-id` with `container-type:
//! container`) joins that sandbox's sentry with its own root filesystem
//! and overlay, its own process, stdio, state and exit status, on both
//! platforms. Deleting the sandbox container ends its pod's containers.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ringfence_tests::{for_each_platform, Bundle, BundleBuilder};
use serde_json::{json, Value};

mod common;
use common::*;

/// A busybox bundle with a marker file `/only-in-NAME`, running `argv`,
/// with CRI's pod annotations.
fn busybox(name: &str, argv: &[&str], annotations: Value) -> Bundle {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/test.sh does)"
    );
    let bytes = fs::read(busybox).expect("read busybox");
    let mut b = BundleBuilder::empty().executable("/bin/busybox", bytes.clone());
    for applet in ["sh", "cat", "sleep", "echo", "ls", "grep", "stat"] {
        b = b.executable(&format!("/bin/{applet}"), bytes.clone());
    }
    let mut bundle = b
        .file(&format!("/only-in-{name}"), format!("{name}\n"))
        .argv(argv.iter().copied())
        .env(["PATH=/bin"])
        .build();
    let mut config = bundle.config().clone();
    config["annotations"] = annotations;
    bundle.set_config(config);
    bundle
}

/// Annotations of a container of the pod whose sandbox is `sandbox`.
fn member_of(sandbox: &str) -> Value {
    json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": sandbox,
    })
}

/// The member's program: prints its marker and whether it sees the
/// sandbox's, then waits for `/tmp/go` in its own namespace, exit 4.
const MEMBER: &str = "cat /only-in-b; [ -e /only-in-a ] && echo sees-a; \
                      while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 4";

#[track_caller]
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: not within 20 s"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn ps_pids(env: &Env, id: &str) -> Vec<i64> {
    let out = env.verb(&["ps", "--format", "json", id]);
    out.expect_code(0);
    let v: Value = serde_json::from_slice(&out.stdout).expect("ps JSON");
    v.as_array()
        .expect("ps: a list")
        .iter()
        .filter_map(Value::as_i64)
        .collect()
}

#[test]
fn a_pod_container_has_its_own_root_process_and_lifecycle() {
    let sandbox = busybox(
        "a",
        &["/bin/sleep", "120"],
        json!({"io.kubernetes.cri.container-type": "sandbox"}),
    );
    let member = busybox("b", &["/bin/sh", "-c", MEMBER], member_of("pa"));
    for_each_platform(|p| {
        let env = Env::new(p);
        env.create(&sandbox, "pa").expect_ok();
        env.verb(&["start", "pa"]).expect_code(0);
        let pa = env.state("pa");
        assert_eq!(pa["status"], "running", "{pa:#}");

        let created = env.create(&member, "pb");
        created.expect_ok();
        let pb = env.state("pb");
        assert_eq!(pb["status"], "created", "{p:?}: {pb:#}");
        assert_eq!(pb["id"], "pb");
        assert!(pid_of(&pb) > 0 && pid_of(&pb) != pid_of(&pa), "{pb:#}");
        env.verb(&["start", "pb"]).expect_code(0);
        assert_eq!(env.state("pb")["status"], "running");
        // Its own root: its marker, not the sandbox's.
        wait_for("the member's output", || created.stdout().contains("b\n"));
        assert_eq!(created.stdout(), "b\n", "{p:?}{}", created.context());

        // exec in either container sees that container's files only, and
        // writes stay in its own overlay.
        env.verb(&[
            "exec",
            "pa",
            "/bin/sh",
            "-c",
            "cat /only-in-a; ls /only-in-b",
        ])
        .expect_code(1)
        .expect_stdout("a\n");
        env.verb(&[
            "exec",
            "pb",
            "/bin/sh",
            "-c",
            "echo b-was-here > /note; cat /note",
        ])
        .expect_code(0)
        .expect_stdout("b-was-here\n");
        env.verb(&["exec", "pa", "/bin/cat", "/note"])
            .expect_code(1);
        // Their own /tmp: the same (st_dev, st_ino) would be one file.
        let tmp_dev = |id: &str| {
            let out = env.verb(&["exec", id, "/bin/stat", "-c", "%d", "/tmp"]);
            out.expect_code(0);
            out.stdout_str()
        };
        assert_ne!(tmp_dev("pa"), tmp_dev("pb"), "{p:?}");

        // ps: each container's own processes.
        let (a_pids, b_pids) = (ps_pids(&env, "pa"), ps_pids(&env, "pb"));
        assert!(b_pids.contains(&i64::from(pid_of(&pb))), "{b_pids:?}");
        assert!(!b_pids.contains(&i64::from(pid_of(&pa))), "{b_pids:?}");
        assert!(a_pids.contains(&i64::from(pid_of(&pa))), "{a_pids:?}");
        assert!(!a_pids.contains(&i64::from(pid_of(&pb))), "{a_pids:?}");
        env.expect_fails(&["pause", "pb"], "sandbox");

        // Its exit status is its own; the sandbox runs on.
        env.verb(&["exec", "pb", "/bin/sh", "-c", "echo > /tmp/go"])
            .expect_code(0);
        env.verb(&["wait", "pb"])
            .expect_code(0)
            .expect_stdout("4\n");
        assert_eq!(env.state("pb")["status"], "stopped");
        assert_eq!(env.state("pa")["status"], "running");
        env.verb(&["delete", "pb"]).expect_code(0);

        // kill reaches only the container it names.
        env.create(&member, "pc").expect_ok();
        env.verb(&["start", "pc"]).expect_code(0);
        env.verb(&["kill", "--all", "pc", "KILL"]).expect_code(0);
        env.verb(&["wait", "pc"])
            .expect_code(0)
            .expect_stdout("137\n");
        thread::sleep(Duration::from_millis(100));
        assert_eq!(env.state("pa")["status"], "running");
        env.verb(&["exec", "pa", "/bin/cat", "/only-in-a"])
            .expect_code(0)
            .expect_stdout("a\n");
        env.create(&member, "pd").expect_ok();
        env.verb(&["start", "pd"]).expect_code(0);
        env.verb(&["kill", "pd", "TERM"]).expect_code(0);
        env.verb(&["wait", "pd"])
            .expect_code(0)
            .expect_stdout("143\n");
        assert_eq!(env.state("pa")["status"], "running");

        // A member killed on the host (kill -9) takes its processes along.
        env.create(&member, "pf").expect_ok();
        env.verb(&["start", "pf"]).expect_code(0);
        let member_runs = || {
            let out = env.verb(&[
                "exec",
                "pa",
                "/bin/sh",
                "-c",
                // The pattern is split so that this script does not match.
                "p=only-in; for f in /proc/[0-9]*/cmdline; do grep -q $p-b $f && echo found; done; true",
            ]);
            out.expect_code(0);
            out.stdout_str().contains("found")
        };
        wait_for("the member's process in the sandbox", member_runs);
        send_signal(pid_of(&env.state("pf")), libc::SIGKILL);
        wait_for("the killed member's processes to go", || !member_runs());
        assert_eq!(env.state("pf")["status"], "stopped");
        assert_eq!(env.state("pa")["status"], "running");
        env.verb(&["delete", "pf"]).expect_code(0);

        // Deleting the sandbox container ends the pod's others.
        env.create(&member, "pe").expect_ok();
        env.verb(&["start", "pe"]).expect_code(0);
        env.verb(&["delete", "--force", "pa"]).expect_code(0);
        env.verb(&["wait", "pe"])
            .expect_code(0)
            .expect_stdout("137\n");
        assert_eq!(env.state("pe")["status"], "stopped");
        for id in ["pc", "pd", "pe"] {
            env.verb(&["delete", id]).expect_code(0);
        }
        assert!(env.rf.root_entries().is_empty());
    });
}

/// A pod container of a missing or stopped sandbox, or without its root
/// filesystem, is refused with the reason, and leaves nothing behind.
#[test]
fn a_pod_container_needs_a_running_sandbox_and_its_rootfs() {
    let sandbox = busybox("a", &["/bin/sh", "-c", "exit 0"], json!({}));
    for_each_platform(|p| {
        let env = Env::new(p);
        let ghost = busybox("b", &["/bin/sh"], member_of("ghost"));
        let out = env.create(&ghost, "m1");
        assert_ne!(out.code, 0, "{p:?}{}", out.context());
        assert!(out.stderr().contains("does not exist"), "{}", out.context());

        let nameless = busybox(
            "b",
            &["/bin/sh"],
            json!({"io.kubernetes.cri.container-type": "container"}),
        );
        let out = env.create(&nameless, "m2");
        assert_ne!(out.code, 0, "{}", out.context());
        assert!(out.stderr().contains("sandbox-id"), "{}", out.context());

        env.create(&sandbox, "sa").expect_ok();
        let early = busybox("b", &["/bin/sh"], member_of("sa"));
        let out = env.create(&early, "m3");
        assert_ne!(out.code, 0, "{}", out.context());
        assert!(out.stderr().contains("is created"), "{}", out.context());
        env.verb(&["start", "sa"]).expect_code(0);
        env.verb(&["wait", "sa"])
            .expect_code(0)
            .expect_stdout("0\n");
        let out = env.create(&early, "m4");
        assert_ne!(out.code, 0, "{}", out.context());
        assert!(out.stderr().contains("is stopped"), "{}", out.context());
        let rootless = busybox("b", &["/bin/sh"], member_of("sa"));
        fs::remove_dir_all(rootless.rootfs()).expect("remove the rootfs");
        let out = env.create(&rootless, "m5");
        assert_ne!(out.code, 0, "{}", out.context());
        assert!(out.stderr().contains("root.path"), "{}", out.context());
        assert_eq!(env.rf.root_entries(), vec!["sa".to_string()]);
        env.verb(&["delete", "sa"]).expect_code(0);
    });
}
