//! containerd drives ringfence as its runtime binary (issue 6).
//!
//! Each test process builds a tiny OCI image tarball offline (a rootfs with
//! two static C programs; manifest, config and an uncompressed layer named
//! by their sha256), starts its **own** containerd on a private socket,
//! root and state directory with the CRI plugin disabled, imports the
//! image with `ctr images import`, and runs it with
//! `ctr run --runc-binary WRAPPER --runc-root PRIVATE --rm`, where WRAPPER
//! is a shell script that execs `ringfence --platform P "$@"`.
//!
//! containerd and every shim it started are killed when the test ends,
//! whatever happens (`Containerd`'s `Drop`).
//!
//! Debian's `containerd` package provides `containerd` and `ctr`;
//! `scripts/test.sh` installs it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ringfence_tests::run::run_with_timeout;
use ringfence_tests::{
    compile, for_each_platform, ringfence_bin, Link, Platform, RunOutput, TempDir,
};
use serde_json::json;

/// The image's name once imported.
const IMAGE: &str = "docker.io/library/ringfence-test:latest";

/// Fails (not skips) when containerd's tools are missing: CI must run this.
fn require_tools() {
    for tool in ["containerd", "ctr"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "`{tool}` is not installed: install Debian's containerd package \
             (`apt-get install -y containerd`, as scripts/test.sh does) to run the containerd tests"
        );
    }
}

/// `sha256sum FILE` → the hex digest.
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// Writes `data` as a blob of the OCI layout in `dir`; returns its
/// descriptor fields (digest, size).
fn blob(dir: &Path, file: &Path) -> (String, u64) {
    let hex = sha256(file);
    let size = fs::metadata(file).expect("blob size").len();
    let dest = dir.join("blobs/sha256").join(&hex);
    fs::rename(file, &dest).expect("move blob into place");
    (format!("sha256:{hex}"), size)
}

fn json_blob(dir: &Path, name: &str, v: &serde_json::Value) -> (String, u64) {
    let tmp = dir.join(name);
    fs::write(&tmp, serde_json::to_vec(v).expect("encode JSON")).expect("write JSON blob");
    blob(dir, &tmp)
}

/// Builds an OCI image tarball holding `/bin/exit_code` and `/bin/sleeper`
/// (static), with an uncompressed layer. Returns the tarball's path.
fn build_image(work: &Path) -> PathBuf {
    let rootfs = work.join("rootfs");
    fs::create_dir_all(rootfs.join("bin")).expect("rootfs/bin");
    for d in ["dev", "proc", "sys", "tmp", "etc"] {
        fs::create_dir_all(rootfs.join(d)).expect("rootfs dir");
    }
    for name in ["exit_code", "sleeper"] {
        let prog = compile(name, Link::Static);
        fs::copy(&prog.path, rootfs.join("bin").join(name)).expect("copy program");
    }
    let layout = work.join("oci");
    fs::create_dir_all(layout.join("blobs/sha256")).expect("blobs dir");
    let layer = layout.join("layer.tar");
    let st = Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "--sort=name"])
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar of the rootfs failed");
    let (layer_digest, layer_size) = blob(&layout, &layer);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/exit_code", "0"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = json_blob(&layout, "config.json", &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest, "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest, "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = json_blob(&layout, "manifest.json", &manifest);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": IMAGE,
                "org.opencontainers.image.ref.name": "latest",
            },
        }],
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("index"),
    )
    .expect("index.json");
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let tarball = work.join("image.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tarball)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .expect("run tar");
    assert!(st.success(), "tar of the image failed");
    tarball
}

