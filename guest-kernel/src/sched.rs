//! The scheduler: one loop per CPU over the one kernel, behind one lock.
//!
//! The sentry's state is a single [`Kernel`] behind a spin lock (a big
//! kernel lock, as Linux 2.0's SMP). A CPU holds it while it serves a
//! system call, a fault or the run queue, and lets go of it only to run a
//! task in user mode or to idle. User code, which is where applications
//! spend their time, so runs on every CPU at once; the sentry's own work
//! is serialised. While a task runs, its CPU owns the task's platform
//! thread and registers (taken out of the `Task`), and pins the address
//! space it has loaded (`MmEntry::cpus`), so nothing another CPU does can
//! free what it runs on. Another CPU that changes the task's fate (a
//! signal, an exit, a stop) kicks it back into the kernel.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use log::debug;

use crate::abi::linux::{SIGILL, SIGKILL, SIGSEGV};
use crate::abi::UserRegs;
use crate::boot::{BootParams, ExitStatus};
use crate::kernel::{Kernel, SLICE_NS};
use crate::mm::usertrap::PatchedFault;
use crate::mm::FaultError;
use crate::platform::{Clock, Platform, Trap};
use crate::syscalls;
use crate::task::{MmId, TaskState, Tid};

/// Most CPUs the sentry schedules on (the KVM platform's `MAX_VCPUS`).
pub const MAX_CPUS: usize = 8;

type Guard<'a, 'p, P> = spin::MutexGuard<'a, Kernel<'p, P>>;

/// The kernel shared by the CPUs.
struct Sentry<'p, P: Platform> {
    plat: &'p P,
    kernel: spin::Mutex<Kernel<'p, P>>,
    /// Set once the container's init has ended: every CPU leaves its loop.
    done: AtomicBool,
    /// Lock acquisitions that found it taken, and the time spent waiting.
    contended: AtomicU64,
    wait_ns: AtomicU64,
    /// CPUs halted waiting for the lock: the unlocker kicks one.
    waiters: AtomicU64,
}

/// How long a CPU spins for the kernel lock before it halts until kicked.
/// Spinning longer only burns a host CPU that the holder (preempted by
/// the host, or waiting for a host call served by another host thread)
/// may need; the lock is mostly held for microseconds.
const LOCK_SPIN_NS: u64 = 20_000;
/// Longest halt while waiting for the lock (a lost kick costs no more).
const LOCK_HALT_NS: u64 = 1_000_000;

/// Boot the container's first process from `params` and run it until it
/// exits. This is the sentry's entry point on every platform.
pub fn run<P: Platform>(plat: &P, params: BootParams) -> ExitStatus {
    let mut k = Kernel::new(plat, &params);
    if let Err(status) = k.start(&params) {
        return status;
    }
    let sentry = Sentry {
        plat,
        kernel: spin::Mutex::new(k),
        done: AtomicBool::new(false),
        contended: AtomicU64::new(0),
        wait_ns: AtomicU64::new(0),
        waiters: AtomicU64::new(0),
    };
    plat.run_cpus(&|cpu| sentry.cpu_loop(cpu));
    let (contended, wait_ns) = (
        sentry.contended.load(Ordering::Relaxed),
        sentry.wait_ns.load(Ordering::Relaxed),
    );
    let mut k = sentry.kernel.into_inner();
    k.cpu = 0;
    if contended != 0 {
        log::info!(
            "kernel lock: {contended} contended acquisitions, {} us waited",
            wait_ns / 1000
        );
    }
    let status = k.init_exit.take().unwrap_or(ExitStatus::PlatformFailed(
        "the scheduler stopped before init ended".into(),
    ));
    k.shutdown();
    status
}

impl<'p, P: Platform> Sentry<'p, P> {
    /// Take the kernel lock on `cpu`: spin briefly, then halt until the
    /// holder kicks (a paravirtual spin lock).
    fn lock(&self, cpu: usize) -> Guard<'_, 'p, P> {
        let mut k = match self.kernel.try_lock() {
            Some(k) => k,
            None => self.lock_slow(cpu),
        };
        k.cpu = cpu;
        k
    }

