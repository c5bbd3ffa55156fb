//! Terminals (issue 6): `process.terminal` with `--console-socket`, as runc
//! does it. The master side of a new pseudo-terminal goes to the console
//! socket; the container's stdio is the slave. The container sees a
//! terminal (`isatty`, `stty size` from the master's window size, `stty
//! -echo` taking effect), reads what is typed on the master, and ^C typed
//! there reaches its init as SIGINT. `exec --tty --console-socket` gives
//! an exec'd process a terminal of its own the same way, where ^C and ^\
//! reach the exec'd process's foreground group. A background process
//! group gets SIGTTIN and SIGTTOU. On both platforms.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use ringfence_tests::{
    compile, for_each_platform, Bundle, BundleBuilder, Link, Platform, Ringfence, TempDir,
};

const SCRIPT: &str =
    "test -t 0 && echo is-a-tty; stty size; stty -echo; echo type; read x; echo got:$x; \
                      trap 'echo caught INT; exit 3' INT; echo ready; while :; do sleep 0.1; done";

fn terminal_bundle() -> Bundle {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/test.sh does)"
    );
    let bytes = fs::read(busybox).expect("read busybox");
    let mut b = BundleBuilder::empty().executable("/bin/busybox", bytes.clone());
    for applet in ["sh", "stty", "sleep"] {
        b = b.executable(&format!("/bin/{applet}"), bytes.clone());
    }
    with_terminal(b.argv(["/bin/sh", "-c", SCRIPT]).build())
}

/// `bundle` with `process.terminal` set.
fn with_terminal(bundle: Bundle) -> Bundle {
    let config = bundle.dir().join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&fs::read(&config).expect("read config")).expect("config JSON");
    spec["process"]["terminal"] = serde_json::Value::Bool(true);
    fs::write(&config, serde_json::to_vec(&spec).expect("encode")).expect("write config");
    bundle
}

/// The master fd that `create` sends to the console socket.
fn receive_master(listener: &UnixListener) -> OwnedFd {
    use std::os::fd::AsRawFd;
    let (conn, _) = listener.accept().expect("accept on the console socket");
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg on the console socket");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed `fd` in this process.
                return unsafe { OwnedFd::from_raw_fd(fd) };
            }
        }
    }
    panic!("no fd came with the console socket's message");
}

/// `create --console-socket` of `bundle` as `id`, with the socket in
/// `dir`; the terminal's master.
fn create_with_console(rf: &Ringfence, bundle: &Bundle, id: &str, dir: &TempDir) -> OwnedFd {
    let sock = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind the console socket");
    let b = bundle.dir().to_string_lossy().into_owned();
    let s = sock.to_string_lossy().into_owned();
    // The message waits in the socket until it is accepted.
    rf.invoke(["create", "--console-socket", &s, "--bundle", &b, id])
        .expect_code(0);
    receive_master(&listener)
}

