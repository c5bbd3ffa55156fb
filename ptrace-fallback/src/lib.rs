//! The ptrace platform: the sentry runs as ordinary code in the sandbox
//! process, and each application address space is a stub process that runs
//! under `PTRACE_SYSEMU`, so its system calls stop in the sentry instead of
//! reaching the host kernel.
//!
//! "Physical" memory is a memfd. The sentry maps all of it (its direct
//! map); application pages are `MAP_SHARED` windows of the same memfd,
//! placed in the stub with injected `mmap` calls.
//!
//! Each sentry CPU is a host thread that traces a stub thread of its own in
//! every address space it runs (see `stub`); the sentry's big kernel lock
//! serialises the rest. A CPU and its stub threads are pinned to a host CPU
//! of their own, when there are enough: a ptrace round trip across host
//! CPUs costs about 6x more on these machines. New address spaces are
//! stubs forked from a template stub, and the calls that build one are
//! injected as a batch.

mod fpu;
mod physmem;
mod regs;
mod stub;
mod sysmsg;
mod ticker;
pub mod tsc;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::Duration;

use devices::HostServices;
use guest_kernel::abi::{KResult, UserRegs};
use guest_kernel::platform::{
    Clock, HostHandle, HostOps, PhysAddr, Platform, PlatformError, Prot, Trap,
};
use nix::sys::signal::Signal;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};

pub use fpu::StubThread;
pub use physmem::PhysMemory;
pub use stub::{SpaceRef, Stub};
pub use ticker::SignalSender;

/// Failure to set up the platform.
#[derive(Debug, thiserror::Error)]
pub enum PtraceError {
    /// Creating or mapping the memory file failed.
    #[error("cannot create sandbox memory of {bytes} bytes: {source}")]
    Memory { bytes: u64, source: nix::Error },
    /// Placing the stub's code page failed.
    #[error("cannot place the stub code page: {0}")]
    StubPage(nix::Error),
    /// Starting the preemption ticker failed.
    #[error("cannot start the preemption ticker: {0}")]
    Ticker(String),
    /// Pinning the tracer failed.
    #[error("cannot pin the tracer to a CPU: {0}")]
    Affinity(nix::Error),
}

thread_local! {
    /// The sentry CPU this host thread is (see `run_cpus`).
    static THIS_CPU: Cell<usize> = const { Cell::new(0) };
    /// Whether this CPU's last switch ran on a sysmsg thread.
    static LAST_FAST: Cell<bool> = const { Cell::new(false) };
}

/// The ptrace platform.
#[derive(Debug)]
pub struct PtracePlatform {
    mem: PhysMemory,
    host: std::sync::Arc<HostServices>,
    stub_page: std::sync::Arc<stub::StubPage>,
    running: std::sync::Arc<ticker::Running>,
    signals: std::sync::Arc<ticker::HostSignals>,
    gate: std::sync::Arc<PauseGate>,
    /// The TSC's rate for the vDSO, measured against the host clock.
    tsc: tsc::TscCalibration,
    /// The host CPU each sentry CPU is pinned to, one each; empty when
    /// there are more sentry CPUs than host CPUs (none is pinned then: two
    /// on one host CPU would wait for each other's host time slices).
    host_cpus: Vec<usize>,
    cpus: usize,
    /// The stub new stubs are forked from (see `Stub::fork_stub`).
    template: std::sync::Mutex<Option<Stub>>,
    /// Where the stubs' sysmsg regions come from; `None`: every stub runs
    /// under `PTRACE_SYSEMU`.
    sysmsg: Option<std::sync::Arc<sysmsg::Area>>,
    /// Where patched system call sites jump (see `sysmsg`); `None`: sites
    /// are not patched.
    patch_entry: Option<u64>,
}

