//! Test harness for ringfence's integration tests.
//!
//! The tests in `tests/` compile the C programs in `c/` with the host's gcc
//! (statically by default), put them in a temporary OCI bundle, run them
//! through the real `ringfence` binary on every requested platform, and
//! compare stdout, stderr and exit status with exact expectations and, where
//! the behaviour is comparable, with the same program run natively.
//!
//! The pieces:
//! - [`platform`]: which platforms to test (`RINGFENCE_TEST_PLATFORMS`) and
//!   [`for_each_platform`], the loop every test runs in.
//! - [`cc`]: compiling `c/NAME.c`, cached per test process.
//! - [`bundle`]: building a bundle directory (`rootfs/` plus `config.json`).
//! - [`run`]: running `ringfence` (or the program natively) with a timeout,
//!   and [`RunOutput`], the captured result with assertion helpers.
//!
//! Environment variables (all optional):
//! - `RINGFENCE_BIN`: the `ringfence` binary to test (default:
//!   `target/<profile>/ringfence`, built first with `cargo build -p vmm`
//!   when running under cargo; see [`ringfence_bin`]).
//! - `RINGFENCE_TEST_NO_BUILD`: if set, don't run that `cargo build`.
//! - `RINGFENCE_TEST_PLATFORMS`: comma-separated platforms (default
//!   [`DEFAULT_PLATFORMS`]).
//! - `RINGFENCE_TEST_TIMEOUT`: seconds before a run is killed (default 60).
//! - `RINGFENCE_TEST_DEBUG`: if set (non-empty, not `0`), pass `--debug`.
//! - `RINGFENCE_TEST_KEEP`: if set, keep temporary directories and print
//!   where they are.

pub mod bundle;
pub mod cc;
pub mod platform;
pub mod run;
mod tmp;

pub use bundle::{Bundle, BundleBuilder};
pub use cc::{compile, Link, Program};
pub use platform::{for_each_platform, platforms, Platform, DEFAULT_PLATFORMS};
pub use run::{ringfence_bin, ringfence_in, Exit, Ringfence, RunOutput};
pub use tmp::TempDir;

/// Whether an environment variable is set to something other than empty or
/// `0`.
pub(crate) fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The numbers on the last line of a `--debug` log that has `label` (the
/// sentry's "sentry exit: ", "file reads: " lines), in order, read from
/// just after the label. Panics, with the log, if no line has it.
pub fn log_numbers(log: &str, label: &str) -> Vec<u64> {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.split(label).nth(1))
        .unwrap_or_else(|| panic!("no {label:?} line in the log:\n{log}"));
    line.split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect()
}

/// Wait (at most 200 ms) until no live `ringfence` process is left: on KVM a
/// finished sandbox leaves a short-lived child that closes the VM (see
/// `vcpu::KvmVm::close_detached`); a benchmark's next sample must not run
/// beside it.
pub fn settle() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    while std::time::Instant::now() < deadline && ringfence_processes() > 0 {
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
}

/// Live (not zombie) processes named `ringfence` now: `/proc/PID/stat`
/// is "PID (comm) STATE ...".
fn ringfence_processes() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                s.split_once(" (ringfence) ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            })
        })
        .count()
}
