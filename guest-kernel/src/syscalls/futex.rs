//! futex(2): wait, wake, requeue and wake-op on 32-bit words.
//!
//! Private futexes are keyed by (address space, address); shared ones by
//! the physical address of the word, so processes sharing a mapping meet.
//! A woken waiter returns 0 without rechecking the word, as Linux does.

use super::{arg_i32, Args};
use crate::abi::linux::Timespec;
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::{Clock, Platform};
use crate::task::{MmId, TaskState, WaitKey};

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

fn key<P: Platform>(k: &mut Kernel<'_, P>, uaddr: u64, private: bool) -> KResult<WaitKey> {
    let mm = k.cur().mm;
    key_in(k, mm, uaddr, private)
}

/// The key of the futex word at `uaddr` in address space `mm_id`. As on
/// Linux, a word in private memory is keyed by (mm, address) even for
/// shared operations; only `MAP_SHARED` memory is keyed physically.
pub fn key_in<P: Platform>(
    k: &mut Kernel<'_, P>,
    mm_id: MmId,
    uaddr: u64,
    private: bool,
) -> KResult<WaitKey> {
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let entry = k.mms.get_mut(&mm_id).ok_or(Errno::EFAULT)?;
    let vma = entry.mm.find_vma(uaddr).ok_or(Errno::EFAULT)?;
    if private || !vma.shared {
        return Ok(WaitKey::Futex(mm_id, uaddr));
    }
    Ok(WaitKey::Futex(
        0,
        entry.mm.user_phys(k.plat, &mut k.frames, uaddr)?,
    ))
}

/// Move up to `max` waiters from `from` to `to`.
fn requeue<P: Platform>(k: &mut Kernel<'_, P>, from: WaitKey, to: WaitKey, max: usize) -> usize {
    let mut n = 0;
    for t in k.tasks.values_mut() {
        if n >= max {
            break;
        }
        if let TaskState::Blocked { key, seq } = t.state {
            if key == from {
                t.state = TaskState::Blocked { key: to, seq };
                n += 1;
            }
        }
    }
    n
}

fn wake_op<P: Platform>(k: &mut Kernel<'_, P>, a: Args, private: bool) -> KResult<u64> {
    let (uaddr, n1, n2, uaddr2, encoded) = (a[0], a[2] as usize, a[3] as usize, a[4], a[5] as u32);
    let k1 = key(k, uaddr, private)?;
    let k2 = key(k, uaddr2, private)?;
    let op = (encoded >> 28) & 7;
    let cmp = (encoded >> 24) & 15;
    let mut oparg = (encoded >> 12) & 0xfff;
    let cmparg = encoded & 0xfff;
    if (encoded >> 31) & 1 != 0 {
        oparg = 1u32.checked_shl(oparg).unwrap_or(0);
    }
    let old = k.read_u32(uaddr2)?;
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(Errno::ENOSYS),
    };
    k.copy_out(uaddr2, &new.to_le_bytes())?;
    let cond = match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => (old as i32) < cmparg as i32,
        3 => (old as i32) <= cmparg as i32,
        4 => (old as i32) > cmparg as i32,
        5 => (old as i32) >= cmparg as i32,
        _ => return Err(Errno::ENOSYS),
    };
    let mut woken = k.wake(k1, n1);
    if cond {
        woken += k.wake(k2, n2);
    }
    Ok(woken as u64)
}

/// futex(2).
pub fn sys_futex<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (uaddr, op, val) = (a[0], arg_i32(a[1]), a[2] as u32);
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if cmd == FUTEX_WAIT_BITSET && a[5] as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            let key = key(k, uaddr, private)?;
            if let Some(r) = k.cur().restart {
                // Retried after blocking: woken, timed out, or interrupted.
                if r.timed_out {
                    return Err(Errno::ETIMEDOUT);
                }
                if r.interrupted {
                    return Err(Errno::EINTR);
                }
                return Ok(0);
            }
            if k.read_u32(uaddr)? != val {
                return Err(Errno::EAGAIN);
            }
            let deadline = if a[3] == 0 {
                None
            } else {
                let mut t = [0u8; 16];
                k.copy_in(a[3], &mut t)?;
                let ns = Timespec::from_bytes(&t).to_ns().ok_or(Errno::EINVAL)?;
                let now = k.plat.now(Clock::Monotonic);
                Some(if cmd == FUTEX_WAIT {
                    now.saturating_add(ns)
                } else if op & FUTEX_CLOCK_REALTIME != 0 {
                    now.saturating_add(ns.saturating_sub(k.plat.now(Clock::Realtime)))
                } else {
                    ns
                })
            };
            Err(k.block(key, deadline))
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            if cmd == FUTEX_WAKE_BITSET && a[5] as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            let key = key(k, uaddr, private)?;
            Ok(k.wake(key, val as usize) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let from = key(k, uaddr, private)?;
            let to = key(k, a[4], private)?;
            if cmd == FUTEX_CMP_REQUEUE && k.read_u32(uaddr)? != a[5] as u32 {
                return Err(Errno::EAGAIN);
            }
            let woken = k.wake(from, val as usize);
            let moved = requeue(k, from, to, a[3] as u32 as usize);
            Ok((woken + if cmd == FUTEX_CMP_REQUEUE { moved } else { 0 }) as u64)
        }
        FUTEX_WAKE_OP => wake_op(k, a, private),
        _ => Err(Errno::ENOSYS),
    }
}
/// Bound on the robust-list walk, against lists that loop (Linux's).
const ROBUST_LIST_LIMIT: usize = 2048;
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