impl PtracePlatform {
    /// A platform with `mem_bytes` of memory serving `host` on `cpus`
    /// CPUs (at most the sentry's `MAX_CPUS`).
    pub fn new(
        mem_bytes: u64,
        host: std::sync::Arc<HostServices>,
        cpus: usize,
    ) -> Result<Self, PtraceError> {
        let cpus = cpus.clamp(1, guest_kernel::sched::MAX_CPUS);
        let allowed = stub::host_cpus();
        let host_cpus: Vec<usize> = match allowed.get(..cpus) {
            Some(some) => some.to_vec(),
            None => Vec::new(),
        };
        if let Some(c) = host_cpus.first() {
            stub::pin_to(*c).map_err(PtraceError::Affinity)?;
        }
        let tsc = tsc::TscCalibration::start();
        let fast = sysmsg::enabled();
        let extra = if fast { sysmsg::Area::bytes(cpus) } else { 0 };
        let mem = PhysMemory::new(mem_bytes, extra).map_err(|source| PtraceError::Memory {
            bytes: mem_bytes,
            source,
        })?;
        let sysmsg = if fast {
            match sysmsg::Area::new(mem.fd(), mem_bytes, cpus, &allowed, !host_cpus.is_empty()) {
                Ok(a) => Some(std::sync::Arc::new(a)),
                Err(e) => {
                    log::warn!("no seccomp-trap fast path ({e}): every call takes PTRACE_SYSEMU");
                    None
                }
            }
        } else {
            None
        };
        let stub_page = stub::StubPage::new().map_err(PtraceError::StubPage)?;
        let stub_page = std::sync::Arc::new(stub_page);
        let running = std::sync::Arc::new(ticker::Running::new(cpus));
        ticker::start(&running).map_err(|e| PtraceError::Ticker(e.to_string()))?;
        let patch_entry =
            (sysmsg.is_some() && sysmsg::enable_patching()).then(|| stub_page.patch_entry());
        Ok(PtracePlatform {
            mem,
            host,
            stub_page,
            running,
            signals: Default::default(),
            gate: std::sync::Arc::new(PauseGate::new(cpus)),
            tsc,
            host_cpus,
            cpus,
            template: std::sync::Mutex::new(None),
            patch_entry,
            sysmsg,
        })
    }
}

fn ts_ns(t: TimeSpec) -> u64 {
    (t.tv_sec() as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec() as u64)
}

impl PtracePlatform {
    /// The calling CPU, and the host CPU where its stub threads belong.
    fn on_cpu(&self) -> stub::OnCpu {
        let cpu = self.this_cpu();
        stub::OnCpu {
            cpu,
            // One CPU: it stays where `new` pinned it, with its stubs.
            pin: (self.host_cpus.len() > 1)
                .then(|| self.host_cpus.get(cpu).copied())
                .flatten(),
        }
    }

    /// A new stub: forked from the template, or from the sandbox process.
    fn new_stub(&self) -> Result<Stub, PlatformError> {
        let on = self.on_cpu();
        let cpus = self.cpus();
        // New stubs fork from the template, made on first use; without one
        // (it could not be made, or broke), from the sandbox process.
        if let Ok(mut template) = self.template.lock() {
            if template.is_none() {
                *template = Stub::spawn(&self.stub_page, self.mem.fd(), on.cpu, cpus).ok();
            }
            if let Some(t) = template.as_mut() {
                match t.fork_stub(on, cpus) {
                    Ok(stub) => return Ok(stub),
                    Err(e) => {
                        log::warn!("the template stub failed ({e}); stubs fork from the sandbox");
                        *template = None;
                    }
                }
            }
        }
        Stub::spawn(&self.stub_page, self.mem.fd(), on.cpu, cpus)
    }

    /// A handle through which other threads send the container signals.
    pub fn signal_sender(&self) -> SignalSender {
        SignalSender::new(self.signals.clone(), self.running.clone())
    }

    /// A handle through which other threads pause and resume the container.
    pub fn pauser(&self) -> Pauser {
        Pauser {
            gate: self.gate.clone(),
            running: self.running.clone(),
            signals: self.signals.clone(),
        }
    }
}

/// runc's `pause` on this platform: each CPU parks at a safe point (before
/// it resumes a stub, or instead of idling), so every stub stays in its
/// ptrace stop and no application code runs until `resume`.
#[derive(Debug)]
pub struct PauseGate {
    /// (paused, CPUs parked).
    state: std::sync::Mutex<(bool, usize)>,
    cond: std::sync::Condvar,
    cpus: usize,
}

impl PauseGate {
    fn new(cpus: usize) -> Self {
        PauseGate {
            state: Default::default(),
            cond: Default::default(),
            cpus,
        }
    }

