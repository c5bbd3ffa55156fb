//! `start`, `kill`, `delete`, and the verbs not supported yet (`pause`,
//! `resume`, `exec`, `events`): the verbs that change a container. Each
//! holds the container's lock while it works.

use std::fs::File;
use std::time::Duration;

use log::debug;
use nix::fcntl::Flock;
use resources::state::Status;

use crate::cli::Cli;
use crate::container::{Container, ContainerError, StateDir};
use crate::control::{self, Request, REPLY_TIMEOUT};
use crate::CliError;

/// How long `delete` gives a stopped sandbox process to finish exiting
/// before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Loads container `id` and takes its lock, then loads it again: the
/// verb that held the lock may have changed or deleted it.
fn locked(cli: &Cli, id: &str) -> Result<(Container, Flock<File>), CliError> {
    let first = Container::load(&cli.root, id)?;
    let lock = first.dir.lock()?;
    let c = Container::load(&cli.root, id)?;
    Ok((c, lock))
}

fn call(c: &Container, req: &Request) -> Result<control::Response, CliError> {
    Ok(control::call(
        &c.state.id,
        &c.dir.socket(),
        req,
        Some(REPLY_TIMEOUT),
    )?)
}

/// `ringfence start`.
pub fn start(cli: &Cli, id: &str) -> Result<u8, CliError> {
    let (c, _lock) = locked(cli, id)?;
    match c.state.status {
        Status::Created => {
            call(&c, &Request::Start)?;
            Ok(0)
        }
        Status::Running => Err(CliError::Io(
            "cannot start an already running container".into(),
        )),
        Status::Stopped => Err(CliError::Io(
            "cannot start a container that has stopped".into(),
        )),
        Status::Creating => Err(CliError::Io(
            "cannot start a container that is still being created".into(),
        )),
        Status::Paused => Err(CliError::Io(
            "cannot start a container in the paused state".into(),
        )),
    }
}

/// `ringfence kill`.
pub fn kill(cli: &Cli, id: &str, signal: &str, all: bool) -> Result<u8, CliError> {
    let n = crate::signal::parse(signal)?;
    let (c, _lock) = locked(cli, id)?;
    if c.state.status == Status::Stopped {
        return Err(CliError::Io("container not running".into()));
    }
    call(
        &c,
        &Request::Signal {
            signal: n,
            all,
            pid: None,
            pgid: None,
            container: None,
            exec: None,
            foreground: false,
        },
    )?;
    Ok(0)
}

/// `ringfence delete`: created and stopped containers go; a running one
/// only with `--force`, which kills it first. Unknown ids fail, except
/// that a state directory without `state.json` (an aborted `create`) is
/// removed, silently with `--force`, as runc does.
pub fn delete(cli: &Cli, id: &str, force: bool) -> Result<u8, CliError> {
    let (c, _lock) = match locked(cli, id) {
        Ok(x) => x,
        Err(CliError::Container(ContainerError::NotFound(_)))
            if resources::validate_container_id(id).is_ok() =>
        {
            let dir = StateDir::new(&cli.root, id);
            if dir.path().is_dir() {
                debug!("removing {}: it has no state.json", dir.path().display());
                dir.remove()?;
            }
            if force {
                return Ok(0);
            }
            return Err(ContainerError::NotFound(id.into()).into());
        }
        Err(e) => return Err(e),
    };
    match c.state.status {
        Status::Stopped => {
            if !c.wait_sandbox_gone(EXIT_GRACE) {
                c.kill_sandbox()?;
            }
        }
        Status::Created | Status::Creating => c.kill_sandbox()?,
        Status::Running | Status::Paused if force => {
            if crate::pod::sandbox_of(&c.state.annotations).is_some() {
                // A pod's container: its processes live in the sandbox's
                // sentry, not under this member process; kill them first.
                let kill = Request::Signal {
                    signal: libc::SIGKILL,
                    all: true,
                    pid: None,
                    pgid: None,
                    container: None,
                    exec: None,
                    foreground: false,
                };
                if let Err(e) = call(&c, &kill) {
                    debug!("delete {id}: cannot kill its processes: {e}");
                }
                let _ = c.wait_sandbox_gone(EXIT_GRACE);
            }
            c.kill_sandbox()?
        }
        Status::Running | Status::Paused => {
            return Err(CliError::Io(format!(
                "cannot delete container {id} that is not stopped: {}",
                c.state.status
            )))
        }
    }
    c.dir.remove()?;
    Ok(0)
}

