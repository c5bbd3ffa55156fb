//! Processes, threads, pipes and signals: `c/procs.c` in every mode, on
//! every platform, compared with the same program run natively.

use ringfence_tests::{compile, for_each_platform, Bundle, Exit, Link};

fn procs_matches_native(mode: &str) {
    let prog = compile("procs", Link::Static);
    let bundle = Bundle::builder(&prog).args([mode]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    assert!(
        !native.stdout_str().is_empty(),
        "native run printed nothing:\n{}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&native.stdout_str());
    });
}

#[test]
fn fork_wait_and_copy_on_write() {
    procs_matches_native("fork");
}

#[test]
fn pipes_eof_epipe_and_dup2() {
    procs_matches_native("pipe");
}

#[test]
fn fork_exec_wait() {
    procs_matches_native("exec");
}

#[test]
fn pthreads_mutex_condvar_join() {
    procs_matches_native("threads");
}

#[test]
fn signals_sigchld_sigsuspend_nanosleep_vfork() {
    procs_matches_native("signals");
}

#[test]
fn spinning_tasks_are_preempted() {
    procs_matches_native("spin");
}

#[test]
fn select_and_poll_wait_and_time_out() {
    procs_matches_native("select");
}

#[test]
fn setitimer_and_alarm_deliver_sigalrm() {
    procs_matches_native("alarm");
}

#[test]
fn eventfd_blocks_counts_and_polls() {
    procs_matches_native("eventfd");
}

#[test]
fn epoll_level_edge_oneshot_and_blocking() {
    procs_matches_native("epoll");
}

#[test]
fn socketpair_stream_dgram_and_scm_rights() {
    let prog = compile("procs", Link::Static);
    let bundle = Bundle::builder(&prog).args(["socket"]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    // The sandbox has no network yet: an AF_INET socket is refused there.
    let expected = native
        .stdout_str()
        .replace("AF_INET socket: created", "AF_INET socket: refused");
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
    });
}

#[test]
fn waitid_and_sigtimedwait() {
    procs_matches_native("waitid");
}

#[test]
fn timerfd_one_shot_periodic_and_polled() {
    procs_matches_native("timerfd");
}

/// `c/ipc2.c` in `mode`, compared with the same program run natively.
fn ipc2_matches_native(mode: &str) {
    let prog = compile("ipc2", Link::Static);
    let bundle = Bundle::builder(&prog).args([mode]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    assert!(
        !native.stdout_str().is_empty(),
        "native run printed nothing:\n{}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&native.stdout_str());
    });
}

#[test]
fn signalfd_reads_and_polls() {
    ipc2_matches_native("signalfd");
}

#[test]
fn posix_timers_signal_and_thread() {
    ipc2_matches_native("timers");
}

#[test]
fn close_range_closes_and_cloexec() {
    ipc2_matches_native("close-range");
}

#[test]
fn robust_mutex_owner_died() {
    ipc2_matches_native("robust");
}

/// `c/jobctl.c`: job-control stops and continues (SIGSTOP, SIGTSTP,
/// SIGTTOU, SIGCONT) seen by waitpid, waitid and SIGCHLD, a stopped
/// multi-threaded child, SIGKILL of a stopped child, and an orphaned
/// process group; compared with a native run.
#[test]
fn job_control_stop_and_continue() {
    let prog = compile("jobctl", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    assert!(
        native
            .stdout_str()
            .contains("threads: counter frozen while stopped: yes"),
        "native run:\n{}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&native.stdout_str());
    });
}

/// A fork bomb stops at the spec's RLIMIT_NPROC with EAGAIN, inside the
/// sandbox (natively, root is exempt from RLIMIT_NPROC, so there is no
/// native run to compare with), and everything is reaped afterwards.
#[test]
fn fork_bomb_is_bounded_by_rlimit_nproc() {
    let prog = compile("procs", Link::Static);
    let bundle = Bundle::builder(&prog)
        .args(["nproc"])
        .rlimit("RLIMIT_NPROC", 40, 40)
        .build();
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        // 40 processes in all: the bomb itself and 39 children.
        out.expect_stdout("nproc: fork failed with EAGAIN after 39 children, reaped 39\n");
    });
}

/// Without RLIMIT_NPROC, a fork bomb is bounded by the sandbox's memory
/// (here a 64 MiB limit in the spec): fork fails well before the host's
/// limits, and every child is reaped.
#[test]
fn fork_bomb_without_a_limit_is_bounded_by_memory() {
    let prog = compile("procs", Link::Static);
    let mut bundle = Bundle::builder(&prog).args(["nproc"]).build();
    let mut config = bundle.config().clone();
    config["linux"]["resources"]["memory"]["limit"] = serde_json::json!(64u64 << 20);
    bundle.set_config(config);
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        let s = out.stdout_str();
        let n: u32 = s
            .split_whitespace()
            .skip_while(|w| *w != "after")
            .nth(1)
            .and_then(|w| w.parse().ok())
            .unwrap_or(u32::MAX);
        assert!(
            (s.contains("failed with EAGAIN") || s.contains("failed with Cannot allocate memory"))
                && n < 1000
                && s.ends_with(&format!("reaped {n}\n")),
            "{p:?}: {s}"
        );
    });
}

/// Eight processes fill as many pipes (or socket pairs) as their
/// descriptor limit allows, far more than the sandbox's buffer budget: past
/// it each holds a page, every process gets all of them, and the sentry,
/// whose heap the buffers live in, keeps running (it once panicked out of
/// memory on KVM).
fn fill_buffers_matches_native(kind: &str) {
    let prog = compile("pipefill", Link::Static);
    let bundle = Bundle::builder(&prog)
        .args([kind])
        .rlimit("RLIMIT_NOFILE", 1024, 1024)
        .build();
    // 1024 descriptors, less the three standard streams and the two pipe
    // ends each child keeps (natively, the harness may add one more).
    let what = if kind == "socket" {
        "socket pairs"
    } else {
        "pipes"
    };
    let want = format!("child: 509 {what} filled\n").repeat(8);
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    assert!(
        native.stdout_str() == want || native.stdout_str() == want.replace("509", "508"),
        "native: {}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&want);
    });
}

#[test]
fn filling_thousands_of_pipes_does_not_exhaust_the_sentry() {
    fill_buffers_matches_native("pipe");
}

#[test]
fn filling_thousands_of_socket_pairs_does_not_exhaust_the_sentry() {
    fill_buffers_matches_native("socket");
}

/// Processes that raise `RLIMIT_NOFILE` to a million and open descriptors
/// until it fails (`c/fdmax.c`) meet the sandbox's file-max: `ENFILE`,
/// with all of `/proc/sys/fs/file-max` open between them, and the sandbox
/// goes on. (The
/// KVM sentry used to run out of memory and panic, after minutes of
/// lowest-free-descriptor scans.) Not run natively: the host would let
/// them open eight million.
#[test]
fn a_sandbox_full_of_descriptors_answers_enfile() {
    let prog = compile("fdmax", Link::Static);
    let bundle = Bundle::builder(&prog)
        .rlimit("RLIMIT_NOFILE", 1 << 20, 1 << 20)
        .build();
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        let text = out.stdout_str();
        assert!(
            text.contains("children stopped by ENFILE: 8\n"),
            "{}",
            out.context()
        );
        // The budget (/proc/sys/fs/file-max: 262,144 on KVM's default
        // memory) less the few descriptors the processes hold anyway.
        assert!(
            text.contains("total within 100 of file-max: yes\n"),
            "{}",
            out.context()
        );
    });
}
