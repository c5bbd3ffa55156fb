//! A stub's sysmsg threads (see `crate::sysmsg`): made on a CPU's first
//! run in the space, through that CPU's traced thread.

use std::sync::Arc;
use std::time::Instant;

use guest_kernel::abi::UserRegs;
use guest_kernel::platform::{PlatformError, Trap};
use log::debug;
use nix::unistd::Pid;

use super::Stub;
use crate::fpu::StubThread;
use crate::sysmsg::{self, Area, Region, Slot};
use crate::ticker::Running;

/// Switches into a space before it gets sysmsg threads.
pub(super) const AFTER_SWITCHES: u32 = 64;

/// A CPU's sysmsg thread of a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fast {
    /// Not made yet.
    None,
    /// Could not be made: the CPU runs the space under `PTRACE_SYSEMU`.
    Broken,
    Ready(Pid),
}

/// A stub's sysmsg state.
#[derive(Debug)]
pub(super) struct Sysmsg {
    area: Arc<Area>,
    /// Allocated, mapped and the handler installed (on first use).
    region: Option<Region>,
    /// Setting the region up failed: no CPU tries again.
    broken: bool,
    threads: [Fast; guest_kernel::sched::MAX_CPUS],
}

impl Sysmsg {
    pub(super) fn new(area: Arc<Area>) -> Self {
        Sysmsg {
            area,
            region: None,
            broken: false,
            threads: [Fast::None; guest_kernel::sched::MAX_CPUS],
        }
    }

    /// Where CPU `cpu` runs its sysmsg threads near and far.
    pub(super) fn places(&self, cpu: usize) -> Option<(usize, usize)> {
        self.area.places(cpu)
    }

    /// Give the region back: the stub is dead.
    pub(super) fn release(&mut self) {
        if let Some(r) = self.region.take() {
            self.area.release(&r);
        }
    }
}

impl Stub {
    /// CPU `cpu`'s sysmsg slot and thread in this space, made if need
    /// be; `None`: run under `PTRACE_SYSEMU`.
    pub(super) fn fast_for(&mut self, cpu: usize, traced: Pid) -> Option<(Slot, Pid)> {
        let sm = self.sysmsg.as_ref()?;
        match *sm.threads.get(cpu)? {
            Fast::Ready(tid) => return Some((self.slot(cpu)?, tid)),
            Fast::Broken => return None,
            Fast::None if sm.broken => return None,
            Fast::None => {}
        }
        let made = self
            .setup_region(traced)
            .and_then(|()| self.start_thread(cpu, traced));
        let sm = self.sysmsg.as_mut()?;
        match made {
            Ok(tid) => {
                sm.threads[cpu] = Fast::Ready(tid);
                Some((self.slot(cpu)?, tid))
            }
            Err(e) => {
                debug!(
                    "stub {}: no sysmsg thread for CPU {cpu} ({e}); it runs under PTRACE_SYSEMU",
                    self.pid
                );
                sm.threads[cpu] = Fast::Broken;
                None
            }
        }
    }

    fn slot(&self, cpu: usize) -> Option<Slot> {
        let r = self.sysmsg.as_ref()?.region?;
        Some(r.slot(cpu, self.page.sysmsg_va()))
    }

