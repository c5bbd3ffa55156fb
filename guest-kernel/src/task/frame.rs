//! Signal generation and delivery: pending sets, default actions, and the
//! x86-64 `rt_sigframe` that runs a handler and `rt_sigreturn` undoes.

use log::debug;

use super::exit::group_exit;
use super::signal::{
    bit, default_action, lowest, DefaultAction, SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART,
};
use super::signal::{SA_RESTORER, SIG_DFL, SIG_IGN, UNBLOCKABLE};
use super::{GroupExit, SigAction, SigInfo, TaskState, Tid, SI_KERNEL};
use crate::abi::linux::{SIGKILL, SIGSEGV};
use crate::abi::{Errno, KResult, UserRegs};
use crate::kernel::Kernel;
use crate::platform::Platform;

/// Bytes of the frame before the FPU area: pretcode, ucontext, siginfo.
const FRAME_SIZE: u64 = 8 + UCONTEXT_SIZE + 128;
const UCONTEXT_SIZE: u64 = 304;
const FPSTATE_SIZE: u64 = 512;
/// x86-64 red zone, skipped below the interrupted stack pointer.
const RED_ZONE: u64 = 128;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;

/// Wake `tid` if it is blocked and `sig` is not blocked by it.
fn interrupt<P: Platform>(k: &mut Kernel<'_, P>, tid: Tid, sig: i32) {
    let Some(t) = k.tasks.get_mut(&tid) else {
        return;
    };
    if t.sig.blocked & bit(sig) != 0 && sig != SIGKILL && t.sigwait & bit(sig) == 0 {
        return;
    }
    if matches!(t.state, TaskState::Blocked { .. }) {
        if let Some(r) = t.restart.as_mut() {
            r.interrupted = true;
        }
        k.make_runnable(tid);
    }
    k.kick_task(tid);
}

/// Whether `sig` sent to thread `tid` of `tgid` is dropped: ignored and
/// not blocked by the thread (a blocked signal stays pending, since the
/// action may change before it is unblocked, as Linux's `sig_ignored`).
fn discarded<P: Platform>(k: &Kernel<'_, P>, tgid: Tid, tid: Tid, sig: i32) -> bool {
    let Some(g) = k.groups.get(&tgid) else {
        return true;
    };
    g.sighand.ignores(sig)
        && k.tasks
            .get(&tid)
            .is_none_or(|t| t.sig.blocked & bit(sig) == 0)
}

/// Send `sig` to a process. SIGKILL ends it at once.
pub fn send_to_group<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, sig: i32, info: SigInfo) {
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    if g.zombie.is_some() {
        return;
    }
    super::stop::prepare_signal(k, tgid, sig);
    if discarded(k, tgid, tgid, sig) {
        return;
    }
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    if sig == SIGKILL {
        group_exit(k, tgid, GroupExit::Signaled(SIGKILL));
        return;
    }
    g.pending |= bit(sig);
    g.siginfo.insert(sig, info);
    // A thread waiting for the signal (sigwaitinfo, a signalfd read) takes
    // it first, else any thread that does not block it.
    let threads = g.threads.clone();
    let find = |k: &Kernel<'_, P>, want: &dyn Fn(&super::Task<P>) -> bool| {
        threads
            .iter()
            .copied()
            .find(|t| k.tasks.get(t).is_some_and(want))
    };
    let target = find(k, &|t| t.sigwait & bit(sig) != 0)
        .or_else(|| find(k, &|t| t.sig.blocked & bit(sig) == 0));
    if let Some(t) = target {
        interrupt(k, t, sig);
    }
    signal_queued(k);
}

/// Send `sig` to one thread.
pub fn send_to_thread<P: Platform>(k: &mut Kernel<'_, P>, tid: Tid, sig: i32, info: SigInfo) {
    let Some(t) = k.tasks.get(&tid) else {
        return;
    };
    let tgid = t.tgid;
    if k.groups.get(&tgid).is_none_or(|g| g.zombie.is_some()) {
        return;
    }
    super::stop::prepare_signal(k, tgid, sig);
    if discarded(k, tgid, tid, sig) {
        return;
    }
    if sig == SIGKILL {
        group_exit(k, tgid, GroupExit::Signaled(SIGKILL));
        return;
    }
    if let Some(t) = k.tasks.get_mut(&tid) {
        t.sig.pending |= bit(sig);
        t.siginfo.insert(sig, info);
    }
    interrupt(k, tid, sig);
    signal_queued(k);
}

/// A signal was queued: pollers of signalfds may now see it.
fn signal_queued<P: Platform>(k: &mut Kernel<'_, P>) {
    crate::fs::signalfd::signals_changed();
    if crate::fs::signalfd::any_live() {
        k.wake(super::WaitKey::Poll, usize::MAX);
    }
}

