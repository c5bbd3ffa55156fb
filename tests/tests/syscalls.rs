//! System call behaviour: unknown syscalls, memory management, clocks,
//! randomness, rlimits, /proc/self/exe, signal state and TLS.

use ringfence_tests::{compile, for_each_platform, Bundle, Link};

#[test]
fn enosys_for_syscall_1000_matches_native() {
    let prog = compile("enosys", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let expected = "syscall(1000): ret=-1 errno=ENOSYS\nstill alive\n";
    let native = bundle.run_native();
    native.expect_code(0).expect_stdout(expected);
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(expected)
            .expect_same_as_native(&native);
    });
}

#[test]
fn unimplemented_syscalls_return_enosys_and_do_not_crash() {
    let prog = compile("enosys", Link::Static);
    let bundle = Bundle::builder(&prog).args(["all"]).build();
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_no_panic().expect_code(0);
        let stdout = out.stdout_str();
        let lines: Vec<&str> = stdout.lines().collect();
        let ok = lines.len() == 5
            && lines[0] == "syscall(1000): ret=-1 errno=ENOSYS"
            && lines[1] == "syscall(500): ret=-1 errno=ENOSYS"
            && lines[2] == "syscall(100000): ret=-1 errno=ENOSYS"
            // add_key: some errno (ENOSYS if unimplemented), but it fails.
            && lines[3].starts_with("add_key: ret=-1 errno=")
            && lines[4] == "still alive";
        assert!(ok, "unexpected output{}", out.context());
    });
}

/// Runs `memory MODE` natively and sandboxed and expects `expected` from
/// both.
fn memory_test(mode: &str, expected: &str) {
    let prog = compile("memory", Link::Static);
    let bundle = Bundle::builder(&prog).args([mode]).build();
    let native = bundle.run_native();
    native.expect_code(0).expect_stdout(expected);
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(expected)
            .expect_same_as_native(&native);
    });
}

#[test]
fn memory_malloc_mmap_mprotect_brk_match_native() {
    memory_test(
        "basic",
        "OK malloc small blocks\n\
         OK malloc 64 MiB\n\
         OK calloc zeroed\n\
         OK mmap mprotect munmap\n\
         OK mmap bad arguments rejected\n\
         OK brk grow and shrink\n\
         done\n",
    );
}

#[test]
fn memory_faults_deliver_sigsegv_with_siginfo() {
    memory_test(
        "fault",
        "OK write to read-only page: SIGSEGV SEGV_ACCERR at the address\n\
         OK read of unmapped page: SIGSEGV SEGV_MAPERR at the address\n\
         OK recovered after faults\n\
         done\n",
    );
}

#[test]
fn memory_map_fixed_mremap_madvise_match_native() {
    memory_test(
        "extra",
        "OK MAP_FIXED into a hole\n\
         OK MAP_FIXED replaces an existing mapping\n\
         OK mremap grow keeps contents\n\
         OK realloc large block\n\
         OK MADV_DONTNEED zeroes\n\
         done\n",
    );
}

/// Runs `misc GROUP` natively and sandboxed. `expected` gets the value of
/// `/proc/self/exe` (which differs between the two) and returns the whole
/// expected stdout.
fn misc_test(
    group: &str,
    bundle_extra: impl Fn(ringfence_tests::BundleBuilder) -> ringfence_tests::BundleBuilder,
    expected: impl Fn(&str) -> String,
) {
    let prog = compile("misc", Link::Static);
    let bundle = bundle_extra(Bundle::builder(&prog).args([group])).build();
    let host_exe = bundle.rootfs().join("bin/prog");
    bundle
        .run_native()
        .expect_code(0)
        .expect_stdout(&expected(&host_exe.to_string_lossy()));
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&expected("/bin/prog"))
            .expect_stderr("");
    });
}

/// The lines, each with a newline, then `failures=0`.
fn all_ok(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect::<String>() + "failures=0\n"
}

#[test]
fn clocks_are_monotonic_and_nanosleep_sleeps() {
    misc_test(
        "clocks",
        |b| b,
        |_| {
            all_ok(&[
                "ok clock_gettime(CLOCK_MONOTONIC) never goes back",
                "ok clock_gettime system call",
                "ok nanosleep 20 ms takes 20 ms to 5 s",
                "ok clock_gettime(CLOCK_REALTIME) after 2020",
            ])
        },
    );
}

#[test]
fn getrandom_returns_random_bytes() {
    misc_test(
        "random",
        |b| b,
        |_| {
            all_ok(&[
                "ok getrandom returns 64 bytes",
                "ok getrandom bytes are random",
            ])
        },
    );
}

#[test]
fn rlimit_nofile_from_spec() {
    misc_test(
        "limits",
        |b| b.rlimit("RLIMIT_NOFILE", 123, 456),
        |_| {
            all_ok(&[
                "ok prlimit64(RLIMIT_NOFILE)",
                "RLIMIT_NOFILE soft=123 hard=456",
                "ok getrlimit agrees with prlimit64",
            ])
        },
    );
}