/// `ringfence pause`: runc's semantics (a created or running container;
/// the state becomes `paused`).
pub fn pause(cli: &Cli, id: &str) -> Result<u8, CliError> {
    let (c, _lock) = locked(cli, id)?;
    match c.state.status {
        Status::Created | Status::Running => {
            call(&c, &Request::Pause)?;
            Ok(0)
        }
        _ => Err(CliError::Io("container not running".into())),
    }
}

/// `ringfence resume`.
pub fn resume(cli: &Cli, id: &str) -> Result<u8, CliError> {
    let (c, _lock) = locked(cli, id)?;
    if c.state.status != Status::Paused {
        return Err(CliError::Io("container not paused".into()));
    }
    call(&c, &Request::Resume)?;
    Ok(0)
}

/// What `ringfence exec` asks for.
#[derive(Debug)]
pub struct ExecArgs<'a> {
    pub process: Option<&'a std::path::Path>,
    pub tty: bool,
    pub console_socket: Option<&'a std::path::Path>,
    pub detach: bool,
    pub pid_file: Option<&'a std::path::Path>,
    pub cwd: Option<&'a str>,
    pub env: &'a [String],
    pub user: Option<&'a str>,
    pub command: &'a [String],
}

/// Set in the process that `exec --detach` leaves to wait for the exec'd
/// process.
const EXEC_MONITOR_ENV: &str = "_RINGFENCE_EXEC_MONITOR";
/// Set with [`EXEC_MONITOR_ENV`] when the monitor's stdio is the exec'd
/// process's terminal.
const EXEC_MONITOR_TTY_ENV: &str = "_RINGFENCE_EXEC_MONITOR_TTY";

