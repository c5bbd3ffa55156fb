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
        if sm.region.is_some() {
            return Ok(());
        }
        let fail = |sm: &mut Sysmsg, e| {
            sm.broken = true;
            Err(e)
        };
        let Some(region) = sm.area.alloc() else {
            return fail(sm, PlatformError::Resource("sysmsg regions used up", 0));
        };
        let va = self.page.sysmsg_va();
        let base = self.page.addr;
        let slot0 = region.slot(0, va);
        slot0.prepare(
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
                slot0.va + sysmsg::SIGACT,
                0,
                8,
                0,
                0,
            ]);
        }
        let r = self
            .page
            .clone()
            .with_batch(&ops, || self.run_batch(traced));
        let sm = self
            .sysmsg
            .as_mut()
            .ok_or(PlatformError::Lost("sysmsg", 0))?;
        match r {
            Ok((_, 0)) => {
                sm.region = Some(region);
                Ok(())
            }
            Ok((rax, _)) => {
                sm.area.release(&region);
                fail(
                    sm,
                    PlatformError::Resource("sysmsg setup", -(rax as i64) as i32),
                )
            }
            Err(e) => {
                sm.area.release(&region);
                fail(sm, e)
            }
        }
    }

    /// Clone CPU `cpu`'s sysmsg thread through `traced` and wait for its
    /// first trap.
    fn start_thread(&mut self, cpu: usize, traced: Pid) -> Result<Pid, PlatformError> {
        let slot = self
            .slot(cpu)
            .ok_or(PlatformError::Resource("no sysmsg slot", 0))?;
        let base = self.page.addr;
        slot.prepare(
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
        r.orig_rax = u64::MAX;
        let out = self.run_injected(traced, r, libc::SYS_clone)?;
        let tid = out.rax as i64;
        if tid <= 0 || tid > i64::from(i32::MAX) {
            return Err(PlatformError::Resource(
                "clone of a sysmsg thread",
                i32::try_from(-tid).unwrap_or(0),
            ));
        }
        let tid = Pid::from_raw(tid as i32);
        slot.wait_trap(self.pid, tid, false)?;
        // Its first trap must be the one after its filter is in place (a
        // stray signal could have stopped it earlier).
        if slot.first_trap() != Some((libc::SIGTRAP, base + self.page.sysmsg_started_off)) {
            return Err(PlatformError::Lost("sysmsg thread stopped early", 0));
        }
        // It starts near: on the traced thread's host CPU, its sentry
        // CPU's (see `Slot::adapt`).
        Ok(tid)
    }

    /// Run `regs` on a sysmsg thread until the next trap.
    pub(super) fn switch_fast(
        pid: Pid,
        (slot, tid): (Slot, Pid),
        places: Option<(usize, usize)>,
        thread: &mut StubThread,
        regs: &mut UserRegs,
        running: &Running,
        cpu: usize,
    ) -> Result<Trap, PlatformError> {
        thread.load_frame(tid, slot)?;
        if !running.enter(cpu, pid.as_raw(), tid.as_raw()) {
            return Ok(Trap::Interrupt);
        }
        let t0 = Instant::now();
        let r = slot
            .run(regs)
            .and_then(|()| slot.wait_trap(pid, tid, slot.far()))
            .and_then(|()| slot.trap(regs));
        let took = t0.elapsed();
        running.leave(cpu);
        running.take_kick(cpu);
        if let (Ok(trap), Some(p)) = (&r, places) {
            slot.adapt(tid, trap, took, p);
        }
        r
    }
}
