//! `create`, `run` and the internal `sandbox-init`: bringing up a sandbox
//! process.
//!
//! `create` claims `<root>/<id>`, takes its lock and re-executes this
//! binary as `ringfence sandbox-init`, which detaches (`setsid`), keeps the
//! caller's stdio for the container, sets the sandbox up and reports
//! `ok` or `error: MESSAGE` on a pipe. `create` returns once that line has
//! come: the container is `created`, or it failed and nothing is left.
//! `run` without `--detach` is the same sandbox served in this process.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use log::debug;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use resources::SandboxSpec;

use crate::cli::{Cli, CreateArgs};
use crate::container::StateDir;
use crate::server::Server;
use crate::CliError;

/// Logs, at debug level, the runc flags that have no effect here.
pub fn note_ignored_flags(cli: &Cli, args: Option<&CreateArgs>) {
    if cli.systemd_cgroup {
        debug!("ignoring --systemd-cgroup: the sandbox uses no host cgroups");
    }
    if let Some(v) = &cli.rootless {
        debug!("ignoring --rootless {v}: it changes nothing for a sandbox");
    }
    if cli.criu.is_some() {
        debug!("ignoring --criu: checkpointing is not supported");
    }
    if let Some(a) = args {
        if a.no_pivot {
            debug!("ignoring --no-pivot: the sentry serves the root, there is no pivot_root");
        }
        if a.no_new_keyring {
            debug!("ignoring --no-new-keyring: the sentry has no session keyring");
        }
        if a.preserve_fds > 0 {
            debug!(
                "ignoring --preserve-fds {}: not supported yet",
                a.preserve_fds
            );
        }
    }
}

/// Validates the id, resolves the bundle and loads its config.
fn load(args: &CreateArgs) -> Result<(PathBuf, SandboxSpec), CliError> {
    resources::validate_container_id(&args.id)?;
    let bundle = fs::canonicalize(&args.bundle)
        .map_err(|e| CliError::Io(format!("bundle {}: {e}", args.bundle.display())))?;
    let spec = resources::load_bundle(&bundle)?;
    match (&args.console_socket, spec.terminal) {
        (Some(_), false) => {
            return Err(CliError::Io(
                "cannot use a console socket when process.terminal is false".into(),
            ))
        }
        (None, true) => {
            return Err(CliError::Io(
                "process.terminal is true: a --console-socket is required".into(),
            ))
        }
        (Some(_), true) | (None, false) => {}
    }
    Ok((bundle, spec))
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(p).map_err(|e| CliError::Io(format!("{}: {e}", p.display())))
}

/// `ringfence create`.
pub fn create(cli: &Cli, args: &CreateArgs) -> Result<u8, CliError> {
    note_ignored_flags(cli, Some(args));
    let (bundle, _spec) = load(args)?;
    let root = absolute(&cli.root)?;
    let dir = StateDir::create(&root, &args.id)?;
    let result = (|| {
        let _lock = dir.lock()?;
        spawn_sandbox(cli, &root, &bundle, args)
    })();
    if result.is_err() {
        if let Err(e) = dir.remove() {
            log::error!("{e}");
        }
    }
    result.map(|()| 0)
}

/// Starts `ringfence sandbox-init` and waits for its readiness line.
fn spawn_sandbox(cli: &Cli, root: &Path, bundle: &Path, args: &CreateArgs) -> Result<(), CliError> {
    let io = |what: &str, e: std::io::Error| CliError::Io(format!("{what}: {e}"));
    let (reader, writer) = std::io::pipe().map_err(|e| io("pipe", e))?;
    // The child inherits the write end (and only it) across exec.
    fcntl(&writer, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| io("fcntl", e.into()))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("ringfence")
        .args(cli.global_args(root))
        .arg("sandbox-init")
        .arg("--bundle")
        .arg(bundle)
        .arg("--ready-fd")
        .arg(writer.as_raw_fd().to_string());
    if let Some(p) = &args.pid_file {
        cmd.arg("--pid-file").arg(absolute(p)?);
    }
    // stdio: the caller's, so the container gets it (as runc's init does),
    // or a new terminal's slave side whose master went to the console socket.
    if let Some(sock) = &args.console_socket {
        let slave = send_console(sock)?;
        let dup = |f: &std::os::fd::OwnedFd| {
            f.try_clone()
                .map(std::process::Stdio::from)
                .map_err(|e| io("dup", e))
        };
        cmd.stdin(dup(&slave)?)
            .stdout(dup(&slave)?)
            .stderr(dup(&slave)?);
        cmd.arg("--console");
    }
    cmd.arg("--").arg(&args.id);
    let mut child = cmd
        .spawn()
        .map_err(|e| io("cannot start the sandbox process", e))?;
    drop(writer);
    let mut line = String::new();
    let read = BufReader::new(reader).read_line(&mut line);
    if line.trim_end() == "ok" {
        debug!("sandbox process {} is ready", child.id());
        return Ok(());
    }
    // It failed and exits (or has exited): reap it, then say why.
    let status = child.wait();
    let why = match (line.trim_end().strip_prefix("error: "), read, status) {
        (Some(msg), _, _) => msg.to_string(),
        (None, Err(e), _) => format!("cannot read from the sandbox process: {e}"),
        (None, Ok(_), Ok(st)) => format!("the sandbox process ended ({st}) before it was ready"),
        (None, Ok(_), Err(e)) => format!("the sandbox process was lost: {e}"),
    };
    Err(CliError::Io(why))
}