/// Take the lowest pending signal of `set` for the current task, its
/// thread's pending set first (as Linux's `dequeue_signal`).
pub fn dequeue_signal<P: Platform>(k: &mut Kernel<'_, P>, set: u64) -> Option<SigInfo> {
    let from_thread = k.cur().sig.pending & set;
    let from_group = k.group().pending & set;
    let sig = if from_thread != 0 {
        lowest(from_thread)?
    } else {
        lowest(from_group)?
    };
    let info = if from_thread != 0 {
        let t = k.cur_mut();
        t.sig.pending &= !bit(sig);
        t.siginfo.remove(&sig)
    } else {
        let g = k.group_mut();
        g.pending &= !bit(sig);
        g.siginfo.remove(&sig)
    };
    crate::fs::signalfd::signals_changed();
    let info = info.unwrap_or(SigInfo {
        signo: sig,
        ..Default::default()
    });
    if info.code == super::SI_TIMER {
        crate::syscalls::timer::delivered(k, &info);
    }
    Some(info)
}

/// A synchronous fault: delivered to the faulting thread, and fatal if
/// the signal is blocked or ignored (as Linux's `force_sig_fault`).
pub fn force_fault_signal<P: Platform>(k: &mut Kernel<'_, P>, sig: i32, code: i32, addr: u64) {
    let tgid = k.cur().tgid;
    let act = k.group().sighand.action(sig);
    if sig == SIGKILL || k.cur().sig.blocked & bit(sig) != 0 || act.handler == SIG_IGN {
        group_exit(k, tgid, GroupExit::Signaled(sig));
        return;
    }
    let info = SigInfo {
        signo: sig,
        code,
        addr,
        ..Default::default()
    };
    let t = k.cur_mut();
    t.sig.pending |= bit(sig);
    t.siginfo.insert(sig, info);
}

/// Act on the current task's deliverable signals before it returns to
/// user mode: default actions, or one handler frame.
pub fn deliver_signals<P: Platform>(k: &mut Kernel<'_, P>) {
    loop {
        let Some(t) = k.tasks.get(&k.cur) else {
            return;
        };
        let tgid = t.tgid;
        let Some(g) = k.groups.get(&tgid) else {
            return;
        };
        if let Some(status) = g.group_exit {
            group_exit(k, tgid, status);
            return;
        }
        if t.state != TaskState::Runnable || super::stop::park_if_stopped(k) {
            return;
        }
        let t = k.cur();
        let g = k.group();
        let blocked = t.sig.blocked;
        let ready = (t.sig.pending | g.pending) & !blocked != 0;
        let Some(info) = ready.then(|| dequeue_signal(k, !blocked)).flatten() else {
            // Woken by a signal that went elsewhere: the call simply retries.
            if let Some(r) = k.cur_mut().restart.as_mut() {
                r.interrupted = false;
            }
            return;
        };
        let sig = info.signo;
        let act = k.group().sighand.action(sig);
        if act.handler == SIG_IGN {
            continue;
        }
        if act.handler == SIG_DFL {
            match default_action(sig) {
                DefaultAction::Terminate => {
                    group_exit(k, tgid, GroupExit::Signaled(sig));
                    return;
                }
                // The next turn of the loop parks this thread.
                DefaultAction::Stop => super::stop::group_stop(k, tgid, sig),
                DefaultAction::Ignore | DefaultAction::Continue => {}
            }
            continue;
        }
        if setup_frame(k, sig, act, info).is_err() {
            debug!(
                "tid {}: cannot build the frame for signal {sig}; killed with SIGSEGV",
                k.cur
            );
            group_exit(k, tgid, GroupExit::Signaled(SIGSEGV));
        }
        return;
    }
}

fn put(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(b)
}

/// `struct sigcontext` general registers, in order, from offset 0.
fn sigcontext_regs(r: &UserRegs) -> [u64; 18] {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.rflags,
    ]
}

