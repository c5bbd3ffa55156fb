//! The sandbox builder: pick a platform, hand it the container, run the sentry.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guest_kernel::platform::HostSignal;
use guest_kernel::{BootParams, ExitStatus};
use log::{debug, info, warn};
use resources::SandboxSpec;

use crate::cli::{Cli, PlatformKind};

type SignalFn = Box<dyn Fn(HostSignal) + Send>;
/// Starts an `exec`'d process; returns its id.
type ExecFn = Box<dyn Fn(ExecSpec) -> Result<u32, String> + Send>;
/// Serves another pod container's root directory; returns its number.
type RootFn = Box<dyn Fn(&std::path::Path) -> Result<u32, String> + Send>;
/// Hears (exec id, exit code) of `exec`'d processes.
pub type ExitSink = Arc<dyn Fn(u32, i32) + Send + Sync>;

/// A process to add to a running container (`exec`).
#[derive(Debug)]
pub struct ExecSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Its stdin, stdout and stderr, received from the caller.
    pub stdio: [std::os::fd::OwnedFd; 3],
    /// The pod container it runs in (0: the sandbox's own).
    pub container: u32,
}

static NEXT_EXEC: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Hand `spec`'s stdio to `host` and turn it into the sentry's request.
fn exec_request(
    host: &devices::HostServices,
    spec: ExecSpec,
) -> Result<guest_kernel::ExecRequest, String> {
    use guest_kernel::platform::HostOps;
    let mut req = guest_kernel::ExecRequest {
        id: NEXT_EXEC.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        args: spec.args.into_iter().map(String::into_bytes).collect(),
        env: spec.env.into_iter().map(String::into_bytes).collect(),
        cwd: spec.cwd.into_bytes(),
        uid: spec.uid,
        gid: spec.gid,
        stdio: [0; 3],
        root: spec.container,
    };
    if req.encode().len() as u64 > guest_kernel::abi::hostcall::queue::EXEC_MAX {
        return Err(format!(
            "the process's arguments and environment exceed {} KiB",
            guest_kernel::abi::hostcall::queue::EXEC_MAX >> 10
        ));
    }
    for (n, fd) in spec.stdio.into_iter().enumerate() {
        match host.add_handle(fd) {
            Ok(h) => req.stdio[n] = h.0,
            Err(e) => {
                for h in &req.stdio[..n] {
                    host.close(guest_kernel::platform::HostHandle(*h));
                }
                return Err(format!("cannot pass stdio: {e}"));
            }
        }
    }
    Ok(req)
}

/// How long `pause` waits for the platform to reach a safe point.
const PAUSE_LIMIT: Duration = Duration::from_secs(2);

/// A platform's pause handle (runc's `pause`/`resume`).
pub(crate) trait Pause: Send {
    /// Stop the container's code; with `wait`, return once it is stopped.
    fn pause(&self, wait: bool) -> bool;
    /// Let it run again.
    fn resume(&self);
}

impl Pause for ptrace_fallback::Pauser {
    fn pause(&self, wait: bool) -> bool {
        ptrace_fallback::Pauser::pause(self, wait, PAUSE_LIMIT)
    }
    fn resume(&self) {
        ptrace_fallback::Pauser::resume(self);
    }
}

impl Pause for vcpu::Pauser {
    fn pause(&self, wait: bool) -> bool {
        vcpu::Pauser::pause(self, wait, PAUSE_LIMIT)
    }
    fn resume(&self) {
        vcpu::Pauser::resume(self);
    }
}

#[derive(Default)]
struct PortInner {
    signal: Option<SignalFn>,
    exec: Option<ExecFn>,
    add_root: Option<RootFn>,
    /// Where exits of `exec`'d processes go (the control server).
    exit_sink: Option<ExitSink>,
    /// Signals for a started container whose platform is not up yet.
    queued: Vec<HostSignal>,
    pause: Option<Box<dyn Pause>>,
    /// Paused by the server; a platform that attaches later starts paused.
    paused: bool,
    /// The platform has run and gone: nothing will attach any more.
    ended: bool,
}