    /// Called by the tracer at its safe points: blocks while paused.
    fn park_while_paused(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if !st.0 {
            return;
        }
        st.1 += 1;
        self.cond.notify_all();
        while st.0 {
            st = match self.cond.wait(st) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
        st.1 -= 1;
    }
}

/// Pauses and resumes a [`PtracePlatform`] from another thread.
#[derive(Clone, Debug)]
pub struct Pauser {
    gate: std::sync::Arc<PauseGate>,
    running: std::sync::Arc<ticker::Running>,
    signals: std::sync::Arc<ticker::HostSignals>,
}

impl Pauser {
    /// Stops the container at each CPU's next safe point. With `wait`,
    /// interrupts the running stubs and returns once every CPU is parked
    /// (or after `limit`, when a CPU is busy in the sentry and runs no
    /// application code anyway); true if all parked.
    pub fn pause(&self, wait: bool, limit: Duration) -> bool {
        let Ok(mut st) = self.gate.state.lock() else {
            return false;
        };
        st.0 = true;
        let all = self.gate.cpus;
        if !wait {
            return st.1 >= all;
        }
        let start = std::time::Instant::now();
        while st.1 < all && start.elapsed() < limit {
            self.running.kick();
            self.signals.wake_idle();
            st = match self.gate.cond.wait_timeout(st, Duration::from_millis(5)) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
        st.1 >= all
    }

    /// Lets the CPUs go on.
    pub fn resume(&self) {
        if let Ok(mut st) = self.gate.state.lock() {
            st.0 = false;
        }
        self.gate.cond.notify_all();
    }
}

impl Platform for PtracePlatform {
    type AddressSpace = Stub;
    type Thread = StubThread;
    type Host = HostServices;
    type SpaceRef = SpaceRef;

    fn cpus(&self) -> usize {
        self.cpus
    }

