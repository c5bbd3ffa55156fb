//! exit, ids, set_tid_address, robust lists, rlimits, arch_prctl.

use super::{arg_i32, Args};
use crate::abi::linux::*;
use crate::abi::{Errno, KResult};
use crate::boot::ExitStatus;
use crate::kernel::Kernel;
use crate::platform::Platform;

/// exit(2). With one thread, the thread group ends with it.
pub fn sys_exit<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    k.exiting = Some(ExitStatus::Exited(arg_i32(a[0]) & 0xff));
    Ok(0)
}

/// exit_group(2).
pub fn sys_exit_group<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    k.exiting = Some(ExitStatus::Exited(arg_i32(a[0]) & 0xff));
    Ok(0)
}

/// getpid(2): the container's init is pid 1 in its namespace.
pub fn sys_getpid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(k.task.tid as u64)
}

/// getppid(2): init's parent is outside the namespace.
pub fn sys_getppid<P: Platform>(_k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(0)
}

/// gettid(2).
pub fn sys_gettid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(k.task.tid as u64)
}

pub fn sys_getuid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.task.creds.uid))
}

pub fn sys_geteuid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.task.creds.euid))
}

pub fn sys_getgid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.task.creds.gid))
}

pub fn sys_getegid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.task.creds.egid))
}

/// set_tid_address(2).
pub fn sys_set_tid_address<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    k.task.clear_child_tid = a[0];
    Ok(k.task.tid as u64)
}

/// set_robust_list(2).
pub fn sys_set_robust_list<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    // sizeof(struct robust_list_head)
    if a[1] != 24 {
        return Err(Errno::EINVAL);
    }
    k.task.robust_list = (a[0], a[1]);
    Ok(0)
}

fn check_pid<P: Platform>(k: &Kernel<'_, P>, pid: i32) -> KResult<()> {
    if pid == 0 || pid == k.task.tid {
        Ok(())
    } else if pid < 0 {
        Err(Errno::EINVAL)
    } else {
        Err(Errno::ESRCH)
    }
}

/// prlimit64(2).
pub fn sys_prlimit64<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    check_pid(k, arg_i32(a[0]))?;
    let res = a[1] as u32;
    if res >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    let old = k.rlimits[res as usize];
    if a[2] != 0 {
        let mut b = [0u8; 16];
        k.copy_in(a[2], &mut b)?;
        let soft = u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let hard = u64::from_le_bytes(b[8..].try_into().map_err(|_| Errno::EFAULT)?);
        if soft > hard {
            return Err(Errno::EINVAL);
        }
        // Raising the hard limit needs CAP_SYS_RESOURCE, which only root holds here.
        if hard > old.1 && k.task.creds.euid != 0 {
            return Err(Errno::EPERM);
        }
        if res == RLIMIT_NOFILE && hard > 1 << 20 {
            return Err(Errno::EPERM);
        }
        k.rlimits[res as usize] = (soft, hard);
    }
    if a[3] != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&old.0.to_le_bytes());
        b[8..].copy_from_slice(&old.1.to_le_bytes());
        k.copy_out(a[3], &b)?;
    }
    Ok(0)
}

/// getrlimit(2).
pub fn sys_getrlimit<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_prlimit64(k, [0, a[0], 0, a[1], 0, 0])
}

/// arch_prctl(2).
pub fn sys_arch_prctl<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let canonical = |v: u64| v < TASK_SIZE;
    match a[0] {
        ARCH_SET_FS if canonical(a[1]) => k.task.regs.fs_base = a[1],
        ARCH_SET_GS if canonical(a[1]) => k.task.regs.gs_base = a[1],
        ARCH_SET_FS | ARCH_SET_GS => return Err(Errno::EPERM),
        ARCH_GET_FS => {
            let v = k.task.regs.fs_base;
            k.copy_out(a[1], &v.to_le_bytes())?;
        }
        ARCH_GET_GS => {
            let v = k.task.regs.gs_base;
            k.copy_out(a[1], &v.to_le_bytes())?;
        }
        ARCH_GET_CPUID => return Ok(1),
        ARCH_SET_CPUID => return Err(Errno::ENODEV),
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}
