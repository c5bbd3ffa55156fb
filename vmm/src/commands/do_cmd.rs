//! `ringfence do [--cwd DIR] [--env K=V]... -- CMD ARGS...`: run a host
//! command in a sandbox without a bundle. The container root is the host's
//! `/`, served read-only; the command sees the caller's working directory
//! and environment unless told otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use resources::{Rlimit, RlimitResource, SandboxSpec};

use crate::cli::Cli;
use crate::{sandbox, CliError};

/// Build the spec of a `do` sandbox.
fn spec(cwd: Option<&str>, env: &[String], command: &[String]) -> Result<SandboxSpec, CliError> {
    let cwd = match cwd {
        Some(c) => c.to_string(),
        None => std::env::current_dir()
            .map_err(|e| CliError::Io(format!("cannot read the current directory: {e}")))?
            .to_string_lossy()
            .into_owned(),
    };
    if !cwd.starts_with('/') {
        return Err(CliError::Io(format!(
            "--cwd {cwd}: must be an absolute path"
        )));
    }
    let env: Vec<String> = if env.is_empty() {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                Some(format!(
                    "{}={}",
                    k.into_string().ok()?,
                    v.into_string().ok()?
                ))
            })
            .collect()
    } else {
        for e in env {
            if !e.contains('=') || e.starts_with('=') {
                return Err(CliError::Io(format!("--env {e}: expected K=V")));
            }
        }
        env.to_vec()
    };
    if command.iter().any(|a| a.contains('\0')) {
        return Err(CliError::Io("the command contains a NUL byte".into()));
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= resources::MAX_HOSTNAME_LEN)
        .unwrap_or_else(|| resources::DEFAULT_HOSTNAME.to_string());
    let (uid, gid) = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    Ok(SandboxSpec {
        args: command.to_vec(),
        env,
        cwd,
        hostname,
        uid,
        gid,
        additional_gids: Vec::new(),
        rlimits: vec![Rlimit {
            resource: RlimitResource::Nofile,
            soft: 1024,
            hard: 4096,
        }],
        root: PathBuf::from("/"),
        // The host's files are never written: the sandbox's overlay takes
        // the writes, as `do` promises.
        root_readonly: false,
        terminal: false,
        memory_limit_bytes: None,
        cpu_limit: None,
        mounts: Vec::new(),
        annotations: Default::default(),
    })
}

/// Run the command to completion; its exit status is ours.
pub fn run(
    cli: &Arc<Cli>,
    cwd: Option<&str>,
    env: &[String],
    command: &[String],
) -> Result<u8, CliError> {
    let spec = spec(cwd, env, command)?;
    let status = sandbox::run(cli, &spec, &sandbox::SignalPort::default())?;
    sandbox::report(&status);
    Ok(status.code() as u8)
}
