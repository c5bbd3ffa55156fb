//! Tests of `config.json` parsing and validation.

use super::*;
use crate::testutil::TestDir;

/// A bundle directory with an empty `rootfs/` in it.
fn bundle() -> TestDir {
    let dir = TestDir::new();
    fs::create_dir(dir.path().join("rootfs")).unwrap();
    dir
}

/// A minimal valid config with `process` replaced by `process`.
fn with_process(process: &str) -> String {
    format!(r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{process}}}"#)
}

fn err_of(json: &str, dir: &Path) -> String {
    parse_config(json, dir).unwrap_err().to_string()
}

const FULL: &str = r#"{
    "ociVersion": "1.0.2",
    "process": {
        "terminal": true,
        "user": {"uid": 1000, "gid": 100, "additionalGids": [10, 20]},
        "args": ["/bin/echo", "hello", "world"],
        "env": ["PATH=/bin", "EMPTY=", "A=b=c"],
        "cwd": "/tmp",
        "rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 4096},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_RTTIME", "soft": 10, "hard": 20}
        ]
    },
    "root": {"path": "rootfs", "readonly": false},
    "hostname": "box",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data", "type": "bind", "source": "/srv/data",
         "options": ["rbind", "ro"]},
        {"destination": "/run"}
    ],
    "linux": {
        "resources": {
            "memory": {"limit": 268435456},
            "cpu": {"quota": 150000, "period": 100000}
        },
        "namespaces": [{"type": "pid"}]
    },
    "annotations": {"org.example.b": "2", "org.example.a": "1"}
}"#;

#[test]
fn full_config() {
    let dir = bundle();
    let spec = parse_config(FULL, dir.path()).unwrap();
    assert_eq!(spec.args, ["/bin/echo", "hello", "world"]);
    assert_eq!(spec.env, ["PATH=/bin", "EMPTY=", "A=b=c"]);
    assert_eq!(spec.cwd, "/tmp");
    assert_eq!(spec.hostname, "box");
    assert_eq!((spec.uid, spec.gid), (1000, 100));
    assert_eq!(spec.additional_gids, [10, 20]);
    assert_eq!(
        spec.rlimits,
        [
            Rlimit {
                resource: RlimitResource::Nofile,
                soft: 512,
                hard: 4096
            },
            Rlimit {
                resource: RlimitResource::Core,
                soft: 0,
                hard: 0
            },
            Rlimit {
                resource: RlimitResource::Rttime,
                soft: 10,
                hard: 20
            },
        ]
    );
    let numbers: Vec<u32> = spec
        .rlimits
        .iter()
        .map(|r| r.resource.linux_number())
        .collect();
    assert_eq!(numbers, [7, 4, 15]);
    assert_eq!(spec.root, dir.path().join("rootfs").canonicalize().unwrap());
    assert!(spec.root.is_absolute());
    assert!(!spec.root_readonly);
    assert!(spec.terminal);
    assert_eq!(spec.memory_limit_bytes, Some(256 << 20));
    assert_eq!(spec.cpu_limit, Some(1.5));
    assert_eq!(
        spec.mounts,
        [
            Mount {
                destination: "/proc".into(),
                typ: Some("proc".into()),
                source: Some("proc".into()),
                options: vec![],
            },
            Mount {
                destination: "/data".into(),
                typ: Some("bind".into()),
                source: Some("/srv/data".into()),
                options: vec!["rbind".into(), "ro".into()],
            },
            Mount {
                destination: "/run".into(),
                typ: None,
                source: None,
                options: vec![]
            },
        ]
    );
    let keys: Vec<_> = spec.annotations.keys().map(String::as_str).collect();
    assert_eq!(keys, ["org.example.a", "org.example.b"]);

    // The spec itself round-trips through serde (it crosses process
    // boundaries as JSON).
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<SandboxSpec>(&json).unwrap(), spec);
}

