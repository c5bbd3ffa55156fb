//! Bind mounts of the spec (issue 5): a read-write bind writes through to
//! its host source, a read-only one refuses every change with `EROFS`, and
//! a bind of a single file (`/etc/hosts`, as containerd and docker make)
//! shows that file. `c/bindrw.c` does the changes; its output names no
//! host path, so the sandboxed run compares with a native run on a host
//! directory, and so do the two directories afterwards.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ringfence_tests::{compile, for_each_platform, Bundle, Exit, Link, Program, TempDir};

/// A bundle running `bindrw DIR MODE` with `mounts` added to the spec.
fn bundle(prog: &Program, dir: &str, mode: &str, mounts: &[serde_json::Value]) -> Bundle {
    let mut bundle = Bundle::builder(prog)
        .args([dir, mode])
        .readonly(true)
        .build();
    let mut config = bundle.config().clone();
    config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .extend(mounts.iter().cloned());
    bundle.set_config(config);
    bundle
}

fn bind(source: &Path, dest: &str, ro: bool) -> serde_json::Value {
    let options = if ro {
        vec!["rbind", "ro"]
    } else {
        vec!["rbind"]
    };
    serde_json::json!({"destination": dest, "type": "bind", "source": source, "options": options})
}

/// Each entry under `dir`: kind, permission bits, and contents or target.
fn tree(dir: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let md = fs::symlink_metadata(&p).expect("lstat");
            let name = p.strip_prefix(dir).expect("prefix").display().to_string();
            let entry = if md.file_type().is_symlink() {
                (
                    'l',
                    0o777,
                    fs::read_link(&p)
                        .expect("readlink")
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if md.is_dir() {
                todo.push(p.clone());
                ('d', md.permissions().mode() & 0o7777, Vec::new())
            } else {
                (
                    'f',
                    md.permissions().mode() & 0o7777,
                    fs::read(&p).expect("read"),
                )
            };
            out.insert(name, entry);
        }
    }
    out
}

#[test]
fn read_write_bind_writes_through_to_the_host() {
    let prog = compile("bindrw", Link::Static);
    let native_dir = TempDir::new("bind-native");
    let native = bundle(&prog, native_dir.path().to_str().expect("utf-8"), "rw", &[]).run_native();
    native.expect_exit(Exit::Code(0));
    let expected = native.stdout_str();
    // The native run is the reference: make sure it did what the test
    // relies on.
    for want in [
        "read new.txt: [fresh+]\n",
        "rename noreplace: EEXIST\n",
        "mtime 1200000000.7\n",
        "nlink 2\n",
        "link owner 77:88\n",
        "its target owner 1234:5678\n",
    ] {
        assert!(expected.contains(want), "native: {}", native.context());
    }
    let want_tree = tree(native_dir.path());
    assert_eq!(want_tree["new.txt"], ('f', 0o604, b"fresh+".to_vec()));
    assert_eq!(want_tree["replaced"], ('f', 0o611, b"in sub\n".to_vec()));
    assert_eq!(want_tree["hardlink"], ('f', 0o611, b"in sub\n".to_vec()));
    assert_eq!(want_tree.len(), 3, "{want_tree:?}");
    for_each_platform(|p| {
        let src = TempDir::new("bind-rw");
        let b = bundle(&prog, "/data", "rw", &[bind(src.path(), "/data", false)]);
        let out = b.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
        // Before `tree` reads the file (and the host updates its atime).
        let md = fs::metadata(src.path().join("new.txt")).expect("stat");
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        assert_eq!((md.mtime(), md.mtime_nsec()), (1_200_000_000, 7));
        assert_eq!((md.atime(), md.atime_nsec()), (1_000_000_000, 5));
        assert_eq!(tree(src.path()), want_tree, "{}", out.context());
    });
}

#[test]
fn read_only_bind_refuses_changes_with_erofs() {
    let prog = compile("bindrw", Link::Static);
    let src = TempDir::new("bind-ro");
    fs::write(src.path().join("hello.txt"), "from the host\n").expect("write");
    fs::create_dir(src.path().join("sub")).expect("mkdir");
    let before = tree(src.path());
    let mtime = fs::metadata(src.path().join("hello.txt"))
        .expect("stat")
        .mtime_nsec();
    let b = bundle(&prog, "/data", "ro", &[bind(src.path(), "/data", true)]);
    let mut expected = String::from("read hello.txt: [from the host\n]\naccess W_OK: EROFS\n");
    for what in [
        "open for write",
        "open O_TRUNC",
        "create",
        "mkdir",
        "unlink",
        "rmdir",
        "rename",
        "symlink",
        "chmod",
        "utimensat",
        "truncate",
        "link",
        "chown",
    ] {
        expected.push_str(&format!("{what}: EROFS\n"));
    }
    expected.push_str("entries: hello.txt sub\n");
    for_each_platform(|p| {
        let out = b.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
        assert_eq!(tree(src.path()), before, "{}", out.context());
        let now = fs::metadata(src.path().join("hello.txt"))
            .expect("stat")
            .mtime_nsec();
        assert_eq!(now, mtime, "hello.txt was touched");
    });
}