    fn run_cpus(&self, cpu_loop: &(dyn Fn(usize) + Sync)) {
        let n = self.cpus();
        let left = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let mut started = 0;
            for c in 1..n {
                let (left, pin) = (&left, self.host_cpus.get(c).copied());
                let r = std::thread::Builder::new()
                    .name(format!("rf-cpu{c}"))
                    .spawn_scoped(s, move || {
                        THIS_CPU.with(|t| t.set(c));
                        if let Some(Err(e)) = pin.map(stub::pin_to) {
                            log::debug!("CPU {c}: cannot pin to host CPU {pin:?}: {e}");
                        }
                        cpu_loop(c);
                        if let Some(g) = stub::CPU_GONE.get(c) {
                            g.store(true, Ordering::SeqCst);
                        }
                        left.fetch_add(1, Ordering::SeqCst);
                    });
                match r {
                    Ok(_) => started += 1,
                    // The sentry never waits for a CPU: one that does not
                    // run just takes no tasks.
                    Err(e) => log::warn!("cannot start CPU {c}: {e}"),
                }
            }
            cpu_loop(0);
            // The others see the sentry is done once kicked, within
            // microseconds: poll briefly, since the sandbox exits after.
            while left.load(Ordering::SeqCst) < started {
                for c in 1..n {
                    self.kick_cpu(c);
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        let (fast, stops) = self.running.traps();
        log::info!("ptrace switches: {fast} through sysmsg threads, {stops} under PTRACE_SYSEMU");
    }

    fn kick_cpu(&self, cpu: usize) {
        self.running.kick_cpu(cpu);
        self.signals.wake_idle();
    }

    fn this_cpu(&self) -> usize {
        THIS_CPU.with(|t| t.get())
    }

    fn phys_range(&self) -> (PhysAddr, u64) {
        (0, self.mem.len())
    }

    fn max_user_address(&self) -> u64 {
        self.stub_page.user_top()
    }

    fn phys_read(&self, pa: PhysAddr, buf: &mut [u8]) {
        self.mem.read(pa, buf);
    }

    fn phys_write(&self, pa: PhysAddr, data: &[u8]) {
        self.mem.write(pa, data);
    }

    fn phys_zero(&self, pa: PhysAddr, len: u64) {
        self.mem.zero(pa, len);
    }

    fn host_pread_phys(&self, h: HostHandle, pa: PhysAddr, len: usize, off: u64) -> KResult<usize> {
        self.mem
            .with_slice_mut(pa, len, |buf| self.host.pread(h, buf, off))
    }

    fn new_address_space(&self) -> Result<Stub, PlatformError> {
        let mut stub = self.new_stub()?;
        if let Some(a) = &self.sysmsg {
            stub.use_sysmsg(a.clone());
        }
        Ok(stub)
    }

    fn map(&self, space: &mut Stub, va: u64, pa: PhysAddr, len: u64, prot: Prot) -> KResult<()> {
        space.map(self.on_cpu(), va, pa, len, prot)
    }

    fn unmap(&self, space: &mut Stub, va: u64, len: u64) -> KResult<()> {
        space.unmap(self.on_cpu(), va, len)
    }

    fn protect(&self, space: &mut Stub, va: u64, len: u64, prot: Prot) -> KResult<()> {
        space.protect(self.on_cpu(), va, len, prot)
    }

    fn begin_batch(&self, space: &mut Stub) {
        space.begin_batch();
    }

    fn end_batch(&self, space: &mut Stub) -> KResult<()> {
        space.end_batch(self.on_cpu())
    }

    fn new_thread(&self, _space: &mut Stub) -> Result<StubThread, PlatformError> {
        Ok(StubThread::default())
    }

    fn activate(&self, space: &mut Stub) -> SpaceRef {
        space.activate(self.on_cpu())
    }

    fn switch(
        &self,
        space: SpaceRef,
        thread: &mut StubThread,
        regs: &mut UserRegs,
    ) -> Result<Trap, PlatformError> {
        self.gate.park_while_paused();
        LAST_FAST.with(|f| f.set(space.is_fast()));
        Stub::switch(space, thread, regs, &self.running, self.this_cpu())
    }

    fn release_thread(&self, _space: &mut Stub, _thread: StubThread) {}

    fn unload_thread(&self, thread: &mut StubThread) {
        thread.unload();
    }

    fn fpu_state(&self, thread: &StubThread) -> Option<[u8; 512]> {
        Some(thread.fpu_state())
    }

    fn set_fpu_state(&self, thread: &mut StubThread, state: &[u8; 512]) {
        thread.set_fpu_state(state);
    }

    fn syscall_patch(&self) -> Option<guest_kernel::platform::SyscallPatch> {
        // Only for a call that came from a sysmsg thread: a space still
        // under PTRACE_SYSEMU (the first switches of every process: most
        // of a fork+exec) would pay a private copy of each code page it
        // patches, and gain nothing (a patched site traps there as before).
        let entry = self.patch_entry.filter(|_| LAST_FAST.with(|f| f.get()))?;
        Some(guest_kernel::platform::SyscallPatch {
            entry,
            gs_self: sysmsg::SELF as u32,
        })
    }

    fn host(&self) -> &HostServices {
        &self.host
    }

    fn now(&self, clock: Clock) -> u64 {
        let id = match clock {
            Clock::Realtime => ClockId::CLOCK_REALTIME,
            Clock::Monotonic => ClockId::CLOCK_MONOTONIC,
        };
        clock_gettime(id).map(ts_ns).unwrap_or(0)
    }

    fn tsc_clock(&self) -> Option<guest_kernel::platform::TscClock> {
        self.tsc.clock()
    }

    fn idle(&self, deadline: Option<u64>) {
        self.gate.park_while_paused();
        let now = self.now(Clock::Monotonic);
        let wait = match deadline {
            Some(d) => Duration::from_nanos(d.saturating_sub(now)),
            None => Duration::from_secs(1),
        };
        self.signals.wait(self.this_cpu(), wait, &self.running);
    }

    fn take_exec(&self) -> Option<guest_kernel::ExecRequest> {
        let r = self.signals.take_exec();
        if r.is_some() {
            self.running.signal_taken();
        }
        r
    }

    fn exec_exited(&self, id: u32, code: i32) {
        self.signals.exited(id, code);
    }

    fn take_host_signal(&self) -> Option<guest_kernel::platform::HostSignal> {
        let sig = self.signals.take();
        if sig.is_some() {
            self.running.signal_taken();
        }
        sig
    }

    fn random(&self, buf: &mut [u8]) {
        stub::fill_random(buf);
    }
}

/// Signals that mean the stub hit a synchronous fault.
fn fault_signal(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGSEGV | Signal::SIGBUS | Signal::SIGILL | Signal::SIGFPE | Signal::SIGTRAP
    )
}