fn read_in<P: Platform>(k: &mut Kernel<'_, P>, mm: MmId, va: u64, buf: &mut [u8]) -> Option<()> {
    let e = k.mms.get_mut(&mm)?;
    e.mm.copy_in(k.plat, &mut k.frames, va, buf).ok()
}

fn read_u64_in<P: Platform>(k: &mut Kernel<'_, P>, mm: MmId, va: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    read_in(k, mm, va, &mut b)?;
    Some(u64::from_le_bytes(b))
}

/// A dying thread's robust futex list (`set_robust_list`): mark each lock
/// it still holds `FUTEX_OWNER_DIED` and wake a waiter, so the next owner
/// gets `EOWNERDEAD` (Linux's `exit_robust_list`). The list is user memory:
/// a bad pointer ends the walk quietly.
pub fn exit_robust_list<P: Platform>(k: &mut Kernel<'_, P>, mm: MmId, tid: i32, head: u64) {
    // struct robust_list_head { next; long futex_offset; list_op_pending; }
    let Some(first) = read_u64_in(k, mm, head) else {
        return;
    };
    let Some(offset) = read_u64_in(k, mm, head.wrapping_add(8)) else {
        return;
    };
    let Some(pending) = read_u64_in(k, mm, head.wrapping_add(16)) else {
        return;
    };
    // Bit 0 of each pointer marks a PI futex.
    let (pending, pending_pi) = (pending & !1, pending & 1 != 0);
    let (mut entry, mut pi) = (first & !1, first & 1 != 0);
    let mut limit = ROBUST_LIST_LIMIT;
    while entry != head {
        let next = read_u64_in(k, mm, entry);
        // The lock being taken or released (list_op_pending) is done last.
        if entry != pending {
            futex_death(k, mm, tid, entry.wrapping_add(offset), pi, false);
        }
        let Some(next) = next else {
            return;
        };
        (entry, pi) = (next & !1, next & 1 != 0);
        limit -= 1;
        if limit == 0 {
            break;
        }
    }
    if pending != 0 {
        futex_death(k, mm, tid, pending.wrapping_add(offset), pending_pi, true);
    }
}

/// One robust futex of a dying owner (Linux's `handle_futex_death`).
fn futex_death<P: Platform>(
    k: &mut Kernel<'_, P>,
    mm: MmId,
    tid: i32,
    uaddr: u64,
    pi: bool,
    pending_op: bool,
) {
    if !uaddr.is_multiple_of(4) {
        return;
    }
    let mut b = [0u8; 4];
    if read_in(k, mm, uaddr, &mut b).is_none() {
        return;
    }
    let val = u32::from_le_bytes(b);
    let wake = |k: &mut Kernel<'_, P>| {
        if let Ok(key) = key_in(k, mm, uaddr, false) {
            k.wake(key, 1);
        }
    };
    // Died between taking a 0 word and recording itself as owner: a waiter
    // may have gone to sleep meanwhile.
    if pending_op && !pi && val == 0 {
        wake(k);
        return;
    }
    if val & FUTEX_TID_MASK != tid as u32 {
        return;
    }
    let new = (val & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    let Some(e) = k.mms.get_mut(&mm) else {
        return;
    };
    if e.mm
        .copy_out(k.plat, &mut k.frames, uaddr, &new.to_le_bytes())
        .is_err()
    {
        return;
    }
    // PI futexes hand over through the PI state, which the sentry lacks.
    if !pi && val & FUTEX_WAITERS != 0 {
        wake(k);
    }
}
