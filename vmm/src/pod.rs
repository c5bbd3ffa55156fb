//! Pods: several containers in one sandbox.
//!
//! A `create` whose bundle says (CRI's annotations) that it is a
//! `container` of the sandbox `io.kubernetes.cri.sandbox-id` brings up no
//! new platform. Its sandbox-init process becomes a small *member*: it
//! owns the new container's state directory, control socket and stdio,
//! while the sandbox process (the one that owns the VM or the ptrace
//! stubs) serves its root filesystem as one more confined root
//! (`add-container`) and runs its processes in the same sentry, under an
//! overlay of their own. The member forwards `start` (an `exec` of the
//! container's process in its root), `exec` and signals to the sandbox
//! over its control socket, tagged with the container's number.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use guest_kernel::platform::HostSignal;
use guest_kernel::ExitStatus;
use log::{debug, warn};
use resources::state::Status;
use resources::SandboxSpec;

use crate::container::Container;
use crate::control::{self, ControlError, Request};
use crate::sandbox::{ExecSpec, SignalPort};

/// CRI's annotation naming the pod's sandbox container.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// CRI's annotation: `sandbox` (owns the pod) or `container` (joins it).
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// A container that joined another's sandbox.
#[derive(Debug, Clone)]
pub struct Member {
    /// The sandbox container's id and control socket.
    pub sandbox_id: String,
    pub socket: PathBuf,
    /// The number the sandbox gave this container's root.
    pub container: u32,
}

/// Failures to join a pod.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("annotation {CONTAINER_TYPE}=container needs {SANDBOX_ID}")]
    NoSandboxId,
    #[error("pod sandbox \"{0}\" does not exist")]
    NoSandbox(String),
    #[error("pod sandbox \"{id}\" is {status}: a container can join only a running sandbox")]
    NotRunning { id: String, status: Status },
    #[error("pod sandbox \"{0}\" is itself a container of another sandbox")]
    Nested(String),
    #[error("root filesystem {0} is not a directory")]
    Rootfs(PathBuf),
    #[error("cannot load pod sandbox \"{id}\": {source}")]
    Load {
        id: String,
        source: crate::container::ContainerError,
    },
    #[error("pod sandbox \"{id}\" refused the container: {source}")]
    Join { id: String, source: ControlError },
}

/// The sandbox id this spec's container joins, if it is a pod's container
/// (`container-type: container`); a `sandbox` or no annotation owns one.
pub fn sandbox_of(annotations: &std::collections::BTreeMap<String, String>) -> Option<&str> {
    match annotations.get(CONTAINER_TYPE).map(String::as_str) {
        Some("container") => Some(
            annotations
                .get(SANDBOX_ID)
                .map(String::as_str)
                .unwrap_or(""),
        ),
        _ => None,
    }
}

/// Join container `id` (with `spec`) to the sandbox it names: the sandbox
/// must run and serve its root. `root` is the `--root` state directory.
pub fn join(root: &Path, id: &str, spec: &SandboxSpec) -> Result<Option<Member>, PodError> {
    let Some(sandbox_id) = sandbox_of(&spec.annotations) else {
        return Ok(None);
    };
    if sandbox_id.is_empty() {
        return Err(PodError::NoSandboxId);
    }
    let sandbox = match Container::load(root, sandbox_id) {
        Ok(c) => c,
        Err(crate::container::ContainerError::NotFound(_)) => {
            return Err(PodError::NoSandbox(sandbox_id.into()))
        }
        Err(source) => {
            return Err(PodError::Load {
                id: sandbox_id.into(),
                source,
            })
        }
    };
    if sandbox_of(&sandbox.state.annotations).is_some() {
        return Err(PodError::Nested(sandbox_id.into()));
    }
    if sandbox.state.status != Status::Running {
        return Err(PodError::NotRunning {
            id: sandbox_id.into(),
            status: sandbox.state.status,
        });
    }
    if !spec.root.is_dir() {
        return Err(PodError::Rootfs(spec.root.clone()));
    }
    if !spec.mounts.iter().all(|m| m.typ.as_deref() != Some("bind")) {
        warn!("container {id}: bind mounts of a pod's container are not served yet; ignored");
    }
    let socket = sandbox.dir.socket();
    let resp = control::call(
        sandbox_id,
        &socket,
        &Request::AddContainer {
            id: id.into(),
            rootfs: spec.root.clone(),
        },
        Some(control::REPLY_TIMEOUT),
    )
    .map_err(|source| PodError::Join {
        id: sandbox_id.into(),
        source,
    })?;
    let container = resp.container.ok_or_else(|| PodError::Join {
        id: sandbox_id.into(),
        source: ControlError::Refused("no container number in the answer".into()),
    })?;
    debug!("container {id} joined pod sandbox {sandbox_id} as container {container}");
    Ok(Some(Member {
        sandbox_id: sandbox_id.into(),
        socket,
        container,
    }))
}

