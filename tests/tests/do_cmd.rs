//! `ringfence do`: the host's own dynamic programs, sandboxed with the host
//! root read-only, give the same output as when run natively.

use std::process::Command;

use ringfence_tests::{for_each_platform, Exit, Ringfence, RunOutput};

/// Run `argv` natively with a fixed environment, in /.
fn native(argv: &[&str]) -> RunOutput {
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .current_dir("/");
    ringfence_tests::run::run_with_timeout(cmd, format!("native {argv:?}"), None)
}

fn check(argv: &[&str]) {
    let expected = native(argv);
    expected.expect_exit(Exit::Code(0));
    assert!(
        !expected.stdout.is_empty(),
        "native run printed nothing:\n{}",
        expected.context()
    );
    for_each_platform(|p| {
        let rf = Ringfence::new(p);
        let mut args = vec![
            "do",
            "--cwd",
            "/",
            "--env",
            "PATH=/usr/bin:/bin",
            "--env",
            "LC_ALL=C",
            "--",
        ];
        args.extend_from_slice(argv);
        let out = rf.invoke(&args);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected.stdout_str());
    });
}

#[test]
fn shell_script() {
    check(&[
        "/bin/sh",
        "-c",
        "for i in 1 2 3; do echo line $i; done | grep -v 2; x=$(echo sub); echo $x; exit 0",
    ]);
}

#[test]
fn ls_of_a_directory() {
    check(&["/bin/ls", "-l", "/usr/share/doc/gzip"]);
}

#[test]
fn python3_imports_json_hashlib_os_subprocess() {
    check(&[
        "/usr/bin/python3",
        "-c",
        "import json, hashlib, os, subprocess; \
         print(json.dumps({'k': [1, 2]}), hashlib.sha256(b'ringfence').hexdigest()); \
         print(sorted(os.listdir('/usr/share/doc/gzip'))); \
         print(subprocess.run(['/bin/echo', 'child'], capture_output=True).stdout)",
    ]);
}

#[test]
fn grep_tar_gzip_pipeline() {
    check(&[
        "/bin/sh",
        "-c",
        "grep -c root /etc/passwd; tar cf - -C /usr/share/doc gzip | gzip -c | gzip -dc | tar tf - | head -3",
    ]);
}

#[test]
fn writes_stay_in_the_sandbox_overlay() {
    for_each_platform(|p| {
        let rf = Ringfence::new(p);
        let out = rf.invoke([
            "do",
            "--",
            "/bin/sh",
            "-c",
            "echo inside > /ringfence-do-probe && cat /ringfence-do-probe; \
             rm /etc/hostname && ls /etc/hostname; echo tmp > /tmp/t && cat /tmp/t",
        ]);
        out.expect_exit(Exit::Code(0));
        assert_eq!(out.stdout_str(), "inside\ntmp\n", "{}", out.context());
        assert!(
            out.stderr_str().contains("No such file"),
            "{}",
            out.context()
        );
        assert!(
            !std::path::Path::new("/ringfence-do-probe").exists(),
            "a write reached the host"
        );
        assert!(
            std::path::Path::new("/etc/hostname").exists(),
            "a deletion reached the host"
        );
    });
}

