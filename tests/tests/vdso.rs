//! The vDSO: `c/vdso_time.c` on every platform. glibc finds the sentry's
//! vDSO through `AT_SYSINFO_EHDR`, its clocks are sane and agree with the
//! host's, and reading them makes no system call.

use std::time::{SystemTime, UNIX_EPOCH};

use ringfence_tests::{compile, for_each_platform, Bundle, Exit, Link, Ringfence};

/// How far the sandbox's CLOCK_REALTIME may be from the host's.
const REALTIME_SLACK_NS: i128 = 5_000_000;

fn host_realtime_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after the epoch")
        .as_nanos() as i128
}

fn realtime_line(stdout: &str) -> i128 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("realtime_ns="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no realtime_ns= line in {stdout:?}"))
}

fn clocks_agree_with_the_host(link: Link) {
    let prog = compile("vdso_time", link);
    let bundle = Bundle::builder(&prog).args(["check", "20000"]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    let head = "vdso: yes\nclocks: ok\n";
    assert!(
        native.stdout_str().starts_with(head),
        "{}",
        native.context()
    );
    for_each_platform(|p| {
        let before = host_realtime_ns();
        let out = bundle.run(p);
        let after = host_realtime_ns();
        out.expect_exit(Exit::Code(0));
        assert!(out.stdout_str().starts_with(head), "{}", out.context());
        // The program read the clock at its end, inside the run.
        let t = realtime_line(&out.stdout_str());
        assert!(
            t >= before - REALTIME_SLACK_NS && t <= after + REALTIME_SLACK_NS,
            "sandbox CLOCK_REALTIME {t} outside the host's [{before}, {after}] ± 5 ms{}",
            out.context()
        );
    });
}

#[test]
fn vdso_clocks_are_monotonic_and_match_the_host() {
    clocks_agree_with_the_host(Link::Static);
}

#[test]
fn vdso_clocks_static_pie() {
    clocks_agree_with_the_host(Link::StaticPie);
}

/// The number in the sentry's "sentry exit: N syscalls" log line.
fn sentry_syscalls(log: &str) -> u64 {
    ringfence_tests::log_numbers(log, "sentry exit: ")[0]
}

#[test]
fn vdso_calls_do_not_enter_the_sentry() {
    let prog = compile("vdso_time", Link::Static);
    for_each_platform(|p| {
        let mut counts = Vec::new();
        for n in ["0", "100000"] {
            let bundle = Bundle::builder(&prog).args(["loop", n]).build();
            let (out, log) = Ringfence::new(p).run_debug(&bundle, "rf-vdso");
            out.expect_exit(Exit::Code(0));
            out.expect_stdout("loop: ok\n");
            counts.push(sentry_syscalls(&log));
        }
        // 300,000 clock reads, and not one more system call.
        assert_eq!(
            counts[0], counts[1],
            "on {p}: {} syscalls with no clock reads, {} with 300,000",
            counts[0], counts[1]
        );
    });
}

/// A task preempted inside a long run of vDSO calls (no syscall for many
/// timer ticks) resumes where it was: the ptrace platform once rewound it
/// to its last syscall and it crashed.
#[test]
fn long_vdso_loops_survive_preemption() {
    let prog = compile("vdso_time", Link::Static);
    let bundle = Bundle::builder(&prog).args(["loop", "2000000"]).build();
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout("loop: ok\n");
    });
}
