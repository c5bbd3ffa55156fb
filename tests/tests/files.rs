//! File-system calls on the sandbox's own filesystems, compared with the
//! same program run natively.

use ringfence_tests::{compile, for_each_platform, Bundle, Exit, Link, Ringfence};

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

/// The spec's mounts: a bind mount of a host directory (read through,
/// writes kept in the sandbox) and a tmpfs.
#[test]
fn spec_bind_and_tmpfs_mounts() {
    let prog = compile("files", Link::Static);
    let data = ringfence_tests::TempDir::new("bind-src");
    std::fs::write(data.path().join("hello.txt"), "from the host\n").expect("write");
    let with_mounts = |args: [&str; 2]| {
        let mut bundle = Bundle::builder(&prog).args(args).readonly(true).build();
        let mut config = bundle.config().clone();
        let mounts = config["mounts"].as_array_mut().expect("mounts");
        mounts.push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": data.path(), "options": ["rbind", "ro"]
        }));
        mounts.push(serde_json::json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs"}));
        bundle.set_config(config);
        bundle
    };
    let cat = with_mounts(["cat", "/data/hello.txt"]);
    let create = with_mounts(["create", "/run/new"]);
    for_each_platform(|p| {
        let out = cat.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout("from the host\n");
        let out = create.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout("create /run/new wrote 15 bytes\n");
    });
    assert_eq!(
        std::fs::read_dir(data.path()).expect("list").count(),
        1,
        "the bind source was written"
    );
}

/// `xfer MODE` natively and on every platform, with a 300 kB source file
/// in the (read-only) bundle.
fn xfer_matches_native(mode: &str) {
    let prog = compile("xfer", Link::Static);
    let src: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let bundle = Bundle::builder(&prog)
        .args([mode])
        .file("data/src.bin", src)
        .readonly(true)
        .build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    assert!(
        !native.stdout_str().contains("FAIL"),
        "native run failed:\n{}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&native.stdout_str());
    });
}

#[test]
fn sendfile_splice_tee_copy_file_range() {
    xfer_matches_native("splice");
}

#[test]
fn flock_posix_and_ofd_locks() {
    xfer_matches_native("locks");
}

#[test]
fn fallocate_modes_and_errors() {
    xfer_matches_native("fallocate");
}

#[test]
fn openat2_resolve_restrictions() {
    xfer_matches_native("openat2");
}

#[test]
fn huge_sparse_files_and_long_names() {
    xfer_matches_native("sparse");
}

/// Filling /tmp ends in ENOSPC, not a crashed sentry, and unlinking gives
/// the space back. Sandbox only: natively this would fill the host's disk.
#[test]
fn tmpfs_full_is_enospc_and_recovers() {
    let prog = compile("xfer", Link::Static);
    let bundle = Bundle::builder(&prog).args(["fill"]).build();
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(
            "filled: ENOSPC after more than 16 MiB: 1\nafter unlink, a 1 MiB write: 1048576\n",
        );
    });
}

#[test]
fn host_file_reads_into_awkward_buffers() {
    xfer_matches_native("readinto");
}

#[test]
fn map_shared_tmpfs_files_and_unlinked_open_files() {
    xfer_matches_native("shm");
}

/// Programs read the same small files again and again: the page cache
/// serves them after the first pass (one host read, then none), with the
/// same bytes, on both platforms.
#[test]
fn repeated_reads_come_from_the_page_cache() {
    const PASSES: u64 = 100;
    // 100 KiB of pseudo-random bytes: 25 pages, the last one partial.
    let mut blob = Vec::with_capacity(100 * 1024 + 17);
    let mut x: u32 = 12345;
    for _ in 0..blob.capacity() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        blob.push((x >> 16) as u8);
    }
    let sum = blob
        .iter()
        .fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
    let tail: String = blob[blob.len() - 5..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let prog = compile("reread", Link::Static);
    let bundle = Bundle::builder(&prog)
        .args(["/data/blob", &PASSES.to_string()])
        .file("/data/blob", blob.clone())
        .build();
    for_each_platform(|p| {
        let (out, log) = Ringfence::new(p).run_debug(&bundle, "rf-reread");
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&format!(
            "bytes {} sum {sum:x} tail 5 {tail}\n{PASSES} passes agree\n",
            blob.len()
        ));
        let n = ringfence_tests::log_numbers(&log, "file reads: ");
        let (cached, host) = (n[0], n[1]);
        // 26 reads and a pread a pass; only the first pass may ask the host.
        assert!(
            host <= 27 && cached >= (PASSES - 1) * 27,
            "on {p}: {cached} reads from the page cache, {host} from the host"
        );
    });
}

/// 100,000 names in a directory of a tmpfs, and in one of the root overlay's
/// (`c/bigdir.c`): create, stat, list, rename and remove all of them, as
/// natively. Each step costs the same per name whatever the directory
/// holds; the sentry once copied a directory's whole entry map for every
/// new name, which took this test past its timeout (20,000 names: 3.9 s).
#[test]
fn a_directory_of_a_hundred_thousand_names() {
    let prog = compile("bigdir", Link::Static);
    // `/dev/shm` is a tmpfs of the sentry's; `/` the overlay.
    for dir in ["/dev/shm/bd", "/bd"] {
        let bundle = Bundle::builder(&prog)
            .args([dir, "100000"])
            .readonly(false)
            .user(0, 0)
            .build();
        let want =
            "made 100000, stat 100000, listed 100000, renamed 10000, removed 100000, rmdir ok\n";
        for_each_platform(|p| {
            let out = bundle.run(p);
            out.expect_exit(Exit::Code(0));
            out.expect_stdout(want);
        });
    }
}

/// `/dev` takes new entries beside the sentry's devices, as runc's `/dev`
/// (a tmpfs) does: a directory, a file in it, a rename, a symlink, a
/// listing with both kinds; the devices' names stay taken, and a rename
/// out of `/dev` is cross-device. Sandboxed only: natively it would write
/// the host's `/dev`.
#[test]
fn dev_takes_new_entries_beside_the_devices() {
    let prog = compile("devdir", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let expected = "mkdir: 0\nmkdir again: File exists\nwrite: 3\nrename: 0\nread: 3 hi\n\
rename to /tmp: Invalid cross-device link\nsymlink: 0\nreadlink: 7 foo/baz\n\
listed: foo 1 link 1 null 1 shm 1\nmkdir /dev/null: File exists\nmkdir /dev/shm: File exists\n\
creat /dev/zero/x: Not a directory\nnull still: 1\nrmdir non-empty: Directory not empty\n\
unlink: 0 0\nrmdir: 0\ngone: 0\n";
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(expected);
    });
}
