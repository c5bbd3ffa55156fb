//! The sandbox process's event loop: the container's state machine, its
//! control socket and the host signals it forwards.
//!
//! One [`Server`] subscriber owns every fd of the loop, told apart by
//! consecutive tokens: the listening socket, the signalfd, the eventfd the
//! container's init thread rings when the sentry returns, and one token per
//! client connection. A single owner keeps the state machine
//! (`created → running → stopped`) free of locks: every transition happens
//! on the loop thread, and the only other thread, `container-init`, talks
//! to it through a channel plus the eventfd.
//!
//! Signals go into the sentry through the platform's signal port once the
//! container runs (the application's handlers run); before that, a signal
//! gets its default action (a terminating one ends the sandbox with
//! 128+N). `pause` parks the platform at a safe point through the same
//! port; signals for a paused container wait for `resume`, except SIGKILL,
//! which resumes it so that it dies, as under runc.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use guest_kernel::ExitStatus;
use log::{debug, error, info, warn};
use nix::sys::signalfd::SignalFd;
use resources::state::{rfc3339_utc, ContainerState, Status};
use resources::SandboxSpec;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::cli::Cli;
use crate::container::{self, ContainerError, SandboxRecord, StateDir};
use crate::control::{self, Request, Response, MAX_REQUEST_BYTES};
use crate::sandbox;
use crate::signal::{default_action, DefaultAction, SIGRTMAX};

mod exec;
mod stats;

use stats::{container_pids, stats};

const TOKEN_LISTENER: u32 = 0;
const TOKEN_SIGNALS: u32 = 1;
const TOKEN_EXIT: u32 = 2;
const TOKEN_EXEC: u32 = 3;
/// The first connection token; connections count up from here.
const TOKEN_FIRST_CONN: u32 = 16;

/// How long a reply may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Failures to set up or run the sandbox process.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("cannot create the exit notifier: {0}")]
    EventFd(io::Error),
    #[error("event loop: {0}")]
    EventLoop(#[from] event_manager::Error),
    #[error("cannot start the container: {0}")]
    Start(String),
    #[error(transparent)]
    Pod(#[from] crate::pod::PodError),
}

/// How the container's init ended, as the `container-init` thread saw it.
type Outcome = Result<ExitStatus, String>;

/// Where the container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    /// Stopped with this exit status.
    Stopped(i32),
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    /// A `wait` is parked on this connection; later requests wait too.
    waiting: bool,
    /// Writing failed or the peer is gone: close at the next chance.
    broken: bool,
    /// Descriptors received with the request (SCM_RIGHTS), for `exec`.
    fds: Vec<std::os::fd::OwnedFd>,
    /// An `exec` or a `wait-pid` is parked on this connection until the
    /// process with this id ends.
    exec_id: Option<u32>,
}

/// The sandbox process's state and the fds its event loop serves.
#[derive(Debug)]
pub struct Server {
    cli: Arc<Cli>,
    dir: StateDir,
    /// The container to run; taken by `start`.
    spec: Option<SandboxSpec>,
    state: ContainerState,
    record: SandboxRecord,
    phase: Phase,
    listener: UnixListener,
    signals: SignalFd,
    exit_evt: EventFd,
    exit_tx: Sender<Outcome>,
    exit_rx: Receiver<Outcome>,
    /// Exits of `exec`'d processes, from the platform's thread.
    exec_evt: Arc<EventFd>,
    exec_rx: Receiver<(u32, i32)>,
    init_thread: Option<JoinHandle<()>>,
    conns: BTreeMap<u32, Conn>,
    next_token: u32,
    /// Set when the loop should end, with the process's exit status.
    finished: Option<i32>,
    /// Signals into the running sentry, and its pause handle.
    port: sandbox::SignalPort,
    /// Paused (`pause`): the state says `paused` until `resume`.
    paused: bool,
    /// `exec`'d processes still running, by id.
    exec_live: std::collections::BTreeSet<u32>,
    /// Exit statuses of ended `exec`'d processes, for `wait-pid` (the
    /// newest [`EXEC_STATUS_KEPT`]).
    exec_done: BTreeMap<u32, i32>,
    /// This container joined another's sandbox (a pod's container).
    member: Option<crate::pod::Member>,
    /// The pod's other containers this sandbox serves: number → id.
    containers: BTreeMap<u32, String>,
    /// Each pod container's first process (its member's `start`), by exec
    /// id → container number: if its member goes away without waiting for
    /// its end, the container's processes are killed.
    pod_mains: BTreeMap<u32, u32>,
}

