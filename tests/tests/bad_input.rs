//! Bad input to `ringfence run`: each must give a clear one-line error on
//! stderr and a non-zero exit, never a panic, and leave nothing in `--root`.

use std::fs;

use ringfence_tests::{
    compile, for_each_platform, Bundle, BundleBuilder, Exit, Link, Ringfence, RunOutput,
};

/// Checks the common promises for a rejected run: exit code non-zero (and
/// not a death by signal), exactly one non-empty line on stderr mentioning
/// `mention` (if given), no panic, nothing on stdout, and `--root` exactly as
/// it was (`before`).
#[track_caller]
fn expect_rejected(rf: &Ringfence, out: &RunOutput, mention: Option<&str>, before: &[String]) {
    out.expect_no_panic();
    assert!(
        matches!(out.exit, Exit::Code(c) if c != 0),
        "expected a non-zero exit code, got {}{}",
        out.exit,
        out.context()
    );
    let stderr = out.stderr_str();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1,
        "expected exactly one error line on stderr, got {}{}",
        lines.len(),
        out.context()
    );
    if let Some(word) = mention {
        assert!(
            lines[0].contains(word),
            "the error should mention {word:?}{}",
            out.context()
        );
    }
    assert!(out.stdout.is_empty(), "unexpected stdout{}", out.context());
    assert_eq!(
        rf.root_entries(),
        before,
        "--root changed after a rejected run{}",
        out.context()
    );
}

/// Runs `bundle` under `id` with a fresh root and expects a rejection.
#[track_caller]
fn expect_bundle_rejected(bundle: &Bundle, id: &str, mention: Option<&str>) {
    for_each_platform(|p| {
        let rf = Ringfence::new(p);
        let out = rf.run(bundle, id);
        expect_rejected(&rf, &out, mention, &[]);
    });
}

fn hello() -> BundleBuilder {
    Bundle::builder(&compile("hello", Link::Static))
}

#[test]
fn missing_config_json() {
    let bundle = hello().build();
    bundle.remove_config();
    expect_bundle_rejected(&bundle, "no-config", Some("config.json"));
}

#[test]
fn config_json_is_not_json() {
    let bundle = hello().build();
    bundle.write_raw_config("{ \"ociVersion\": \"1.0.2\", this is not json");
    expect_bundle_rejected(&bundle, "not-json", Some("config.json"));
}

#[test]
fn config_json_is_empty() {
    let bundle = hello().build();
    bundle.write_raw_config("");
    expect_bundle_rejected(&bundle, "empty-config", Some("config.json"));
}

#[test]
fn config_json_has_wrong_types() {
    let mut bundle = hello().build();
    let mut config = bundle.config().clone();
    config["process"]["args"] = serde_json::json!(42);
    bundle.set_config(config);
    expect_bundle_rejected(&bundle, "wrong-types", Some("config.json"));
}

#[test]
fn config_json_without_process() {
    let mut bundle = hello().build();
    let mut config = bundle.config().clone();
    config
        .as_object_mut()
        .expect("config is an object")
        .remove("process");
    bundle.set_config(config);
    expect_bundle_rejected(&bundle, "no-process", None);
}

#[test]
fn config_json_with_empty_args() {
    let bundle = hello().argv(Vec::<String>::new()).build();
    expect_bundle_rejected(&bundle, "empty-args", None);
}

#[test]
fn missing_bundle_directory() {
    for_each_platform(|p| {
        let rf = Ringfence::new(p);
        let missing = rf.root().with_file_name("no-such-bundle");
        let out = rf.invoke([
            "run".as_ref(),
            "--bundle".as_ref(),
            missing.as_os_str(),
            "no-bundle".as_ref(),
        ]);
        expect_rejected(&rf, &out, Some("no-such-bundle"), &[]);
    });
}

#[test]
fn missing_program() {
    let bundle = hello().argv(["/bin/nope"]).build();
    expect_bundle_rejected(&bundle, "no-program", Some("/bin/nope"));
}

#[test]
fn program_is_not_elf() {
    let bundle = hello()
        .executable("/bin/notelf", "this is plain text, not an ELF file\n")
        .argv(["/bin/notelf"])
        .build();
    expect_bundle_rejected(&bundle, "not-elf", Some("/bin/notelf"));
}

#[test]
fn program_is_truncated_elf() {
    let prog = compile("hello", Link::Static);
    let bytes = fs::read(&prog.path).expect("read hello");
    let bundle = hello()
        .executable("/bin/truncated", &bytes[..100])
        .argv(["/bin/truncated"])
        .build();
    expect_bundle_rejected(&bundle, "truncated-elf", Some("/bin/truncated"));
}

#[test]
fn program_is_a_directory() {
    let bundle = hello().dir("/bin/adir").argv(["/bin/adir"]).build();
    expect_bundle_rejected(&bundle, "dir-program", Some("/bin/adir"));
}

#[test]
fn missing_rootfs() {
    let bundle = hello().build();
    fs::remove_dir_all(bundle.rootfs()).expect("remove rootfs");
    expect_bundle_rejected(&bundle, "no-rootfs", Some("rootfs"));
}

#[test]
fn invalid_container_ids() {
    let bundle = hello().build();
    for id in ["a/b", "..", ".", "", "../escape", "a b"] {
        for_each_platform(|p| {
            let rf = Ringfence::new(p);
            let out = rf.run(&bundle, id);
            let mention = (!id.is_empty()).then_some(id);
            expect_rejected(&rf, &out, mention, &[]);
            let outside = rf.root().with_file_name("escape");
            assert!(!outside.exists(), "id {id:?} escaped --root");
        });
    }
}

#[test]
fn container_id_already_exists() {
    let bundle = hello().build();
    for_each_platform(|p| {
        let rf = Ringfence::new(p);
        let state = rf.root().join("taken");
        fs::create_dir(&state).expect("create existing container dir");
        let marker = r#"{"id":"taken","status":"running","note":"pre-existing"}"#;
        fs::write(state.join("state.json"), marker).expect("write state.json");
        let out = rf.run(&bundle, "taken");
        expect_rejected(&rf, &out, Some("taken"), &["taken".to_string()]);
        let after = fs::read_to_string(state.join("state.json")).unwrap_or_default();
        assert_eq!(after, marker, "the existing container's state was changed");
    });
}

#[test]
fn unknown_platform_is_rejected() {
    let bundle = hello().build();
    let out = Ringfence::new(ringfence_tests::Platform::Ptrace).invoke_raw([
        "--platform".as_ref(),
        "no-such-platform".as_ref(),
        "run".as_ref(),
        "--bundle".as_ref(),
        bundle.dir().as_os_str(),
        "x".as_ref(),
    ]);
    out.expect_no_panic();
    assert!(
        matches!(out.exit, Exit::Code(c) if c != 0) && out.stdout.is_empty(),
        "expected a usage error{}",
        out.context()
    );
}

#[test]
fn unknown_subcommand_is_rejected() {
    let out = Ringfence::new(ringfence_tests::Platform::Ptrace).invoke_raw(["frobnicate"]);
    out.expect_no_panic();
    assert!(
        matches!(out.exit, Exit::Code(c) if c != 0) && !out.stderr.is_empty(),
        "expected a usage error{}",
        out.context()
    );
}
