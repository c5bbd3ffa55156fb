//! Stub processes: empty address spaces that run application code under
//! `PTRACE_SYSEMU`.
//!
//! The first stub, the template, is forked from the sandbox process. It
//! unmaps everything but its two pages (the code page at the top of the
//! user range, which the sentry never hands to the application, and the
//! batch page below it), clones a parked thread for each other CPU and
//! stops itself. Every other stub is forked from the template
//! (`fork_stub`), which is much cheaper, and clones its parked threads
//! the same way.
//!
//! A tracee answers only to the host thread that traces it, so each CPU (a
//! host thread) runs the tasks of a space on a stub thread of its own: the
//! forking CPU on the main thread, each other CPU on a parked thread that
//! it seizes when it first needs it. Through its own thread a CPU injects
//! `mmap`/`munmap`/`mprotect`, one at a time or a batch at once (the host
//! kernel keeps the other threads of the space coherent), and runs
//! application registers with SYSEMU.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use guest_kernel::abi::{Errno, KResult, UserRegs};
use guest_kernel::platform::{PlatformError, Prot, Trap};
use guest_kernel::sched::MAX_CPUS;
use log::debug;
use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::fault_signal;
use crate::fpu::{self, StubThread};
use crate::regs::{check_no_rseq, to_host};
use crate::ticker::Running;

mod fast;
mod page;
mod run;

pub use page::{StubPage, BATCH_MAX};
use run::{run_until_trap, seize, wait_stopped};

/// glibc's rseq signature on x86.
const RSEQ_SIG: u32 = 0x5305_3053;

extern "C" {
    // glibc's rseq ABI (2.35+): offset of this thread's `struct rseq` from
    // the thread pointer, and its registered size (0 when not registered).
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

/// Pin the calling thread (and the stubs it forks) to host CPU `cpu`.
pub fn pin_to(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
}

/// The host CPUs this process may run on, the one it runs on now first.
pub fn host_cpus() -> Vec<usize> {
    let now = nix::sched::sched_getcpu().unwrap_or(0);
    let allowed = nix::sched::sched_getaffinity(Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|c| set.is_set(*c).unwrap_or(false))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut cpus = vec![now];
    cpus.extend(allowed.into_iter().filter(|c| *c != now));
    cpus
}

/// Fill `buf` from the host's entropy pool.
pub fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the kernel writes at most `len - done` bytes into `buf`.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n > 0 {
            done += n as usize;
        }
    }
}

/// A CPU's stub thread of a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// None could be made (clone failed).
    Missing,
    /// Cloned at spawn, not yet seized: it waits in `pause()`.
    Parked(Pid),
    /// Traced by the CPU.
    Traced(Pid),
}

/// A stub process: one application address space.
#[derive(Debug)]
pub struct Stub {
    pid: Pid,
    syscall_addr: u64,
    batch_addr: u64,
    memfd: RawFd,
    /// Registers used as the base for injected syscalls.
    inject_regs: libc::user_regs_struct,
    /// Each CPU's stub thread.
    slots: [Slot; MAX_CPUS],
    page: std::sync::Arc<StubPage>,
    /// Calls queued since `begin_batch`, run by `end_batch`.
    batch: Option<Vec<[u64; 7]>>,
    /// The seccomp-trap fast path, when the platform has it.
    sysmsg: Option<fast::Sysmsg>,
    /// Switches into the space so far (see `activate`).
    switches: u32,
}

/// The sentry CPU that calls, and the host CPU its stub threads belong on
/// (`None`: leave them where they are).
#[derive(Debug, Clone, Copy)]
pub struct OnCpu {
    pub cpu: usize,
    pub pin: Option<usize>,
}

/// What running a task in a space needs, without the space: the stub and
/// the CPU's thread of it (`None`: it could not be had).
#[derive(Debug, Clone, Copy)]
pub struct SpaceRef {
    pid: Pid,
    tid: Option<Pid>,
    /// The CPU's sysmsg slot and thread, when it has one.
    fast: Option<(crate::sysmsg::Slot, Pid)>,
    /// Where the CPU runs its sysmsg threads near and far.
    places: Option<(usize, usize)>,
    /// Where patched calls enter the stub code.
    patch: page::PatchSites,
}

fn lost(what: &'static str, e: nix::Error) -> PlatformError {
    PlatformError::Lost(what, e as i32)
}

fn prot_bits(p: Prot) -> u64 {
    u64::from(p.bits())
}

