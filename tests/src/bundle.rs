//! OCI bundles: a temporary directory with `rootfs/` and `config.json`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::cc::{Link, Program};
use crate::platform::Platform;
use crate::run::{Ringfence, RunOutput};
use crate::tmp::TempDir;

/// Where the program goes inside the container unless told otherwise.
pub const DEFAULT_PROG_PATH: &str = "/bin/prog";

/// The environment given to the program unless told otherwise.
pub const DEFAULT_ENV: &[&str] = &["PATH=/usr/local/bin:/usr/bin:/bin"];

/// One `process.rlimits` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// `RLIMIT_NOFILE` and so on.
    pub kind: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Builds a [`Bundle`]. Start with [`Bundle::builder`].
#[derive(Debug)]
pub struct BundleBuilder {
    program: Option<Program>,
    prog_path: String,
    argv: Option<Vec<String>>,
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    hostname: String,
    uid: u32,
    gid: u32,
    rlimits: Vec<Rlimit>,
    readonly: bool,
    files: Vec<(String, Vec<u8>, u32)>,
    dirs: Vec<String>,
}

/// A bundle directory on the host: `rootfs/` and `config.json`.
#[derive(Debug)]
pub struct Bundle {
    dir: TempDir,
    config: Value,
}

impl Bundle {
    /// A builder for a bundle running `program` as `/bin/prog` with no
    /// arguments, [`DEFAULT_ENV`], cwd `/`, hostname `ringfence`, uid/gid 0,
    /// `RLIMIT_NOFILE` 1024/1024 and a read-only root.
    pub fn builder(program: &Program) -> BundleBuilder {
        BundleBuilder {
            program: Some(program.clone()),
            ..BundleBuilder::empty()
        }
    }

