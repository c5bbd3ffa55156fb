//! wait4(2).

use super::{arg_i32, Args};
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::exit::reap;
use crate::task::{Tid, WaitKey};

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;
const WNOTHREAD: u64 = 0x2000_0000;

/// wait4(2): reap a zombie child, or block until one appears.
pub fn sys_wait4<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (pid, status_ptr, options) = (arg_i32(a[0]), a[1], a[2]);
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WALL | WCLONE | WNOTHREAD) != 0 {
        return Err(Errno::EINVAL);
    }
    let me = k.cur().tgid;
    let my_pgid = k.group().pgid;
    let children = k.group().children.clone();
    let matches = |k: &Kernel<'_, P>, c: Tid| -> bool {
        let Some(g) = k.groups.get(&c) else {
            return false;
        };
        match pid {
            -1 => true,
            0 => g.pgid == my_pgid,
            p if p > 0 => c == p,
            p => g.pgid == -p,
        }
    };
    let candidates: alloc::vec::Vec<Tid> = children
        .iter()
        .copied()
        .filter(|c| matches(k, *c))
        .collect();
    if candidates.is_empty() {
        return Err(Errno::ECHILD);
    }
    let zombie = candidates
        .iter()
        .copied()
        .find_map(|c| k.groups.get(&c).and_then(|g| g.zombie.map(|z| (c, z))));
    if let Some((child, how)) = zombie {
        if status_ptr != 0 {
            k.copy_out(status_ptr, &how.wait_status().to_le_bytes())?;
        }
        if a[3] != 0 {
            // struct rusage: no accounting yet, all zero.
            k.copy_out(a[3], &[0u8; 144])?;
        }
        reap(k, child);
        return Ok(child as u64);
    }
    if options & WNOHANG != 0 {
        return Ok(0);
    }
    Err(k.block(WaitKey::Child(me), None))
}

/// waitid(2): like `wait4` with a `siginfo_t` result, and `WNOWAIT`.
pub fn sys_waitid<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    const P_PGID: u64 = 2;
    const WEXITED: u64 = 4;
    const WSTOPPED: u64 = 2;
    const WNOWAIT: u64 = 0x0100_0000;
    let (idtype, id, infop, options) = (a[0], arg_i32(a[1]), a[2], a[3]);
    if options & !(WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | WALL | WCLONE | WNOTHREAD)
        != 0
        || options & (WEXITED | WSTOPPED | WCONTINUED) == 0
    {
        return Err(Errno::EINVAL);
    }
    let me = k.cur().tgid;
    let my_pgid = k.group().pgid;
    let children = k.group().children.clone();
    let candidates: alloc::vec::Vec<Tid> = children
        .iter()
        .copied()
        .filter(|c| {
            let Some(g) = k.groups.get(c) else {
                return false;
            };
            match idtype {
                P_ALL => true,
                P_PID => *c == id,
                P_PGID => g.pgid == if id == 0 { my_pgid } else { id },
                _ => false,
            }
        })
        .collect();
    if idtype > P_PGID {
        return Err(Errno::EINVAL);
    }
    if candidates.is_empty() {
        return Err(Errno::ECHILD);
    }
    let zombie = if options & WEXITED != 0 {
        candidates
            .iter()
            .copied()
            .find_map(|c| k.groups.get(&c).and_then(|g| g.zombie.map(|z| (c, z))))
    } else {
        None
    };
    if let Some((child, how)) = zombie {
        if infop != 0 {
            let (code, status) = match how {
                crate::task::GroupExit::Exited(c) => (crate::task::CLD_EXITED, c),
                crate::task::GroupExit::Signaled(s) => (crate::task::CLD_KILLED, s),
            };
            let uid = k.groups.get(&child).map(|g| g.creds.uid).unwrap_or(0);
            let info = crate::task::SigInfo {
                signo: 17,
                code,
                pid: child,
                uid,
                addr: 0,
                status,
                ..Default::default()
            };
            k.copy_out(infop, &info.to_bytes())?;
        }
        if options & WNOWAIT == 0 {
            reap(k, child);
        }
        return Ok(0);
    }
    if options & WNOHANG != 0 {
        if infop != 0 {
            k.copy_out(infop, &[0u8; 128])?;
        }
        return Ok(0);
    }
    Err(k.block(WaitKey::Child(me), None))
}