/// The ptrace options of every traced stub thread.
fn options() -> ptrace::Options {
    // TRACEFORK: a stub forked from the template is ours from birth (the
    // application's own calls never reach the host, so only ours fork).
    ptrace::Options::PTRACE_O_EXITKILL
        | ptrace::Options::PTRACE_O_TRACESYSGOOD
        | ptrace::Options::PTRACE_O_TRACEFORK
}

impl Stub {
    /// Fork a stub that keeps only the stub page and `memfd`, its main
    /// thread traced by the calling CPU `cpu`, and a parked thread for each
    /// of the other `cpus - 1` CPUs.
    pub fn spawn(
        page: &std::sync::Arc<StubPage>,
        memfd: BorrowedFd<'_>,
        cpu: usize,
        cpus: usize,
    ) -> Result<Stub, PlatformError> {
        let memfd = memfd.as_raw_fd();
        let parent = nix::unistd::getpid();
        let base = page.addr;
        let cpus = cpus.clamp(1, MAX_CPUS);
        let parked = (cpus - 1) as u64;
        // A forked child inherits the parent's rseq registration, and the
        // kernel would fault on the (soon unmapped) rseq area at the next
        // preemption. The child unregisters it first.
        // SAFETY: plain reads of glibc's exported constants.
        let (rseq_off, rseq_size) = unsafe { (__rseq_offset, __rseq_size) };
        let mut tp: u64;
        // SAFETY: reads this thread's FS base, the thread pointer.
        unsafe {
            std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        let rseq_addr = tp.wrapping_add(rseq_off as u64);
        // SAFETY: the child only makes raw system calls (async-signal-safe)
        // and then jumps to the stub code, never returning into Rust.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(PlatformError::Resource(
                "fork of the stub",
                nix::errno::Errno::last_raw(),
            ));
        }
        if pid == 0 {
            // SAFETY: raw syscalls in the forked child; see above.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent.as_raw() {
                    libc::_exit(1);
                }
                libc::setsid();
                if rseq_size != 0 {
                    for len in [rseq_size, 32] {
                        libc::syscall(libc::SYS_rseq, rseq_addr, len, 1i32, RSEQ_SIG);
                    }
                }
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    libc::_exit(2);
                }
                if memfd > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, (memfd - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (memfd + 1) as u32, u32::MAX, 0u32);
                std::arch::asm!(
                    "jmp {0}",
                    in(reg) base,
                    in("r12") base,
                    in("r13") parked,
                    options(noreturn)
                );
            }
        }
        let pid = Pid::from_raw(pid);
        let mut slots = [Slot::Missing; MAX_CPUS];
        slots[cpu.min(MAX_CPUS - 1)] = Slot::Traced(pid);
        let mut stub = Stub {
            pid,
            syscall_addr: base + page.syscall_off,
            batch_addr: base + page.batch_off,
            memfd,
            inject_regs: to_host(&UserRegs::default()),
            slots,
            page: page.clone(),
            batch: None,
            sysmsg: None,
            switches: 0,
        };
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {}
            Ok(other) => {
                debug!("stub {pid} did not stop: {other:?}");
                return Err(PlatformError::Lost("stub failed to start", 0));
            }
            Err(e) => return Err(lost("waiting for the stub", e)),
        }
        ptrace::setoptions(pid, options()).map_err(|e| lost("ptrace options", e))?;
        let r = ptrace::getregs(pid).map_err(|e| lost("stub registers", e))?;
        stub.take_parked(&r, cpu, cpus);
        stub.inject_regs = r;
        check_no_rseq(pid)?;
        fpu::probe_size(pid);
        fpu::forget(pid);
        Ok(stub)
    }

    /// Record the parked threads' tids, in the order the stub code keeps
    /// them in `r`, for the CPUs but `cpu`.
    fn take_parked(&mut self, r: &libc::user_regs_struct, cpu: usize, cpus: usize) {
        let tids = [r.rbx, r.rbp, r.r8, r.r9, r.r10, r.r14, r.r15];
        let others = (0..cpus.clamp(1, MAX_CPUS)).filter(|c| *c != cpu);
        for (c, tid) in others.zip(tids) {
            let tid = tid as i64;
            if tid > 0 && tid <= i64::from(i32::MAX) {
                self.slots[c] = Slot::Parked(Pid::from_raw(tid as i32));
            }
        }
    }

    /// A new stub forked from this one, the template: it holds nothing but
    /// the stub pages, so the fork costs a fraction of the sandbox
    /// process's. The child is traced by the calling CPU from birth
    /// (`PTRACE_O_TRACEFORK`) and made the sandbox's child
    /// (`CLONE_PARENT`), reaped as the sandbox's own stubs are; it then
    /// clones a parked thread for each other CPU, as a stub does at start.
    pub fn fork_stub(&mut self, on: OnCpu, cpus: usize) -> Result<Stub, PlatformError> {
        let tid = self.thread_for(on.cpu, on.pin)?;
        let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as u64;
        let r = self.inject(tid, libc::SYS_clone, [flags, 0, 0, 0, 0, 0])?;
        if r <= 0 || r > i64::from(i32::MAX) {
            return Err(PlatformError::Resource(
                "fork of the template stub",
                i32::try_from(-r).unwrap_or(0),
            ));
        }
        let pid = Pid::from_raw(r as i32);
        let mut slots = [Slot::Missing; MAX_CPUS];
        slots[on.cpu.min(MAX_CPUS - 1)] = Slot::Traced(pid);
        // From here on, dropping `stub` kills and reaps the child.
        let mut stub = Stub {
            pid,
            syscall_addr: self.syscall_addr,
            batch_addr: self.batch_addr,
            memfd: self.memfd,
            inject_regs: self.inject_regs,
            slots,
            page: self.page.clone(),
            batch: None,
            sysmsg: None,
            switches: 0,
        };
        // Its first stop: the SIGSTOP of a child traced from birth.
        wait_stopped(pid, "stub failed to start")?;
        let mut regs = self.inject_regs;
        regs.rip = self.syscall_addr - self.page.syscall_off + self.page.clones_off;
        regs.r12 = self.page.addr;
        regs.r13 = (cpus.clamp(1, MAX_CPUS) - 1) as u64;
        regs.orig_rax = u64::MAX;
        let out = stub.run_injected(pid, regs, libc::SYS_clone)?;
        stub.take_parked(&out, on.cpu, cpus);
        fpu::forget(pid);
        Ok(stub)
    }

    /// CPU `cpu`'s stub thread, seized first if it is still parked; `pin`
    /// is the host CPU to move it to.
    fn thread_for(&mut self, cpu: usize, pin: Option<usize>) -> Result<Pid, PlatformError> {
        match self.slots.get(cpu).copied().unwrap_or(Slot::Missing) {
            Slot::Traced(tid) => Ok(tid),
            Slot::Missing => Err(PlatformError::Resource("no stub thread for this CPU", 0)),
            Slot::Parked(tid) => {
                // Whatever happens, it is not parked for us any more.
                self.slots[cpu] = Slot::Missing;
                seize(tid, pin)?;
                self.slots[cpu] = Slot::Traced(tid);
                fpu::forget(tid);
                Ok(tid)
            }
        }
    }

    /// Run one host syscall inside the stub, on thread `tid`.
    fn inject(&self, tid: Pid, nr: i64, args: [u64; 6]) -> Result<i64, PlatformError> {
        let mut r = self.inject_regs;
        r.rip = self.syscall_addr;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) =
            (args[0], args[1], args[2], args[3], args[4], args[5]);
        let out = self.run_injected(tid, r, nr)?;
        log::trace!(
            "stub {}/{tid}: syscall {nr}({:#x}, {:#x}, {:#x}, ..) = {:#x}",
            self.pid,
            args[0],
            args[1],
            args[2],
            out.rax
        );
        Ok(out.rax as i64)
    }

    /// Run stub code from registers `r` on `tid` until its `int3`; the
    /// registers there. `nr` names the call for the log (-1: a batch).
    fn run_injected(
        &self,
        tid: Pid,
        r: libc::user_regs_struct,
        nr: i64,
    ) -> Result<libc::user_regs_struct, PlatformError> {
        ptrace::setregs(tid, r).map_err(|e| lost("inject setregs", e))?;
        ptrace::cont(tid, None).map_err(|e| lost("inject cont", e))?;
        loop {
            match waitpid(tid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => break,
                Ok(WaitStatus::Stopped(_, sig)) if fault_signal(sig) => {
                    let r = ptrace::getregs(tid).map_err(|e| lost("inject getregs", e))?;
                    let si = ptrace::getsiginfo(tid).map_err(|e| lost("inject siginfo", e))?;
                    // SAFETY: fault signals fill `si_addr`.
                    let addr = unsafe { si.si_addr() } as u64;
                    debug!(
                        "stub thread {tid} faulted with {sig:?} (code {}, addr {addr:#x}) during syscall {nr} at rip {:#x}",
                        si.si_code, r.rip
                    );
                    return Err(PlatformError::Lost(
                        "stub faulted during a host call",
                        sig as i32,
                    ));
                }
                // An unrelated signal (a kick) or an interruption stop came
                // first: drop it and go on.
                Ok(WaitStatus::Stopped(..) | WaitStatus::PtraceEvent(..)) => {
                    ptrace::cont(tid, None).map_err(|e| lost("inject cont", e))?
                }
                Ok(other) => {
                    debug!("stub thread {tid} lost during injection: {other:?}");
                    return Err(PlatformError::Lost("stub exited", 0));
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(lost("inject wait", e)),
            }
        }
        ptrace::getregs(tid).map_err(|e| lost("inject getregs", e))
    }

    fn inject_checked(&mut self, on: OnCpu, nr: i64, args: [u64; 6]) -> KResult<()> {
        if let Some(b) = self.batch.as_mut() {
            let [a0, a1, a2, a3, a4, a5] = args;
            b.push([nr as u64, a0, a1, a2, a3, a4, a5]);
            return Ok(());
        }
        let tid = self.thread_for(on.cpu, on.pin)?;
        match self.inject(tid, nr, args) {
            Ok(r) if r < 0 && r > -4096 => Err(Errno(-r as i32)),
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Queue the next calls instead of running each at once (see
    /// `Platform::begin_batch`).
    pub fn begin_batch(&mut self) {
        self.batch.get_or_insert_with(Vec::new);
    }

    /// Run the calls queued since `begin_batch`, a batch page at a time,
    /// through the CPU's thread; the first failure ends the batch.
    pub fn end_batch(&mut self, on: OnCpu) -> KResult<()> {
        let Some(ops) = self.batch.take() else {
            return Ok(());
        };
        if ops.is_empty() {
            return Ok(());
        }
        let tid = self.thread_for(on.cpu, on.pin)?;
        for chunk in ops.chunks(BATCH_MAX) {
            let (rax, left) = self
                .page
                .clone()
                .with_batch(chunk, || self.run_batch(tid))?;
            if left != 0 {
                let e = -(rax as i64);
                return Err(Errno(i32::try_from(e).unwrap_or(libc::EINVAL)));
            }
        }
        Ok(())
    }

    /// Run the batch page on `tid`: the last result and the entries left.
    fn run_batch(&self, tid: Pid) -> Result<(u64, u64), PlatformError> {
        let mut r = self.inject_regs;
        r.rip = self.batch_addr;
        r.r12 = self.page.addr;
        r.orig_rax = u64::MAX;
        let out = self.run_injected(tid, r, -1)?;
        log::trace!(
            "stub {}/{tid}: batch: rax {:#x}, {} left",
            self.pid,
            out.rax,
            out.r13
        );
        Ok((out.rax, out.r13))
    }

    /// Map `[pa, pa+len)` of the memfd at `va`, through the CPU's thread.
    pub fn map(&mut self, on: OnCpu, va: u64, pa: u64, len: u64, prot: Prot) -> KResult<()> {
        let flags = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
        let fd = self.memfd as u64;
        self.inject_checked(
            on,
            libc::SYS_mmap,
            [va, len, prot_bits(prot), flags, fd, pa],
        )
    }

    pub fn unmap(&mut self, on: OnCpu, va: u64, len: u64) -> KResult<()> {
        self.inject_checked(on, libc::SYS_munmap, [va, len, 0, 0, 0, 0])
    }

    pub fn protect(&mut self, on: OnCpu, va: u64, len: u64, prot: Prot) -> KResult<()> {
        self.inject_checked(on, libc::SYS_mprotect, [va, len, prot_bits(prot), 0, 0, 0])
    }

    /// Run this space's tasks on sysmsg threads (see `crate::sysmsg`)
    /// where they can be made.
    pub fn use_sysmsg(&mut self, area: std::sync::Arc<crate::sysmsg::Area>) {
        self.sysmsg = Some(fast::Sysmsg::new(area));
    }

    /// What the CPU needs to run tasks here.
    pub fn activate(&mut self, on: OnCpu) -> SpaceRef {
        let tid = match self.thread_for(on.cpu, on.pin) {
            Ok(tid) => Some(tid),
            Err(e) => {
                debug!("stub {}: no thread for CPU {}: {e}", self.pid, on.cpu);
                None
            }
        };
        // A short-lived process (fork, exec, exit) would spend more on
        // making sysmsg threads than it saves: a space gets them once it
        // has run a while under PTRACE_SYSEMU.
        self.switches = self.switches.saturating_add(1);
        let fast = tid
            .filter(|_| self.switches > fast::AFTER_SWITCHES)
            .and_then(|t| self.fast_for(on.cpu, t));
        let places = self.sysmsg.as_ref().and_then(|s| s.places(on.cpu));
        SpaceRef {
            pid: self.pid,
            tid,
            fast,
            places,
            patch: self.page.patch,
        }
    }

    /// Run `regs` with `thread`'s FPU state on CPU `cpu`'s thread of the
    /// stub until the next syscall, fault or interruption. The FPU state
    /// stays in the stub thread until `StubThread::unload`.
    pub fn switch(
        space: SpaceRef,
        thread: &mut StubThread,
        regs: &mut UserRegs,
        running: &Running,
        cpu: usize,
    ) -> Result<Trap, PlatformError> {
        if let Some(f) = space.fast {
            running.count_trap(cpu, true);
            return Self::switch_fast(&space, f, thread, regs, running, cpu);
        }
        running.count_trap(cpu, false);
        let Some(tid) = space.tid else {
            return Err(PlatformError::Resource("no stub thread for this CPU", 0));
        };
        thread.load(tid)?;
        ptrace::setregs(tid, to_host(regs)).map_err(|e| lost("setregs", e))?;
        if !running.enter(cpu, space.pid.as_raw(), tid.as_raw()) {
            // Kicked on the way here: look at the kernel again first.
            return Ok(Trap::Interrupt);
        }
        let r = run_until_trap(tid, regs);
        running.leave(cpu);
        // The CPU now goes to the kernel, and looks at its state there: a
        // kick left meanwhile has done its work (it must not turn the next
        // switch back for nothing).
        running.take_kick(cpu);
        r
    }
}

impl SpaceRef {
    /// Whether the CPU runs this space on a sysmsg thread.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }
}

/// Which CPU threads have ended (see `run_cpus`): the threads they traced
/// were detached from us then, and a blocking wait for one could hang.
pub static CPU_GONE: [std::sync::atomic::AtomicBool; MAX_CPUS] =
    [const { std::sync::atomic::AtomicBool::new(false) }; MAX_CPUS];

fn cpu_gone(cpu: usize) -> bool {
    CPU_GONE
        .get(cpu)
        .is_some_and(|g| g.load(std::sync::atomic::Ordering::SeqCst))
}

/// Reap `tid`, dead or dying of SIGKILL; false if it is still there after
/// `patience`. Blocks when `block` (the quickest way), else polls.
fn reap(tid: Pid, block: bool, patience: std::time::Duration) -> bool {
    if block {
        return loop {
            match waitpid(tid, Some(WaitPidFlag::__WALL)) {
                Err(nix::Error::EINTR) => continue,
                Ok(_) | Err(_) => break true,
            }
        };
    }
    let deadline = std::time::Instant::now() + patience;
    // SIGKILL takes some microseconds to land: look again soon, then less
    // and less often.
    let mut nap = std::time::Duration::from_micros(5);
    loop {
        match waitpid(tid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if std::time::Instant::now() < deadline => {
                std::thread::sleep(nap);
                nap = (nap * 2).min(std::time::Duration::from_millis(1));
            }
            Ok(WaitStatus::StillAlive) => return false,
            Err(nix::Error::EINTR) => {}
            // Reaped, or not ours to wait for (ECHILD).
            Ok(_) | Err(_) => return true,
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        // The leader is reported only after every other traced thread has
        // been reaped (by any thread of ours: wait reaches the tracees of
        // the whole thread group). Parked ones were never traced.
        let mut block = true;
        let mut leader_cpu = 0;
        for (cpu, slot) in self.slots.into_iter().enumerate() {
            if let Slot::Traced(tid) = slot {
                if tid == self.pid {
                    leader_cpu = cpu;
                } else if !reap(tid, !cpu_gone(cpu), std::time::Duration::from_millis(50)) {
                    block = false;
                }
            }
        }
        let block = block && !cpu_gone(leader_cpu);
        let reaped = reap(self.pid, block, std::time::Duration::from_secs(2));
        // Dead and reaped: nothing maps the region any more. (A stub that
        // would not go keeps its region.)
        if let Some(sm) = self.sysmsg.as_mut().filter(|_| reaped) {
            sm.release();
        }
    }
}