#[test]
fn defaults_for_optional_fields() {
    let dir = bundle();
    // No user, no cwd, no env, no hostname, no terminal, no rlimits.
    let spec = parse_config(&with_process(r#"{"args":["/init"]}"#), dir.path()).unwrap();
    assert_eq!(spec.args, ["/init"]);
    assert!(spec.env.is_empty());
    assert_eq!(spec.cwd, "/");
    assert_eq!(spec.hostname, crate::DEFAULT_HOSTNAME);
    assert_eq!((spec.uid, spec.gid), (0, 0));
    assert!(spec.additional_gids.is_empty());
    assert!(spec.rlimits.is_empty());
    assert!(!spec.root_readonly);
    assert!(!spec.terminal);
    assert!(spec.mounts.is_empty());
    assert!(spec.annotations.is_empty());
    assert_eq!(spec.memory_limit_bytes, None);
    assert_eq!(spec.cpu_limit, None);

    // Only one of the two defaulted fields missing.
    let spec = parse_config(
        &with_process(r#"{"args":["x"],"user":{"uid":5,"gid":6}}"#),
        dir.path(),
    )
    .unwrap();
    assert_eq!((spec.uid, spec.gid, spec.cwd.as_str()), (5, 6, "/"));

    // An empty hostname is treated as absent.
    let json = r#"{"root":{"path":"rootfs"},"hostname":"","process":{"args":["x"]}}"#;
    assert_eq!(
        parse_config(json, dir.path()).unwrap().hostname,
        crate::DEFAULT_HOSTNAME
    );
}

#[test]
fn unlimited_resources_are_none() {
    let dir = bundle();
    let json = r#"{"root":{"path":"rootfs"},"process":{"args":["x"]},
        "linux":{"resources":{"memory":{"limit":-1},"cpu":{"quota":-1,"period":100000}}}}"#;
    let spec = parse_config(json, dir.path()).unwrap();
    assert_eq!(spec.memory_limit_bytes, None);
    assert_eq!(spec.cpu_limit, None);
    let json = r#"{"root":{"path":"rootfs"},"process":{"args":["x"]},
        "linux":{"resources":{"memory":{"limit":0},"cpu":{"quota":50000}}}}"#;
    let spec = parse_config(json, dir.path()).unwrap();
    assert_eq!(spec.memory_limit_bytes, None);
    assert_eq!(spec.cpu_limit, None);
}

#[test]
fn missing_process() {
    let dir = bundle();
    for json in [
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"}}"#,
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":null}"#,
    ] {
        assert_eq!(err_of(json, dir.path()), "config.json: process is required");
    }
}

#[test]
fn missing_root() {
    let dir = bundle();
    let json = r#"{"process":{"args":["x"]}}"#;
    assert_eq!(err_of(json, dir.path()), "config.json: root is required");
    let json = r#"{"process":{"args":["x"]},"root":{}}"#;
    assert_eq!(
        err_of(json, dir.path()),
        "config.json: root.path must not be empty"
    );
}

#[test]
fn empty_args() {
    let dir = bundle();
    for process in [r#"{"args":[]}"#, r#"{"cwd":"/"}"#, r#"{"args":null}"#] {
        assert_eq!(
            err_of(&with_process(process), dir.path()),
            "config.json: process.args must not be empty",
            "{process}"
        );
    }
    assert_eq!(
        err_of(&with_process(r#"{"args":[""]}"#), dir.path()),
        "config.json: process.args[0] must not be empty"
    );
    assert_eq!(
        err_of(&with_process(r#"{"args":["a","b\u0000"]}"#), dir.path()),
        "config.json: process.args[1] must not contain a NUL byte"
    );
}

#[test]
fn relative_cwd() {
    let dir = bundle();
    for cwd in ["tmp", "", "./x"] {
        let process = format!(r#"{{"args":["x"],"cwd":"{cwd}"}}"#);
        let msg = err_of(&with_process(&process), dir.path());
        assert!(msg.starts_with("config.json: process.cwd "), "{msg}");
        assert!(msg.ends_with("must be an absolute path"), "{msg}");
    }
}

#[test]
fn bad_env() {
    let dir = bundle();
    let msg = err_of(
        &with_process(r#"{"args":["x"],"env":["A=1","B"]}"#),
        dir.path(),
    );
    assert_eq!(msg, r#"config.json: process.env[1] "B" lacks '='"#);
    let msg = err_of(&with_process(r#"{"args":["x"],"env":["=1"]}"#), dir.path());
    assert_eq!(msg, r#"config.json: process.env[0] "=1" has an empty name"#);
}

#[test]
fn malformed_json_mentions_line() {
    let dir = bundle();
    let json = "{\n  \"process\": {\n    \"args\": [\"x\",]\n  }\n}";
    let msg = err_of(json, dir.path());
    let prefix = format!("malformed config.json in {}: ", dir.path().display());
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");

    // Schema errors carry the position too.
    let json = "{\n  \"root\": {\"path\": \"rootfs\"},\n  \"process\": {\"args\": \"sh\"}\n}";
    let msg = err_of(json, dir.path());
    assert!(msg.starts_with("malformed config.json"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");

    // Also when the lenient retry (missing user/cwd) is in play.
    let json = "{\n  \"process\": {\"args\": [\"x\"]},\n  \"hostname\": 7\n}";
    let msg = err_of(json, dir.path());
    assert!(msg.starts_with("malformed config.json"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
    let json = "{\n  \"process\": {\"args\": [\"x\"], \"user\": {\"uid\": -1}}\n}";
    let msg = err_of(json, dir.path());
    assert!(msg.contains("line 2"), "{msg}");

    // Unknown rlimit names are schema errors.
    let process = r#"{"args":["x"],"rlimits":[{"type":"RLIMIT_BOGUS","soft":1,"hard":1}]}"#;
    let msg = err_of(&with_process(process), dir.path());
    assert!(msg.contains("RLIMIT_BOGUS"), "{msg}");
}

#[test]
fn relative_root_resolved_against_bundle() {
    let dir = TestDir::new();
    fs::create_dir_all(dir.path().join("images/alpine")).unwrap();
    let json = r#"{"root":{"path":"images/../images/alpine","readonly":true},
        "process":{"args":["sh"]}}"#;
    let spec = parse_config(json, dir.path()).unwrap();
    assert_eq!(
        spec.root,
        dir.path().join("images/alpine").canonicalize().unwrap()
    );
    assert!(spec.root_readonly);

    // An absolute root.path ignores the bundle.
    let abs = dir.path().join("images").canonicalize().unwrap();
    let json = format!(
        r#"{{"root":{{"path":{}}},"process":{{"args":["sh"]}}}}"#,
        serde_json::to_string(&abs).unwrap()
    );
    assert_eq!(
        parse_config(&json, Path::new("/nonexistent")).unwrap().root,
        abs
    );

    // A symlinked rootfs is canonicalized to its target.
    std::os::unix::fs::symlink("images/alpine", dir.path().join("rootfs")).unwrap();
    let spec = parse_config(&with_process(r#"{"args":["sh"]}"#), dir.path()).unwrap();
    assert_eq!(
        spec.root,
        dir.path().join("images/alpine").canonicalize().unwrap()
    );
}

#[test]
fn missing_or_bad_rootfs() {
    let dir = TestDir::new();
    let json = with_process(r#"{"args":["sh"]}"#);
    let msg = err_of(&json, dir.path());
    let expected = format!(
        "config.json: root.path {:?} cannot be resolved: ",
        dir.path().join("rootfs")
    );
    assert!(msg.starts_with(&expected), "{msg}");

    fs::write(dir.path().join("rootfs"), b"not a dir").unwrap();
    let msg = err_of(&json, dir.path());
    let expected = format!(
        "config.json: root.path {:?} is not a directory",
        dir.path().join("rootfs").canonicalize().unwrap()
    );
    assert_eq!(msg, expected);

    let json = r#"{"root":{"path":"a\u0000b"},"process":{"args":["sh"]}}"#;
    assert!(err_of(json, dir.path()).contains("cannot be resolved"));
}

#[test]
fn rlimit_validation() {
    let dir = bundle();
    let process = r#"{"args":["x"],"rlimits":[
        {"type":"RLIMIT_NOFILE","soft":1,"hard":2},
        {"type":"RLIMIT_NOFILE","soft":1,"hard":2}]}"#;
    assert_eq!(
        err_of(&with_process(process), dir.path()),
        "config.json: process.rlimits[1] duplicates RLIMIT_NOFILE"
    );
    let process = r#"{"args":["x"],"rlimits":[{"type":"RLIMIT_STACK","soft":9,"hard":8}]}"#;
    assert_eq!(
        err_of(&with_process(process), dir.path()),
        "config.json: process.rlimits[0] (RLIMIT_STACK) soft limit 9 exceeds hard limit 8"
    );
    // Every OCI name maps to its Linux number.
    let entries: Vec<String> = RlimitResource::ALL
        .iter()
        .map(|r| format!(r#"{{"type":"{}","soft":1,"hard":{}}}"#, r.name(), u64::MAX))
        .collect();
    let process = format!(r#"{{"args":["x"],"rlimits":[{}]}}"#, entries.join(","));
    let spec = parse_config(&with_process(&process), dir.path()).unwrap();
    for (i, r) in spec.rlimits.iter().enumerate() {
        assert_eq!(r.resource.linux_number() as usize, i);
        assert_eq!((r.soft, r.hard), (1, u64::MAX));
    }
}

#[test]
fn hostname_and_mount_validation() {
    let dir = bundle();
    let long = "h".repeat(MAX_HOSTNAME_LEN + 1);
    let json =
        format!(r#"{{"root":{{"path":"rootfs"}},"hostname":"{long}","process":{{"args":["x"]}}}}"#);
    assert_eq!(
        err_of(&json, dir.path()),
        "config.json: hostname is longer than 64 bytes"
    );
    let json =
        r#"{"root":{"path":"rootfs"},"process":{"args":["x"]},"mounts":[{"destination":""}]}"#;
    assert_eq!(
        err_of(json, dir.path()),
        "config.json: mounts[0].destination must not be empty"
    );
    let json = r#"{"root":{"path":"rootfs"},"process":{"args":["x"]},
        "mounts":[{"destination":"/a","source":"x\u0000"}]}"#;
    assert_eq!(
        err_of(json, dir.path()),
        "config.json: mounts[0].source must not contain a NUL byte"
    );
    // Missing destination is a schema error.
    let json = r#"{"root":{"path":"rootfs"},"process":{"args":["x"]},"mounts":[{"type":"tmpfs"}]}"#;
    assert!(err_of(json, dir.path()).contains("destination"));
}

#[test]
fn load_bundle_reads_config_json() {
    let dir = bundle();
    let msg = load_bundle(dir.path()).unwrap_err().to_string();
    let prefix = format!("config.json not found in bundle {}: ", dir.path().display());
    assert!(msg.starts_with(&prefix), "{msg}");

    fs::write(dir.path().join("config.json"), FULL).unwrap();
    let spec = load_bundle(dir.path()).unwrap();
    assert_eq!(spec, parse_config(FULL, dir.path()).unwrap());

    // A directory named config.json is unreadable, not missing.
    let other = bundle();
    fs::create_dir(other.path().join("config.json")).unwrap();
    let msg = load_bundle(other.path()).unwrap_err().to_string();
    assert!(
        msg.starts_with("cannot read config.json in bundle"),
        "{msg}"
    );

    // Invalid UTF-8 is a parse error, not a panic.
    fs::write(dir.path().join("config.json"), b"{\"hostname\": \"\xff\"}").unwrap();
    let msg = load_bundle(dir.path()).unwrap_err().to_string();
    assert!(msg.starts_with("malformed config.json"), "{msg}");
}

#[test]
fn hostile_inputs_do_not_panic() {
    let dir = bundle();
    let deep = "[".repeat(100_000);
    let inputs = [
        "",
        "null",
        "[]",
        "3",
        "\"x\"",
        "{",
        "{}",
        r#"{"process":{}}"#,
        r#"{"process":[]}"#,
        r#"{"process":{"args":["x"],"user":null}}"#,
        r#"{"root":{"path":"rootfs"},"process":{"args":["x"],"cwd":null}}"#,
        r#"{"root":{"path":"/dev/null"},"process":{"args":["x"]}}"#,
        r#"{"root":{"path":"rootfs"},"process":{"args":["x"]},"linux":{"resources":{"cpu":{"quota":9223372036854775807,"period":1}}}}"#,
        r#"{"root":{"path":"rootfs"},"process":{"args":["x"]},"annotations":{"":""}}"#,
        &deep,
    ];
    for input in inputs {
        let _ = parse_config(input, dir.path());
        let _ = parse_config(input, Path::new(""));
    }
}