/// How many ended `exec`'d processes' statuses `wait-pid` can still ask for.
const EXEC_STATUS_KEPT: usize = 4096;

impl Server {
    /// Makes this process the sandbox of container `id` in `dir`: listens
    /// on the control socket, then records the `created` state (pid = this
    /// process), `sandbox.json` and the pid file.
    pub fn prepare(
        cli: Arc<Cli>,
        dir: StateDir,
        bundle: &Path,
        spec: SandboxSpec,
        pid_file: Option<&Path>,
        signals: SignalFd,
    ) -> Result<Server, ServeError> {
        let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let start_time = container::process_start_time(pid).map_or(0, |(t, _)| t);
        let sock = dir.socket();
        let listen_err = |source| ServeError::Listen {
            path: sock.clone(),
            source,
        };
        let id = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A pod's container joins its sandbox before anything is recorded.
        let member = match dir.path().parent() {
            Some(root) => crate::pod::join(root, &id, &spec)?,
            None => None,
        };
        let (_dirfd, addr) = control::short_socket_path(&sock).map_err(listen_err)?;
        let listener = UnixListener::bind(&addr).map_err(listen_err)?;
        listener.set_nonblocking(true).map_err(listen_err)?;
        let state = ContainerState {
            oci_version: resources::DEFAULT_OCI_VERSION.to_string(),
            id,
            pid,
            status: Status::Created,
            bundle: bundle.to_path_buf(),
            rootfs: spec.root.clone(),
            created: rfc3339_utc(SystemTime::now()),
            owner: String::new(),
            annotations: spec.annotations.clone(),
        };
        let record = SandboxRecord {
            pid,
            start_time,
            exit_status: None,
        };
        dir.write_record(&record)?;
        dir.write_state(&state)?;
        if let Some(p) = pid_file {
            container::write_file_atomic(p, pid.to_string().as_bytes()).map_err(|source| {
                ContainerError::PidFile {
                    path: p.to_path_buf(),
                    source,
                }
            })?;
        }
        let exit_evt = EventFd::new(EFD_NONBLOCK).map_err(ServeError::EventFd)?;
        let (exit_tx, exit_rx) = mpsc::channel();
        let exec_evt = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(ServeError::EventFd)?);
        let (exec_tx, exec_rx) = mpsc::channel::<(u32, i32)>();
        let port = sandbox::SignalPort::default();
        let evt = exec_evt.clone();
        let exec_tx = std::sync::Mutex::new(exec_tx);
        port.set_exit_sink(Arc::new(move |id, code| {
            if let Ok(tx) = exec_tx.lock() {
                let _ = tx.send((id, code));
            }
            let _ = evt.write(1);
        }));
        if let Some(m) = &member {
            crate::pod::attach(&port, m);
        }
        Ok(Server {
            cli,
            dir,
            spec: Some(spec),
            state,
            record,
            phase: Phase::Created,
            listener,
            signals,
            exit_evt,
            exit_tx,
            exit_rx,
            exec_evt,
            exec_rx,
            init_thread: None,
            conns: BTreeMap::new(),
            next_token: TOKEN_FIRST_CONN,
            finished: None,
            port,
            paused: false,
            exec_live: Default::default(),
            exec_done: BTreeMap::new(),
            member,
            containers: BTreeMap::new(),
            pod_mains: BTreeMap::new(),
        })
    }

    /// Serves the control socket until the container has stopped; with
    /// `autostart` (`ringfence run`) the container starts at once. Returns
    /// the container's exit status.
    pub fn serve(mut self, autostart: bool) -> Result<i32, ServeError> {
        if autostart {
            self.start().map_err(ServeError::Start)?;
        }
        let mut em = EventManager::<Server>::new()?;
        let id = em.add_subscriber(self);
        loop {
            em.run()?;
            if let Some(code) = em.subscriber_mut(id)?.finished {
                return Ok(code);
            }
        }
    }

    /// `start`: runs the container's init on its own thread.
    fn start(&mut self) -> Result<(), String> {
        if self.paused {
            return Err("cannot start a container in the paused state".into());
        }
        match self.phase {
            Phase::Created => {}
            Phase::Running => return Err("cannot start an already running container".into()),
            Phase::Stopped(_) => return Err("cannot start a container that has stopped".into()),
        }
        let spec = self
            .spec
            .take()
            .ok_or_else(|| "the container has no program left to start".to_string())?;
        let cli = Arc::clone(&self.cli);
        let port = self.port.clone();
        let tx = self.exit_tx.clone();
        let evt = self
            .exit_evt
            .try_clone()
            .map_err(|e| format!("cannot share the exit notifier: {e}"))?;
        // A pod's container: its process is in the sandbox's hands before
        // `start` answers, so no later signal can overtake it.
        let member = match &self.member {
            Some(m) => match crate::pod::start(m, &spec) {
                Ok(id) => Some((m.clone(), id)),
                Err(e) => {
                    self.spec = Some(spec);
                    return Err(e);
                }
            },
            None => None,
        };
        let handle = thread::Builder::new()
            .name("container-init".into())
            .spawn(move || {
                let outcome = match &member {
                    Some((m, id)) => Ok(crate::pod::wait(m, *id)),
                    None => sandbox::run(&cli, &spec, &port).map_err(|e| e.to_string()),
                };
                // The loop may be gone already (the container was killed).
                let _ = tx.send(outcome);
                let _ = evt.write(1);
            })
            .map_err(|e| format!("cannot start the container-init thread: {e}"))?;
        self.init_thread = Some(handle);
        self.phase = Phase::Running;
        self.state.status = Status::Running;
        if let Err(e) = self.dir.write_state(&self.state) {
            error!("{e}");
        }
        info!("container {} started", self.state.id);
        Ok(())
    }

    /// The container has stopped with `code`: record it, answer every
    /// parked `wait`, and end the loop.
    fn finish(&mut self, code: i32) {
        if let Phase::Stopped(_) = self.phase {
            return;
        }
        info!("container {} stopped with status {code}", self.state.id);
        self.phase = Phase::Stopped(code);
        self.paused = false;
        self.record.exit_status = Some(code);
        // sandbox.json first: whoever sees `stopped` finds the status.
        if let Err(e) = self.dir.write_record(&self.record) {
            error!("{e}");
        }
        self.state.status = Status::Stopped;
        self.state.pid = 0;
        if let Err(e) = self.dir.write_state(&self.state) {
            error!("{e}");
        }
        if let Err(e) = std::fs::remove_file(self.dir.socket()) {
            debug!("cannot remove the control socket: {e}");
        }
        let answer = Response {
            status: Some(code),
            ..Response::ok()
        };
        let waiting: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.waiting)
            .map(|(t, _)| *t)
            .collect();
        for token in waiting {
            if let Some(c) = self.conns.get_mut(&token) {
                c.waiting = false;
            }
            self.reply(token, &answer);
        }
        self.finished = Some(code);
    }

    /// The init thread is done: report how the program ended.
    fn on_exit(&mut self) {
        if let Err(e) = self.exit_evt.read() {
            if e.kind() != ErrorKind::WouldBlock {
                warn!("exit notifier: {e}");
            }
        }
        let Ok(outcome) = self.exit_rx.try_recv() else {
            return;
        };
        if let Some(h) = self.init_thread.take() {
            if h.join().is_err() {
                error!("the container-init thread panicked");
            }
        }
        let code = match outcome {
            Ok(status) => {
                sandbox::report(&status);
                status.code()
            }
            Err(msg) => {
                crate::report_error(&self.cli, &msg);
                1
            }
        };
        self.finish(code);
    }

    /// Signal `n` for the container, from `kill` or from the host: for
    /// `pid` (0: init; `HostSignal::FOREGROUND`: its terminal's
    /// foreground process group).
    fn deliver(&mut self, n: i32, all: bool, pid: i32) -> Result<(), String> {
        self.deliver_to(n, all, pid, false, 0)
    }

    /// As [`deliver`](Self::deliver); with `pgrp`, `pid` is a process
    /// group; `container` is a pod container this sandbox serves (0: its
    /// own).
    fn deliver_to(
        &mut self,
        n: i32,
        all: bool,
        pid: i32,
        pgrp: bool,
        container: u32,
    ) -> Result<(), String> {
        if container != 0 && !self.containers.contains_key(&container) {
            return Err(format!("no pod container {container} in this sandbox"));
        }
        if !(0..=SIGRTMAX).contains(&n) {
            return Err(format!("invalid signal {n}"));
        }
        if let Phase::Stopped(_) = self.phase {
            return Err("container not running".into());
        }
        if n == 0 {
            return Ok(());
        }
        // runc: SIGKILL ends a paused container (it is thawed to die);
        // other signals wait, queued, for `resume`.
        if self.paused && n == libc::SIGKILL {
            debug!(
                "SIGKILL for paused container {}: resuming it",
                self.state.id
            );
            self.set_paused(false);
        }
        let whom = match (all, pid, pgrp) {
            (true, _, _) => "every process".to_string(),
            (_, 0, _) => "the init".to_string(),
            (_, p, true) => format!("process group {p}"),
            (_, p, false) if p > 0 => format!("process {p}"),
            _ => "the terminal's foreground group".to_string(),
        };
        if self.phase != Phase::Running && pid > 0 {
            return Err(format!("{whom}: the container's program has not started"));
        }
        if self.phase == Phase::Running {
            // Into the sentry, or queued until its platform is up.
            self.port.send_or_queue(guest_kernel::platform::HostSignal {
                pid,
                sig: n,
                all,
                pgrp,
                container,
                exec: false,
            });
            debug!(
                "signal {n} for {whom} of container {}: delivered to the sentry",
                self.state.id
            );
            return Ok(());
        }
        match default_action(n) {
            // Not started: there is no application yet to deliver it to; a
            // terminating signal ends the sandbox as it would end an init
            // without a handler.
            DefaultAction::Terminate => {
                info!(
                    "signal {n} for {whom} of container {}: ending it with status {}",
                    self.state.id,
                    128 + n
                );
                self.finish(128 + n);
                Ok(())
            }
            DefaultAction::Ignore => {
                debug!("signal {n} for {whom}: ignored by default, not delivered");
                Ok(())
            }
            DefaultAction::Stop => Err(format!(
                "signal {n} would stop a container that has not started (use pause)"
            )),
        }
    }

    /// Records `paused` (or the status it hides) and tells the platform.
    fn set_paused(&mut self, paused: bool) {
        if paused {
            self.port.pause();
        } else {
            self.port.resume();
        }
        self.paused = paused;
        self.state.status = match (paused, self.phase) {
            (true, _) => Status::Paused,
            (false, Phase::Created) => Status::Created,
            (false, Phase::Running) => Status::Running,
            (false, Phase::Stopped(_)) => Status::Stopped,
        };
        if let Err(e) = self.dir.write_state(&self.state) {
            error!("{e}");
        }
    }

    /// `pause`: as runc, a created or running container can be paused.
    fn pause(&mut self) -> Result<(), String> {
        if let Some(m) = &self.member {
            return Err(format!(
                "a pod's container pauses with its sandbox: pause {}",
                m.sandbox_id
            ));
        }
        if self.paused || matches!(self.phase, Phase::Stopped(_)) {
            return Err("container not running".into());
        }
        self.set_paused(true);
        info!("container {} paused", self.state.id);
        Ok(())
    }

    /// `resume`.
    fn resume(&mut self) -> Result<(), String> {
        if !self.paused {
            return Err("container not paused".into());
        }
        self.set_paused(false);
        info!("container {} resumed", self.state.id);
        Ok(())
    }

    fn handle(&mut self, token: u32, line: &[u8]) -> Option<Response> {
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return Some(Response::error(format!("bad request: {e}"))),
        };
        debug!("control request {req:?}");
        let done = |r: Result<(), String>| match r {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(e),
        };
        match req {
            Request::Exec { .. } => return self.exec(token, req),
            Request::WaitPid { id, pid } => return self.wait_pid(token, id, pid),
            _ => {}
        }
        Some(match req {
            Request::Start => done(self.start()),
            Request::Signal {
                signal,
                all,
                pid,
                pgid,
                container,
                exec,
                foreground,
            } => done(match (pid, pgid) {
                _ if foreground && (pid.is_some() || pgid.is_some() || all || exec.is_some()) => {
                    Err("foreground: without pid, pgid, all or exec".into())
                }
                (None, None) if foreground => self.deliver_to(
                    signal,
                    false,
                    guest_kernel::platform::HostSignal::FOREGROUND,
                    false,
                    container.unwrap_or(0),
                ),
                _ if (container.is_some() || exec.is_some()) && self.member.is_some() => {
                    Err("container, exec: not for a pod's container".into())
                }
                _ if exec.is_some() && (pid.is_some() || pgid.is_some() || all) => {
                    Err("exec: without pid, pgid or all".into())
                }
                (None, None) if exec.is_some() => self.signal_exec(signal, exec.unwrap_or(0)),
                (Some(_), Some(_)) => Err("give pid or pgid, not both".into()),
                (Some(p), None) | (None, Some(p)) if p <= 0 || all => Err(format!(
                    "pid/pgid {p}: expected a positive number, without all"
                )),
                (Some(p), None) => self.deliver_to(signal, false, p, false, container.unwrap_or(0)),
                (None, Some(g)) => self.deliver_to(signal, false, g, true, container.unwrap_or(0)),
                (None, None) => self.deliver_to(signal, all, 0, false, container.unwrap_or(0)),
            }),
            Request::AddContainer { id, rootfs } => self.add_container(id, &rootfs),
            Request::Wait => match self.phase {
                Phase::Stopped(code) => Response {
                    status: Some(code),
                    ..Response::ok()
                },
                _ => {
                    if let Some(c) = self.conns.get_mut(&token) {
                        c.waiting = true;
                    }
                    return None;
                }
            },
            Request::State => Response {
                state: Some(self.state.clone()),
                ..Response::ok()
            },
            Request::Ps => Response {
                pids: Some(container_pids()),
                ..Response::ok()
            },
            Request::Pause => done(self.pause()),
            Request::Resume => done(self.resume()),
            Request::Exec { .. } | Request::WaitPid { .. } => {
                Response::error("served on its own path")
            }
            Request::Stats => match self.phase {
                Phase::Stopped(_) => Response::error("container not running"),
                _ => Response {
                    stats: Some(stats()),
                    ..Response::ok()
                },
            },
        })
    }

    fn reply(&mut self, token: u32, resp: &Response) {
        if let Some(c) = self.conns.get_mut(&token) {
            if let Err(e) = c.stream.write_all(&resp.to_line()) {
                debug!("control connection {token}: {e}");
                c.broken = true;
            }
        }
    }

    /// Answers the complete request lines buffered on connection `token`.
    fn serve_lines(&mut self, token: u32) {
        loop {
            let line = {
                let Some(c) = self.conns.get_mut(&token) else {
                    return;
                };
                if c.waiting || c.broken || c.exec_id.is_some() {
                    return;
                }
                let Some(end) = c.buf.iter().position(|&b| b == b'\n') else {
                    return;
                };
                let line: Vec<u8> = c.buf.drain(..=end).collect();
                line
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Some(resp) = self.handle(token, &line) {
                self.reply(token, &resp);
            }
        }
    }

    fn accept(&mut self, ops: &mut EventOps) {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("control socket accept: {e}");
                    return;
                }
            };
            if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
                warn!("control connection: {e}");
                continue;
            }
            let token = self.next_token;
            self.next_token = self.next_token.checked_add(1).unwrap_or(TOKEN_FIRST_CONN);
            let ev = Events::with_data(&stream, token, EventSet::IN | EventSet::READ_HANG_UP);
            if let Err(e) = ops.add(ev) {
                warn!("cannot watch a control connection: {e}");
                continue;
            }
            self.conns.insert(
                token,
                Conn {
                    stream,
                    buf: Vec::new(),
                    waiting: false,
                    broken: false,
                    fds: Vec::new(),
                    exec_id: None,
                },
            );
        }
    }

    fn on_conn(&mut self, token: u32, events: Events, ops: &mut EventOps) {
        let Some(c) = self.conns.get_mut(&token) else {
            warn!("event for unknown token {token}");
            let _ = ops.remove(Events::empty_raw(events.fd()));
            return;
        };
        let mut chunk = [0u8; 4096];
        match crate::control::recv_with_fds(&c.stream, &mut chunk, &mut c.fds) {
            Ok(0) => c.broken = true,
            Ok(n) => {
                c.buf.extend_from_slice(&chunk[..n]);
                if c.buf.len() > MAX_REQUEST_BYTES {
                    let _ = c
                        .stream
                        .write_all(&Response::error("request too long").to_line());
                    c.broken = true;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => {
                debug!("control connection {token}: {e}");
                c.broken = true;
            }
        }
        self.serve_lines(token);
        if self.conns.get(&token).is_some_and(|c| c.broken) {
            if let Some(c) = self.conns.remove(&token) {
                if let Err(e) = ops.remove(Events::empty(&c.stream)) {
                    debug!("unwatching connection {token}: {e}");
                }
                let orphaned = c.exec_id.and_then(|id| self.pod_mains.remove(&id));
                if let Some(n) = orphaned {
                    // The member of pod container `n` died (kill -9): its
                    // processes must not outlive it.
                    warn!("the member of pod container {n} is gone: killing its processes");
                    if let Err(e) = self.deliver_to(libc::SIGKILL, true, 0, false, n) {
                        debug!("pod container {n}: {e}");
                    }
                }
            }
        }
    }

    fn on_signals(&mut self) {
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => {
                    let n = i32::try_from(info.ssi_signo).unwrap_or(0);
                    // The container's terminal is this process's controlling
                    // one: what it generates (^C, a window change) is the
                    // kernel's, and goes to the foreground group, as the
                    // terminal would send it. Anything else goes to init.
                    let pid = if info.ssi_code == libc::SI_KERNEL {
                        guest_kernel::platform::HostSignal::FOREGROUND
                    } else {
                        0
                    };
                    info!("sandbox process received signal {n}: forwarding it to the container");
                    if let Err(e) = self.deliver(n, false, pid) {
                        debug!("signal {n}: {e}");
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    warn!("signalfd: {e}");
                    return;
                }
            }
        }
    }
}

impl MutEventSubscriber for Server {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        match events.data() {
            TOKEN_LISTENER => self.accept(ops),
            TOKEN_SIGNALS => self.on_signals(),
            TOKEN_EXIT => self.on_exit(),
            TOKEN_EXEC => self.on_exec_exit(),
            token => self.on_conn(token, events, ops),
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        let fds = [
            (self.listener.as_raw_fd(), TOKEN_LISTENER, "control socket"),
            (self.signals.as_raw_fd(), TOKEN_SIGNALS, "signalfd"),
            (self.exit_evt.as_raw_fd(), TOKEN_EXIT, "exit notifier"),
            (self.exec_evt.as_raw_fd(), TOKEN_EXEC, "exec exit notifier"),
        ];
        for (fd, token, what) in fds {
            if let Err(e) = ops.add(Events::with_data_raw(fd, token, EventSet::IN)) {
                error!("cannot watch the {what}: {e}");
            }
        }
    }
}