    /// Allocate and map the region and install the handler, once.
    fn setup_region(&mut self, traced: Pid) -> Result<(), PlatformError> {
        let Some(sm) = self.sysmsg.as_mut() else {
            return Err(PlatformError::Resource("no sysmsg area", 0));
        };
        if sm.region.is_some() || sm.broken {
            return if sm.broken {
                Err(PlatformError::Resource("sysmsg setup failed before", 0))
            } else {
                Ok(())
            };
        }
        let Some(region) = sm.area.alloc() else {
            sm.broken = true;
            return Err(PlatformError::Resource("sysmsg regions used up", 0));
        };
        // Whatever happens now, the region stays the stub's until it is
        // reaped: the mmap may have landed even if a later call failed.
        sm.region = Some(region);
        let va = self.page.sysmsg_va();
        let base = self.page.addr;
        let at = self.page.data_va();
        let data = region.slot(0, va).setup_data(
            at,
            base,
            base + self.page.sysmsg_handler_off,
            base + self.page.sysmsg_restorer_off,
        );
        let mut ops = vec![[
            libc::SYS_mmap as u64,
            va,
            region.len,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_SHARED | libc::MAP_FIXED) as u64,
            self.memfd as u64,
            region.file_off,
        ]];
        for sig in sysmsg::SIGNALS {
            ops.push([
                libc::SYS_rt_sigaction as u64,
                sig as u64,
                at + sysmsg::DATA_SIGACT,
                0,
                8,
                0,
                0,
            ]);
        }
        let r = self
            .page
            .clone()
            .with_page(&ops, &data, || self.run_batch(traced));
        let e = match r {
            Ok((_, 0)) => return Ok(()),
            Ok((rax, _)) => {
                PlatformError::Resource("sysmsg setup", (rax as i64).wrapping_neg() as i32)
            }
            Err(e) => e,
        };
        if let Some(sm) = self.sysmsg.as_mut() {
            sm.broken = true;
        }
        Err(e)
    }

    /// Clone CPU `cpu`'s sysmsg thread through `traced` and wait for its
    /// first trap. A thread that may have started without its filter
    /// ends its whole stub.
    fn start_thread(&mut self, cpu: usize, traced: Pid) -> Result<Pid, PlatformError> {
        let slot = self
            .slot(cpu)
            .ok_or(PlatformError::Resource("no sysmsg slot", 0))?;
        let base = self.page.addr;
        let at = self.page.data_va();
        slot.prepare();
        let data = slot.setup_data(
            at,
            base,
            base + self.page.sysmsg_handler_off,
            base + self.page.sysmsg_restorer_off,
        );
        let mut r = self.inject_regs;
        r.rip = base + self.page.sysmsg_clone_off;
        r.rax = libc::SYS_clone as u64;
        r.rdi = 0x50f00;
        r.rsi = slot.va + sysmsg::SLOT;
        (r.rdx, r.r10, r.r8) = (0, 0, 0);
        r.r12 = slot.va;
        r.r13 = at + sysmsg::DATA_SS;
        r.r14 = at + sysmsg::DATA_FPROG;
        r.orig_rax = u64::MAX;
        // The data stays in the batch page until the thread has read it.
        let page = self.page.clone();
        let pid = self.pid;
        let started = page.with_page(&[], &data, || {
            let out = self.run_injected(traced, r, libc::SYS_clone)?;
            let tid = out.rax as i64;
            if tid <= 0 || tid > i64::from(i32::MAX) {
                return Err(PlatformError::Resource(
                    "clone of a sysmsg thread",
                    i32::try_from(-tid).unwrap_or(0),
                ));
            }
            let tid = Pid::from_raw(tid as i32);
            Ok((tid, slot.wait_trap(pid, tid, false)))
        })?;
        let (tid, waited) = started;
        if waited.is_err() && slot.failed() {
            // It could not set itself up, said so and exited: no filter was
            // ever missing while it could run application code.
            return Err(PlatformError::Resource("sysmsg thread setup", slot.err()));
        }
        // Its first trap must be the one after its filter is in place, and
        // the kernel must say the filter is there: anything else, and a
        // thread without one may be waiting to run application code.
        let ok = waited.is_ok()
            && slot.first_trap() == Some((libc::SIGTRAP, base + self.page.sysmsg_started_off))
            && filtered(pid, tid);
        if !ok {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            return Err(PlatformError::Lost("sysmsg thread started wrong", 0));
        }
        // It starts near: on the traced thread's host CPU, its sentry
        // CPU's (see `Slot::adapt`).
        Ok(tid)
    }

    /// Run `regs` on a sysmsg thread until the next trap.
    pub(super) fn switch_fast(
        space: &super::SpaceRef,
        (slot, tid): (Slot, Pid),
        thread: &mut StubThread,
        regs: &mut UserRegs,
        running: &Running,
        cpu: usize,
    ) -> Result<Trap, PlatformError> {
        let pid = space.pid;
        thread.load_frame(tid, slot)?;
        if !running.enter(cpu, pid.as_raw(), tid.as_raw()) {
            return Ok(Trap::Interrupt);
        }
        let t0 = Instant::now();
        let r = (|| loop {
            slot.run(regs)?;
            slot.wait_trap(pid, tid, slot.far())?;
            let mut got = *regs;
            let trap = slot.trap(&mut got)?;
            // A patched call's way out wants a real frame (a GS of the
            // application's, or the trap flag): the thread is in one now,
            // with the FPU state loaded; the same registers go into it.
            if space.patch.converts(&trap, got.rip) {
                // A kick on the way there was only noted.
                if slot.take_kick() {
                    return Ok(Trap::Interrupt);
                }
                continue;
            }
            *regs = got;
            return Ok(trap);
        })();
        let took = t0.elapsed();
        running.leave(cpu);
        running.take_kick(cpu);
        if let (Ok(trap), Some(p)) = (&r, space.places) {
            slot.adapt(tid, trap, took, p);
        }
        r
    }
}

/// Whether thread `tid` of `pid` runs with a seccomp filter and no new
/// privileges, as the kernel reports it.
fn filtered(pid: Pid, tid: Pid) -> bool {
    let path = format!("/proc/{pid}/task/{tid}/status");
    let Ok(status) = std::fs::read_to_string(path) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .map(str::to_owned)
    };
    field("Seccomp:").as_deref() == Some("2") && field("NoNewPrivs:").as_deref() == Some("1")
}
