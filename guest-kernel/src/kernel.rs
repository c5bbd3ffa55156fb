//! The sentry's top level: boot the container's init and run it to exit.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;

use log::{debug, info, warn};

use crate::abi::linux::{
    RLIMIT_NOFILE, RLIMIT_STACK, RLIM_INFINITY, RLIM_NLIMITS, SIGKILL, SIGSEGV,
};
use crate::abi::UserRegs;
use crate::boot::{BootParams, ExitStatus};
use crate::fs::{FdTable, File};
use crate::mm::{FaultError, FrameAllocator, MmStruct};
use crate::platform::{Clock, Platform, Trap, HOST_STDERR, HOST_STDIN, HOST_STDOUT};
use crate::syscalls;
use crate::task::signal::{default_action, DefaultAction, SIG_DFL, SIG_IGN};
use crate::task::{Credentials, Task};

/// Counters for the debug log at exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub syscalls: u64,
    pub faults: u64,
    pub interrupts: u64,
}

/// The sentry's state for one sandbox.
#[derive(Debug)]
pub struct Kernel<'p, P: Platform> {
    pub plat: &'p P,
    pub frames: FrameAllocator,
    pub mm: MmStruct<P>,
    pub task: Task<P>,
    pub fds: FdTable,
    pub hostname: Vec<u8>,
    pub cwd: Vec<u8>,
    /// The running program's path inside the container (`/proc/self/exe`).
    pub exe_path: Vec<u8>,
    /// `(soft, hard)` per resource.
    pub rlimits: [(u64, u64); RLIM_NLIMITS as usize],
    /// Monotonic time at boot.
    pub boot_ns: u64,
    /// Set when the thread group must end.
    pub exiting: Option<ExitStatus>,
    pub stats: Stats,
}

/// Boot the container's first process from `params` and run it until it
/// exits. This is the sentry's entry point on every platform.
pub fn run<P: Platform>(plat: &P, params: BootParams) -> ExitStatus {
    let mut k = match Kernel::new(plat, &params) {
        Ok(k) => k,
        Err(e) => return ExitStatus::PlatformFailed(format!("{e}")),
    };
    let status = k.start(&params);
    if let Some(status) = status {
        return status;
    }
    let status = k.run_loop();
    k.shutdown();
    status
}

impl<'p, P: Platform> Kernel<'p, P> {
    fn new(plat: &'p P, params: &BootParams) -> Result<Self, crate::platform::PlatformError> {
        let (base, len) = plat.phys_range();
        let mut space = plat.new_address_space()?;
        let thread = plat.new_thread(&mut space)?;
        let creds = Credentials {
            uid: params.uid,
            euid: params.uid,
            gid: params.gid,
            egid: params.gid,
        };
        let mut rlimits = [(RLIM_INFINITY, RLIM_INFINITY); RLIM_NLIMITS as usize];
        rlimits[RLIMIT_STACK as usize] = (8 << 20, RLIM_INFINITY);
        rlimits[RLIMIT_NOFILE as usize] = (1024, 4096);
        for &(r, soft, hard) in &params.rlimits {
            if let Some(slot) = rlimits.get_mut(r as usize) {
                *slot = (soft.min(hard), hard);
            }
        }
        let mut fds = FdTable::default();
        for (fd, h) in [(0, HOST_STDIN), (1, HOST_STDOUT), (2, HOST_STDERR)] {
            fds.install_at(fd, Arc::new(File::HostStream { handle: h }), false);
        }
        Ok(Kernel {
            plat,
            frames: FrameAllocator::new(base, len),
            mm: MmStruct::new(space, plat.max_user_address()),
            task: Task::new(1, thread, creds),
            fds,
            hostname: params.hostname.clone(),
            cwd: if params.cwd.is_empty() {
                b"/".to_vec()
            } else {
                params.cwd.clone()
            },
            exe_path: Vec::new(),
            rlimits,
            boot_ns: plat.now(Clock::Monotonic),
            exiting: None,
            stats: Stats::default(),
        })
    }