/// A bind of a single host file, read-write at `/etc/hosts` and read-only
/// at `/etc/resolv.conf`; neither can be removed.
#[test]
fn file_binds_show_the_host_file() {
    let prog = compile("bindrw", Link::Static);
    for_each_platform(|p| {
        let src = TempDir::new("bind-file");
        let hosts = src.path().join("hosts");
        let resolv = src.path().join("resolv.conf");
        fs::write(&hosts, "127.0.0.1 localhost\n").expect("write");
        fs::write(&resolv, "nameserver 10.0.0.1\n").expect("write");
        let mounts = [
            bind(&hosts, "/etc/hosts", false),
            bind(&resolv, "/etc/resolv.conf", true),
        ];
        let out = bundle(&prog, "/etc/hosts", "file", &mounts).run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(
            "read 20: [127.0.0.1 localhost\n]\nopen for append: ok 3\nappend: ok 9\n\
             unlink: EBUSY\nrename: EXDEV\n",
        );
        assert_eq!(
            fs::read_to_string(&hosts).expect("read"),
            "127.0.0.1 localhost\nappended\n"
        );
        let out = bundle(&prog, "/etc/resolv.conf", "file", &mounts).run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(
            "read 20: [nameserver 10.0.0.1\n]\nopen for append: EROFS\n\
             unlink: EROFS\nrename: EXDEV\n",
        );
        assert_eq!(
            fs::read_to_string(&resolv).expect("read"),
            "nameserver 10.0.0.1\n"
        );
        assert_eq!(fs::read_dir(src.path()).expect("list").count(), 2);
    });
}

/// A non-root container's new files, directories and symlinks in a
/// read-write bind are its user's on the host too, as runc would leave them
/// (the VMM, which creates them, is root).
#[test]
fn new_files_in_a_bind_belong_to_the_container_user() {
    let prog = compile("bindrw", Link::Static);
    let owners = |dir: &Path| -> Vec<(String, u32, u32)> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| {
                let e = e.expect("entry");
                let md = fs::symlink_metadata(e.path()).expect("lstat");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    md.uid(),
                    md.gid(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let open_dir = |t: &TempDir| {
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    };
    let native_dir = TempDir::new("bind-owner-native");
    open_dir(&native_dir);
    let mut b = bundle(
        &prog,
        native_dir.path().to_str().expect("utf-8"),
        "owner",
        &[],
    );
    let mut config = b.config().clone();
    config["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    b.set_config(config.clone());
    let native = b.run_native();
    native.expect_exit(Exit::Code(0));
    let expected = native.stdout_str();
    assert!(
        expected.contains("made.txt owner 1000:1000\n")
            && expected.contains("madelink owner 1000:1000\n"),
        "native: {}",
        native.context()
    );
    let want = owners(native_dir.path());
    assert_eq!(want.len(), 4, "{want:?}");
    for_each_platform(|p| {
        let src = TempDir::new("bind-owner");
        open_dir(&src);
        let mut b = bundle(&prog, "/data", "owner", &[bind(src.path(), "/data", false)]);
        let mut c = b.config().clone();
        c["process"]["user"] = config["process"]["user"].clone();
        b.set_config(c);
        let out = b.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
        assert_eq!(owners(src.path()), want, "on {p}: {}", out.context());
    });
}

/// A writable `MAP_SHARED` mapping of a file in a read-write bind: the
/// mapping, a forked child's, `read`/`write` and a second mapping see one
/// file, and the host file ends up as a native run leaves it.
#[test]
fn shared_writable_mappings_of_bind_files_reach_the_host() {
    let prog = compile("bindrw", Link::Static);
    let native_dir = TempDir::new("bind-mmap-native");
    let native = bundle(
        &prog,
        native_dir.path().to_str().expect("utf-8"),
        "mmap",
        &[],
    )
    .run_native();
    native.expect_exit(Exit::Code(0));
    let expected = native.stdout_str();
    assert!(
        expected.contains("read sees the child's write: [from the child]\n")
            && expected.contains("writable shared map of a read-only fd: EACCES\n"),
        "native: {}",
        native.context()
    );
    let want = fs::read(native_dir.path().join("mapped")).expect("read");
    assert_eq!(want.len(), 8192);
    for_each_platform(|p| {
        let src = TempDir::new("bind-mmap");
        let b = bundle(&prog, "/data", "mmap", &[bind(src.path(), "/data", false)]);
        let out = b.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
        let got = fs::read(src.path().join("mapped")).expect("read");
        assert!(
            got == want,
            "on {p}: the host file differs\n{}",
            out.context()
        );
    });
}