/// A new pseudo-terminal whose master goes to the `--console-socket`, as
/// runc sends it (SCM_RIGHTS, the pty's name as the message); its slave.
pub(crate) fn send_console(sock: &Path) -> Result<std::os::fd::OwnedFd, CliError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let err = |what: &str, e: &dyn std::fmt::Display| {
        CliError::Io(format!("--console-socket {}: {what}: {e}", sock.display()))
    };
    let pty = nix::pty::openpty(None, None).map_err(|e| err("openpty", &e))?;
    let stream = std::os::unix::net::UnixStream::connect(sock).map_err(|e| err("connect", &e))?;
    let name = nix::unistd::ttyname(&pty.slave)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/dev/ptmx".into());
    let fds = [pty.master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| err("sending the terminal", &e))?;
    Ok(pty.slave)
}

/// `ringfence sandbox-init`: become the sandbox process of a container
/// that `create` has claimed.
pub fn sandbox_init(
    cli: Arc<Cli>,
    bundle: &Path,
    ready_fd: i32,
    pid_file: Option<&Path>,
    console: bool,
    id: &str,
) -> u8 {
    // Own session and process group, no controlling terminal but the
    // container's own: then ^C typed on it is a SIGINT to this process,
    // which forwards it to the container.
    if let Err(e) = nix::unistd::setsid() {
        debug!("setsid: {e}");
    }
    if console {
        if let Err(e) = rustix::process::ioctl_tiocsctty(std::io::stdin()) {
            debug!("TIOCSCTTY: {e}");
        }
    }
    // Reopen the readiness pipe by path and close the inherited fd, so no
    // thread or stub started later holds it.
    let ready = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{ready_fd}"));
    if ready_fd > 2 {
        let _ = nix::unistd::close(ready_fd);
    }
    let mut ready = match ready {
        Ok(f) => f,
        Err(e) => {
            crate::report_error(&cli, &format!("cannot open the readiness pipe: {e}"));
            return 1;
        }
    };
    let prepared = crate::signal::forwarded_signalfd()
        .map_err(|e| CliError::Io(format!("cannot set up signal forwarding: {e}")))
        .and_then(|signals| {
            let spec = resources::load_bundle(bundle)?;
            let dir = StateDir::new(&cli.root, id);
            Ok(Server::prepare(
                Arc::clone(&cli),
                dir,
                bundle,
                spec,
                pid_file,
                signals,
            )?)
        });
    let server = match prepared {
        Ok(s) => s,
        Err(e) => {
            debug!("sandbox set-up failed: {e}");
            let _ = writeln!(ready, "error: {e}");
            return 1;
        }
    };
    if let Err(e) = ready.write_all(b"ok\n") {
        debug!("create went away: {e}");
    }
    drop(ready);
    match server.serve(false) {
        Ok(code) => code as u8,
        Err(e) => {
            crate::report_error(&cli, &e.to_string());
            1
        }
    }
}

/// `ringfence run`: with `--detach`, `create` then `start`; without, the
/// sandbox is served by this process and the container deleted at exit.
pub fn run(cli: Arc<Cli>, args: &CreateArgs, detach: bool) -> Result<u8, CliError> {
    if detach {
        create(&cli, args)?;
        if let Err(e) = super::lifecycle::start(&cli, &args.id) {
            let _ = super::lifecycle::delete(&cli, &args.id, true);
            return Err(e);
        }
        return Ok(0);
    }
    note_ignored_flags(&cli, Some(args));
    let signals = crate::signal::forwarded_signalfd()
        .map_err(|e| CliError::Io(format!("cannot set up signal forwarding: {e}")))?;
    let (bundle, spec) = load(args)?;
    let root = absolute(&cli.root)?;
    let dir = StateDir::create(&root, &args.id)?;
    let result = (|| {
        let server = {
            let _lock = dir.lock()?;
            Server::prepare(
                Arc::clone(&cli),
                dir.clone(),
                &bundle,
                spec,
                args.pid_file.as_deref(),
                signals,
            )?
        };
        Ok(server.serve(true)?)
    })();
    if let Err(e) = dir.remove() {
        log::error!("{e}");
    }
    result.map(|code: i32| code as u8)
}