    /// The bundle directory (what `--bundle` gets).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host directory that is the container's root.
    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    /// `config.json` on the host.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.json")
    }

    /// The config as written.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Replaces the config and rewrites `config.json`.
    pub fn set_config(&mut self, config: Value) {
        self.config = config;
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config.json");
        write(&self.config_path(), text.as_bytes(), 0o644);
    }

    /// Overwrites `config.json` with arbitrary bytes (for malformed-input
    /// tests). [`Bundle::config`] keeps the last valid config.
    pub fn write_raw_config(&self, text: &str) {
        write(&self.config_path(), text.as_bytes(), 0o644);
    }

    /// Deletes `config.json`.
    pub fn remove_config(&self) {
        fs::remove_file(self.config_path()).expect("remove config.json");
    }

    /// Runs the bundle through `ringfence run` on `platform`, with a fresh
    /// private `--root`.
    pub fn run(&self, platform: Platform) -> RunOutput {
        Ringfence::new(platform).run(self, "rf-test")
    }

    /// Runs the program natively, as close to the container as the host
    /// allows: the executable `rootfs/<args[0]>` with `argv[0] = args[0]`,
    /// exactly `process.env`, cwd `rootfs/<cwd>`, the spec's rlimits,
    /// `RLIMIT_CORE` 0, and (when running as root) the spec's uid/gid. The
    /// hostname and pids are the host's.
    pub fn run_native(&self) -> RunOutput {
        let process = &self.config["process"];
        let argv: Vec<String> = strings(&process["args"]);
        let env: Vec<String> = strings(&process["env"]);
        let first = argv.first().expect("process.args is empty");
        assert!(
            first.starts_with('/'),
            "run_native needs an absolute args[0], got {first:?}"
        );
        let exe = inside(&self.rootfs(), first);
        let cwd = inside(&self.rootfs(), process["cwd"].as_str().unwrap_or("/"));

        let mut cmd = Command::new(&exe);
        std::os::unix::process::CommandExt::arg0(&mut cmd, first);
        cmd.args(&argv[1..]).env_clear().current_dir(&cwd);
        for kv in &env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            cmd.env(k, v);
        }
        let mut limits: Vec<(u32, libc::rlimit)> = vec![(
            libc::RLIMIT_CORE,
            libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            },
        )];
        for r in process["rlimits"].as_array().into_iter().flatten() {
            let kind = r["type"].as_str().unwrap_or_default();
            let resource = rlimit_resource(kind)
                .unwrap_or_else(|| panic!("run_native: unknown rlimit type {kind:?}"));
            limits.push((
                resource,
                libc::rlimit {
                    rlim_cur: r["soft"].as_u64().unwrap_or(0),
                    rlim_max: r["hard"].as_u64().unwrap_or(0),
                },
            ));
        }
        // SAFETY: geteuid has no preconditions.
        let as_root = unsafe { libc::geteuid() } == 0;
        let ids = as_root.then(|| {
            let uid = process["user"]["uid"].as_u64().unwrap_or(0);
            let gid = process["user"]["gid"].as_u64().unwrap_or(0);
            (
                u32::try_from(uid).expect("uid fits u32"),
                u32::try_from(gid).expect("gid fits u32"),
            )
        });
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (setrlimit, setgroups, setgid,
        // setuid) on data prepared before the fork; it allocates nothing.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                for (resource, limit) in &limits {
                    if libc::setrlimit(*resource, limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some((uid, gid)) = ids {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        crate::run::run_with_timeout(cmd, format!("native {}", exe.display()), None)
    }
}

impl BundleBuilder {
    /// A builder with no program at all (for bad-input tests); add files
    /// with [`BundleBuilder::file`] and point `args` at them.
    pub fn empty() -> BundleBuilder {
        BundleBuilder {
            program: None,
            prog_path: DEFAULT_PROG_PATH.to_string(),
            argv: None,
            args: Vec::new(),
            env: DEFAULT_ENV.iter().map(|s| s.to_string()).collect(),
            cwd: "/".to_string(),
            hostname: "ringfence".to_string(),
            uid: 0,
            gid: 0,
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                soft: 1024,
                hard: 1024,
            }],
            readonly: true,
            files: Vec::new(),
            dirs: Vec::new(),
        }
    }

    /// Where the program goes inside the container (default `/bin/prog`).
    pub fn prog_path(mut self, path: &str) -> Self {
        self.prog_path = path.to_string();
        self
    }

    /// Arguments after `argv[0]` (which is the program's path).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The whole `process.args`, `argv[0]` included; overrides
    /// [`BundleBuilder::args`].
    pub fn argv<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// `process.env`, `KEY=VALUE` strings.
    pub fn env<I, S>(mut self, env: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.env = env.into_iter().map(Into::into).collect();
        self
    }

    /// `process.cwd`; the directory is created in the rootfs.
    pub fn cwd(mut self, cwd: &str) -> Self {
        self.cwd = cwd.to_string();
        self
    }

    /// `hostname`.
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.to_string();
        self
    }

    /// `process.user.uid` and `gid`.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Sets (or replaces) one `process.rlimits` entry.
    pub fn rlimit(mut self, kind: &str, soft: u64, hard: u64) -> Self {
        self.rlimits.retain(|r| r.kind != kind);
        self.rlimits.push(Rlimit {
            kind: kind.to_string(),
            soft,
            hard,
        });
        self
    }

    /// `root.readonly` (default true).
    pub fn readonly(mut self, readonly: bool) -> Self {
        self.readonly = readonly;
        self
    }

    /// A regular file (mode 0644) in the rootfs; parents are created.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_string(), contents.into(), 0o644));
        self
    }

    /// An executable file (mode 0755) in the rootfs.
    pub fn executable(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_string(), contents.into(), 0o755));
        self
    }

    /// A directory in the rootfs.
    pub fn dir(mut self, path: &str) -> Self {
        self.dirs.push(path.to_string());
        self
    }

    /// Creates the bundle directory, fills `rootfs/` and writes `config.json`.
    pub fn build(self) -> Bundle {
        let dir = TempDir::new("bundle");
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).expect("create rootfs");
        for d in ["bin", "dev", "proc", "tmp", "etc"] {
            fs::create_dir(rootfs.join(d)).expect("create rootfs dir");
        }
        if let Some(program) = &self.program {
            let bytes = fs::read(&program.path).expect("read compiled program");
            write(&inside(&rootfs, &self.prog_path), &bytes, 0o755);
            if program.link == Link::Dynamic {
                copy_shared_libraries(&program.path, &rootfs);
            }
        }
        for d in &self.dirs {
            fs::create_dir_all(inside(&rootfs, d)).expect("create dir in rootfs");
        }
        fs::create_dir_all(inside(&rootfs, &self.cwd)).expect("create cwd in rootfs");
        for (path, contents, mode) in &self.files {
            write(&inside(&rootfs, path), contents, *mode);
        }

        let argv = self.argv.clone().unwrap_or_else(|| {
            std::iter::once(self.prog_path.clone())
                .chain(self.args.iter().cloned())
                .collect()
        });
        let rlimits: Vec<Value> = self
            .rlimits
            .iter()
            .map(|r| json!({"type": r.kind, "hard": r.hard, "soft": r.soft}))
            .collect();
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": self.uid, "gid": self.gid},
                "args": argv,
                "env": self.env,
                "cwd": self.cwd,
                "rlimits": rlimits,
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": self.readonly},
            "hostname": self.hostname,
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {
                    "destination": "/dev",
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]
                }
            ],
            "linux": {
                "namespaces": [
                    {"type": "pid"},
                    {"type": "ipc"},
                    {"type": "uts"},
                    {"type": "mount"},
                    {"type": "network"}
                ]
            }
        });
        let mut bundle = Bundle { dir, config };
        let config = bundle.config.clone();
        bundle.set_config(config);
        bundle
    }
}

/// `path` (absolute, inside the container) as a host path under `rootfs`.
///
/// # Panics
/// If `path` has `..` components.
pub fn inside(rootfs: &Path, path: &str) -> PathBuf {
    let mut out = rootfs.to_path_buf();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                panic!("path {path:?} must not leave the rootfs")
            }
        }
    }
    out
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn rlimit_resource(kind: &str) -> Option<u32> {
    Some(match kind {
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        _ => return None,
    })
}

/// Copies the dynamic loader and shared libraries `ldd` lists for `exe`
/// into `rootfs` at the same paths.
fn copy_shared_libraries(exe: &Path, rootfs: &Path) {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ldd: {e}"));
    assert!(
        out.status.success(),
        "ldd {} failed: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no path.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        write(&inside(rootfs, path), &bytes, 0o755);
    }
}
