//! Running programs: arguments, environment, exit status, signals, identity,
//! standard streams and the root file system, each on every platform and,
//! where comparable, against a native run.

use ringfence_tests::{compile, for_each_platform, Bundle, Link, Ringfence};

/// What `c/hello.c` prints for this argv and environment.
fn hello_stdout(argv: &[&str], env: &[&str]) -> String {
    let mut s = format!("hello, world\nargc={}\n", argv.len());
    for (i, a) in argv.iter().enumerate() {
        s += &format!("argv[{i}]={a}\n");
    }
    for e in env {
        s += &format!("env {e}\n");
    }
    s
}

const HELLO_ARGS: &[&str] = &["one", "two words", "", "--flag=x"];
const HELLO_ENV: &[&str] = &["A=1", "B=two words", "EMPTY=", "PATH=/bin"];

fn hello_test(link: Link) {
    let prog = compile("hello", link);
    let bundle = Bundle::builder(&prog)
        .args(HELLO_ARGS.iter().copied())
        .env(HELLO_ENV.iter().copied())
        .build();
    let native = bundle.run_native();
    let argv: Vec<&str> = ["/bin/prog"].iter().chain(HELLO_ARGS).copied().collect();
    native
        .expect_code(0)
        .expect_stdout(&hello_stdout(&argv, HELLO_ENV))
        .expect_stderr("hello on stderr\n");
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_no_panic()
            .expect_code(0)
            .expect_stdout(&hello_stdout(&argv, HELLO_ENV))
            .expect_stderr("hello on stderr\n")
            .expect_same_as_native(&native);
    });
}

#[test]
fn hello_static_args_env_match_native() {
    hello_test(Link::Static);
}

#[test]
fn hello_static_pie_args_env_match_native() {
    hello_test(Link::StaticPie);
}

#[test]
fn hello_dynamic_args_env_match_native() {
    hello_test(Link::Dynamic);
}

#[test]
fn hello_at_nested_path_with_empty_env() {
    let prog = compile("hello", Link::Static);
    let bundle = Bundle::builder(&prog)
        .prog_path("/usr/local/lib/tool/hello")
        .env(Vec::<String>::new())
        .build();
    let expected = hello_stdout(&["/usr/local/lib/tool/hello"], &[]);
    bundle.run_native().expect_code(0).expect_stdout(&expected);
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&expected)
            .expect_stderr("hello on stderr\n");
    });
}

#[test]
fn exit_codes_match_native() {
    let prog = compile("exit_code", Link::Static);
    // (argument, how, status seen by the parent)
    let cases: &[(&str, &str, i32)] = &[
        ("0", "exit", 0),
        ("1", "exit", 1),
        ("42", "_exit", 42),
        ("255", "return", 255),
        ("256", "exit", 0),
        ("-1", "exit", 255),
    ];
    let bundles: Vec<_> = cases
        .iter()
        .map(|&(code, how, status)| {
            let bundle = Bundle::builder(&prog).args([code, how]).build();
            let native = bundle.run_native();
            native.expect_code(status);
            (bundle, native, code, how, status)
        })
        .collect();
    for_each_platform(|p| {
        for (bundle, native, code, how, status) in &bundles {
            bundle
                .run(p)
                .expect_no_panic()
                .expect_code(*status)
                .expect_stdout(&format!("exiting with {code} via {how}\n"))
                .expect_stderr("")
                .expect_same_as_native(native);
        }
    });
}

/// Runs `signal_exit MODE` and expects `before MODE` on stdout and the exit
/// code `code` (128 + signal), natively and in the sandbox.
fn signal_test(mode: &str, code: i32) {
    let prog = compile("signal_exit", Link::Static);
    let bundle = Bundle::builder(&prog).args([mode]).build();
    let native = bundle.run_native();
    native.expect_exit(ringfence_tests::Exit::Signal(code - 128));
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(code)
            .expect_stdout(&format!("before {mode}\n"))
            .expect_same_as_native(&native);
    });
}

#[test]
fn raise_sigsegv_exits_139() {
    signal_test("segv", 139);
}

#[test]
fn null_dereference_exits_139() {
    signal_test("null", 139);
}

#[test]
fn kill_self_sigkill_exits_137() {
    signal_test("kill", 137);
}

#[test]
fn abort_exits_134() {
    signal_test("abort", 134);
}

#[test]
fn raise_sigterm_exits_143() {
    signal_test("term", 143);
}

#[test]
fn signal_handler_runs_and_program_continues() {
    let prog = compile("signal_exit", Link::Static);
    let bundle = Bundle::builder(&prog).args(["handled"]).build();
    let native = bundle.run_native();
    let expected = "before handled\nhandler saw signal 10\n";
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
fn ignored_signal_is_not_delivered() {
    let prog = compile("signal_exit", Link::Static);
    let bundle = Bundle::builder(&prog).args(["ignored"]).build();
    let native = bundle.run_native();
    let expected = "before ignored\nSIGTERM ignored\n";
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

fn identity_stdout(uid: u32, gid: u32, hostname: &str) -> String {
    format!(
        "pid=1\nppid=0\ntid=1\nuid={uid}\neuid={uid}\ngid={gid}\negid={gid}\n\
         sysname=Linux\nnodename={hostname}\nmachine=x86_64\n"
    )
}

#[test]
fn pid_1_ppid_0_and_hostname_from_spec() {
    let prog = compile("identity", Link::Static);
    let bundle = Bundle::builder(&prog).hostname("rf-test-host").build();
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&identity_stdout(0, 0, "rf-test-host"))
            .expect_stderr("");
    });
}

