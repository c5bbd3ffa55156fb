//! The command line: runc's global flags and verbs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::logger::LogFormat;

/// Which platform runs the sentry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlatformKind {
    /// The sentry as a KVM guest kernel (PVM on these hosts).
    Kvm,
    /// The sentry in the sandbox process, application under PTRACE_SYSEMU.
    Ptrace,
}

/// ringfence: an application-kernel sandbox and OCI runtime.
#[derive(Debug, Parser)]
#[command(name = "ringfence", version, about)]
pub struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/ringfence")]
    pub root: PathBuf,
    /// Platform that runs the sentry (default: kvm where /dev/kvm works, else ptrace).
    #[arg(long, global = true)]
    pub platform: Option<PlatformKind>,
    /// Log debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log line format.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Guest memory in MiB when the spec sets no memory limit.
    #[arg(long = "memory-mib", global = true)]
    pub memory_mib: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and run a container, waiting for it to exit.
    Run {
        /// Path to the OCI bundle (holds config.json).
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Write the sandbox process's pid to this file.
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// The container id.
        id: String,
    },
    /// Write a default config.json, as `runc spec` does.
    Spec {
        /// Directory to write config.json into.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
}