    /// Load init. Returns an exit status if it cannot start.
    fn start(&mut self, params: &BootParams) -> Option<ExitStatus> {
        let name = params.args.first().cloned().unwrap_or_default();
        let loaded = self
            .resolve_program(&name, &params.env, &self.cwd.clone())
            .and_then(|path| {
                self.load_program(&path, &params.args, &params.env)
                    .map(|e| (path, e))
            });
        match loaded {
            Ok((path, entry)) => {
                info!(
                    "init {} entry {:#x} sp {:#x}",
                    core::str::from_utf8(&path).unwrap_or("?"),
                    entry.rip,
                    entry.rsp
                );
                self.task.regs = UserRegs::new_user(entry.rip, entry.rsp);
                None
            }
            Err(e) => Some(ExitStatus::ExecFailed {
                path: name,
                errno: e.errno,
                reason: e.reason,
            }),
        }
    }

    fn run_loop(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.exiting.take() {
                return status;
            }
            let trap = match self.plat.switch(
                &mut self.mm.space,
                &mut self.task.thread,
                &mut self.task.regs,
            ) {
                Ok(t) => t,
                Err(e) => return ExitStatus::PlatformFailed(format!("{e}")),
            };
            match trap {
                Trap::Syscall => {
                    self.stats.syscalls += 1;
                    syscalls::dispatch(self);
                }
                Trap::PageFault { addr, write } => {
                    self.stats.faults += 1;
                    if let Err(e) = self
                        .mm
                        .handle_fault(self.plat, &mut self.frames, addr, write)
                    {
                        debug!(
                            "fault at {addr:#x} (write {write:?}) rip {:#x}: {e:?}",
                            self.task.regs.rip
                        );
                        let sig = if e == FaultError::NoMemory {
                            SIGKILL
                        } else {
                            SIGSEGV
                        };
                        self.task.signals.post(sig);
                        self.force_signal(sig);
                    }
                }
                Trap::Exception { signo, addr, .. } => {
                    debug!(
                        "exception: signal {signo} at {addr:#x} rip {:#x}",
                        self.task.regs.rip
                    );
                    self.task.signals.post(signo);
                    self.force_signal(signo);
                }
                Trap::Interrupt => self.stats.interrupts += 1,
            }
            self.deliver_signals();
        }
    }

    /// A synchronous fault signal that is blocked or ignored still kills, as on Linux.
    fn force_signal(&mut self, sig: i32) {
        let act = self.task.signals.action(sig);
        if self.task.signals.blocked & (1 << (sig - 1)) != 0 || act.handler == SIG_IGN {
            self.exiting = Some(ExitStatus::Signaled(sig));
        }
    }

    /// Act on pending, unblocked signals.
    pub fn deliver_signals(&mut self) {
        while self.exiting.is_none() {
            let Some(sig) = self.task.signals.take_deliverable() else {
                return;
            };
            let act = self.task.signals.action(sig);
            if act.handler == SIG_IGN {
                continue;
            }
            if act.handler != SIG_DFL && sig != SIGKILL {
                // Handler frames arrive with the signals work; until then the
                // process dies as if the handler were absent, loudly.
                warn!("signal {sig}: user handlers are not supported yet; applying the default action");
            }
            match default_action(sig) {
                DefaultAction::Terminate => self.exiting = Some(ExitStatus::Signaled(sig)),
                DefaultAction::Ignore | DefaultAction::Continue | DefaultAction::Stop => {}
            }
        }
    }

    fn shutdown(&mut self) {
        let fds: Vec<_> = self.fds.drain().collect();
        for e in fds {
            syscalls::io::release_file(self, e.file);
        }
        self.mm.teardown(self.plat, &mut self.frames);
        info!(
            "sentry exit: {} syscalls, {} faults, {} interrupts, {} frames in use",
            self.stats.syscalls,
            self.stats.faults,
            self.stats.interrupts,
            self.frames.used_frames()
        );
    }

    /// Copy helpers bound to the current address space.
    pub fn copy_in(&mut self, va: u64, buf: &mut [u8]) -> crate::abi::KResult<()> {
        self.mm.copy_in(self.plat, &mut self.frames, va, buf)
    }

    pub fn copy_out(&mut self, va: u64, data: &[u8]) -> crate::abi::KResult<()> {
        self.mm.copy_out(self.plat, &mut self.frames, va, data)
    }

    pub fn read_u64(&mut self, va: u64) -> crate::abi::KResult<u64> {
        self.mm.read_u64(self.plat, &mut self.frames, va)
    }

    pub fn read_cstr(&mut self, va: u64, max: usize) -> crate::abi::KResult<Vec<u8>> {
        self.mm.read_cstr(self.plat, &mut self.frames, va, max)
    }
}