/// `exec --detach`, as runc's: the command returns at once, and a host
/// process (named by `--pid-file`) stands for the exec'd one. It is this
/// command again, waiting for the process's end and exiting with its
/// status, so a subreaper (containerd's shim) sees the exit as it would
/// runc's. It inherits the stdio that the exec'd process gets.
fn exec_detached(
    req: &Request,
    pid_file: Option<&std::path::Path>,
    tty: Option<std::os::fd::OwnedFd>,
) -> Result<u8, CliError> {
    let json = serde_json::to_string(req)
        .map_err(|e| CliError::Io(format!("exec --detach: cannot encode the request: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Io(format!("exec --detach: cannot find ringfence: {e}")))?;
    let mut argv = std::env::args_os();
    argv.next();
    let mut cmd = std::process::Command::new(exe);
    cmd.args(argv).env(EXEC_MONITOR_ENV, json);
    if let Some(t) = tty {
        let dup = |t: &std::os::fd::OwnedFd| {
            t.try_clone()
                .map(std::process::Stdio::from)
                .map_err(|e| CliError::Io(format!("exec --detach: dup: {e}")))
        };
        cmd.stdin(dup(&t)?).stdout(dup(&t)?).stderr(dup(&t)?);
        cmd.env(EXEC_MONITOR_TTY_ENV, "1");
    }
    let child = cmd
        .spawn()
        .map_err(|e| CliError::Io(format!("exec --detach: cannot start its monitor: {e}")))?;
    if let Some(p) = pid_file {
        std::fs::write(p, child.id().to_string())
            .map_err(|e| CliError::Io(format!("--pid-file {}: {e}", p.display())))?;
    }
    Ok(0)
}

/// `ringfence exec`: start a process in a running container, with this
/// command's stdio; exit with its status (unless `--detach`).
pub fn exec(cli: &Cli, id: &str, a: &ExecArgs<'_>) -> Result<u8, CliError> {
    let c = Container::load(&cli.root, id)?;
    if let Some(json) = std::env::var_os(EXEC_MONITOR_ENV) {
        // The monitor that `exec --detach` left: the request was resolved
        // by the command itself (its `--process` file may be gone by now).
        let req: Request = serde_json::from_str(&json.to_string_lossy())
            .map_err(|e| CliError::Io(format!("exec monitor: bad request: {e}")))?;
        if std::env::var_os(EXEC_MONITOR_TTY_ENV).is_some() {
            use std::os::fd::AsFd;
            let tty = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| CliError::Io(format!("exec monitor: dup: {e}")))?;
            return super::tty::exec_with_terminal(cli, &c, &req, &tty);
        }
        return exec_call(&c, &req);
    }
    if c.state.status != Status::Running {
        return Err(CliError::Io(format!(
            "cannot exec in a container that is {}",
            c.state.status
        )));
    }
    // Defaults come from the container's own process, as runc's do.
    let base = resources::load_bundle(&c.state.bundle).ok();
    let mut tty = a.tty;
    let (mut args, mut env, mut cwd, mut uid, mut gid) = match &base {
        Some(s) => (Vec::new(), s.env.clone(), s.cwd.clone(), s.uid, s.gid),
        None => (Vec::new(), Vec::new(), "/".to_string(), 0, 0),
    };
    if let Some(p) = a.process {
        let text = std::fs::read_to_string(p)
            .map_err(|e| CliError::Io(format!("--process {}: {e}", p.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Io(format!("--process {}: not valid JSON: {e}", p.display())))?;
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        args = strings("args");
        tty |= v["terminal"].as_bool().unwrap_or(false);
        if v.get("env").is_some() {
            env = strings("env");
        }
        if let Some(d) = v["cwd"].as_str() {
            cwd = d.to_string();
        }
        if let Some(u) = v["user"]["uid"].as_u64() {
            uid =
                u32::try_from(u).map_err(|_| CliError::Io("--process: uid out of range".into()))?;
        }
        if let Some(g) = v["user"]["gid"].as_u64() {
            gid =
                u32::try_from(g).map_err(|_| CliError::Io("--process: gid out of range".into()))?;
        }
    }
    if !a.command.is_empty() {
        args = a.command.to_vec();
    }
    if args.is_empty() {
        return Err(CliError::Io(
            "exec: no command given (arguments or --process)".into(),
        ));
    }
    for e in a.env {
        // --env replaces the spec's variable of that name.
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|old| old.split_once('=').map_or(old.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    if let Some(d) = a.cwd {
        cwd = d.to_string();
    }
    if let Some(u) = a.user {
        let (u, g) = u
            .split_once(':')
            .map(|(u, g)| (u, Some(g)))
            .unwrap_or((u, None));
        uid = u
            .parse()
            .map_err(|_| CliError::Io(format!("--user {u}: expected UID[:GID]")))?;
        if let Some(g) = g {
            gid = g
                .parse()
                .map_err(|_| CliError::Io(format!("--user {g}: expected UID[:GID]")))?;
        }
    }
    let req = Request::Exec {
        args,
        env,
        cwd,
        uid,
        gid,
        detach: false,
        container: None,
    };
    // A terminal, as runc makes one: its master to the console socket, its
    // slave the process's stdio.
    let slave = match (tty, a.console_socket) {
        (true, Some(sock)) => Some(super::create::send_console(sock)?),
        (true, None) => {
            return Err(CliError::Io(
                "exec with a terminal needs a --console-socket".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(CliError::Io(
                "cannot use a console socket without a terminal (--tty)".into(),
            ))
        }
        (false, None) => None,
    };
    if a.detach {
        return exec_detached(&req, a.pid_file, slave);
    }
    match slave {
        Some(t) => super::tty::exec_with_terminal(cli, &c, &req, &t),
        None => exec_call(&c, &req),
    }
}

/// Send `req` with this process's stdio; the exec'd process's status.
/// (With a terminal: `tty::exec_with_terminal`.)
fn exec_call(c: &Container, req: &Request) -> Result<u8, CliError> {
    use std::os::fd::AsRawFd;
    let fds = [
        std::io::stdin().as_raw_fd(),
        std::io::stdout().as_raw_fd(),
        std::io::stderr().as_raw_fd(),
    ];
    let resp = control::call_with_fds(&c.state.id, &c.dir.socket(), req, &fds, None)?;
    Ok(resp.status.map(|s| (s & 0xff) as u8).unwrap_or(0))
}
