//! The command line: runc's global flags and verbs.
//!
//! The verbs follow runc 1.1's names, flags and exit codes (1 on any
//! error), so that containerd's runc shim can drive `ringfence` as its
//! runtime binary. `sandbox-init` is internal: `create` re-executes the
//! binary with it to become the long-lived sandbox process.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logger::LogFormat;

/// Which platform runs the sentry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlatformKind {
    /// The sentry as a KVM guest kernel (PVM on these hosts).
    Kvm,
    /// The sentry in the sandbox process, application under PTRACE_SYSEMU.
    Ptrace,
}

impl PlatformKind {
    fn name(self) -> &'static str {
        match self {
            PlatformKind::Kvm => "kvm",
            PlatformKind::Ptrace => "ptrace",
        }
    }
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
    /// CPUs of the sandbox: KVM vCPUs or ptrace tracer threads (default:
    /// the host's CPUs, capped by the spec's CPU limit).
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub vcpus: Option<u32>,
    /// Accepted for runc compatibility and ignored: the sandbox has no host cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (true, false or auto) and ignored.
    #[arg(long, global = true, value_name = "VALUE")]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility and ignored: no checkpointing.
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    pub criu: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The global flags that matter to a sandbox process, to pass on when
    /// re-executing the binary (paths made absolute by the caller).
    pub fn global_args(&self, root: &std::path::Path) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["--root".into(), root.into()];
        if let Some(p) = self.platform {
            v.extend(["--platform".into(), p.name().into()]);
        }
        if self.debug {
            v.push("--debug".into());
        }
        if let Some(log) = &self.log {
            let abs = std::path::absolute(log).unwrap_or_else(|_| log.clone());
            v.extend(["--log".into(), abs.into()]);
        }
        let fmt = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        v.extend(["--log-format".into(), fmt.into()]);
        if let Some(m) = self.memory_mib {
            v.extend(["--memory-mib".into(), m.to_string().into()]);
        }
        if let Some(n) = self.vcpus {
            v.extend(["--vcpus".into(), n.to_string().into()]);
        }
        v
    }
}

/// The flags `create` and `run` share.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the OCI bundle (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the sandbox process's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the terminal's master fd (process.terminal).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility: there is no host pivot_root to skip.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: the sentry has no session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Accepted for runc compatibility and ignored (fds pass through stdio only).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container id.
    pub id: String,
}

/// Output format of `list` and `ps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container: start its sandbox process, which waits for `start`.
    Create(CreateArgs),
    /// Start the program of a created container.
    Start {
        /// The container id.
        id: String,
    },
    /// Create and start a container; without --detach, wait for it to exit.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container is started, leaving it running.
        #[arg(short, long)]
        detach: bool,
    },
    /// Send a signal to the container's init (or, with --all, every process).
    Kill {
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
        /// The container id.
        id: String,
        /// The signal: a name (TERM, SIGTERM, RTMIN+1) or a number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container's sandbox and state.
    Delete {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        /// The container id.
        id: String,
    },
    /// Print the state of a container as JSON.
    State {
        /// The container id.
        id: String,
    },
    /// List the containers under --root.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Print only the container ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Wait for a container to exit and print its exit status.
    Wait {
        /// The container id.
        id: String,
    },
    /// Show the host processes of a container.
    Ps {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// The container id.
        id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Suspend every process of a container.
    Pause {
        /// The container id.
        id: String,
    },
    /// Resume a paused container.
    Resume {
        /// The container id.
        id: String,
    },
    /// Run a new process in a running container.
    Exec {
        /// A process.json with the process to run.
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Allocate a terminal.
        #[arg(short, long)]
        tty: bool,
        /// Do not wait for the process.
        #[arg(short, long)]
        detach: bool,
        /// Write the process's pid to this file.
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Unix socket that receives the terminal's master fd.
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        /// Working directory.
        #[arg(long)]
        cwd: Option<String>,
        /// Environment variables, K=V.
        #[arg(short, long)]
        env: Vec<String>,
        /// UID[:GID].
        #[arg(short, long)]
        user: Option<String>,
        /// The container id.
        id: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print a container's resource statistics as JSON events: once with
    /// --stats, else every --interval until the container stops.
    Events {
        /// Print resource statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// Time between two stats events (Go duration: 500ms, 5s, 1m).
        #[arg(long, default_value = "5s")]
        interval: String,
        /// The container id.
        id: String,
    },
    /// Print the features this runtime supports, as JSON.
    Features,
    /// Run a host command sandboxed, without a bundle: the host's `/` read-only
    /// as the container root, the caller's cwd and environment.
    Do {
        /// Working directory inside the sandbox (default: the caller's).
        #[arg(long)]
        cwd: Option<String>,
        /// Environment entry K=V (repeatable); replaces the caller's environment.
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Write a default config.json, as `runc spec` does.
    Spec {
        /// Directory to write config.json into.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Internal: forward the signals of an `exec --tty` terminal (stderr).
    #[command(name = "tty-monitor", hide = true)]
    TtyMonitor {
        /// The container id.
        id: String,
    },
    /// Internal: run as the sandbox process of a container being created.
    #[command(name = "sandbox-init", hide = true)]
    SandboxInit {
        /// The bundle directory, absolute.
        #[arg(long)]
        bundle: PathBuf,
        /// The fd of the pipe on which to report readiness.
        #[arg(long = "ready-fd")]
        ready_fd: i32,
        /// Write the own pid to this file.
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// stdio is a terminal's slave side: make it the controlling terminal.
        #[arg(long)]
        console: bool,
        /// The container id.
        id: String,
    },
}