/// Everything read from the master until the terminal closes.
fn collect(master: OwnedFd) -> Arc<Mutex<Vec<u8>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    thread::spawn(move || {
        let mut f = fs::File::from(master);
        let mut buf = [0u8; 4096];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    out
}

#[track_caller]
fn wait_for(out: &Arc<Mutex<Vec<u8>>>, text: &str, p: Platform) {
    let start = Instant::now();
    loop {
        let seen = String::from_utf8_lossy(&out.lock().expect("lock")).into_owned();
        if seen.contains(text) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{p:?}: {text:?} never appeared on the terminal; it shows {seen:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// `tty_jobs` in `bundle`, created as "jobs" with a console and started:
/// ^C reaches first a child's foreground group (the child dies, init does
/// not see it), then init's own; then it exits 0 and is deleted.
fn ctrl_c_twice(rf: &Ringfence, bundle: &Bundle, dir: &TempDir) {
    let p = rf.platform();
    let master = create_with_console(rf, bundle, "jobs", dir);
    let mut input = fs::File::from(master.try_clone().expect("dup master"));
    let out = collect(master);
    rf.invoke(["start", "jobs"]).expect_code(0);
    wait_for(&out, "child is the foreground group\r\nready\r\n", p);
    input.write_all(b"\x03").expect("type ^C");
    wait_for(&out, "child killed by signal 2; init saw 0\r\n", p);
    wait_for(&out, "init in the foreground\r\n", p);
    input.write_all(b"\x03").expect("type ^C");
    wait_for(&out, "init got SIGINT\r\n", p);
    rf.invoke(["wait", "jobs"])
        .expect_code(0)
        .expect_stdout("0\n");
    rf.invoke(["delete", "jobs"]).expect_code(0);
}

/// `ringfence run --detach` of `bundle` as `id`, with no stdio: the
/// sandbox keeps what it is given, and none of the test's pipes must be.
fn run_detached(rf: &Ringfence, bundle: &Bundle, id: &str) {
    let p = rf.platform();
    let status = std::process::Command::new(ringfence_tests::ringfence_bin())
        .arg("--root")
        .arg(rf.root())
        .args(["--platform", p.name(), "run", "--detach", "--bundle"])
        .arg(bundle.dir())
        .arg(id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run --detach");
    assert!(status.success(), "{p:?}: run --detach: {status}");
}

#[test]
fn console_socket_gives_the_container_a_terminal() {
    let bundle = terminal_bundle();
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let dir = TempDir::new("console");
        let master = create_with_console(&rf, &bundle, "tty", &dir);
        let size = rustix::termios::Winsize {
            ws_row: 30,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, size).expect("TIOCSWINSZ on the master");
        let mut input = fs::File::from(master.try_clone().expect("dup master"));
        let out = collect(master);
        rf.invoke(["start", "tty"]).expect_code(0);
        // ONLCR: the terminal turns each \n into \r\n.
        wait_for(&out, "is-a-tty\r\n30 100\r\n", p);
        wait_for(&out, "type\r\n", p);
        input.write_all(b"secret\n").expect("type a line");
        wait_for(&out, "got:secret\r\n", p);
        let seen = String::from_utf8_lossy(&out.lock().expect("lock")).into_owned();
        assert!(
            !seen.contains("secret\r\ngot"),
            "{p:?}: stty -echo did not stop the echo: {seen:?}"
        );
        wait_for(&out, "ready\r\n", p);

        // exec --tty: a second terminal for a second process.
        let sock2 = dir.path().join("exec.sock");
        let listener2 = UnixListener::bind(&sock2).expect("bind the exec console socket");
        let s2 = sock2.to_string_lossy().into_owned();
        thread::scope(|scope| {
            let exec = scope.spawn(|| {
                rf.invoke([
                    "exec",
                    "--tty",
                    "--console-socket",
                    &s2,
                    "tty",
                    "/bin/sh",
                    "-c",
                    "test -t 0 && test -t 1 && echo exec-tty; read x; echo exec-got:$x; exit 4",
                ])
            });
            let master2 = receive_master(&listener2);
            let mut input2 = fs::File::from(master2.try_clone().expect("dup master"));
            let out2 = collect(master2);
            wait_for(&out2, "exec-tty\r\n", p);
            input2.write_all(b"abc\n").expect("type a line");
            // Echo is on in this terminal: the line shows, then the answer.
            wait_for(&out2, "abc\r\nexec-got:abc\r\n", p);
            exec.join().expect("exec thread").expect_code(4);
        });

        input.write_all(b"\x03").expect("type ^C");
        wait_for(&out, "caught INT\r\n", p);
        rf.invoke(["wait", "tty"])
            .expect_code(0)
            .expect_stdout("3\n");
        rf.invoke(["delete", "tty"]).expect_code(0);
    });
}

#[test]
fn terminal_and_console_socket_go_together() {
    let bundle = terminal_bundle();
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let b = bundle.dir().to_string_lossy().into_owned();
        let out = rf.invoke(["create", "--bundle", &b, "t1"]);
        out.expect_no_panic();
        assert_ne!(out.exit.shell_code(), 0, "{}", out.context());
        assert!(
            out.stderr_str().contains("console-socket"),
            "{}",
            out.context()
        );
        // A socket nobody listens on: a clear error, nothing left behind.
        let dir = TempDir::new("console");
        let s = dir.path().join("none.sock").to_string_lossy().into_owned();
        let out = rf.invoke(["create", "--console-socket", &s, "--bundle", &b, "t2"]);
        out.expect_no_panic();
        assert_ne!(out.exit.shell_code(), 0, "{}", out.context());
        assert!(
            out.stderr_str().contains("console-socket"),
            "{}",
            out.context()
        );
        assert!(
            rf.root_entries().is_empty(),
            "{p:?}: {:?}",
            rf.root_entries()
        );
    });
}

/// ^C goes to the terminal's foreground process group, which the
/// container sets with `tcsetpgrp` (tests/c/tty_jobs.c): first a child's
/// group (the child dies, init does not see it), then init's own.
#[test]
fn ctrl_c_goes_to_the_foreground_process_group() {
    let bundle = with_terminal(Bundle::builder(&compile("tty_jobs", Link::Static)).build());
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let dir = TempDir::new("console");
        ctrl_c_twice(&rf, &bundle, &dir);
    });
}