/// Build the `rt_sigframe` for `sig` and point the task at the handler.
fn setup_frame<P: Platform>(
    k: &mut Kernel<'_, P>,
    sig: i32,
    act: SigAction,
    info: SigInfo,
) -> KResult<()> {
    if act.flags & SA_RESTORER == 0 {
        return Err(Errno::EFAULT);
    }
    // An interrupted, rewound syscall either restarts after the handler or
    // fails with EINTR.
    let plat = k.plat;
    let t = k.cur_mut();
    let mut saved_mask = t.sig.blocked;
    // The interrupted wait (sigwaitinfo, a signalfd read) is over while the
    // handler runs; a retry waits anew.
    t.sigwait = 0;
    if let Some(r) = t.restart.take() {
        if let Some(m) = r.saved_mask {
            saved_mask = m;
        }
        if r.interrupted && !(act.flags & SA_RESTART != 0 && restartable(r.nr)) {
            t.regs.rax = Errno::EINTR.as_ret();
            t.regs.rip += 2;
        }
    }
    let regs = t.regs;
    let (ss_sp, ss_flags, ss_size) = t.sig.altstack;
    let on_alt = ss_flags != SS_DISABLE && ss_size != 0 && regs.rsp.wrapping_sub(ss_sp) < ss_size;
    let mut sp = if act.flags & SA_ONSTACK != 0 && ss_flags != SS_DISABLE && !on_alt && ss_size != 0
    {
        ss_sp + ss_size
    } else {
        regs.rsp.wrapping_sub(RED_ZONE)
    };
    let fpu = t.thread.as_ref().and_then(|th| plat.fpu_state(th));
    let fp_addr = if fpu.is_some() {
        sp = (sp - FPSTATE_SIZE) & !63;
        sp
    } else {
        0
    };
    let frame = ((sp - FRAME_SIZE) & !15) - 8;

    let mut f = [0u8; FRAME_SIZE as usize];
    put(&mut f, 0, act.restorer);
    let uc = 8;
    // uc_flags, uc_link: 0. uc_stack:
    put(&mut f, uc + 16, ss_sp);
    f[uc + 24..uc + 28]
        .copy_from_slice(&(if on_alt { SS_ONSTACK } else { ss_flags }).to_le_bytes());
    put(&mut f, uc + 32, ss_size);
    let mc = uc + 40;
    for (i, v) in sigcontext_regs(&regs).iter().enumerate() {
        put(&mut f, mc + i * 8, *v);
    }
    // cs, gs, fs, ss (u16 each)
    f[mc + 144..mc + 146].copy_from_slice(&(regs.cs as u16).to_le_bytes());
    f[mc + 150..mc + 152].copy_from_slice(&(regs.ss as u16).to_le_bytes());
    put(&mut f, mc + 168, saved_mask); // oldmask
    put(&mut f, mc + 176, info.addr); // cr2
    put(&mut f, mc + 184, fp_addr);
    put(&mut f, uc + 296, saved_mask); // uc_sigmask
    f[(8 + UCONTEXT_SIZE) as usize..].copy_from_slice(&info.to_bytes());
    if let Some(st) = fpu {
        k.copy_out(fp_addr, &st)?;
    }
    k.copy_out(frame, &f)?;

    let tgid = k.cur().tgid;
    let t = k.cur_mut();
    let mut mask = t.sig.blocked | act.mask;
    if act.flags & SA_NODEFER == 0 {
        mask |= bit(sig);
    }
    t.sig.set_blocked(mask);
    t.regs.rsp = frame;
    t.regs.rip = act.handler;
    t.regs.rdi = sig as u64;
    t.regs.rsi = frame + 8 + UCONTEXT_SIZE;
    t.regs.rdx = frame + 8;
    t.regs.rax = 0;
    // The direction flag is clear on handler entry.
    t.regs.rflags &= !0x400;
    if act.flags & SA_RESETHAND != 0 {
        if let Some(g) = k.groups.get_mut(&tgid) {
            g.sighand.set_action(sig, SigAction::default());
        }
    }
    Ok(())
}

/// Syscalls that `SA_RESTART` may restart (the rest fail with EINTR).
fn restartable(nr: u64) -> bool {
    use crate::abi::sysno::*;
    !matches!(
        nr,
        NANOSLEEP
            | CLOCK_NANOSLEEP
            | RT_SIGSUSPEND
            | RT_SIGTIMEDWAIT
            | PAUSE
            | EPOLL_WAIT
            | EPOLL_PWAIT
            | POLL
            | PPOLL
            | SELECT
            | PSELECT6
    )
}

/// rt_sigreturn(2): restore what `setup_frame` saved.
pub fn sys_rt_sigreturn<P: Platform>(k: &mut Kernel<'_, P>) -> KResult<u64> {
    let frame = k.cur().regs.rsp.wrapping_sub(8);
    let mut f = [0u8; FRAME_SIZE as usize];
    if k.copy_in(frame, &mut f).is_err() {
        force_fault_signal(k, SIGSEGV, SI_KERNEL, 0);
        return Ok(k.cur().regs.rax);
    }
    let mc = 8 + 40;
    let g = |i: usize| get(&f, mc + i * 8);
    let fp_addr = get(&f, mc + 184);
    let mask = get(&f, 8 + 296);
    let fpu = if fp_addr != 0 {
        let mut st = [0u8; 512];
        k.copy_in(fp_addr, &mut st)?;
        Some(st)
    } else {
        None
    };
    let plat = k.plat;
    let t = k.cur_mut();
    let r = &mut t.regs;
    (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
        (g(0), g(1), g(2), g(3), g(4), g(5), g(6), g(7));
    (r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp) =
        (g(8), g(9), g(10), g(11), g(12), g(13), g(14), g(15));
    r.rip = g(16);
    // Only the flags user code may change (CF PF AF ZF SF TF DF OF AC...).
    const USER_FLAGS: u64 = 0x0004_0dd5;
    r.rflags = (r.rflags & !USER_FLAGS) | (g(17) & USER_FLAGS);
    r.cs = crate::abi::regs::USER_CS;
    r.ss = crate::abi::regs::USER_SS;
    r.orig_rax = u64::MAX;
    t.sig.set_blocked(mask & !UNBLOCKABLE);
    t.restart = None;
    if let (Some(st), Some(th)) = (fpu, t.thread.as_mut()) {
        plat.set_fpu_state(th, &st);
    }
    Ok(t.regs.rax)
}