#[test]
fn shebang_scripts_run_through_their_interpreter() {
    // Not under /tmp (where a checkout may live too): the sandbox has a
    // /tmp of its own.
    let dir = std::path::PathBuf::from(format!(
        "/var/tmp/ringfence-do-script-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let script = dir.join("script.sh");
    std::fs::write(
        &script,
        "#!/bin/sh -e\necho \"script $0 args: $*\"\nexit 4\n",
    )
    .expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = script.to_str().expect("utf-8 path");
    let expected = native(&[path, "a", "b"]);
    expected.expect_exit(Exit::Code(4));
    for_each_platform(|p| {
        let out = Ringfence::new(p).invoke(["do", "--", path, "a", "b"]);
        out.expect_exit(Exit::Code(4));
        out.expect_stdout(&expected.stdout_str());
    });
}

#[test]
fn programs_written_into_the_sandbox_run() {
    for_each_platform(|p| {
        let out = Ringfence::new(p).invoke([
            "do",
            "--",
            "/bin/sh",
            "-c",
            "printf '#!/bin/sh\\necho made in $0\\n' > /tmp/s && chmod +x /tmp/s && /tmp/s",
        ]);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout("made in /tmp/s\n");
    });
}

#[test]
fn host_symlinks_are_readable() {
    let link = format!("/var/tmp/ringfence-link-{}", std::process::id());
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("some/dangling/target", &link).expect("symlink");
    for_each_platform(|p| {
        let out = Ringfence::new(p).invoke(["do", "--", "/bin/readlink", &link]);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout("some/dangling/target\n");
    });
    let _ = std::fs::remove_file(&link);
}

/// `lstat` describes the host's symlinks (dangling ones too) instead of
/// their targets, as `ls -l` and `stat` show natively.
#[test]
fn lstat_of_host_symlinks_matches_native() {
    let dir = format!("/var/tmp/ringfence-lstat-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(format!("{dir}/file"), "x").expect("write");
    std::os::unix::fs::symlink("file", format!("{dir}/to-file")).expect("symlink");
    std::os::unix::fs::symlink("/no/such/target", format!("{dir}/dangling")).expect("symlink");
    std::os::unix::fs::symlink("..", format!("{dir}/up")).expect("symlink");
    let script = format!(
        "stat -c '%n %F %s' {dir}/file {dir}/to-file {dir}/dangling {dir}/up; \
         stat -L -c '%n %F' {dir}/to-file {dir}/up; \
         find {dir} -type l | sort; ls -l / | grep '^l' | awk '{{print $1, $9, $10, $11}}'"
    );
    check(&["/bin/sh", "-c", &script]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// bash's process substitution (`/dev/fd/N`), `/dev/stdin`/`/dev/stderr`,
/// `/proc/self/fd/N` and `/proc/self/environ`, as natively.
#[test]
fn dev_fd_links_and_proc_environ() {
    check(&[
        "/bin/bash",
        "-c",
        "diff <(echo a) <(echo a) && echo same; paste <(seq 3) <(seq 4 6); \
         echo piped | cat /dev/stdin; echo to-stderr > /dev/stderr; \
         readlink /dev/stdin /dev/fd; exec 3</etc/hostname; cmp /proc/self/fd/3 /etc/hostname && echo fd3; \
         cat /proc/self/environ | tr '\\0' '\\n' | sort; test -c /dev/tty && echo tty-node; \
         { echo x > /dev/tty; } 2>/dev/null || echo no-ctty",
    ]);
}

/// Python's multiprocessing: a Lock (a POSIX semaphore in /dev/shm), a
/// shared Value updated by a child process, shared_memory, and a Pool
/// (whose worker-handler thread polls without ever blocking while the
/// results come in: it must not starve the other tasks).
#[test]
fn python3_multiprocessing_shared_memory_and_locks() {
    let script = r#"
import multiprocessing as mp
from multiprocessing import shared_memory
def f(x): return x * x
def g(v):
    with v.get_lock(): v.value += 5
if __name__ == '__main__':
    s = shared_memory.SharedMemory(create=True, size=10); s.buf[0] = 7
    with mp.Lock(): pass
    v = mp.Value('i', 0)
    p = mp.Process(target=g, args=(v,)); p.start(); p.join()
    print('value', v.value, 'shm', s.buf[0], 'exit', p.exitcode)
    s.close(); s.unlink()
    with mp.get_context('fork').Pool(2) as pool: print(pool.map(f, range(5)))
"#;
    check(&["/usr/bin/python3", "-c", script]);
}

/// The sentry's read-only /sys: its CPUs, the cgroup files runtimes read,
/// mounted read-only (no native comparison: the host's /sys differs).
#[test]
fn sysfs_is_the_sandboxs_and_read_only() {
    for_each_platform(|p| {
        let rf = Ringfence::new(p);
        let out = rf.invoke([
            "do",
            "--cwd",
            "/",
            "--env",
            "PATH=/usr/bin:/bin",
            "--",
            "/bin/sh",
            "-c",
            "ls /sys; cat /sys/devices/system/cpu/online /sys/fs/cgroup/cpu.max; \
             test \"$(cat /sys/fs/cgroup/memory.max)\" -gt 0 && echo memory-max; \
             grep sysfs /proc/mounts; stat -f -c %T /sys; \
             { echo x > /sys/fs/cgroup/cpu.max; } 2>&1 | grep -o 'Read-only file system'",
        ]);
        out.expect_exit(Exit::Code(0));
        // A CPU per host CPU (at most 8), on both platforms.
        let host = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let online = match host {
            n if n > 1 => format!("0-{}", n - 1),
            _ => "0".to_string(),
        };
        out.expect_stdout(&format!(
            "devices\nfs\nkernel\n{online}\nmax 100000\nmemory-max\n\
             sysfs /sys sysfs ro,nosuid,nodev,noexec 0 0\nsysfs\nRead-only file system\n",
        ));
    });
}
