//! The command line outside `run`: `ringfence spec`, and running the config
//! it writes.

use std::fs;

use ringfence_tests::{compile, for_each_platform, ringfence_in, Bundle, Link, TempDir};
use serde_json::Value;

/// Runs `ringfence spec` in a fresh directory and returns the directory and
/// the parsed config.json.
fn spec_in_temp_dir() -> (TempDir, Value) {
    let dir = TempDir::new("spec");
    let out = ringfence_in(dir.path(), ["spec"]);
    out.expect_no_panic().expect_code(0);
    let path = dir.path().join("config.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "`ringfence spec` wrote no {}: {e}{}",
            path.display(),
            out.context()
        )
    });
    let config: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("config.json from `ringfence spec` is not JSON: {e}\n{text}"));
    (dir, config)
}

#[test]
fn spec_writes_a_valid_config_json() {
    let (_dir, config) = spec_in_temp_dir();
    assert!(
        config["ociVersion"].is_string(),
        "no ociVersion: {config:#}"
    );
    let args = config["process"]["args"]
        .as_array()
        .unwrap_or_else(|| panic!("process.args is not an array: {config:#}"));
    assert!(
        !args.is_empty() && args.iter().all(Value::is_string),
        "process.args must be a non-empty array of strings: {config:#}"
    );
    assert!(
        config["process"]["cwd"].is_string(),
        "no process.cwd: {config:#}"
    );
    assert_eq!(config["root"]["path"], "rootfs", "root.path: {config:#}");
}

#[test]
fn spec_config_runs_a_program() {
    // The default config, with only args pointed at our program (and the
    // terminal off, as there is none), runs it.
    let (_dir, mut config) = spec_in_temp_dir();
    let prog = compile("hello", Link::Static);
    let mut bundle = Bundle::builder(&prog).build();
    config["process"]["args"] = serde_json::json!(["/bin/prog", "from-spec"]);
    config["process"]["terminal"] = Value::Bool(false);
    bundle.set_config(config.clone());
    let env: Vec<String> = config["process"]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let mut expected = "hello, world\nargc=2\nargv[0]=/bin/prog\nargv[1]=from-spec\n".to_string();
    for e in &env {
        expected += &format!("env {e}\n");
    }
    for_each_platform(|p| {
        bundle
            .run(p)
            .expect_no_panic()
            .expect_code(0)
            .expect_stdout(&expected)
            .expect_stderr("hello on stderr\n");
    });
}