/// `docker run -it busybox sh`: an interactive shell with job control on
/// the terminal. ^C ends the foreground command, not the shell.
#[test]
fn interactive_shell_with_job_control() {
    let busybox = fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let mut b = BundleBuilder::empty().executable("/bin/busybox", busybox.clone());
    for applet in ["sh", "sleep"] {
        b = b.executable(&format!("/bin/{applet}"), busybox.clone());
    }
    let bundle = with_terminal(
        b.argv(["/bin/sh", "-i"])
            .env(["PATH=/bin", "TERM=xterm", "PS1=prompt$ "])
            .build(),
    );
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let dir = TempDir::new("console");
        let master = create_with_console(&rf, &bundle, "sh", &dir);
        let mut input = fs::File::from(master.try_clone().expect("dup master"));
        let out = collect(master);
        rf.invoke(["start", "sh"]).expect_code(0);
        wait_for(&out, "prompt$ ", p);
        // The child prints once it runs, and by then it is the foreground
        // group (ash's child calls tcsetpgrp itself).
        input
            .write_all(b"sh -c 'echo start''ed; exec sleep 100'\r")
            .expect("type a command");
        wait_for(&out, "started\r\n", p);
        input.write_all(b"\x03").expect("type ^C");
        input.write_all(b"echo alive $?\r").expect("type a command");
        wait_for(&out, "alive 130\r\n", p);
        input.write_all(b"exit 9\r").expect("type exit");
        rf.invoke(["wait", "sh"])
            .expect_code(0)
            .expect_stdout("9\n");
        rf.invoke(["delete", "sh"]).expect_code(0);
    });
}

/// Background process groups and the terminal (tests/c/tty_bg.c): a
/// background read stops the group with SIGTTIN and goes on once it is
/// the foreground group and continued; with SIGTTIN ignored it fails with
/// EIO; a background write stops with SIGTTOU only under `TOSTOP`.
#[test]
fn background_groups_get_sigttin_and_sigttou() {
    let bundle = with_terminal(Bundle::builder(&compile("tty_bg", Link::Static)).build());
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let dir = TempDir::new("console");
        let master = create_with_console(&rf, &bundle, "bg", &dir);
        let mut input = fs::File::from(master.try_clone().expect("dup master"));
        let out = collect(master);
        rf.invoke(["start", "bg"]).expect_code(0);
        wait_for(&out, "reader stopped by signal 21\r\nready\r\n", p);
        input.write_all(b"hello\n").expect("type a line");
        wait_for(
            &out,
            "child read: hello\r\nreader exited with 7\r\n\
             SIGTTIN ignored: read -1 (Input/output error)\r\n\
             background write\r\nwriter stopped by signal 22\r\ndone\r\n",
            p,
        );
        rf.invoke(["wait", "bg"])
            .expect_code(0)
            .expect_stdout("0\n");
        rf.invoke(["delete", "bg"]).expect_code(0);
    });
}

