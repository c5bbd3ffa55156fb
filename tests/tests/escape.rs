//! No path from the application reaches a host file outside the container
//! root (issue 5, "Security and bad input").
//!
//! `c/escape.c` runs inside the sandbox and tries, one technique after
//! another, to read two host "canary" files that live OUTSIDE the bundle's
//! rootfs: one in the bundle directory itself (`rootfs/..`), one at an
//! absolute host path in `/var/tmp`. It prints `ok NAME` for each technique
//! that did not get at them and `ESCAPED NAME` for one that did. The rootfs
//! is seeded on the host with symlinks that point out of it (absolute, and
//! relative with `..`) and a hard link to a file outside it.
//!
//! Every test also snapshots the bundle directory and the canaries before
//! the run and checks afterwards that the host saw no change at all: writes,
//! renames and deletions in the sandbox land in its overlay, never on the
//! host.
//!
//! By design: a hard link *inside* the image to a file outside it is part of
//! the image (the host's file system cannot tell the two names apart), so
//! the sandbox may read it; writing to it copies it up and leaves the host
//! file alone.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use ringfence_tests::{
    compile, for_each_platform, Bundle, Exit, Link, Platform, Ringfence, RunOutput,
};

/// The secret the canaries hold, and their host paths.
struct Canaries {
    secret: String,
    /// In the bundle directory, next to `rootfs/`.
    in_bundle: PathBuf,
    /// At an absolute host path outside any bundle.
    var: PathBuf,
}

impl Drop for Canaries {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.var);
    }
}

/// Files the write tests modify, with their original contents.
const VICTIMS: &[&str] = &[
    "etc/victim",
    "etc/victim2",
    "etc/victim3",
    "etc/victim4",
    "etc/victim5",
    "etc/victim6",
    "etc/victim7",
];

/// A bundle running `escape MODE` with the canaries and the escaping
/// symlinks and hard link in place.
fn setup(mode: &str, readonly: bool) -> (Bundle, Canaries) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let secret = format!("ringfence-canary-secret-{pid}-{n}-{mode}");
    let var = PathBuf::from(format!("/var/tmp/ringfence-canary-{pid}-{n}"));

    let prog = compile("escape", Link::Static);
    let mut builder = Bundle::builder(&prog)
        .readonly(readonly)
        .file("etc/benign", "benign\n")
        .dir("etc/victimdir")
        .dir("etc/victimdir2");
    for v in VICTIMS {
        builder = builder.file(v, format!("original {v}\n"));
    }
    // Placeholder args: the canary in the bundle needs the bundle's path.
    let bundle = builder.build();
    let in_bundle = bundle.dir().join(format!("ringfence-canary-{pid}-{n}"));
    let canaries = Canaries {
        secret,
        in_bundle,
        var,
    };
    for c in [&canaries.in_bundle, &canaries.var] {
        fs::write(c, format!("{}\n", canaries.secret)).expect("write canary");
        // Executable, not ELF: an exec that reaches it fails with ENOEXEC.
        fs::set_permissions(c, fs::Permissions::from_mode(0o755)).expect("chmod canary");
    }

    let rootfs = bundle.rootfs();
    let var_dir = canaries.var.parent().expect("var dir");
    let symlink = |target: &str, at: &str| {
        std::os::unix::fs::symlink(target, rootfs.join(at)).expect("symlink in rootfs")
    };
    symlink(canaries.var.to_str().expect("utf-8"), "evil");
    symlink(var_dir.to_str().expect("utf-8"), "evildir");
    symlink("..", "up");
    symlink("../../../../../../../../..", "upup");
    symlink(
        &format!("../../../../../../../../../..{}", var_dir.display()),
        "etc/deep",
    );
    // A hard link in the image to a file outside it.
    let outside = bundle.dir().join("outside-hardlink-source");
    fs::write(&outside, "image-hardlink\n").expect("write hard link source");
    fs::hard_link(&outside, rootfs.join("hardlinked")).expect("hard link into rootfs");

    // The program takes the canaries' host identities from the environment.
    let ino_c = fs::metadata(&canaries.in_bundle).expect("stat").ino();
    let ino_v = fs::metadata(&canaries.var).expect("stat").ino();
    let size = canaries.secret.len() + 1;
    let mut bundle = bundle;
    let mut config = bundle.config().clone();
    config["process"]["args"] = serde_json::json!([
        "/bin/prog",
        mode,
        canaries.secret,
        canaries.in_bundle,
        canaries.var
    ]);
    config["process"]["env"]
        .as_array_mut()
        .expect("env")
        .push(format!("CANARY_IDS={ino_c}:{ino_v}:{size}").into());
    bundle.set_config(config);
    (bundle, canaries)
}

