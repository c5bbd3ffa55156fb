//! rt_sigaction, rt_sigprocmask, sigaltstack, kill, tkill, tgkill.

use super::{arg_i32, Args};
use crate::abi::linux::{SIGKILL, SIGSTOP};
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::signal::UNBLOCKABLE;
use crate::task::{SigAction, SignalState};

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;
const SS_ONSTACK: i32 = 1;
const SS_DISABLE: i32 = 2;
const MINSIGSTKSZ: u64 = 2048;

/// rt_sigaction(2).
pub fn sys_rt_sigaction<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let sig = arg_i32(a[0]);
    if a[3] != 8 || !SignalState::valid(sig) {
        return Err(Errno::EINVAL);
    }
    let old = k.task.signals.action(sig);
    if a[1] != 0 {
        if sig == SIGKILL || sig == SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mut b = [0u8; SigAction::SIZE];
        k.copy_in(a[1], &mut b)?;
        let mut act = SigAction::from_bytes(&b);
        act.mask &= !UNBLOCKABLE;
        k.task.signals.set_action(sig, act);
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
    let old = k.task.signals.blocked;
    if a[1] != 0 {
        let set = k.read_u64(a[1])?;
        let new = match a[0] {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        };
        k.task.signals.set_blocked(new);
    }
    if a[2] != 0 {
        k.copy_out(a[2], &old.to_le_bytes())?;
    }
    Ok(0)
}

/// sigaltstack(2).
pub fn sys_sigaltstack<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let old = k.task.signals.altstack;
    if a[0] != 0 {
        let mut b = [0u8; 24];
        k.copy_in(a[0], &mut b)?;
        let sp = u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let flags = i32::from_le_bytes(b[8..12].try_into().map_err(|_| Errno::EFAULT)?);
        let size = u64::from_le_bytes(b[16..24].try_into().map_err(|_| Errno::EFAULT)?);
        // SS_AUTODISARM (1 << 31) is allowed alongside.
        let mode = flags & !(1 << 31);
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno::EINVAL);
        }
        if mode == SS_DISABLE {
            k.task.signals.altstack = (0, SS_DISABLE, 0);
        } else {
            if size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            k.task.signals.altstack = (sp, flags & (1 << 31), size);
        }
    }
    if a[1] != 0 {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&old.0.to_le_bytes());
        b[8..12].copy_from_slice(&old.1.to_le_bytes());
        b[16..24].copy_from_slice(&old.2.to_le_bytes());
        k.copy_out(a[1], &b)?;
    }
    Ok(0)
}

fn send<P: Platform>(k: &mut Kernel<'_, P>, sig: i32) -> KResult<u64> {
    if sig == 0 {
        return Ok(0);
    }
    if !SignalState::valid(sig) {
        return Err(Errno::EINVAL);
    }
    k.task.signals.post(sig);
    Ok(0)
}

/// kill(2). Only the container's init exists so far.
pub fn sys_kill<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let pid = arg_i32(a[0]);
    let sig = arg_i32(a[1]);
    if !SignalState::valid(sig) && sig != 0 {
        return Err(Errno::EINVAL);
    }
    match pid {
        0 | -1 => send(k, sig),
        p if p == k.task.tid || p == -k.task.tid => send(k, sig),
        _ => Err(Errno::ESRCH),
    }
}

/// tkill(2).
pub fn sys_tkill<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let tid = arg_i32(a[0]);
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tid != k.task.tid {
        return Err(Errno::ESRCH);
    }
    send(k, arg_i32(a[1]))
}

/// tgkill(2).
pub fn sys_tgkill<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (tgid, tid) = (arg_i32(a[0]), arg_i32(a[1]));
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tgid != k.task.tid || tid != k.task.tid {
        return Err(Errno::ESRCH);
    }
    send(k, arg_i32(a[2]))
}
