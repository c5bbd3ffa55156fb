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
    call(&c, &Request::Signal { signal: n, all })?;
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
        Status::Running | Status::Paused if force => c.kill_sandbox()?,
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

/// A verb whose machinery the sentry lacks so far.
pub fn unsupported(cli: &Cli, id: &str, what: &str) -> Result<u8, CliError> {
    Container::load(&cli.root, id)?;
    Err(CliError::Io(format!("{what} is not supported yet")))
}