/// Ids of processes `exec`'d through a member (its own numbering).
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// The status the sandbox answered for a process, or what happened to it:
/// a sandbox that went away (deleted with its pod) killed it.
fn status_of(m: &Member, result: Result<control::Response, ControlError>) -> i32 {
    match result {
        Ok(resp) => resp.status.unwrap_or(255),
        Err(ControlError::Refused(msg)) => {
            warn!("pod sandbox {}: {msg}", m.sandbox_id);
            eprintln!("ringfence: {msg}");
            255
        }
        Err(e) => {
            debug!("pod sandbox {} is gone: {e}", m.sandbox_id);
            128 + libc::SIGKILL
        }
    }
}

/// `exec` of `spec` in the member's container, through the sandbox;
/// waits for its end (`None`: for ever).
fn exec_in(m: &Member, spec: ExecSpec) -> i32 {
    let req = Request::Exec {
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        uid: spec.uid,
        gid: spec.gid,
        detach: false,
        container: Some(m.container),
    };
    let fds = spec.stdio.each_ref().map(|f| f.as_raw_fd());
    status_of(
        m,
        control::call_with_fds(&m.sandbox_id, &m.socket, &req, &fds, None),
    )
}

/// Makes `port` forward to the member's sandbox: `exec` (each on its own
/// thread, its status to the port's exit sink) and signals.
pub fn attach(port: &SignalPort, m: &Member) {
    let member = m.clone();
    let sink = port.exit_sink();
    port.attach_exec(Box::new(move |spec| {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (m, sink) = (member.clone(), sink.clone());
        std::thread::Builder::new()
            .name("pod-exec".into())
            .spawn(move || sink(id, exec_in(&m, spec)))
            .map_err(|e| format!("cannot start a pod-exec thread: {e}"))?;
        Ok(id)
    }));
    let member = m.clone();
    port.attach(
        Box::new(move |sig: HostSignal| {
            // One from the member's own terminal goes to the foreground
            // group of the container's first process's session.
            let foreground = sig.pid == HostSignal::FOREGROUND;
            let pid = (sig.pid > 0 && !sig.pgrp).then_some(sig.pid);
            let pgid = (sig.pid > 0 && sig.pgrp).then_some(sig.pid);
            let req = Request::Signal {
                signal: sig.sig,
                all: sig.all,
                pid,
                pgid,
                container: Some(member.container),
                exec: None,
                foreground,
            };
            let r = control::call(
                &member.sandbox_id,
                &member.socket,
                &req,
                Some(SIGNAL_TIMEOUT),
            );
            if let Err(e) = r {
                warn!("signal {} for the pod's container: {e}", sig.sig);
            }
        }),
        Box::new(NoPause),
    );
}

/// How long forwarding a signal may take.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);

/// A member pauses with its sandbox, not alone: the server refuses.
struct NoPause;

impl crate::sandbox::Pause for NoPause {
    fn pause(&self, _wait: bool) -> bool {
        false
    }
    fn resume(&self) {}
}

/// Start the member's container process (`start`) in the sandbox: a
/// detached `exec`, answered once the sandbox has queued it for the
/// sentry; the sandbox's id of it, for [`wait`].
pub fn start(m: &Member, spec: &SandboxSpec) -> Result<u32, String> {
    let dup = |fd: std::os::fd::BorrowedFd<'_>| -> Result<OwnedFd, String> {
        fd.try_clone_to_owned()
            .map_err(|e| format!("cannot pass stdio: {e}"))
    };
    use std::os::fd::AsFd;
    let stdio = [
        dup(std::io::stdin().as_fd())?,
        dup(std::io::stdout().as_fd())?,
        dup(std::io::stderr().as_fd())?,
    ];
    let req = Request::Exec {
        args: spec.args.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        uid: spec.uid,
        gid: spec.gid,
        detach: true,
        container: Some(m.container),
    };
    let fds = stdio.each_ref().map(|f| f.as_raw_fd());
    let resp = control::call_with_fds(
        &m.sandbox_id,
        &m.socket,
        &req,
        &fds,
        Some(control::REPLY_TIMEOUT),
    )
    .map_err(|e| format!("pod sandbox {}: {e}", m.sandbox_id))?;
    resp.id
        .ok_or_else(|| format!("pod sandbox {}: no process id in the answer", m.sandbox_id))
}

/// Wait for the end of the member's process `id` (from [`start`]); the
/// connection stays open meanwhile, and its closing early (the member
/// killed) makes the sandbox kill the container's processes.
pub fn wait(m: &Member, id: u32) -> ExitStatus {
    let req = Request::WaitPid {
        id: Some(id),
        pid: None,
    };
    match status_of(m, control::call(&m.sandbox_id, &m.socket, &req, None)) {
        c if c > 128 => ExitStatus::Signaled(c - 128),
        c => ExitStatus::Exited(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_container_type_container_joins_a_sandbox() {
        let ann = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(sandbox_of(&ann(&[])), None);
        assert_eq!(
            sandbox_of(&ann(&[(CONTAINER_TYPE, "sandbox"), (SANDBOX_ID, "p")])),
            None
        );
        assert_eq!(sandbox_of(&ann(&[(SANDBOX_ID, "p")])), None);
        assert_eq!(
            sandbox_of(&ann(&[(CONTAINER_TYPE, "container"), (SANDBOX_ID, "p")])),
            Some("p")
        );
        // Named nothing: `join` refuses it.
        assert_eq!(sandbox_of(&ann(&[(CONTAINER_TYPE, "container")])), Some(""));
    }
}
