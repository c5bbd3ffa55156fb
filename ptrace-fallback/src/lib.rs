//! The ptrace platform: the sentry runs as ordinary code in the sandbox
//! process, and each application address space is a stub process that runs
//! under `PTRACE_SYSEMU`, so its system calls stop in the sentry instead of
//! reaching the host kernel.
//!
//! "Physical" memory is a memfd. The sentry maps all of it (its direct
//! map); application pages are `MAP_SHARED` windows of the same memfd,
//! placed in the stub with injected `mmap` calls. The tracer and its stubs
//! are pinned to one CPU: a ptrace round trip across CPUs costs about 6x
//! more on these machines.

mod physmem;
mod stub;
mod ticker;
mod tsc;

use std::time::Duration;

use devices::HostServices;
use guest_kernel::abi::{KResult, UserRegs};
use guest_kernel::platform::{
    Clock, HostHandle, HostOps, PhysAddr, Platform, PlatformError, Prot, Trap,
};
use nix::sys::signal::Signal;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};

pub use physmem::PhysMemory;
pub use stub::{Stub, StubThread};
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

/// The ptrace platform.
#[derive(Debug)]
pub struct PtracePlatform {
    mem: PhysMemory,
    host: std::sync::Arc<HostServices>,
    stub_page: stub::StubPage,
    running: std::sync::Arc<ticker::Running>,
    signals: std::sync::Arc<ticker::HostSignals>,
    gate: std::sync::Arc<PauseGate>,
    /// The TSC's rate for the vDSO, measured against the host clock.
    tsc: tsc::TscCalibration,
}

impl PtracePlatform {
    /// A platform with `mem_bytes` of memory serving `host`.
    pub fn new(mem_bytes: u64, host: std::sync::Arc<HostServices>) -> Result<Self, PtraceError> {
        stub::pin_to_current_cpu().map_err(PtraceError::Affinity)?;
        let tsc = tsc::TscCalibration::start();
        let mem = PhysMemory::new(mem_bytes).map_err(|source| PtraceError::Memory {
            bytes: mem_bytes,
            source,
        })?;
        let stub_page = stub::StubPage::new().map_err(PtraceError::StubPage)?;
        let running = std::sync::Arc::new(ticker::Running::default());
        ticker::start(&running).map_err(|e| PtraceError::Ticker(e.to_string()))?;
        Ok(PtracePlatform {
            mem,
            host,
            stub_page,
            running,
            signals: Default::default(),
            gate: Default::default(),
            tsc,
        })
    }
}

fn ts_ns(t: TimeSpec) -> u64 {
    (t.tv_sec() as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec() as u64)
}

impl PtracePlatform {
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

/// runc's `pause` on this platform: the tracer thread parks at a safe point
/// (before it resumes a stub, or instead of idling), so every stub stays in
/// its ptrace stop and no application code runs until `resume`.
#[derive(Debug, Default)]
pub struct PauseGate {
    /// (paused, the tracer is parked).
    state: std::sync::Mutex<(bool, bool)>,
    cond: std::sync::Condvar,
}

impl PauseGate {
    /// Called by the tracer at its safe points: blocks while paused.
    fn park_while_paused(&self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if !st.0 {
            return;
        }
        st.1 = true;
        self.cond.notify_all();
        while st.0 {
            st = match self.cond.wait(st) {
                Ok(g) => g,
                Err(_) => return,
            };
        }
        st.1 = false;
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
    /// Stops the container at the tracer's next safe point. With `wait`,
    /// interrupts the running stub and returns once the tracer is parked
    /// (or after `limit`, when the tracer is busy in the sentry and runs
    /// no application code anyway); true if it parked.
    pub fn pause(&self, wait: bool, limit: Duration) -> bool {
        let Ok(mut st) = self.gate.state.lock() else {
            return false;
        };
        st.0 = true;
        if !wait {
            return st.1;
        }
        let start = std::time::Instant::now();
        while !st.1 && start.elapsed() < limit {
            self.running.kick();
            self.signals.wake_all();
            st = match self.gate.cond.wait_timeout(st, Duration::from_millis(5)) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
        st.1
    }

    /// Lets the tracer go on.
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
    type SpaceRef = nix::unistd::Pid;

    fn phys_range(&self) -> (PhysAddr, u64) {
        (0, self.mem.len())
    }

    fn max_user_address(&self) -> u64 {
        self.stub_page.addr()
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
        Stub::spawn(&self.stub_page, self.mem.fd())
    }

    fn map(&self, space: &mut Stub, va: u64, pa: PhysAddr, len: u64, prot: Prot) -> KResult<()> {
        space.map(va, pa, len, prot, self.mem.raw_fd())
    }

    fn unmap(&self, space: &mut Stub, va: u64, len: u64) -> KResult<()> {
        space.unmap(va, len)
    }

    fn protect(&self, space: &mut Stub, va: u64, len: u64, prot: Prot) -> KResult<()> {
        space.protect(va, len, prot)
    }

    fn new_thread(&self, space: &mut Stub) -> Result<StubThread, PlatformError> {
        space.new_thread()
    }

    fn activate(&self, space: &mut Stub) -> nix::unistd::Pid {
        space.pid()
    }

    fn switch(
        &self,
        space: nix::unistd::Pid,
        thread: &mut StubThread,
        regs: &mut UserRegs,
    ) -> Result<Trap, PlatformError> {
        self.gate.park_while_paused();
        Stub::switch(space, thread, regs, &self.running)
    }

    fn release_thread(&self, space: &mut Stub, thread: StubThread) {
        space.release_thread(thread);
    }

    fn fpu_state(&self, thread: &StubThread) -> Option<[u8; 512]> {
        thread.fpu_state()
    }

    fn set_fpu_state(&self, thread: &mut StubThread, state: &[u8; 512]) {
        thread.set_fpu_state(state);
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
        self.signals.wait(wait);
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