    fn lock_slow(&self, cpu: usize) -> Guard<'_, 'p, P> {
        self.contended.fetch_add(1, Ordering::Relaxed);
        let me = 1u64 << cpu;
        let t0 = self.plat.now(Clock::Monotonic);
        let mut spin_from = t0;
        loop {
            if let Some(k) = self.kernel.try_lock() {
                self.waiters.fetch_and(!me, Ordering::SeqCst);
                let t1 = self.plat.now(Clock::Monotonic);
                self.wait_ns.fetch_add(t1 - t0, Ordering::Relaxed);
                return k;
            }
            let now = self.plat.now(Clock::Monotonic);
            if now - spin_from < LOCK_SPIN_NS {
                core::hint::spin_loop();
                continue;
            }
            self.waiters.fetch_or(me, Ordering::SeqCst);
            // Taken or not, the holder's unlock now sees us.
            if self.kernel.is_locked() {
                self.plat.idle(Some(now + LOCK_HALT_NS));
            }
            spin_from = self.plat.now(Clock::Monotonic);
        }
    }

    /// Let go of the kernel lock, and kick a CPU halted waiting for it.
    fn unlock(&self, k: Guard<'_, 'p, P>) {
        drop(k);
        let w = self.waiters.load(Ordering::SeqCst);
        if w != 0 {
            let c = w.trailing_zeros() as usize;
            self.waiters.fetch_and(!(1 << c), Ordering::SeqCst);
            self.plat.kick_cpu(c);
        }
    }

    fn cpu_loop(&self, cpu: usize) {
        if cpu >= MAX_CPUS {
            return;
        }
        let mut k = self.lock(cpu);
        let plat = k.plat;
        loop {
            drop_dead_mm(&mut k);
            if self.done.load(Ordering::Acquire) || k.init_exit.is_some() {
                self.done.store(true, Ordering::Release);
                unload_mm(&mut k);
                self.unlock(k);
                for c in 0..plat.cpus().min(MAX_CPUS) {
                    if c != cpu {
                        plat.kick_cpu(c);
                    }
                }
                return;
            }
            k.fire_timers();
            k.take_host_signals();
            if k.init_exit.is_some() {
                // A host signal may have just ended init: never idle past it.
                continue;
            }
            let Some(tid) = pick_next(&mut k) else {
                if plat.cpus() > 1 {
                    // An idle CPU keeps no space loaded, so changes to the
                    // spaces of the tasks running elsewhere need no TLB
                    // shootdown to it.
                    unload_mm(&mut k);
                }
                let next = next_deadline(&k);
                k.idle_cpus |= 1 << cpu;
                self.unlock(k);
                plat.idle(next);
                k = self.lock(cpu);
                k.idle_cpus &= !(1 << cpu);
                continue;
            };
            k = self.run_task(k, cpu, tid);
            if let Some(th) = k.tasks.get_mut(&tid).and_then(|t| t.thread.as_mut()) {
                plat.unload_thread(th);
            }
        }
    }