#[test]
fn proc_self_exe_is_the_path_inside_the_container() {
    misc_test(
        "exe",
        |b| b,
        |exe| all_ok(&["ok readlink(/proc/self/exe)", &format!("exe={exe}")]),
    );
}

#[test]
fn sigaltstack_sigaction_sigprocmask() {
    misc_test(
        "signals",
        |b| b,
        |_| {
            all_ok(&[
                "ok sigaltstack initially disabled",
                "ok sigaltstack set and read back",
                "ok rt_sigaction set and read back",
                "ok rt_sigaction(SIGKILL) is EINVAL",
                "ok rt_sigprocmask blocks SIGUSR1",
                "ok blocked SIGUSR1 is pending",
                "ok unblocking delivers SIGUSR1",
            ])
        },
    );
}

#[test]
fn thread_local_storage_and_arch_prctl() {
    misc_test(
        "tls",
        |b| b,
        |_| {
            all_ok(&[
                "ok __thread variables",
                "ok arch_prctl(ARCH_GET_FS) is the thread pointer",
            ])
        },
    );
}

#[test]
fn tls_works_in_static_pie() {
    let prog = compile("misc", Link::StaticPie);
    let bundle = Bundle::builder(&prog).args(["tls", "exe"]).build();
    let expected = all_ok(&[
        "ok readlink(/proc/self/exe)",
        "exe=/bin/prog",
        "ok __thread variables",
        "ok arch_prctl(ARCH_GET_FS) is the thread pointer",
    ]);
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&expected)
            .expect_stderr("");
    });
}

/// msync(2) and mincore(2): results, residency and Linux's errors, and a
/// `MAP_SHARED` tmpfs mapping kept coherent with the file.
#[test]
fn msync_and_mincore_match_native() {
    let prog = compile("memsync", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let native = bundle.run_native();
    native.expect_code(0);
    let expected = native.stdout_str();
    for want in [
        "touched: 11111111",
        "msync over a hole: ENOMEM",
        "file holds [stored]",
        "done",
    ] {
        assert!(expected.contains(want), "native: {}", native.context());
    }
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&expected);
    });
}

/// On ptrace, a call site `mov $nr, %eax; syscall` is patched on its
/// first call into a jump to the stub, which hands the call over with no
/// kernel entry (`guest_kernel::mm::usertrap`). Through such sites, static
/// and dynamic: every register but rax, rcx and r11 kept (and ymm7), rcx
/// the return address; threads racing on sites being patched; calls
/// restarted after handled signals and after a stop; children forked
/// around patches (a child's patch must not reach its parent's page); and
/// a thread with a GS base of its own. KVM patches nothing.
#[test]
fn patched_call_sites_behave_as_syscall_instructions() {
    for link in [Link::Static, Link::Dynamic] {
        let prog = compile("patched", link);
        let bundle = Bundle::builder(&prog).build();
        let native = bundle.run_native();
        native.expect_code(0);
        assert!(
            native.stdout_str().ends_with("gs: ok\n"),
            "native run{}",
            native.context()
        );
        for_each_platform(|p| {
            let rf = ringfence_tests::Ringfence::new(p);
            let (out, log) = rf.run_debug(&bundle, "rf-patched");
            out.expect_no_panic()
                .expect_code(0)
                .expect_same_as_native(&native);
            let n = ringfence_tests::log_numbers(&log, "system call sites patched: ");
            match p {
                ringfence_tests::Platform::Ptrace => {
                    assert!(n[0] >= 10, "{} sites patched ({link:?})", n[0]);
                    // wait4 after each alarm, nanosleep after its stop.
                    assert!(n[1] >= 3, "{} calls restarted ({link:?})", n[1]);
                }
                _ => assert_eq!(n[0], 0, "{} sites patched on {p}", n[0]),
            }
        });
    }
}

/// The ptrace platform's memory is a file on a huge-page tmpfs of its own
/// when it may mount one (CAP_SYS_ADMIN, as the tests run as root), else a memfd: both run
/// the same program the same.
#[test]
fn ptrace_memory_on_huge_pages_or_a_memfd() {
    if !ringfence_tests::platforms().contains(&ringfence_tests::Platform::Ptrace) {
        eprintln!("SKIPPED: the ptrace platform is not among the requested platforms");
        return;
    }
    let prog = compile("patched", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let native = bundle.run_native();
    native.expect_code(0);
    let root = may_mount();
    for huge in [true, false] {
        let mut rf = ringfence_tests::Ringfence::new(ringfence_tests::Platform::Ptrace);
        if !huge {
            rf = rf.env("RINGFENCE_HUGE_MEMORY", "0");
        }
        let (out, log) = rf.run_debug(&bundle, "rf-mem");
        out.expect_no_panic()
            .expect_code(0)
            .expect_same_as_native(&native);
        let want = if huge && root {
            "sandbox memory: a file on a huge-page tmpfs"
        } else {
            "sandbox memory: a memfd"
        };
        assert!(log.contains(want), "no {want:?} in the log:\n{log}");
    }
}

/// Whether this process has CAP_SYS_ADMIN (which mounting needs).
fn may_mount() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|c| u64::from_str_radix(c.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 21) != 0)
}
