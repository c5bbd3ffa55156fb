//! Compiling the C test programs in `c/` with the host's gcc.
//!
//! Each (source, link mode, extra flags) is compiled once per test process
//! into a private temporary directory, removed when the process exits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::{fs, io};

use crate::tmp::TempDir;

/// The hint printed when gcc or the static C library is missing.
const INSTALL_HINT: &str = "install gcc and the static C library: apt-get install gcc libc6-dev";

/// How a program is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// `gcc -static`: a fixed-address static executable.
    Static,
    /// `gcc -static-pie`: a static position-independent executable.
    StaticPie,
    /// Default gcc linking: a PIE with `PT_INTERP`, needing ld.so and
    /// shared libraries in the bundle (see [`crate::BundleBuilder`]).
    Dynamic,
}

impl Link {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Link::Static => &["-static"],
            Link::StaticPie => &["-static-pie"],
            Link::Dynamic => &[],
        }
    }
}

/// A compiled test program on the host.
#[derive(Clone, Debug)]
pub struct Program {
    /// The source name, `hello` for `c/hello.c`.
    pub name: String,
    /// How it was linked.
    pub link: Link,
    /// The executable (in the per-process cache; copy it, don't move it).
    pub path: PathBuf,
}

/// The directory holding the C sources.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c")
}

/// Compiles `c/NAME.c` with `-O1 -Wall -Werror` and the link mode's flags.
///
/// # Panics
/// If gcc is missing or the compilation fails; the message says why and how
/// to install the toolchain.
pub fn compile(name: &str, link: Link) -> Program {
    compile_with(name, link, &[])
}

/// Like [`compile`], with extra gcc flags.
pub fn compile_with(name: &str, link: Link, extra: &[&str]) -> Program {
    let mut flags: Vec<String> = link.flags().iter().map(|s| s.to_string()).collect();
    flags.extend(["-O1", "-Wall", "-Werror"].map(String::from));
    flags.extend(extra.iter().map(|s| s.to_string()));
    let key = format!("{name} {}", flags.join(" "));

    let cache = cache();
    let slot = {
        let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(entries.entry(key.clone()).or_default())
    };
    let result = slot.get_or_init(|| {
        let n = cache
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = cache.dir.path().join(format!("{name}-{n}"));
        gcc(name, &flags, &out).map(|()| out)
    });
    match result {
        Ok(path) => Program {
            name: name.to_string(),
            link,
            path: path.clone(),
        },
        Err(msg) => panic!("{msg}"),
    }
}

struct Cache {
    dir: TempDir,
    counter: std::sync::atomic::AtomicUsize,
    #[allow(clippy::type_complexity)]
    entries: Mutex<HashMap<String, Arc<OnceLock<Result<PathBuf, String>>>>>,
}

static CACHE: OnceLock<Cache> = OnceLock::new();

fn cache() -> &'static Cache {
    CACHE.get_or_init(|| {
        // SAFETY: `remove_cache` is an `extern "C" fn()` with no arguments,
        // as atexit requires; it only touches `CACHE`, which lives for the
        // whole process, and never unwinds (errors are ignored).
        unsafe { libc::atexit(remove_cache) };
        Cache {
            dir: TempDir::new("cc"),
            counter: Default::default(),
            entries: Mutex::default(),
        }
    })
}

/// Removes the compile cache at process exit (statics are never dropped).
extern "C" fn remove_cache() {
    if let Some(cache) = CACHE.get() {
        if crate::env_flag("RINGFENCE_TEST_KEEP") {
            eprintln!("RINGFENCE_TEST_KEEP: kept {}", cache.dir.path().display());
        } else {
            let _ = fs::remove_dir_all(cache.dir.path());
        }
    }
}

fn gcc(name: &str, flags: &[String], out: &Path) -> Result<(), String> {
    let src = c_dir().join(format!("{name}.c"));
    if !src.is_file() {
        return Err(format!("no C source {}", src.display()));
    }
    let mut cmd = Command::new("gcc");
    cmd.args(flags).arg("-o").arg(out).arg(&src);
    let shown = format!(
        "gcc {} -o {} {}",
        flags.join(" "),
        out.display(),
        src.display()
    );
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("gcc not found: {INSTALL_HINT}"));
        }
        Err(e) => return Err(format!("cannot run gcc: {e}; {INSTALL_HINT}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("cannot find -lc") || stderr.contains("No such file") {
            format!("\n(looks like a missing C library or headers: {INSTALL_HINT})")
        } else {
            String::new()
        };
        return Err(format!(
            "compiling {name}.c failed ({}):\n$ {shown}\n{stderr}{hint}",
            output.status
        ));
    }
    Ok(())
}