    /// Run task `tid` until it blocks, exits or is preempted.
    fn run_task<'a>(&'a self, mut k: Guard<'a, 'p, P>, cpu: usize, tid: Tid) -> Guard<'a, 'p, P> {
        let plat = k.plat;
        set_current(&mut k, tid);
        let mut slice_end = plat.now(Clock::Monotonic).saturating_add(SLICE_NS);
        // The time split of the exit statistics costs clock reads on every
        // trap: only when they will be logged.
        let timed = log::log_enabled!(log::Level::Info);
        let clock = || if timed { plat.now(Clock::Monotonic) } else { 0 };
        loop {
            crate::task::frame::deliver_signals(&mut k);
            let Some((mut thread, mut regs, space)) = take_for_switch(&mut k, cpu, tid) else {
                return k;
            };
            if k.idle_cpus != 0 || !k.cpus_started {
                kick_idle(&mut k, false);
            }
            k.stats.switches += 1;
            let served = faults_served(&k, cpu);
            self.unlock(k);
            let t0 = clock();
            let trap = plat.switch(space, &mut thread, &mut regs);
            let t1 = clock();
            k = self.lock(cpu);
            k.stats.user_ns += t1.saturating_sub(t0);
            set_current(&mut k, tid);
            match k.tasks.get_mut(&tid) {
                Some(t) => {
                    t.thread = Some(thread);
                    t.regs = regs;
                    t.on_cpu = None;
                }
                None => {
                    // Ended by another CPU while it ran (exit_group, a kill).
                    if let Some(e) = k.cpu_mm[cpu].and_then(|m| k.mms.get_mut(&m)) {
                        plat.release_thread(&mut e.mm.space, thread);
                    }
                    return k;
                }
            }
            let trap = match trap {
                Ok(trap) => trap,
                Err(e) => {
                    // The process's host-side vessel is lost or misbehaved
                    // (on ptrace, a stub whose shared slots the program
                    // itself scribbled over): the process ends as if
                    // SIGKILLed, the sandbox goes on.
                    let tgid = k.tasks.get(&tid).map(|t| t.tgid);
                    log::warn!(
                        "tid {tid}: the platform cannot run it ({e}): its process is killed"
                    );
                    if let Some(tgid) = tgid {
                        crate::task::exit::group_exit(
                            &mut k,
                            tgid,
                            crate::task::GroupExit::Signaled(SIGKILL),
                        );
                    }
                    return k;
                }
            };
            let is_fault = matches!(trap, Trap::PageFault { .. });
            let raced = faults_served(&k, cpu) != served;
            let t2 = clock();
            handle_trap(&mut k, trap, raced);
            let dt = clock().saturating_sub(t2);
            if is_fault {
                k.stats.fault_ns += dt;
            } else {
                k.stats.syscall_ns += dt;
            }
            if k.init_exit.is_some() || self.done.load(Ordering::Acquire) {
                return k;
            }
            if k.yield_now {
                k.yield_now = false;
                return k;
            }
            // The slice is used up even if no interrupt came (see
            // `SLICE_NS`): fire due timers, take host signals, and let the
            // next runnable task in.
            let now = plat.now(Clock::Monotonic);
            if now >= slice_end {
                k.fire_timers();
                k.take_host_signals();
                let runnable = matches!(
                    k.tasks.get(&tid),
                    Some(t) if t.state == TaskState::Runnable
                );
                if runnable && !k.runq.is_empty() {
                    k.runq.push_back(tid);
                    return k;
                }
                slice_end = now.saturating_add(SLICE_NS);
            }
        }
    }
}

/// Make `tid` the task the kernel serves, in its container's file
/// namespace (pods: another CPU, or a host `exec`, may have entered
/// another one since this CPU last held the lock).
fn set_current<P: Platform>(k: &mut Kernel<'_, P>, tid: Tid) {
    k.cur = tid;
    let root = k
        .tasks
        .get(&tid)
        .and_then(|t| k.groups.get(&t.tgid))
        .map_or(0, |g| g.root);
    k.enter_root(root);
}

/// Faults served so far in the space `cpu` has loaded.
fn faults_served<P: Platform>(k: &Kernel<'_, P>, cpu: usize) -> u64 {
    k.cpu_mm[cpu]
        .and_then(|m| k.mms.get(&m))
        .map_or(0, |e| e.mm.faults_served)
}