/// One host object as far as the sandbox could have changed it.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    File {
        data: Vec<u8>,
        mode: u32,
        mtime: (i64, i64),
        nlink: u64,
        uid: u32,
    },
    Dir {
        mode: u32,
        mtime: (i64, i64),
    },
    Symlink(PathBuf),
}

/// Everything under `dir` (the bundle directory), and the `/var/tmp`
/// canary.
fn snapshot(dir: &Path, extra: &Path) -> BTreeMap<PathBuf, Seen> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf(), extra.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let seen = if md.file_type().is_symlink() {
            Seen::Symlink(fs::read_link(&p).expect("readlink"))
        } else if md.is_dir() {
            for e in fs::read_dir(&p).expect("read_dir") {
                todo.push(e.expect("entry").path());
            }
            Seen::Dir {
                mode: md.mode(),
                mtime: (md.mtime(), md.mtime_nsec()),
            }
        } else {
            Seen::File {
                data: fs::read(&p).expect("read"),
                mode: md.mode(),
                mtime: (md.mtime(), md.mtime_nsec()),
                nlink: md.nlink(),
                uid: md.uid(),
            }
        };
        out.insert(p, seen);
    }
    out
}

/// The `ok`/`ESCAPED`/`FAIL` lines of a run, checked: every one is `ok`,
/// the program got to its end, and the techniques are exactly `expected`.
fn expect_all_ok(out: &RunOutput, expected: &[&str]) {
    out.expect_exit(Exit::Code(0));
    let stdout = out.stdout_str();
    let lines: Vec<&str> = stdout.lines().collect();
    let (last, techniques) = lines.split_last().expect("no output");
    assert_eq!(
        *last,
        format!("end {}", techniques.len()),
        "{}",
        out.context()
    );
    let bad: Vec<&&str> = techniques
        .iter()
        .filter(|l| !l.starts_with("ok "))
        .collect();
    assert!(
        bad.is_empty(),
        "escapes or failures {bad:?}:\n{}",
        out.context()
    );
    let names: Vec<&str> = techniques.iter().map(|l| &l[3..]).collect();
    assert_eq!(names, expected, "{}", out.context());
}

/// Runs `escape MODE` on every platform, checks every technique held and
/// that the host is untouched.
fn run_group(mode: &str, readonly: bool, expected: &[&str]) {
    let (bundle, canaries) = setup(mode, readonly);
    check_group(bundle, canaries, expected);
}

fn check_group(bundle: Bundle, canaries: Canaries, expected: &[&str]) {
    let before = snapshot(bundle.dir(), &canaries.var);
    for_each_platform(|p| {
        let out = bundle.run(p);
        expect_all_ok(&out, expected);
        let after = snapshot(bundle.dir(), &canaries.var);
        for (path, was) in &before {
            assert_eq!(
                after.get(path),
                Some(was),
                "host file {} changed on {p:?}:\n{}",
                path.display(),
                out.context()
            );
        }
        let new: Vec<&PathBuf> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert!(
            new.is_empty(),
            "the sandbox created host files {new:?}:\n{}",
            out.context()
        );
    });
    drop(canaries);
}

/// `..` chains from `/`, from a subdirectory, from the `/tmp` mount, from
/// a directory fd, and `chdir("..")` above the root.
#[test]
fn dotdot_never_leaves_the_root() {
    run_group(
        "dotdot",
        false,
        &[
            "dotdot-abs-bundle-canary",
            "dotdot-abs-var-canary",
            "dotdot-listing-above-root",
            "dotdot-rel-from-root",
            "dotdot-rel-from-subdir",
            "dotdot-rel-from-tmp-mount",
            "dotdot-chdir-above-root",
            "dotdot-openat-dirfd",
        ],
    );
}