/// How long an `exec` waits for a platform that is still booting.
const EXEC_ATTACH_LIMIT: Duration = Duration::from_secs(10);

/// Where the control server sends signals for the container's processes,
/// and pauses or resumes it. The platform attaches itself while the
/// container runs; signals and a pause that come earlier (between `start`
/// and the sentry's boot) are kept and applied when it attaches.
#[derive(Clone, Default)]
pub struct SignalPort(Arc<std::sync::Mutex<PortInner>>, Arc<std::sync::Condvar>);

impl std::fmt::Debug for SignalPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalPort")
    }
}

impl SignalPort {
    pub(crate) fn attach(&self, f: SignalFn, pause: Box<dyn Pause>) {
        if let Ok(mut inner) = self.0.lock() {
            if inner.paused {
                pause.pause(false);
            }
            for sig in inner.queued.drain(..) {
                f(sig);
            }
            inner.signal = Some(f);
            inner.pause = Some(pause);
        }
    }

    fn detach(&self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.signal = None;
            inner.pause = None;
            inner.exec = None;
            inner.add_root = None;
            inner.ended = true;
        }
        self.1.notify_all();
    }

    fn attach_root(&self, f: RootFn) {
        if let Ok(mut inner) = self.0.lock() {
            inner.add_root = Some(f);
        }
    }

    pub(crate) fn attach_exec(&self, f: ExecFn) {
        if let Ok(mut inner) = self.0.lock() {
            inner.exec = Some(f);
        }
        self.1.notify_all();
    }

    /// The exit sink, for the platform to report to.
    pub(crate) fn exit_sink(&self) -> ExitSink {
        let port = self.clone();
        Arc::new(move |id, code| {
            let sink = port.0.lock().ok().and_then(|i| i.exit_sink.clone());
            if let Some(f) = sink {
                f(id, code);
            }
        })
    }

    /// Where the server hears of `exec`'d processes' exits.
    pub fn set_exit_sink(&self, sink: ExitSink) {
        if let Ok(mut inner) = self.0.lock() {
            inner.exit_sink = Some(sink);
        }
    }

    /// The port, once the platform has attached its exec handler (or the
    /// sandbox has ended): right after `start` it may still be booting, so
    /// wait a bounded time.
    fn wait_attached(&self) -> Result<std::sync::MutexGuard<'_, PortInner>, String> {
        let inner = self
            .0
            .lock()
            .map_err(|_| "the sandbox is shutting down".to_string())?;
        let (inner, _) = self
            .1
            .wait_timeout_while(inner, EXEC_ATTACH_LIMIT, |i| i.exec.is_none() && !i.ended)
            .map_err(|_| "the sandbox is shutting down".to_string())?;
        Ok(inner)
    }

    /// Start a process in the running container. Right after `start` the
    /// platform may still be booting: wait for it (a bounded time).
    pub fn exec(&self, spec: ExecSpec) -> Result<u32, String> {
        let inner = self.wait_attached()?;
        match inner.exec.as_ref() {
            Some(f) => f(spec),
            None => Err("the container is not running (or its platform cannot exec yet)".into()),
        }
    }

    /// Serve the root directory of another container of the pod (the
    /// platform runs: `exec` is attached last, after this).
    pub fn add_root(&self, root: &std::path::Path) -> Result<u32, String> {
        let inner = self.wait_attached()?;
        match inner.add_root.as_ref() {
            Some(f) => f(root),
            None => Err("this sandbox cannot serve another container's root".into()),
        }
    }

    /// Deliver `sig` into the sandbox of a started container: now, or as
    /// soon as its platform is up.
    pub fn send_or_queue(&self, sig: HostSignal) {
        if let Ok(mut inner) = self.0.lock() {
            match inner.signal.as_ref() {
                Some(f) => f(sig),
                None => inner.queued.push(sig),
            }
        }
    }

    /// Stops the container's code at the platform's next safe point and
    /// waits for it (a bounded time); a platform not attached yet starts
    /// paused.
    pub fn pause(&self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.paused = true;
            if let Some(p) = inner.pause.as_ref() {
                if !p.pause(true) {
                    debug!("pause: the platform did not park within {PAUSE_LIMIT:?}; it stays paused from its next safe point");
                }
            }
        }
    }

    /// Lets a paused container run again.
    pub fn resume(&self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.paused = false;
            if let Some(p) = inner.pause.as_ref() {
                p.resume();
            }
        }
    }
}

