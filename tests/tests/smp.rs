//! Several CPUs: both platforms run a task on each CPU at once
//! (`c/smp.c`): KVM on its vCPUs, ptrace on one tracer thread per CPU. The
//! tests that need parallelism ask for two CPUs explicitly, whatever the
//! host has.

use std::ffi::OsStr;

use ringfence_tests::{
    compile, for_each_platform, log_numbers, platforms, Bundle, Exit, Link, Platform, Ringfence,
};

fn run_with_vcpus(p: Platform, bundle: &Bundle, vcpus: &str) -> ringfence_tests::RunOutput {
    run_in(&Ringfence::new(p), bundle, vcpus, None)
}

/// `ringfence [EXTRA] --vcpus N run` of `bundle` in context `rf`.
fn run_in(
    rf: &Ringfence,
    bundle: &Bundle,
    vcpus: &str,
    extra: Option<&str>,
) -> ringfence_tests::RunOutput {
    let mut args: Vec<&OsStr> = extra.map(OsStr::new).into_iter().collect();
    args.extend([
        OsStr::new("--vcpus"),
        OsStr::new(vcpus),
        OsStr::new("run"),
        OsStr::new("--bundle"),
        bundle.dir().as_os_str(),
        OsStr::new("rf-smp"),
    ]);
    rf.invoke(args)
}

/// Runs `c/smp.c MODE` natively, then on every platform with two CPUs,
/// and expects the same output.
fn two_cpus_match_native(mode: &str, link: Link) -> (Bundle, String) {
    let prog = compile("smp", link);
    let bundle = Bundle::builder(&prog).args([mode]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    let expected = native.stdout_str();
    for_each_platform(|p| {
        let out = run_with_vcpus(p, &bundle, "2");
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
    });
    (bundle, expected)
}

#[test]
fn the_cpu_count_is_the_vcpus_everywhere_it_is_reported() {
    let prog = compile("smp", Link::Static);
    let bundle = Bundle::builder(&prog).args(["cpus"]).build();
    for_each_platform(|p| {
        for n in ["1", "2", "3"] {
            let out = run_with_vcpus(p, &bundle, n);
            out.expect_exit(Exit::Code(0));
            out.expect_stdout(&format!(
                "affinity {n} online {n} cpuinfo {n}\ngetcpu in range: yes\n"
            ));
        }
        // Without --vcpus: as many as the host has, at most 8.
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        out.expect_stdout(&format!(
            "affinity {n} online {n} cpuinfo {n}\ngetcpu in range: yes\n"
        ));
    });
}

#[test]
fn two_threads_run_at_once_on_two_cpus() {
    // 20,000 hand-overs through memory alone: on one CPU each would wait
    // for a preemption and the run would outlive the test's timeout.
    let prog = compile("smp", Link::Static);
    let bundle = Bundle::builder(&prog).args(["handshake"]).build();
    for_each_platform(|p| {
        let out = run_with_vcpus(p, &bundle, "2");
        out.expect_exit(Exit::Code(0));
        out.expect_stdout("handshake done: 20000 rounds\non different CPUs at once: yes\n");
    });
}

#[test]
fn unmap_and_mprotect_reach_a_thread_running_on_another_cpu() {
    let (bundle, expected) = two_cpus_match_native("shootdown", Link::Dynamic);
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
    });
}

#[test]
fn threads_faulting_on_the_same_page_at_once_both_succeed() {
    // One CPU maps the page (or breaks its copy-on-write) while the other
    // waits for the kernel lock; the second fault is spurious and retried
    // (on ptrace, which cannot tell a write fault from a read, because
    // the space served a fault meanwhile).
    two_cpus_match_native("touch", Link::Static);
}

#[test]
fn each_thread_keeps_its_own_fpu_state_whatever_cpu_runs_it() {
    // On ptrace the threads of a process share each CPU's stub thread, so
    // their SSE/AVX registers and MXCSR are swapped in and out; with one
    // CPU all four share one.
    let (bundle, expected) = two_cpus_match_native("fpu", Link::Static);
    for_each_platform(|p| {
        let out = run_with_vcpus(p, &bundle, "1");
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
    });
}

/// The ptrace platform runs application code two ways: on seccomp-trapped
/// sysmsg threads, whose FPU state the sentry swaps in their signal frames,
/// and under `PTRACE_SYSEMU` (`RINGFENCE_PTRACE_SYSEMU=1`), through
/// `PTRACE_SETREGSET`. Both keep each thread's state, on one CPU and on
/// two; the `--debug` log shows which way the switches went.
#[test]
fn ptrace_keeps_fpu_state_on_sysmsg_threads_and_under_sysemu() {
    if !platforms().contains(&Platform::Ptrace) {
        eprintln!("SKIPPED: the ptrace platform is not among the requested platforms");
        return;
    }
    let prog = compile("smp", Link::Static);
    let bundle = Bundle::builder(&prog).args(["fpu"]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    for sysemu in [false, true] {
        for vcpus in ["1", "2"] {
            let mut rf = Ringfence::new(Platform::Ptrace);
            if sysemu {
                rf = rf.env("RINGFENCE_PTRACE_SYSEMU", "1");
            }
            let out = run_in(&rf, &bundle, vcpus, Some("--debug"));
            out.expect_exit(Exit::Code(0));
            out.expect_stdout(&native.stdout_str());
            let log = std::fs::read_to_string(rf.log()).unwrap_or_default();
            let n = log_numbers(&log, "ptrace switches: ");
            let (fast, stops) = (n[0], n[1]);
            if sysemu {
                assert_eq!(fast, 0, "SYSEMU only, yet {fast} sysmsg switches");
            } else {
                // Four threads trapping hundreds of times each.
                assert!(fast > 500, "{fast} sysmsg switches, {stops} ptrace stops");
            }
        }
    }
}

/// Four threads mixing user-mode work, patched system calls (on ptrace,
/// `mm::usertrap`) and signals to each other, on one CPU and on two:
/// preemption kicks and signal deliveries land anywhere, inside the code
/// that hands a patched call over too. Every call returns its own thread's
/// id and every register it checks survives.
#[test]
fn patched_calls_survive_kicks_and_signals_between_threads() {
    let prog = compile("patchstress", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    native.expect_stdout("stress: ok\n");
    for_each_platform(|p| {
        for vcpus in ["1", "2"] {
            let out = run_with_vcpus(p, &bundle, vcpus);
            out.expect_exit(Exit::Code(0));
            out.expect_stdout("stress: ok\n");
        }
    });
}