/// Serve what brought the current task into the kernel; `raced`: another
/// CPU served a fault of its space meanwhile.
fn handle_trap<P: Platform>(k: &mut Kernel<'_, P>, trap: Trap, raced: bool) {
    match trap {
        Trap::Syscall => {
            k.stats.syscalls += 1;
            // Patched sites: only where the platform patches, or where the
            // call came from a table (a thread that had to trap there). The
            // KVM platform's every call passes here: it pays neither the
            // address space's lookup nor a copy of the registers.
            if crate::mm::usertrap::in_table_window(k.cur().regs.rip)
                || k.plat.syscall_patch().is_some()
            {
                patch_syscall_site(k);
            }
            syscalls::dispatch(k);
        }
        Trap::PageFault {
            addr,
            write,
            not_present,
            exec,
        } => {
            k.stats.faults += 1;
            let (mm, frames, plat) = k.mm_parts();
            let access = crate::mm::FaultAccess {
                write,
                not_present,
                exec,
                raced,
            };
            if let Err(e) = mm.handle_fault(plat, frames, addr, access) {
                if patched_check_fault(k) {
                    return;
                }
                let rip = k.cur().regs.rip;
                debug!(
                    "tid {}: fault at {addr:#x} (write {write:?}) rip {rip:#x}: {e:?}",
                    k.cur
                );
                let (sig, code) = match e {
                    FaultError::NoMemory => (SIGKILL, 0),
                    FaultError::Unmapped => (SIGSEGV, 1),
                    FaultError::Denied => (SIGSEGV, 2),
                };
                crate::task::frame::force_fault_signal(k, sig, code, addr);
            }
        }
        Trap::Exception { signo, code, addr } => {
            if signo == SIGILL {
                let mut regs = k.cur().regs;
                let (mm, frames, plat) = k.mm_parts();
                match mm.patched_fault(plat, frames, &mut regs) {
                    PatchedFault::No => {}
                    PatchedFault::Restart => {
                        k.cur_mut().regs = regs;
                        k.stats.patch_restarts += 1;
                        return;
                    }
                    PatchedFault::Syscall => {
                        k.cur_mut().regs = regs;
                        k.stats.patch_restarts += 1;
                        k.stats.syscalls += 1;
                        syscalls::dispatch(k);
                        return;
                    }
                }
            }
            if patched_check_fault(k) {
                return;
            }
            let rip = k.cur().regs.rip;
            debug!(
                "tid {}: exception: signal {signo} at {addr:#x} rip {rip:#x}",
                k.cur
            );
            crate::task::frame::force_fault_signal(k, signo, code, addr);
        }
        Trap::Interrupt => {
            k.stats.interrupts += 1;
            k.fire_timers();
            k.take_host_signals();
            if k.idle_cpus != 0 || !k.cpus_started {
                kick_idle(k, true);
            }
            if !k.runq.is_empty() {
                let tid = k.cur;
                k.runq.push_back(tid);
                k.yield_now = true;
            }
        }
    }
}

/// The current task trapped at a `syscall`: send a call made from a patch
/// table back to its site, and patch the site if it is worth it.
fn patch_syscall_site<P: Platform>(k: &mut Kernel<'_, P>) {
    let mut regs = k.cur().regs;
    let (mm, frames, plat) = k.mm_parts();
    let moved = mm.from_table(plat, frames, &mut regs);
    let patched =
        plat.syscall_patch().is_some() && mm.patch_syscall(plat, frames, regs.rip, regs.orig_rax);
    if moved {
        k.cur_mut().regs = regs;
    }
    if patched {
        k.stats.patched_sites += 1;
    }
}

/// A fault at a patched site's check of GS that nothing else explains:
/// the call it was about to make, made now (see `mm::usertrap`).
fn patched_check_fault<P: Platform>(k: &mut Kernel<'_, P>) -> bool {
    let mut regs = k.cur().regs;
    let (mm, frames, plat) = k.mm_parts();
    if !mm.check_fault(plat, frames, &mut regs) {
        return false;
    }
    k.cur_mut().regs = regs;
    k.stats.syscalls += 1;
    syscalls::dispatch(k);
    true
}

/// The next task to run: runnable and not running elsewhere already (a
/// task woken, or continued, while its CPU was still on its way back).
fn pick_next<P: Platform>(k: &mut Kernel<'_, P>) -> Option<Tid> {
    while let Some(tid) = k.runq.pop_front() {
        match k.tasks.get(&tid) {
            Some(t) if t.state == TaskState::Runnable && t.on_cpu.is_none() => return Some(tid),
            _ => continue,
        }
    }
    None
}

