//! The lifecycle benchmark (issue 6): `create` + `start` + `wait` + `delete`
//! of a static `true` (`c/bench_true.c`) through the `ringfence` binary, end
//! to end, on each platform, against a native fork+exec+wait of the same
//! binary, Debian's `runc run` of the same bundle, and `ctr run --rm` with
//! ringfence as the runtime when `containerd` and `ctr` are installed (a
//! private containerd, started and stopped here). Target: under 100 ms.
//!
//! `cargo bench -p ringfence-tests --bench lifecycle` (`RINGFENCE_BENCH_N`
//! sets the number of samples per series, default 20). Prints a markdown
//! table; see BENCHMARKS.md.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ringfence_tests::{compile, ringfence_bin, Bundle, Link, Platform, TempDir};

const TARGET_MS: f64 = 100.0;

fn quiet(mut cmd: Command) -> Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Runs `cmd`; an error names it unless it exits 0.
fn ok(cmd: Command, what: &str) -> Result<(), String> {
    let mut cmd = quiet(cmd);
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what}: {s}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// One `create` + `start` + `wait` + `delete`, in milliseconds.
fn lifecycle_once(
    bin: &Path,
    root: &Path,
    p: Platform,
    bundle: &Bundle,
    i: usize,
) -> Result<f64, String> {
    let id = format!("bench-{i}");
    let verb = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(root)
            .arg("--platform")
            .arg(p.name())
            .args(args);
        c
    };
    let b = bundle.dir().to_string_lossy().into_owned();
    let start = Instant::now();
    ok(verb(&["create", "--bundle", &b, &id]), "create")?;
    ok(verb(&["start", &id]), "start")?;
    let out = quiet(verb(&["wait", &id]))
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("wait: {e}"))?;
    ok(verb(&["delete", &id]), "delete")?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Err(format!(
            "wait printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(ms)
}

fn timed(f: impl FnOnce() -> Result<(), String>) -> Result<f64, String> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// A private containerd, stopped on drop.
struct Containerd {
    child: Child,
    dir: TempDir,
}

impl Containerd {
    fn start() -> Result<Containerd, String> {
        let dir = TempDir::new("bench-containerd");
        let d = dir.path();
        fs::write(
            d.join("config.toml"),
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )
        .map_err(|e| e.to_string())?;
        let child = quiet(Command::new("containerd"))
            .arg("--config")
            .arg(d.join("config.toml"))
            .arg("--address")
            .arg(d.join("c.sock"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--state")
            .arg(d.join("state"))
            .spawn()
            .map_err(|e| format!("containerd: {e}"))?;
        let c = Containerd { child, dir };
        let start = Instant::now();
        while c.ctr(&["version"]).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                return Err("containerd did not come up".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(c)
    }

    fn ctr(&self, args: &[&str]) -> Result<(), String> {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(args);
        ok(c, &format!("ctr {}", args.join(" ")))
    }

    /// Imports `rootfs` as image `name` (`ctr images import` of an OCI
    /// tarball with one uncompressed layer).
    fn import(&self, rootfs: &Path, name: &str) -> Result<(), String> {
        let work = self.dir.path().join("image");
        let blobs = work.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
        let sha = |p: &Path| -> Result<(String, u64), String> {
            let out = Command::new("sha256sum")
                .arg(p)
                .output()
                .map_err(|e| e.to_string())?;
            let hex = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let size = fs::metadata(p).map_err(|e| e.to_string())?.len();
            fs::rename(p, blobs.join(&hex)).map_err(|e| e.to_string())?;
            Ok((format!("sha256:{hex}"), size))
        };
        let layer = work.join("layer.tar");
        let mut tar = Command::new("tar");
        tar.args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
            .arg(rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg(".");
        ok(tar, "tar layer")?;
        let (ld, ls) = sha(&layer)?;
        let json_blob = |v: serde_json::Value, n: &str| {
            let p = work.join(n);
            fs::write(&p, v.to_string()).map_err(|e| e.to_string())?;
            sha(&p)
        };
        let (cd, cs) = json_blob(
            serde_json::json!({"architecture": "amd64", "os": "linux", "config": {},
                "rootfs": {"type": "layers", "diff_ids": [ld]}}),
            "config",
        )?;
        let (md, ms) = json_blob(
            serde_json::json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]}),
            "manifest",
        )?;
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}}]});
        fs::write(work.join("index.json"), index.to_string()).map_err(|e| e.to_string())?;
        fs::write(work.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(|e| e.to_string())?;
        let tarball = self.dir.path().join("image.tar");
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&work).arg("-cf").arg(&tarball).args([
            "oci-layout",
            "index.json",
            "blobs",
        ]);
        ok(tar, "tar image")?;
        self.ctr(&["images", "import", &tarball.to_string_lossy()])
    }

    fn wrapper(&self, bin: &Path, p: Platform) -> Result<PathBuf, String> {
        let path = self.dir.path().join(format!("rf-{}", p.name()));
        let script = format!(
            "#!/bin/sh\nexec '{}' --platform {} \"$@\"\n",
            bin.display(),
            p.name()
        );
        fs::write(&path, script).map_err(|e| e.to_string())?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn have(tool: &str) -> bool {
    quiet(Command::new(tool))
        .arg("--version")
        .status()
        .is_ok_and(|s| s.success())
}

struct Series {
    name: String,
    ms: Vec<f64>,
    error: Option<String>,
}

fn measure(name: String, n: usize, mut f: impl FnMut(usize) -> Result<f64, String>) -> Series {
    let mut s = Series {
        name,
        ms: Vec::new(),
        error: None,
    };
    // One warm-up run (page cache, lazy binding), not counted.
    if let Err(e) = f(n) {
        s.error = Some(e);
        return s;
    }
    for i in 0..n {
        match f(i) {
            Ok(ms) => s.ms.push(ms),
            Err(e) => {
                s.error = Some(e);
                break;
            }
        }
    }
    eprintln!("measured {}", s.name);
    s
}

fn main() -> ExitCode {
    let n: usize = std::env::var("RINGFENCE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(20);
    let bin = ringfence_bin().to_path_buf();
    let prog = compile("bench_true", Link::Static);
    let bundle = Bundle::builder(&prog).build();
    let started = Instant::now();
    let mut all = Vec::new();

    all.push(measure("native fork+exec+wait".into(), n, |_| {
        timed(|| ok(Command::new(&prog.path), "native true"))
    }));
    let kvm = Path::new("/dev/kvm").exists();
    let platforms: Vec<Platform> = [Platform::Ptrace, Platform::Kvm]
        .into_iter()
        .filter(|p| *p != Platform::Kvm || kvm)
        .collect();
    for &p in &platforms {
        let root = TempDir::new("bench-lifecycle");
        all.push(measure(
            format!("ringfence create+start+wait+delete, {p}"),
            n,
            |i| lifecycle_once(&bin, root.path(), p, &bundle, i),
        ));
    }
    for &p in &platforms {
        let root = TempDir::new("bench-run");
        all.push(measure(format!("ringfence run, {p}"), n, |i| {
            let mut c = Command::new(&bin);
            c.arg("--root")
                .arg(root.path())
                .arg("--platform")
                .arg(p.name())
                .args(["run", "--bundle"])
                .arg(bundle.dir())
                .arg(format!("run-{i}"));
            timed(|| ok(c, "ringfence run"))
        }));
    }
    if have("runc") {
        let root = TempDir::new("bench-runc");
        all.push(measure("runc run (reference)".into(), n, |i| {
            let mut c = Command::new("runc");
            c.arg("--root")
                .arg(root.path())
                .args(["run", "--bundle"])
                .arg(bundle.dir())
                .arg(format!("runc-{i}"));
            timed(|| ok(c, "runc run"))
        }));
    }
    if have("containerd") && have("ctr") {
        match Containerd::start().and_then(|c| {
            c.import(&bundle.rootfs(), "docker.io/library/bench-true:latest")?;
            Ok(c)
        }) {
            Ok(c) => {
                let runc_root = c.dir.path().join("runc-root");
                let prog_in = bundle
                    .config()
                    .pointer("/process/args/0")
                    .and_then(|v| v.as_str())
                    .unwrap_or("/true")
                    .to_string();
                let mut runtimes: Vec<(String, Option<PathBuf>)> = vec![("runc".into(), None)];
                for &p in &platforms {
                    match c.wrapper(&bin, p) {
                        Ok(w) => runtimes.push((format!("ringfence {p}"), Some(w))),
                        Err(e) => eprintln!("wrapper: {e}"),
                    }
                }
                for (name, wrapper) in runtimes {
                    all.push(measure(format!("ctr run --rm, {name}"), n, |i| {
                        let id = format!("b-{}-{i}", name.replace(' ', "-"));
                        let mut args = vec!["run".to_string()];
                        if let Some(w) = &wrapper {
                            args.extend(["--runc-binary".into(), w.to_string_lossy().into_owned()]);
                        }
                        args.extend([
                            "--runc-root".into(),
                            runc_root.to_string_lossy().into_owned(),
                            "--rm".into(),
                            "docker.io/library/bench-true:latest".into(),
                            id,
                            prog_in.clone(),
                        ]);
                        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                        timed(|| c.ctr(&refs))
                    }));
                }
            }
            Err(e) => eprintln!("containerd series skipped: {e}"),
        }
    } else {
        eprintln!("containerd/ctr not installed: the ctr run series are skipped");
    }

    println!("| series | n | median | min | max | < {TARGET_MS} ms |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut failed = false;
    for s in &all {
        if let Some(e) = &s.error {
            failed = true;
            println!("| {} | - | failed: {e} | | | |", s.name);
            continue;
        }
        let mut v = s.ms.clone();
        v.sort_by(f64::total_cmp);
        let med = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        let verdict = if s.name.starts_with("ringfence create") {
            if med < TARGET_MS {
                "met"
            } else {
                "MISSED"
            }
        } else {
            ""
        };
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {verdict} |",
            s.name,
            v.len(),
            med,
            v[0],
            v[v.len() - 1]
        );
    }
    eprintln!("total bench time {:.0} s", started.elapsed().as_secs_f64());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