/// A private containerd, killed (with the shims it started) on drop.
struct Containerd {
    child: Child,
    dir: TempDir,
    socket: PathBuf,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = TempDir::new("containerd");
        let d = dir.path();
        let config = d.join("config.toml");
        fs::write(
            &config,
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )
        .expect("containerd config");
        let socket = d.join("c.sock");
        let log = fs::File::create(d.join("containerd.log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .arg("--address")
            .arg(&socket)
            .arg("--root")
            .arg(d.join("root"))
            .arg("--state")
            .arg(d.join("state"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { child, dir, socket };
        let start = Instant::now();
        loop {
            if c.socket.exists() {
                let v = Command::new("ctr")
                    .arg("--address")
                    .arg(&c.socket)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if v.is_ok_and(|s| s.success()) {
                    break;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "containerd did not come up within 20 s:\n{}",
                c.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
        c
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address S ARGS...`, with the harness's timeout.
    fn ctr(&self, args: &[&str]) -> RunOutput {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(args);
        run_with_timeout(cmd, format!("ctr {}", args.join(" ")), None)
    }

    /// A script that runs ringfence on platform `p` with the shim's flags.
    fn wrapper(&self, p: Platform) -> PathBuf {
        let path = self.dir.path().join(format!("ringfence-{}", p.name()));
        let script = format!(
            "#!/bin/sh\nexec '{}' --platform {} \"$@\"\n",
            ringfence_bin().display(),
            p.name()
        );
        fs::write(&path, script).expect("write wrapper");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        path
    }

    /// The runc root the shim passes to the runtime (private to this test).
    fn runc_root(&self) -> PathBuf {
        self.dir.path().join("runc-root")
    }
}

/// Pids of processes whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if start.elapsed() > Duration::from_secs(5) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
            }
        }
        // Shims (started with `-address SOCKET`) and sandboxes (with our
        // runc root) that outlived a failed test.
        let needle = self.dir.path().to_string_lossy().into_owned();
        for pid in pids_mentioning(&needle) {
            // SAFETY: as above; these processes were started for this test.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Snapshot mounts, if any, before the directory goes.
        let root = self.dir.path().join("root");
        if let Ok(mounts) = fs::read_to_string("/proc/self/mounts") {
            for line in mounts.lines() {
                if let Some(m) = line.split_whitespace().nth(1) {
                    if Path::new(m).starts_with(&root) {
                        let _ = Command::new("umount").arg("-l").arg(m).status();
                    }
                }
            }
        }
    }
}

#[test]
fn ctr_run_uses_ringfence_as_its_runtime() {
    require_tools();
    let work = TempDir::new("oci-image");
    let tarball = build_image(work.path());
    let ctrd = Containerd::start();
    let t = tarball.to_string_lossy().into_owned();
    let imported = ctrd.ctr(&["images", "import", &t]);
    imported.expect_code(0);
    let listed = ctrd.ctr(&["images", "ls", "-q"]);
    assert!(
        listed.stdout_str().lines().any(|l| l == IMAGE),
        "image not imported{}",
        listed.context()
    );
    let runc_root = ctrd.runc_root().to_string_lossy().into_owned();
    for_each_platform(|p| {
        let wrapper = ctrd.wrapper(p).to_string_lossy().into_owned();
        let run = |id: &str, cmd: &[&str]| {
            let mut args = vec![
                "run",
                "--runc-binary",
                &wrapper,
                "--runc-root",
                &runc_root,
                "--rm",
                IMAGE,
                id,
            ];
            args.extend_from_slice(cmd);
            ctrd.ctr(&args)
        };
        // stdout and the exit status come back through the shim.
        let id = format!("exit-{}", p.name());
        let out = run(&id, &["/bin/exit_code", "42"]);
        out.expect_code(42);
        assert_eq!(
            out.stdout_str(),
            "exiting with 42 via exit\n",
            "{}\ncontainerd log:\n{}",
            out.context(),
            ctrd.log()
        );
        let id = format!("zero-{}", p.name());
        run(&id, &["/bin/exit_code", "0", "return"])
            .expect_code(0)
            .expect_stdout("exiting with 0 via return\n");

        // `ctr task kill` (SIGTERM) of a long-running container: 143.
        let id = format!("kill-{}", p.name());
        thread::scope(|s| {
            let long = s.spawn(|| run(&id, &["/bin/sleeper", "60"]));
            let start = Instant::now();
            loop {
                let tasks = ctrd.ctr(&["task", "ls"]);
                if tasks
                    .stdout_str()
                    .lines()
                    .any(|l| l.starts_with(&id) && l.contains("RUNNING"))
                {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the task never ran{}\ncontainerd log:\n{}",
                    tasks.context(),
                    ctrd.log()
                );
                thread::sleep(Duration::from_millis(20));
            }
            // `ctr task exec`: a second process in the running task; its
            // output and status come back through the shim.
            let exec = ctrd.ctr(&[
                "task",
                "exec",
                "--exec-id",
                "e1",
                &id,
                "/bin/exit_code",
                "3",
            ]);
            exec.expect_code(3);
            assert_eq!(
                exec.stdout_str(),
                "exiting with 3 via exit\n",
                "{}\ncontainerd log:\n{}",
                exec.context(),
                ctrd.log()
            );
            ctrd.ctr(&["task", "kill", &id]).expect_code(0);
            let out = long.join().expect("ctr run thread");
            out.expect_code(143);
            assert!(out.elapsed < Duration::from_secs(30), "{}", out.context());
        });
        // Nothing is left behind: no task, no container, no runtime state.
        let tasks = ctrd.ctr(&["task", "ls", "-q"]);
        assert_eq!(tasks.stdout_str(), "", "{}", tasks.context());
        let containers = ctrd.ctr(&["containers", "ls", "-q"]);
        assert_eq!(containers.stdout_str(), "", "{}", containers.context());
    });
}