/// When the next timer of any kind is due.
fn next_deadline<P: Platform>(k: &Kernel<'_, P>) -> Option<u64> {
    let next_alarm = k.alarms.values().map(|(d, _)| *d).min();
    let next_alarm = syscalls::poll::min_deadline(next_alarm, k.ptimers.next_deadline());
    match (k.timers.keys().next().map(|(d, _)| *d), next_alarm) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How long a runnable task may wait for a busy CPU before an idle one
/// is woken for it.
const WAKE_IDLE_AFTER_NS: u64 = 500_000;

/// Wake an idle CPU for the work in the run queue, as a task goes back to
/// user mode or its slice ends. A new task (fork, a thread) gets one at
/// once, as does a queue of two or more. A single task woken by one that
/// runs on (a pipe's or a futex's ping-pong, where the waker blocks right
/// after) waits a little first: it usually runs here, on this CPU, when
/// the waker blocks, which costs less than waking a halted vCPU and
/// bouncing each hand-over between two CPUs (Linux's sync wake-ups).
fn kick_idle<P: Platform>(k: &mut Kernel<'_, P>, slice_over: bool) {
    if k.runq.is_empty() {
        k.runq_since = None;
        k.new_work = false;
        return;
    }
    let now = k.plat.now(Clock::Monotonic);
    let since = *k.runq_since.get_or_insert(now);
    let urgent = k.new_work
        || slice_over
        || k.runq.len() >= 2
        || now.saturating_sub(since) >= WAKE_IDLE_AFTER_NS;
    let others = k.idle_cpus & !(1 << k.cpu);
    if urgent && others == 0 && !k.cpus_started && k.plat.cpus() > 1 {
        // The first work for a second CPU: the others come up now and
        // take it from the run queue when they go idle.
        k.cpus_started = true;
        k.plat.start_cpus();
    }
    if !urgent || others == 0 {
        return;
    }
    k.new_work = false;
    let c = others.trailing_zeros() as usize;
    k.idle_cpus &= !(1 << c);
    k.plat.kick_cpu(c);
}

/// Take what running task `tid` on `cpu` needs out of the kernel: its
/// thread and registers, and its address space loaded on this CPU.
fn take_for_switch<P: Platform>(
    k: &mut Kernel<'_, P>,
    cpu: usize,
    tid: Tid,
) -> Option<(P::Thread, UserRegs, P::SpaceRef)> {
    let t = k.tasks.get_mut(&tid)?;
    if t.state != TaskState::Runnable {
        return None;
    }
    let mm = t.mm;
    let thread = t.thread.take()?;
    let regs = t.regs;
    let Some(space) = load_mm(k, cpu, mm) else {
        if let Some(t) = k.tasks.get_mut(&tid) {
            t.thread = Some(thread);
        }
        return None;
    };
    if let Some(t) = k.tasks.get_mut(&tid) {
        t.on_cpu = Some(cpu);
    }
    Some((thread, regs, space))
}

/// Load `mm` on `cpu` and pin it there; the space loaded before is
/// unpinned only after the switch, so no CPU ever runs on freed tables.
fn load_mm<P: Platform>(k: &mut Kernel<'_, P>, cpu: usize, mm: MmId) -> Option<P::SpaceRef> {
    let plat = k.plat;
    let e = k.mms.get_mut(&mm)?;
    let space = plat.activate(&mut e.mm.space);
    e.cpus |= 1 << cpu;
    let old = k.cpu_mm[cpu].replace(mm);
    if let Some(old) = old.filter(|o| *o != mm) {
        if let Some(e) = k.mms.get_mut(&old) {
            e.cpus &= !(1 << cpu);
        }
        k.free_mm_if_unused(old);
    }
    Some(space)
}

/// Switch this CPU away from its loaded space and unpin it.
fn unload_mm<P: Platform>(k: &mut Kernel<'_, P>) {
    let cpu = k.cpu;
    if let Some(mm) = k.cpu_mm[cpu].take() {
        k.plat.unload_space();
        if let Some(e) = k.mms.get_mut(&mm) {
            e.cpus &= !(1 << cpu);
        }
        k.free_mm_if_unused(mm);
    }
}

/// The space this CPU has loaded lost its last task: let it go.
fn drop_dead_mm<P: Platform>(k: &mut Kernel<'_, P>) {
    let cpu = k.cpu;
    let dead = match k.cpu_mm[cpu] {
        Some(mm) => k.mms.get(&mm).is_none_or(|e| e.users == 0),
        None => false,
    };
    if dead {
        unload_mm(k);
    }
}