/// The control: run natively, the same program does reach the canary, so
/// the `ok` lines above mean something.
#[test]
fn the_canary_is_reachable_outside_the_sandbox() {
    let (bundle, canaries) = setup("native", false);
    let out = bundle.run_native();
    out.expect_exit(Exit::Code(0));
    let s = out.stdout_str();
    for want in [
        "ESCAPED dotdot-abs-bundle-canary\n",
        "ESCAPED dotdot-abs-var-canary\n",
    ] {
        assert!(s.contains(want), "missing {want:?}:\n{}", out.context());
    }
    drop(canaries);
}

/// Symlinks in the image (the lower layer, resolved by the host's gofer):
/// absolute to a host path, `..` to the bundle directory, many `..` to the
/// host's `/`, followed by open, stat, exec, chdir and listing.
#[test]
fn image_symlinks_resolve_inside_the_root() {
    run_group(
        "image-symlinks",
        false,
        &[
            "image-symlink-abs-open",
            "image-symlink-abs-exec",
            "image-symlink-abs-chdir",
            "image-symlink-rel-up",
            "image-symlink-rel-to-host-root",
            "image-symlink-rel-in-subdir",
            "image-symlinks-resolve-in-root",
        ],
    );
}

/// Symlinks the application makes, in `/tmp` and in the root overlay:
/// absolute to the canaries' host paths, relative with many `..`, to the
/// canaries' directories; open, stat, exec, chdir, readlink.
#[test]
fn own_symlinks_resolve_inside_the_sandbox() {
    let mut expected = Vec::new();
    for tag in ["tmp", "overlay"] {
        for t in [
            "abs-open",
            "abs-exec",
            "abs-chdir",
            "readlink",
            "rel-dotdot",
            "dir-then-dotdot",
        ] {
            expected.push(format!("symlink-{tag}-{t}"));
        }
    }
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    run_group("symlinks", false, &expected);
}

/// `/proc/self/root`, `/proc/1/root`, `/proc/thread-self/root`,
/// `/proc/self/cwd` and `/proc/self/fd/N` (a directory, and an `O_PATH` fd
/// of an escaping symlink), followed by `..`.
#[test]
fn proc_magic_links_stay_inside() {
    run_group(
        "proc",
        false,
        &[
            "proc-self-root-dotdot",
            "proc-1-root",
            "proc-thread-self-root",
            "proc-self-root-is-slash",
            "proc-self-cwd-dotdot",
            "proc-self-fd-dir-dotdot",
            "proc-self-fd-of-opath-symlink",
            "proc-magic-links-reach-the-sandbox-root",
        ],
    );
}

/// `O_PATH` fds: `openat(fd, "../..")`, `fchdir` then `..`, openat2 with
/// every combination of `RESOLVE_*` flags, `AT_EMPTY_PATH` on an `O_PATH`
/// fd of an escaping symlink, `linkat(AT_EMPTY_PATH)` and
/// `linkat(AT_SYMLINK_FOLLOW)`.
#[test]
fn opath_fds_and_openat2_stay_inside() {
    run_group(
        "opath",
        false,
        &[
            "opath-root-openat-dotdot",
            "opath-fchdir-dotdot",
            "openat2-all-resolve-flags",
            "openat2-beneath-refuses-dotdot",
            "opath-at-empty-path",
            "opath-linkat-empty-path",
        ],
    );
}

/// `link()` of host paths (directly, through `..`, through escaping image
/// symlinks) into `/tmp` and the overlay; and the by-design case of a hard
/// link in the image.
#[test]
fn hard_links_cannot_name_host_files() {
    run_group(
        "hardlinks",
        false,
        &[
            "hardlink-to-host-paths",
            "hardlink-in-image-readable-by-design",
        ],
    );
}

/// One thread flips a symlink (in `/tmp` and in the overlay; as the final
/// component and as a directory component) between a benign target and the
/// canaries while another opens it in a loop.
#[test]
fn symlink_races_never_reach_the_host() {
    run_group(
        "race",
        false,
        &[
            "symlink-race-tmp-file",
            "symlink-race-overlay-file",
            "symlink-race-tmp-dir-component",
        ],
    );
}

