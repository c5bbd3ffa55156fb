//! File-system calls on the sandbox's own filesystems, compared with the
//! same program run natively.

use ringfence_tests::{compile, for_each_platform, Bundle, Exit, Link};

#[test]
fn tmpfs_file_operations_match_native() {
    let prog = compile("fileops", Link::Static);
    let bundle = Bundle::builder(&prog).readonly(true).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&native.stdout_str());
    });
}

#[test]
fn procfs_describes_the_sandbox_not_the_host() {
    let prog = compile("procinfo", Link::Static);
    let bundle = Bundle::builder(&prog)
        .args(["x", "y"])
        .hostname("proc-host")
        .build();
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        let s = out.stdout_str();
        for want in [
            "exe: /bin/prog (9)\n",
            "cmdline: /bin/prog x y \n",
            "/proc/self/status: Pid:\t1\n",
            "/proc/self/status: PPid:\t0\n",
            "/proc/meminfo: MemTotal:",
            "/proc/sys/kernel/hostname: proc-host\n",
            "/proc/1 exists: 1, /proc/2 exists: 0\n",
            "/proc/self/root -> /\n",
        ] {
            assert!(s.contains(want), "missing {want:?} in:\n{}", out.context());
        }
        // The stack mapping is listed.
        assert!(
            s.contains("rw-p 00000000 00:00 0 [stack]"),
            "{}",
            out.context()
        );
    });
}

#[test]
fn mode_bits_are_enforced_for_unprivileged_users() {
    let prog = compile("permcheck", Link::Static);
    let bundle = Bundle::builder(&prog)
        .user(1000, 1000)
        .readonly(false)
        .build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    assert!(
        native.stdout_str().contains("uid 1000"),
        "{}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&native.stdout_str());
    });
}
