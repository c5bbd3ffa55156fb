//! `exec --tty`: the keys of an exec'd process's terminal that make
//! signals (^C, ^\, ^Z) and its window changes.
//!
//! The terminal's slave reaches the sentry as a host handle only: it is no
//! host process's controlling terminal, so the host's line discipline
//! would swallow ^C without a signal. A small `tty-monitor` process makes
//! it its controlling terminal (a session of its own) and forwards what
//! the host sends it (SIGINT, SIGQUIT, SIGTSTP, SIGWINCH) to the sandbox
//! as `signal` requests with `exec`: the sentry delivers them to the
//! foreground process group of the exec'd process's session, as the
//! terminal would. It ends with the exec (SIGKILL from the exec command,
//! or its parent's death) or with the terminal (SIGHUP).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use log::{debug, warn};
use nix::sys::signal::{SigSet, Signal};

use crate::cli::Cli;
use crate::container::Container;
use crate::control::{self, Request};
use crate::CliError;

/// The signals a terminal sends its foreground group, forwarded.
const TERMINAL_SIGNALS: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGWINCH,
];

/// `exec` of `req` with `tty` as the process's stdio, with its terminal's
/// signals forwarded; the exec'd process's status.
pub fn exec_with_terminal(
    cli: &Cli,
    c: &Container,
    req: &Request,
    tty: &OwnedFd,
) -> Result<u8, CliError> {
    // The monitor owns the terminal before the process starts, so no key
    // typed once the process runs is lost.
    let mut monitor = spawn_monitor(cli, c, tty)
        .inspect_err(|e| warn!("exec --tty: no signals from the terminal: {e}"))
        .ok();
    let mut req = req.clone();
    if let Request::Exec { detach, .. } = &mut req {
        *detach = true;
    }
    let fds = [tty.as_raw_fd(); 3];
    let sock = c.dir.socket();
    let started =
        control::call_with_fds(&c.state.id, &sock, &req, &fds, Some(control::REPLY_TIMEOUT));
    let result = started.map_err(CliError::from).and_then(|resp| {
        let id = resp
            .id
            .ok_or_else(|| CliError::Io("exec: the sandbox answered without an id".into()))?;
        if let Some(m) = monitor.as_mut() {
            if let Some(stdin) = m.stdin.as_mut() {
                if let Err(e) = writeln!(stdin, "{id}") {
                    debug!("tty monitor: {e}");
                }
            }
        }
        let wait = Request::WaitPid {
            id: Some(id),
            pid: None,
        };
        let resp = control::call(&c.state.id, &sock, &wait, None)?;
        Ok(resp.status.map(|s| (s & 0xff) as u8).unwrap_or(0))
    });
    if let Some(mut m) = monitor {
        let _ = m.kill();
        let _ = m.wait();
    }
    result
}

/// Starts `ringfence tty-monitor` on `tty` and waits until it owns it.
fn spawn_monitor(cli: &Cli, c: &Container, tty: &OwnedFd) -> Result<Child, CliError> {
    let io = |what: &str, e: std::io::Error| CliError::Io(format!("tty monitor: {what}: {e}"));
    let root = std::path::absolute(&cli.root).map_err(|e| io("--root", e))?;
    let mut child = Command::new("/proc/self/exe")
        .arg0("ringfence")
        .args(cli.global_args(&root))
        .arg("tty-monitor")
        .arg(&c.state.id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(tty.try_clone().map_err(|e| io("dup", e))?))
        .spawn()
        .map_err(|e| io("spawn", e))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim_end() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CliError::Io(
            "tty monitor: it ended before it was ready".into(),
        ));
    }
    Ok(child)
}

/// `ringfence tty-monitor ID` (internal): make stderr, an exec'd process's
/// terminal, the controlling terminal of a new session, say `ready`, read
/// the process's exec id from stdin, and forward the terminal's signals.
pub fn tty_monitor(cli: &Cli, id: &str) -> Result<u8, CliError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| CliError::Io(format!("{what}: {e}"));
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| fail("prctl", &e))?;
    nix::unistd::setsid().map_err(|e| fail("setsid", &e))?;
    rustix::process::ioctl_tiocsctty(std::io::stderr()).map_err(|e| fail("TIOCSCTTY", &e))?;
    let mut set = SigSet::empty();
    for s in TERMINAL_SIGNALS
        .into_iter()
        .chain([Signal::SIGHUP, Signal::SIGTERM])
    {
        set.add(s);
    }
    set.thread_block().map_err(|e| fail("sigprocmask", &e))?;
    println!("ready");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| fail("reading the exec id", &e))?;
    let exec: u32 = line.trim().parse().map_err(|e| fail("bad exec id", &e))?;
    let c = Container::load(&cli.root, id)?;
    loop {
        let sig = set.wait().map_err(|e| fail("sigwait", &e))?;
        if !TERMINAL_SIGNALS.contains(&sig) {
            return Ok(0);
        }
        let req = Request::Signal {
            signal: sig as i32,
            all: false,
            pid: None,
            pgid: None,
            container: None,
            exec: Some(exec),
            foreground: false,
        };
        if let Err(e) = control::call(id, &c.dir.socket(), &req, Some(control::REPLY_TIMEOUT)) {
            debug!("tty monitor: {sig} for exec {exec}: {e}");
        }
    }
}