/// Guest memory when neither the spec nor the command line sets it.
pub const DEFAULT_MEMORY_BYTES: u64 = memory::DEFAULT_MEM_BYTES;

/// The least guest RAM a KVM sandbox gets: the sentry image, its heap and
/// page tables come out of guest RAM too.
const KVM_MIN_MEMORY_BYTES: u64 = 96 << 20;

/// Failures to build or run a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot serve the container root {path}: {source}")]
    Root {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("ptrace platform: {0}")]
    Ptrace(#[from] ptrace_fallback::PtraceError),
    #[error("kvm platform: cannot create the sandbox VM: {0}")]
    KvmCreate(#[source] vcpu::VcpuError),
    #[error("kvm platform: cannot boot the sentry image: {0}")]
    KvmBoot(#[source] vcpu::VcpuError),
    #[error("kvm platform: the sandbox VM failed: {0}")]
    KvmRun(#[source] vcpu::VcpuError),
    #[error("kvm platform: the sentry exited with status {0} but left no exit report")]
    KvmNoExitReport(i32),
}

/// The sentry's log level (0 off .. 5 trace) for the host's log level.
fn sentry_log_level() -> u32 {
    match log::max_level() {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => 1,
        log::LevelFilter::Warn => 2,
        log::LevelFilter::Info => 3,
        log::LevelFilter::Debug => 4,
        log::LevelFilter::Trace => 5,
    }
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
        rlimits: spec
            .rlimits
            .iter()
            .map(|r| (r.resource.linux_number(), r.soft, r.hard))
            .collect(),
        log_level: if debug {
            sentry_log_level().max(4)
        } else {
            sentry_log_level().min(2)
        },
        root_readonly: spec.root_readonly,
        tmpfs_mounts: spec
            .mounts
            .iter()
            .filter(|m| {
                m.typ.as_deref() == Some("tmpfs")
                    && !matches!(m.destination.as_str(), "/dev" | "/dev/shm" | "/tmp")
            })
            .map(|m| m.destination.as_bytes().to_vec())
            .collect(),
        bind_mounts: spec
            .mounts
            .iter()
            .filter(|m| is_bind(m) && bind_source(spec, m).is_some())
            .map(|m| (m.destination.as_bytes().to_vec(), bind_writable(m)))
            .collect(),
    }
}

/// Guest memory for `spec`.
pub fn memory_bytes(cli: &Cli, spec: &SandboxSpec) -> u64 {
    spec.memory_limit_bytes
        .or(cli.memory_mib.map(|m| m << 20))
        .unwrap_or(DEFAULT_MEMORY_BYTES)
}

/// CPUs for a sandbox (KVM vCPUs, or ptrace's tracer threads): `--vcpus`,
/// else the host's CPUs capped by the spec's CPU limit (rounded up), at
/// most the platforms' 8.
pub fn vcpu_count(cli: &Cli, spec: &SandboxSpec) -> usize {
    if let Some(n) = cli.vcpus {
        return n as usize;
    }
    let host = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limit = spec
        .cpu_limit
        .filter(|c| c.is_finite() && *c > 0.0)
        .map_or(usize::MAX, |c| c.ceil() as usize);
    host.min(limit).clamp(1, 8)
}

/// Guest RAM for a KVM sandbox with `mem` bytes for the container: a
/// multiple of 2 MiB, no less than what the sentry itself needs.
fn kvm_ram_bytes(mem: u64) -> u64 {
    let two_mib = 2 << 20;
    mem.max(KVM_MIN_MEMORY_BYTES)
        .div_ceil(two_mib)
        .saturating_mul(two_mib)
}

/// A bind mount without `ro` writes through to its source.
fn bind_writable(m: &resources::Mount) -> bool {
    !m.options.iter().any(|o| o == "ro")
}

/// The host source of bind mount `m`, if it can be served: a directory or
/// a regular file. A relative source is relative to the bundle (the
/// root's parent).
fn bind_source(spec: &SandboxSpec, m: &resources::Mount) -> Option<std::path::PathBuf> {
    let Some(source) = m.source.as_deref() else {
        warn!("bind mount at {} has no source: ignored", m.destination);
        return None;
    };
    let source = match spec.root.parent() {
        Some(bundle) if !source.starts_with('/') => bundle.join(source),
        _ => std::path::PathBuf::from(source),
    };
    if !source.is_dir() && !source.is_file() {
        warn!(
            "bind mount of {} at {}: only directories and regular files can be bound; ignored",
            source.display(),
            m.destination
        );
        return None;
    }
    Some(source)
}

/// Whether `m` is a bind mount.
fn is_bind(m: &resources::Mount) -> bool {
    m.typ.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind")
}

/// The host services for `spec`: the container root and our stdio.
fn host_services(spec: &SandboxSpec) -> Result<devices::HostServices, SandboxError> {
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut host = devices::HostServices::new(&spec.root, [i.as_fd(), o.as_fd(), e.as_fd()])
        .map_err(|source| SandboxError::Root {
            path: spec.root.clone(),
            source,
        })?;
    for m in &spec.mounts {
        match (is_bind(m), m.typ.as_deref()) {
            (true, _) => {
                let Some(source) = bind_source(spec, m) else {
                    continue;
                };
                host.add_bind(&m.destination, &source, bind_writable(m))
                    .map_err(|source_err| SandboxError::Root {
                        path: source.clone(),
                        source: source_err,
                    })?;
            }
            (false, Some("tmpfs")) => {}
            (false, Some("proc" | "sysfs" | "devpts" | "mqueue" | "cgroup" | "cgroup2")) => {
                debug!(
                    "{:?} mount at {}: the sentry provides its own or none; ignored",
                    m.typ, m.destination
                )
            }
            (false, other) => warn!(
                "mount of type {other:?} at {} is not supported: ignored",
                m.destination
            ),
        }
    }
    Ok(host)
}

/// Run the container's init to completion on the chosen platform: the one
/// asked for, else KVM where `/dev/kvm` opens and is a KVM we support
/// (PVM), else ptrace.
pub fn run(cli: &Cli, spec: &SandboxSpec, port: &SignalPort) -> Result<ExitStatus, SandboxError> {
    let params = boot_params(spec, cli.debug);
    let mem = memory_bytes(cli, spec);
    match cli.platform {
        Some(PlatformKind::Ptrace) => run_ptrace(spec, mem, vcpu_count(cli, spec), params, port),
        Some(PlatformKind::Kvm) => {
            let t0 = Instant::now();
            let vm = vcpu::KvmVm::with_vcpus(kvm_ram_bytes(mem), vcpu_count(cli, spec))
                .map_err(SandboxError::KvmCreate)?;
            run_kvm(spec, vm, params, t0, port)
        }
        None => match (
            Instant::now(),
            vcpu::KvmVm::with_vcpus(kvm_ram_bytes(mem), vcpu_count(cli, spec)),
        ) {
            (t0, Ok(vm)) => run_kvm(spec, vm, params, t0, port),
            (_, Err(e)) => {
                warn!("falling back to ptrace: {e}");
                run_ptrace(spec, mem, vcpu_count(cli, spec), params, port)
            }
        },
    }
}

fn run_ptrace(
    spec: &SandboxSpec,
    mem: u64,
    cpus: usize,
    params: BootParams,
    port: &SignalPort,
) -> Result<ExitStatus, SandboxError> {
    info!("platform ptrace, {} MiB of memory, {cpus} CPUs", mem >> 20);
    let host = Arc::new(host_services(spec)?);
    let plat = ptrace_fallback::PtracePlatform::new(mem, host.clone(), cpus)?;
    let sender = plat.signal_sender();
    let sink = port.exit_sink();
    sender.set_exit_handler(Box::new(move |id, code| sink(id, code)));
    let exec_sender = sender.clone();
    let root_host = host.clone();
    port.attach_root(Box::new(move |p| {
        root_host
            .add_root(p)
            .map_err(|e| format!("{}: {e}", p.display()))
    }));
    port.attach_exec(Box::new(move |spec| {
        let req = exec_request(&host, spec)?;
        let id = req.id;
        exec_sender.exec(req);
        Ok(id)
    }));
    port.attach(
        Box::new(move |sig| sender.send(sig)),
        Box::new(plat.pauser()),
    );
    let status = guest_kernel::run(&plat, params);
    port.detach();
    Ok(status)
}

/// Run the sentry in `vm`, created at `t0`; signals for the container
/// come through `port` while it runs.
fn run_kvm(
    spec: &SandboxSpec,
    mut vm: vcpu::KvmVm,
    params: BootParams,
    t0: Instant,
    port: &SignalPort,
) -> Result<ExitStatus, SandboxError> {
    let created = t0.elapsed();
    info!(
        "platform kvm (PVM), {} MiB of guest memory, {} vCPUs",
        vm.ram().size() >> 20,
        vm.nr_vcpus()
    );
    let services = Arc::new(host_services(spec)?);
    let sink = port.exit_sink();
    services.set_exit_handler(Box::new(move |id, code| sink(id, code)));
    vm.boot(vcpu::SENTRY_IMAGE, &params.encode())
        .map_err(SandboxError::KvmBoot)?;
    let loaded = t0.elapsed();
    // After the boot, which empties the signal ring.
    let sender = vm.signal_sender();
    let exec_sender = sender.clone();
    let exec_host = services.clone();
    let root_host = services.clone();
    port.attach_root(Box::new(move |p| {
        root_host
            .add_root(p)
            .map_err(|e| format!("{}: {e}", p.display()))
    }));
    port.attach_exec(Box::new(move |spec| {
        let req = exec_request(&exec_host, spec)?;
        let id = req.id;
        exec_host.queue_exec(req.encode());
        exec_sender.notify_exec();
        Ok(id)
    }));
    port.attach(Box::new(move |sig| sender.send(sig)), Box::new(vm.pauser()));
    let host: vcpu::SharedHost = services;
    let report = vm.run(host);
    port.detach();
    vm.close_detached();
    let report = report.map_err(SandboxError::KvmRun)?;
    debug!(
        "kvm start-up: VM created in {created:.2?}, sentry loaded at {loaded:.2?}, run ended at {:.2?}",
        t0.elapsed()
    );
    let e = &report.exits;
    debug!(
        "kvm exits: {} KVM_RUN, {} port I/O ({} debug), {} interrupted; host calls: {} served, \
         {} doorbells (ioeventfd, no exit), {} I/O-thread wake-ups, {} wake-ups of the halted sentry (MSI, no exit); \
         {:.2?} in the guest",
        e.runs,
        e.io,
        e.debug,
        e.interrupted,
        report.hostcalls,
        report.doorbells,
        report.hostcall_wakeups,
        report.guest_wakes,
        report.elapsed
    );
    report
        .exit_status
        .ok_or(SandboxError::KvmNoExitReport(report.status))
}

/// Tell the user why a container did not run its program.
pub fn report(status: &ExitStatus) {
    match status {
        ExitStatus::ExecFailed {
            path,
            errno,
            reason,
        } => {
            let os = std::io::Error::from_raw_os_error(errno.0);
            let why = if reason.is_empty() {
                os.to_string()
            } else {
                format!("{reason} ({os})")
            };
            eprintln!(
                "ringfence: exec \"{}\": {why}",
                String::from_utf8_lossy(path)
            );
        }
        ExitStatus::PlatformFailed(msg) => eprintln!("ringfence: sandbox failed: {msg}"),
        ExitStatus::Signaled(sig) => warn!("container init killed by signal {sig}"),
        ExitStatus::Exited(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_ram_is_rounded_and_bounded_below() {
        assert_eq!(kvm_ram_bytes(512 << 20), 512 << 20);
        assert_eq!(kvm_ram_bytes(1), KVM_MIN_MEMORY_BYTES);
        assert_eq!(kvm_ram_bytes((200 << 20) + 1), 202 << 20);
    }
}
