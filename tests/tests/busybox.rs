//! Debian's busybox-static shell inside the sandbox: pipelines, subshells,
//! background jobs, `wait`, `trap`, loops, and the same output natively.

use std::path::Path;

use ringfence_tests::{for_each_platform, Bundle, BundleBuilder, Exit};

const BUSYBOX: &str = "/bin/busybox";
/// Applets the scripts call through `PATH`, installed as copies (busybox
/// dispatches on `argv[0]`).
const APPLETS: &[&str] = &[
    "sh", "sleep", "tr", "cat", "wc", "seq", "true", "false", "echo", "head",
];

const SCRIPT: &str = r#"
echo hello world | tr a-z A-Z
for i in 1 2 3; do echo "loop $i"; done
(echo in a subshell; exit 3); echo "subshell status $?"
x=$(echo captured | tr c C); echo "substitution: $x"
sleep 0.05 & pid=$!; wait $pid; echo "background job waited: $?"
sleep 5 & pid=$!; kill -TERM $pid; wait $pid; echo "killed job status: $?"
trap 'echo trapped USR1' USR1; kill -USR1 $$
seq 1 1000 | wc -l
echo "arithmetic: $((6 * 7))"
false | true; echo "pipeline status $?"
i=0; while [ $i -lt 5 ]; do i=$((i + 1)); done; echo "while: $i"
cat <<EOT
here-doc line
EOT
seq 1 5 | while read n; do echo "read $n"; done | head -3
exit 7
"#;

/// Job control from a non-interactive shell: stop and continue a job.
const JOBS_SCRIPT: &str = r#"
sleep 10 & pid=$!
kill -STOP $pid; sleep 0.2
read p comm state rest < /proc/$pid/stat; echo "after STOP: $state"
kill -CONT $pid; sleep 0.2
read p comm state rest < /proc/$pid/stat; echo "after CONT: $state"
kill $pid; wait $pid; echo "terminated job status: $?"
"#;

fn busybox_bundle() -> Bundle {
    busybox_bundle_with(SCRIPT)
}

fn busybox_bundle_with(script: &str) -> Bundle {
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install Debian's busybox-static (scripts/test.sh does)"
    );
    let bytes = std::fs::read(BUSYBOX).expect("read busybox");
    let mut b = BundleBuilder::empty().executable("/bin/busybox", bytes.clone());
    for applet in APPLETS {
        b = b.executable(&format!("/bin/{applet}"), bytes.clone());
    }
    b.argv(["/bin/sh", "-c", script]).build()
}

#[test]
fn busybox_shell_script_matches_native() {
    let bundle = busybox_bundle();
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(7));
    assert!(
        native.stdout_str().contains("trapped USR1"),
        "native run:\n{}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(7));
        out.expect_stdout(&native.stdout_str());
    });
}

#[test]
fn busybox_stops_and_continues_a_job() {
    let bundle = busybox_bundle_with(JOBS_SCRIPT);
    let native = bundle.run_native();
    native.expect_exit(Exit::Code(0));
    assert!(
        native.stdout_str().contains("after STOP: T"),
        "native run:\n{}",
        native.context()
    );
    for_each_platform(|p| {
        let out = bundle.run(p);
        out.expect_exit(Exit::Code(0));
        out.expect_stdout(&native.stdout_str());
    });
}
