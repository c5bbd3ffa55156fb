//! rt_sigaction, rt_sigprocmask, rt_sigsuspend, rt_sigpending, sigaltstack,
//! kill, tkill, tgkill, pause.

use alloc::vec::Vec;

use super::{arg_i32, Args};
use crate::abi::linux::{SIGKILL, SIGSTOP};
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::frame::{send_to_group, send_to_thread};
use crate::task::signal::{valid, UNBLOCKABLE};
use crate::task::{SigAction, SigInfo, Tid, WaitKey, SI_TKILL, SI_USER};

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
const MINSIGSTKSZ: u64 = 2048;

/// rt_sigaction(2).
pub fn sys_rt_sigaction<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let sig = arg_i32(a[0]);
    if a[3] != 8 || !valid(sig) {
        return Err(Errno::EINVAL);
    }
    let old = k.group().sighand.action(sig);
    if a[1] != 0 {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mut b = [0u8; SigAction::SIZE];
        k.copy_in(a[1], &mut b)?;
        let mut act = SigAction::from_bytes(&b);
        act.mask &= !UNBLOCKABLE;
        let g = k.group_mut();
        g.sighand.set_action(sig, act);
        // Setting SIG_IGN discards what is pending.
        if g.sighand.ignores(sig) {
            g.pending &= !crate::task::signal::bit(sig);
        }
    }
    if a[2] != 0 {
        k.copy_out(a[2], &old.to_bytes())?;
    }
    Ok(0)
}

/// rt_sigprocmask(2).
pub fn sys_rt_sigprocmask<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let old = k.cur().sig.blocked;
    if a[1] != 0 {
        let set = k.read_u64(a[1])?;
        let new = match a[0] {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        };
        k.cur_mut().sig.set_blocked(new);
    }
    if a[2] != 0 {
        k.copy_out(a[2], &old.to_le_bytes())?;
    }
    Ok(0)
}

/// rt_sigpending(2).
pub fn sys_rt_sigpending<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let set = (k.cur().sig.pending | k.group().pending) & k.cur().sig.blocked;
    k.copy_out(a[0], &set.to_le_bytes())?;
    Ok(0)
}

/// rt_sigsuspend(2): wait for a signal with a temporary mask.
pub fn sys_rt_sigsuspend<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    if let Some(r) = k.cur().restart {
        if r.interrupted {
            return Err(Errno::EINTR);
        }
    }
    let mask = k.read_u64(a[0])?;
    let t = k.cur_mut();
    let saved = t
        .restart
        .and_then(|r| r.saved_mask)
        .unwrap_or(t.sig.blocked);
    t.sig.set_blocked(mask);
    let e = k.block(WaitKey::Signal, None);
    if let Some(r) = k.cur_mut().restart.as_mut() {
        r.saved_mask = Some(saved);
    }
    Err(e)
}

/// pause(2).
pub fn sys_pause<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    if matches!(k.cur().restart, Some(r) if r.interrupted) {
        return Err(Errno::EINTR);
    }
    Err(k.block(WaitKey::Signal, None))
}

/// sigaltstack(2).
pub fn sys_sigaltstack<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let old = k.cur().sig.altstack;
    if a[0] != 0 {
        let mut b = [0u8; 24];
        k.copy_in(a[0], &mut b)?;
        let sp = u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let flags = i32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EFAULT)?);
        let size = u64::from_le_bytes(b[16..24].try_into().map_err(|_| Errno::EFAULT)?);
        let rsp = k.cur().regs.rsp;
        if old.1 != SS_DISABLE && rsp.wrapping_sub(old.0) < old.2 {
            return Err(Errno::EPERM); // on the alternate stack now
        }
        // SS_AUTODISARM (1 << 31) is allowed alongside.
        let mode = flags & !(1 << 31);
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno::EINVAL);
        }
        if mode == SS_DISABLE {
            k.cur_mut().sig.altstack = (0, SS_DISABLE, 0);
        } else {
            if size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            k.cur_mut().sig.altstack = (sp, flags & (1 << 31), size);
        }
    }
    if a[1] != 0 {
        let mut b = [0u8; 24];
        let rsp = k.cur().regs.rsp;
        let flags = if old.1 != SS_DISABLE && rsp.wrapping_sub(old.0) < old.2 {
            SS_ONSTACK
        } else {
            old.1
        };
        b[..8].copy_from_slice(&old.0.to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&old.2.to_le_bytes());
        k.copy_out(a[1], &b)?;
    }
    Ok(0)
}