/// With a writable root, writes, truncation, renames, deletions, mode and
/// time changes of image files (the hard-linked one too) and writes through
/// escaping paths all stay in the overlay: the host's bundle directory and
/// canaries are byte-for-byte and mtime-for-mtime what they were.
#[test]
fn overlay_writes_never_reach_the_host() {
    run_group(
        "write",
        false,
        &[
            "write-unlink-image-file",
            "write-rename-image-file",
            "write-truncate-image-file",
            "write-overwrite-image-file",
            "write-append-image-file",
            "write-chmod-image-file",
            "write-utimes-image-file",
            "write-rmdir-image-dir",
            "write-mkdir-in-image",
            "write-create-in-image",
            "write-hardlinked-image-file",
            "write-symlink-in-image",
            "write-unlink-image-symlink",
            "write-visible-inside",
            "write-delete-visible-inside",
            "write-through-escaping-paths-attempted",
            "write-create-above-root-attempted",
        ],
    );
}

/// With `root.readonly`, every kind of write to the root fails with
/// `EROFS`; `/tmp` stays writable.
#[test]
fn readonly_root_refuses_writes_with_erofs() {
    run_group(
        "readonly",
        true,
        &[
            "erofs-creat",
            "erofs-open-wronly",
            "erofs-open-rdwr",
            "erofs-open-trunc",
            "erofs-mkdir",
            "erofs-rmdir",
            "erofs-unlink",
            "erofs-rename",
            "erofs-symlink",
            "erofs-link",
            "erofs-chmod",
            "erofs-chown",
            "erofs-truncate",
            "erofs-utimes",
            "erofs-mknod-fifo",
            "erofs-access-w",
            "erofs-via-proc-self-root",
            "erofs-via-image-symlink",
            "erofs-fchmod",
            "tmp-still-writable",
        ],
    );
}

/// A bind mount of a host directory inside the bundle directory (so the
/// bundle canary is in the bind source's parent), holding symlinks that
/// point out of it: `..`, `up -> ..`, absolute ones; the bind resolves
/// beneath its own source, and as it is `ro`, every write to it is
/// `EROFS`. (Read-write binds: `bind_symlinks_cannot_write_outside_the_source`.)
#[test]
fn bind_mounts_resolve_beneath_their_source() {
    let (mut bundle, canaries) = setup("bind", false);
    let src = bundle.dir().join("bindsrc");
    fs::create_dir(&src).expect("mkdir bind source");
    fs::write(src.join("benign"), "benign\n").expect("write");
    std::os::unix::fs::symlink("..", src.join("up")).expect("symlink");
    std::os::unix::fs::symlink(&canaries.in_bundle, src.join("abs")).expect("symlink");
    std::os::unix::fs::symlink(&canaries.var, src.join("varabs")).expect("symlink");
    let mut config = bundle.config().clone();
    config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]
        }));
    bundle.set_config(config);
    check_group(
        bundle,
        canaries,
        &[
            "bind-dotdot",
            "bind-rel-dotdot-from-inside",
            "bind-source-symlink-up",
            "bind-source-symlink-abs",
            "bind-dirfd-dotdot-and-openat2",
            "bind-resolves-inside-its-source",
            "bind-ro-refuses-writes",
        ],
    );
}

