//! The platforms each test runs on.
//!
//! To add a platform: add a variant to [`Platform`] with its name in
//! [`Platform::name`] and [`Platform::ALL`], say in [`Platform::unavailable`]
//! when it cannot run on a machine, and, once it works, add its name to
//! [`DEFAULT_PLATFORMS`]. `RINGFENCE_TEST_PLATFORMS=ptrace,kvm` selects
//! platforms without changing the default.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// The platforms tested when `RINGFENCE_TEST_PLATFORMS` is unset.
///
/// Make this `"ptrace,kvm"` when the KVM platform runs programs.
pub const DEFAULT_PLATFORMS: &str = "ptrace,kvm";

/// The environment variable with the comma-separated platform list.
pub const PLATFORMS_ENV: &str = "RINGFENCE_TEST_PLATFORMS";

/// A ringfence platform, as named by `ringfence --platform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    /// The sentry on the host, catching syscalls with `PTRACE_SYSEMU`.
    Ptrace,
    /// The sentry as the ring-0 guest of a KVM virtual machine.
    Kvm,
}

impl Platform {
    /// Every platform the harness knows.
    pub const ALL: &'static [Platform] = &[Platform::Ptrace, Platform::Kvm];

    /// The name passed to `--platform`.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Ptrace => "ptrace",
            Platform::Kvm => "kvm",
        }
    }

    /// Parses a platform name.
    pub fn parse(name: &str) -> Option<Platform> {
        Platform::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// Why this platform cannot run on this machine, if it cannot.
    pub fn unavailable(self) -> Option<String> {
        match self {
            Platform::Ptrace => None,
            Platform::Kvm if !Path::new("/dev/kvm").exists() => Some("/dev/kvm absent".into()),
            Platform::Kvm => None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The requested platforms that can run here. Requested ones that cannot run
/// are reported on stderr as `SKIPPED <name>: <reason>`.
///
/// # Panics
/// If `RINGFENCE_TEST_PLATFORMS` names an unknown platform or no platform.
pub fn platforms() -> Vec<Platform> {
    let list = std::env::var(PLATFORMS_ENV).unwrap_or_else(|_| DEFAULT_PLATFORMS.to_string());
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(p) = Platform::parse(name) else {
            let known: Vec<_> = Platform::ALL.iter().map(|p| p.name()).collect();
            panic!(
                "unknown platform {name:?} in {PLATFORMS_ENV}={list:?}; known: {}",
                known.join(", ")
            );
        };
        if out.contains(&p) {
            continue;
        }
        match p.unavailable() {
            Some(why) => eprintln!("SKIPPED {p}: {why}"),
            None => out.push(p),
        }
    }
    let requested = list.split(',').any(|s| !s.trim().is_empty());
    assert!(requested, "{PLATFORMS_ENV}={list:?} names no platform");
    out
}

/// Runs `test` once per platform from [`platforms`]. A failure on one
/// platform does not stop the others; the test fails at the end, naming every
/// platform that failed (each failure's own message is printed as it
/// happens).
pub fn for_each_platform(test: impl Fn(Platform)) {
    let platforms = platforms();
    if platforms.is_empty() {
        eprintln!("SKIPPED: no requested platform can run on this machine");
        return;
    }
    let mut failed = Vec::new();
    for p in platforms {
        eprintln!("--- platform {p}");
        if catch_unwind(AssertUnwindSafe(|| test(p))).is_err() {
            failed.push(p.name());
        }
    }
    assert!(
        failed.is_empty(),
        "failed on platform(s): {}",
        failed.join(", ")
    );
}
