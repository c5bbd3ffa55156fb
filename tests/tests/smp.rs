//! Several CPUs: the KVM platform runs a task on each vCPU at once
//! (`c/smp.c`). The ptrace platform still serves one thread at a time, so
//! the tests that need parallelism run on KVM, with two vCPUs asked for
//! explicitly whatever the host has.

use std::ffi::OsStr;

use ringfence_tests::{compile, for_each_platform, Bundle, Exit, Link, Platform, Ringfence};

fn run_with_vcpus(p: Platform, bundle: &Bundle, vcpus: &str) -> ringfence_tests::RunOutput {
    Ringfence::new(p).invoke([
        OsStr::new("--vcpus"),
        OsStr::new(vcpus),
        OsStr::new("run"),
        OsStr::new("--bundle"),
        bundle.dir().as_os_str(),
        OsStr::new("rf-smp"),
    ])
}

/// Runs `c/smp.c MODE` natively, then on KVM with two vCPUs, and expects
/// the same output.
fn kvm_matches_native(mode: &str, link: Link) -> (Bundle, String) {
    let prog = compile("smp", link);
    let bundle = Bundle::builder(&prog).args([mode]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    let expected = native.stdout_str();
    on_kvm(|p| {
        let out = run_with_vcpus(p, &bundle, "2");
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
    });
    (bundle, expected)
}

/// KVM, or a loud skip where there is no `/dev/kvm`.
fn on_kvm(test: impl Fn(Platform)) {
    match Platform::Kvm.unavailable() {
        Some(why) => eprintln!("SKIPPED (no KVM here): {why}"),
        None => test(Platform::Kvm),
    }
}

#[test]
fn the_cpu_count_is_the_vcpus_everywhere_it_is_reported() {
    let prog = compile("smp", Link::Static);
    let bundle = Bundle::builder(&prog).args(["cpus"]).build();
    on_kvm(|p| {
        for n in ["1", "2", "3"] {
            let out = run_with_vcpus(p, &bundle, n);
            out.expect_exit(Exit::Code(0));
            out.expect_stdout(&format!(
                "affinity {n} online {n} cpuinfo {n}\ngetcpu in range: yes\n"
            ));
        }
    });
    for_each_platform(|p| {
        // Without --vcpus: as many as the host has (ptrace: one), at most 8.
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        let host = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let n = if p == Platform::Kvm { host } else { 1 };
        out.expect_stdout(&format!(
            "affinity {n} online {n} cpuinfo {n}\ngetcpu in range: yes\n"
        ));
    });
}

#[test]
fn two_threads_run_at_once_on_two_vcpus() {
    // 20,000 hand-overs through memory alone: on one CPU each would wait
    // for a preemption and the run would outlive the test's timeout.
    let prog = compile("smp", Link::Static);
    let bundle = Bundle::builder(&prog).args(["handshake"]).build();
    on_kvm(|p| {
        let out = run_with_vcpus(p, &bundle, "2");
        out.expect_exit(Exit::Code(0));
        out.expect_stdout("handshake done: 20000 rounds\non different CPUs at once: yes\n");
    });
}

#[test]
fn unmap_and_mprotect_reach_a_thread_running_on_another_vcpu() {
    let (bundle, expected) = kvm_matches_native("shootdown", Link::Dynamic);
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
    });
}

#[test]
fn threads_faulting_on_the_same_page_at_once_both_succeed() {
    // One CPU maps the page (or breaks its copy-on-write) while the other
    // waits for the kernel lock; the second fault is spurious and retried.
    // KVM only: ptrace serves one thread at a time, so the race cannot
    // happen there (and each of its 800 spin barriers would wait for a
    // preemption).
    kvm_matches_native("touch", Link::Static);
}
