//! The sentry's own devpts (issue 5): `/dev/ptmx` and `/dev/pts/N`.
//! `c/pty.c` opens a pair as `openpty` does, sends data both ways through
//! the line discipline and raises job-control signals in a child whose
//! controlling terminal the slave is, and checks `VMIN`/`VTIME` and the
//! hang-ups (master closed, session leader gone); the output must match a
//! native run.

use ringfence_tests::{compile, for_each_platform, Bundle, Exit, Link};

#[test]
fn pseudo_terminals_match_native() {
    let prog = compile("pty", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    let expected = native.stdout_str();
    // What the comparison relies on, from the native run.
    for want in [
        "slave reads: 6 [hello\\x0a]\n",
        "master reads echo: 8 [ab\\x08 \\x08c\\x0d\\x0a]\n",
        "child: got INT: 1\n",
        "child: got WINCH: 1\n",
        "master after the slave closed: EIO\n",
        "VMIN 0 VTIME 2, no input: 0 after 0.2 s: 1\n",
        "VMIN 3 VTIME 0, 2 bytes then 2: 4 [abcd]\n",
        "VMIN 4 VTIME 1, 2 bytes: 2 [xy]\n",
        "leader: SIGHUP 1 SIGCONT 1, slave read after the hang-up: 0\n",
        "foreground member after its session leader exited: H\n",
    ] {
        assert!(expected.contains(want), "native: {}", native.context());
    }
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&expected);
    });
}
