//! The sandbox builder: pick a platform, hand it the container, run the sentry.

use std::os::fd::AsFd;

use guest_kernel::{BootParams, ExitStatus};
use log::{info, warn};
use resources::SandboxSpec;

use crate::cli::{Cli, PlatformKind};

/// Guest memory when neither the spec nor the command line sets it.
pub const DEFAULT_MEMORY_BYTES: u64 = 512 << 20;

/// Failures to build a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot serve the container root {path}: {source}")]
    Root { path: std::path::PathBuf, source: std::io::Error },
    #[error("ptrace platform: {0}")]
    Ptrace(#[from] ptrace_fallback::PtraceError),
    #[error("the kvm platform is not available yet; use --platform ptrace")]
    KvmUnavailable,
}

/// What the sentry needs to boot the container's init.
pub fn boot_params(spec: &SandboxSpec, debug: bool) -> BootParams {
    BootParams {
        args: spec.args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: spec.env.iter().map(|e| e.as_bytes().to_vec()).collect(),
        cwd: spec.cwd.as_bytes().to_vec(),
        hostname: spec.hostname.as_bytes().to_vec(),
        uid: spec.uid,
        gid: spec.gid,
        rlimits: spec.rlimits.iter().map(|r| (r.resource.linux_number(), r.soft, r.hard)).collect(),
        log_level: if debug { 4 } else { 2 },
    }
}

/// Guest memory for `spec`.
pub fn memory_bytes(cli: &Cli, spec: &SandboxSpec) -> u64 {
    spec.memory_limit_bytes.or(cli.memory_mib.map(|m| m << 20)).unwrap_or(DEFAULT_MEMORY_BYTES)
}

/// Run the container's init to completion on the chosen platform.
pub fn run(cli: &Cli, spec: &SandboxSpec) -> Result<ExitStatus, SandboxError> {
    let kind = cli.platform.unwrap_or(PlatformKind::Ptrace);
    let params = boot_params(spec, cli.debug);
    let mem = memory_bytes(cli, spec);
    info!("platform {kind:?}, {} MiB of memory", mem >> 20);
    match kind {
        PlatformKind::Ptrace => {
            let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
            let host = devices::HostServices::new(&spec.root, [i.as_fd(), o.as_fd(), e.as_fd()])
                .map_err(|source| SandboxError::Root { path: spec.root.clone(), source })?;
            let plat = ptrace_fallback::PtracePlatform::new(mem, host)?;
            Ok(guest_kernel::run(&plat, params))
        }
        PlatformKind::Kvm => Err(SandboxError::KvmUnavailable),
    }
}

/// Tell the user why a container did not run its program.
pub fn report(status: &ExitStatus) {
    match status {
        ExitStatus::ExecFailed { path, errno, reason } => {
            let os = std::io::Error::from_raw_os_error(errno.0);
            let why = if reason.is_empty() { os.to_string() } else { format!("{reason} ({os})") };
            eprintln!("ringfence: exec \"{}\": {why}", String::from_utf8_lossy(path));
        }
        ExitStatus::PlatformFailed(msg) => eprintln!("ringfence: sandbox failed: {msg}"),
        ExitStatus::Signaled(sig) => warn!("container init killed by signal {sig}"),
        ExitStatus::Exited(_) => {}
    }
}