/// ^C typed on an `exec --tty` terminal is a SIGINT for the foreground
/// process group of the exec'd process (its shell and the `sleep` it
/// waits for), not for the container's init; ^\ likewise a SIGQUIT.
#[test]
fn ctrl_c_in_an_exec_terminal() {
    let busybox = fs::read("/bin/busybox").expect("read /bin/busybox (busybox-static)");
    let mut b = BundleBuilder::empty().executable("/bin/busybox", busybox.clone());
    for applet in ["sh", "sleep"] {
        b = b.executable(&format!("/bin/{applet}"), busybox.clone());
    }
    let bundle = b
        .argv([
            "/bin/sh",
            "-c",
            "trap 'echo init INT; exit 3' INT; while :; do sleep 0.1; done",
        ])
        .env(["PATH=/bin"])
        .build();
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let dir = TempDir::new("console");
        run_detached(&rf, &bundle, "ex");
        for (key, script, code) in [
            (
                b"\x03",
                "trap 'echo exec INT; exit 6' INT; echo exec-ready; while :; do sleep 0.1; done",
                6,
            ),
            (
                b"\x1c",
                "trap 'echo exec QUIT; exit 5' QUIT; echo exec-ready; while :; do sleep 0.1; done",
                5,
            ),
        ] {
            let sock = dir.path().join(format!("exec{code}.sock"));
            let listener = UnixListener::bind(&sock).expect("bind the exec console socket");
            let s = sock.to_string_lossy().into_owned();
            thread::scope(|scope| {
                let exec = scope.spawn(|| {
                    rf.invoke([
                        "exec",
                        "--tty",
                        "--console-socket",
                        &s,
                        "ex",
                        "/bin/sh",
                        "-c",
                        script,
                    ])
                });
                let master = receive_master(&listener);
                let mut input = fs::File::from(master.try_clone().expect("dup master"));
                let out = collect(master);
                wait_for(&out, "exec-ready\r\n", p);
                input.write_all(key).expect("type the key");
                let caught = if code == 6 {
                    "exec INT\r\n"
                } else {
                    "exec QUIT\r\n"
                };
                wait_for(&out, caught, p);
                exec.join().expect("exec thread").expect_code(code);
            });
        }
        // The container's init saw neither.
        let state = rf.invoke(["state", "ex"]);
        assert!(
            state.stdout_str().contains("\"running\""),
            "{p:?}: {}",
            state.context()
        );
        rf.invoke(["kill", "ex", "INT"]).expect_code(0);
        rf.invoke(["wait", "ex"])
            .expect_code(0)
            .expect_stdout("3\n");
        rf.invoke(["delete", "ex"]).expect_code(0);
    });
}

/// A pod's container with a terminal of its own (`create
/// --console-socket` of a container that joins a sandbox): ^C goes to the
/// foreground process group its program sets (tests/c/tty_jobs.c), as for
/// a sandbox's own init.
#[test]
fn ctrl_c_in_a_pod_containers_terminal() {
    let sandbox = Bundle::builder(&compile("sleeper", Link::Static))
        .args(["60"])
        .build();
    let mut member = Bundle::builder(&compile("tty_jobs", Link::Static)).build();
    let mut config = member.config().clone();
    config["annotations"] = serde_json::json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": "pod",
    });
    member.set_config(config);
    let member = with_terminal(member);
    for_each_platform(|p: Platform| {
        let rf = Ringfence::new(p);
        let dir = TempDir::new("console");
        run_detached(&rf, &sandbox, "pod");
        ctrl_c_twice(&rf, &member, &dir);
        rf.invoke(["delete", "--force", "pod"]).expect_code(0);
    });
}