/// A read-write bind writes through to the host, but only beneath its
/// source: symlinks in it that point out (relative, absolute, dangling,
/// to a directory) and `..` resolve beneath the source, so no write,
/// creation, chmod, utimensat, truncate, rename or unlink reaches the
/// directory next to it.
#[test]
fn bind_symlinks_cannot_write_outside_the_source() {
    let prog = compile("bindrw", Link::Static);
    for_each_platform(|p| {
        let base = ringfence_tests::TempDir::new("bind-escape");
        let (src, outside) = (base.path().join("src"), base.path().join("outside"));
        fs::create_dir(&src).expect("mkdir");
        fs::create_dir(&outside).expect("mkdir");
        let victim = outside.join("victim");
        fs::write(&victim, "original\n").expect("write");
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o640)).expect("chmod");
        let link = |target: &Path, at: &str| {
            std::os::unix::fs::symlink(target, src.join(at)).expect("symlink")
        };
        link(Path::new("../outside/victim"), "rel");
        link(&victim, "abs");
        link(Path::new("../outside/newfile"), "dangling");
        link(&outside.join("absnew"), "absdangling");
        link(Path::new("../outside"), "dirlink");
        // What `..` from the source's root names, seen from inside.
        fs::create_dir(src.join("outside")).expect("mkdir");
        fs::write(src.join("mine"), "mine\n").expect("write");
        fs::write(src.join("mine2"), "mine2\n").expect("write");
        let before = snapshot(&outside, &victim);

        let mut bundle = Bundle::builder(&prog)
            .args(["/data", "escape"])
            .readonly(true)
            .build();
        let mut config = bundle.config().clone();
        config["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(serde_json::json!({
                "destination": "/data", "type": "bind", "source": src, "options": ["rbind"]
            }));
        bundle.set_config(config);
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        let stdout = out.stdout_str();
        assert!(
            stdout.contains("rename out via ..: EXDEV\n"),
            "did not run to the end:\n{}\n{stdout}",
            out.context()
        );
        assert_eq!(
            snapshot(&outside, &victim),
            before,
            "the host outside the bind source changed:\n{}\n{stdout}",
            out.context()
        );
        // The writes did happen, inside the source: `dangling` ->
        // `../outside/newfile` names `<src>/outside/newfile`, and
        // `dirlink/new` is `<src>/outside/new`.
        for made in ["outside/newfile", "outside/new"] {
            assert_eq!(
                fs::read_to_string(src.join(made)).ok().as_deref(),
                Some("pwned"),
                "{made}:\n{}\n{stdout}",
                out.context()
            );
        }
    });
}

/// The ptrace platform's stub code lies in every application address space,
/// unlisted in its maps. `c/stubjump.c` finds it and makes, from each
/// `syscall` instruction in it, a call that would end the stub process if
/// the host ran it: each must still be the sentry's (in both of the ptrace
/// platform's modes: the seccomp-trap fast path and `PTRACE_SYSEMU`). On
/// KVM the application's address space holds nothing of the sandbox's.
#[test]
fn jumps_into_the_stub_code_make_no_host_calls() {
    let prog = compile("stubjump", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    for_each_platform(|p| {
        let mut runs = vec![Ringfence::new(p)];
        if p == Platform::Ptrace {
            runs.push(Ringfence::new(p).env("RINGFENCE_PTRACE_SYSEMU", "1"));
        }
        for rf in runs {
            let out = rf.run(&bundle, "rf-test");
            out.expect_exit(Exit::Code(0));
            let text = out.stdout_str();
            let sites: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("sites "))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no site count\n{}", out.context()));
            match p {
                // The stub page has dozens; a scan that finds none proves
                // nothing.
                Platform::Ptrace => assert!(sites >= 10, "{sites} sites\n{}", out.context()),
                Platform::Kvm => assert_eq!(sites, 0, "{}", out.context()),
            }
            assert!(
                text.contains(&format!("trapped {sites} of {sites}")),
                "{}",
                out.context()
            );
        }
    });
}

/// On ptrace a program can write the sysmsg slots it shares with the
/// sentry (its GS base points at one). `c/slotscribble.c` forks a child
/// that scribbles random words over them while its other threads make
/// system calls: the sentry neither panics nor gives up the sandbox; the
/// child ends by itself or is killed (SIGKILL when the sentry cannot make
/// sense of its slot, or a fault of its own), and the parent lives on. On
/// KVM, where GS is 0, the child scribbles over a buffer of its own.
#[test]
fn scribbling_over_the_shared_slots_kills_only_the_scribbler() {
    let prog = compile("slotscribble", Link::Static);
    let bundle = Bundle::builder(&prog).args(["300000"]).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    for_each_platform(|p| {
        for _ in 0..3 {
            let out = Ringfence::new(p).run(&bundle, "rf-test");
            out.expect_no_panic();
            out.expect_exit(Exit::Code(0));
            out.expect_stdout("parent alive\n");
            assert!(
                !out.stderr_str().contains("sandbox failed"),
                "{}",
                out.context()
            );
            // On ptrace the child must really have hit its slots.
            let want = match p {
                Platform::Ptrace => "scribbled over: GS",
                Platform::Kvm => "scribbled over: own buffer",
            };
            assert!(out.stderr_str().contains(want), "{}", out.context());
        }
    });
}