fn user_info<P: Platform>(k: &Kernel<'_, P>, sig: i32, code: i32) -> SigInfo {
    SigInfo {
        signo: sig,
        code,
        pid: k.cur().tgid,
        uid: k.group().creds.uid,
        ..Default::default()
    }
}

/// kill(2).
pub fn sys_kill<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (pid, sig) = (arg_i32(a[0]), arg_i32(a[1]));
    if sig != 0 && !valid(sig) {
        return Err(Errno::EINVAL);
    }
    let me = k.cur().tgid;
    let targets: Vec<Tid> = match pid {
        p if p > 0 => k
            .groups
            .get(&p)
            .filter(|g| g.zombie.is_none())
            .map(|g| alloc::vec![g.tgid])
            .unwrap_or_default(),
        0 => {
            let pg = k.group().pgid;
            k.groups
                .values()
                .filter(|g| g.pgid == pg && g.zombie.is_none())
                .map(|g| g.tgid)
                .collect()
        }
        -1 => k
            .groups
            .values()
            .filter(|g| g.tgid != 1 && g.tgid != me && g.zombie.is_none())
            .map(|g| g.tgid)
            .collect(),
        p => k
            .groups
            .values()
            .filter(|g| g.pgid == -p && g.zombie.is_none())
            .map(|g| g.tgid)
            .collect(),
    };
    if targets.is_empty() {
        // A zombie can still be "signalled" (it exists until reaped).
        return if pid > 0 && k.groups.contains_key(&pid) {
            Ok(0)
        } else {
            Err(Errno::ESRCH)
        };
    }
    if sig != 0 {
        let info = user_info(k, sig, SI_USER);
        for t in targets {
            send_to_group(k, t, sig, info);
        }
    }
    Ok(0)
}

fn thread_kill<P: Platform>(
    k: &mut Kernel<'_, P>,
    tgid: Option<Tid>,
    tid: Tid,
    sig: i32,
) -> KResult<u64> {
    if tid <= 0 || tgid.is_some_and(|g| g <= 0) || (sig != 0 && !valid(sig)) {
        return Err(Errno::EINVAL);
    }
    let t = k.tasks.get(&tid).ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| g != t.tgid) {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        let info = user_info(k, sig, SI_TKILL);
        send_to_thread(k, tid, sig, info);
    }
    Ok(0)
}

/// tkill(2).
pub fn sys_tkill<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    thread_kill(k, None, arg_i32(a[0]), arg_i32(a[1]))
}

/// tgkill(2).
pub fn sys_tgkill<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    thread_kill(k, Some(arg_i32(a[0])), arg_i32(a[1]), arg_i32(a[2]))
}

/// rt_sigtimedwait(2): take a pending signal of `set`, or wait for one.
pub fn sys_rt_sigtimedwait<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let set = k.read_u64(a[0])? & !UNBLOCKABLE;
    if let Some(info) = crate::task::frame::dequeue_signal(k, set) {
        if a[1] != 0 {
            k.copy_out(a[1], &info.to_bytes())?;
        }
        return Ok(info.signo as u64);
    }
    if k.timed_out() {
        return Err(Errno::EAGAIN);
    }
    if matches!(k.cur().restart, Some(r) if r.interrupted) {
        return Err(Errno::EINTR);
    }
    let deadline = if a[2] == 0 {
        None
    } else {
        let mut b = [0u8; 16];
        k.copy_in(a[2], &mut b)?;
        let ns = crate::abi::linux::Timespec::from_bytes(&b)
            .to_ns()
            .ok_or(Errno::EINVAL)?;
        if ns == 0 {
            return Err(Errno::EAGAIN);
        }
        Some(k.deadline_after(ns))
    };
    let e = k.block(WaitKey::Signal, deadline);
    k.cur_mut().sigwait = set;
    Err(e)
}