#[test]
fn user_from_spec() {
    let prog = compile("identity", Link::Static);
    let bundle = Bundle::builder(&prog)
        .hostname("rf-test-host")
        .user(1234, 5678)
        .build();
    // Natively (as root the harness switches to the spec's ids) the id lines
    // must agree; pids and hostname are the host's.
    let native = bundle.run_native();
    native.expect_code(0);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let ids: String = native
            .stdout_str()
            .lines()
            .filter(|l| l.contains("id="))
            .filter(|l| !l.starts_with("pid=") && !l.starts_with("ppid=") && !l.starts_with("tid="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(ids, "uid=1234\neuid=1234\ngid=5678\negid=5678\n");
    }
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&identity_stdout(1234, 5678, "rf-test-host"))
            .expect_stderr("");
    });
}

#[test]
fn stdio_pipe_checks_match_native() {
    let prog = compile("stdio", Link::Static);
    let bundle = Bundle::builder(&prog).args(["checks"]).build();
    let expected = "isatty(1)=0 errno=ENOTTY\n\
                    ioctl(1, TCGETS)=-1 errno=ENOTTY\n\
                    fstat(1) type=fifo\n\
                    writev: abcdef\n\
                    writev returned 15\n\
                    read(0)=0\n\
                    write(100)=-1 errno=EBADF\n\
                    write(-1)=-1 errno=EBADF\n\
                    done\n";
    let native = bundle.run_native();
    native
        .expect_code(0)
        .expect_stdout(expected)
        .expect_stderr("stderr line 1\nstderr line 2\n");
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(expected)
            .expect_same_as_native(&native);
    });
}

/// What `stdio big` writes to either stream: byte i is 'a' + i % 26, except
/// that every 4096th byte is a newline.
fn big_stream(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 4096 == 4095 {
                b'\n'
            } else {
                b'a' + u8::try_from(i % 26).expect("less than 26")
            }
        })
        .collect()
}

#[test]
fn large_stdout_and_stderr_arrive_whole() {
    const OUT: usize = 1 << 20;
    const ERR: usize = 300_000;
    let prog = compile("stdio", Link::Static);
    let bundle = Bundle::builder(&prog)
        .args(["big".to_string(), OUT.to_string(), ERR.to_string()])
        .build();
    let native = bundle.run_native();
    native.expect_code(0);
    assert!(native.stdout == big_stream(OUT) && native.stderr == big_stream(ERR));
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_no_panic().expect_code(0);
        assert!(
            out.stdout.len() == OUT && out.stderr.len() == ERR,
            "expected {OUT} bytes on stdout and {ERR} on stderr, got {} and {}{}",
            out.stdout.len(),
            out.stderr.len(),
            out.context()
        );
        assert!(
            out.stdout == big_stream(OUT),
            "stdout content differs{}",
            out.context()
        );
        assert!(
            out.stderr == big_stream(ERR),
            "stderr content differs{}",
            out.context()
        );
    });
}

#[test]
fn cwd_from_spec_resolves_relative_paths() {
    let prog = compile("files", Link::Static);
    let bundle = Bundle::builder(&prog)
        .file("/data/marker", "marker in /data\n")
        .file("/marker", "marker in /\n")
        .cwd("/data")
        .args(["cat", "marker"])
        .build();
    let native = bundle.run_native();
    native.expect_code(0).expect_stdout("marker in /data\n");
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout("marker in /data\n")
            .expect_same_as_native(&native);
    });
}

#[test]
fn read_file_from_rootfs() {
    let prog = compile("files", Link::Static);
    let contents = "line 1\nline 2 with some more text\n".repeat(300);
    let bundle = Bundle::builder(&prog)
        .file("/etc/some.conf", contents.clone())
        .args(["cat", "/etc/some.conf"])
        .build();
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&contents);
    });
}

#[test]
fn writes_in_readonly_root_never_reach_the_host() {
    let prog = compile("files", Link::Static);
    // A name unique to this run, so a sandbox that wrongly passes the path
    // to the host can be caught (and cleaned up) at the host's `/` too.
    let name = format!("ringfence-test-created-{}", std::process::id());
    let bundle = Bundle::builder(&prog)
        .readonly(true)
        .args(["create".to_string(), format!("/{name}")])
        .build();
    for_each_platform(|p| {
        let out = bundle.run(p);
        let on_host_root = std::path::Path::new("/").join(&name);
        let escaped = on_host_root.exists();
        if escaped {
            let _ = std::fs::remove_file(&on_host_root);
        }
        assert!(
            !escaped,
            "a file created in the container appeared at the host's {}{}",
            on_host_root.display(),
            out.context()
        );
        out.expect_no_panic().expect_code(0);
        let in_rootfs = bundle.rootfs().join(&name);
        assert!(
            !in_rootfs.exists(),
            "a file created in the container appeared on the host at {}{}",
            in_rootfs.display(),
            out.context()
        );
    });
}

#[test]
fn successful_run_leaves_no_state_behind() {
    let prog = compile("exit_code", Link::Static);
    let bundle = Bundle::builder(&prog).args(["7"]).build();
    for_each_platform(|p| {
        let rf = Ringfence::new(p);
        let out = rf.run(&bundle, "leaves-nothing");
        out.expect_no_panic().expect_code(7);
        assert!(
            !rf.root().join("leaves-nothing").exists(),
            "`run` left {}/leaves-nothing behind (entries: {:?}){}",
            rf.root().display(),
            rf.root_entries(),
            out.context()
        );
    });
}
