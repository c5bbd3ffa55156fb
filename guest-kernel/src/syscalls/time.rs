//! clock_gettime, clock_getres, gettimeofday, time, nanosleep.

use super::{arg_i32, Args};
use crate::abi::linux::*;
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::{Clock, Platform};
use crate::task::WaitKey;

fn read_clock<P: Platform>(k: &Kernel<'_, P>, id: i32) -> KResult<u64> {
    let id = u32::try_from(id).map_err(|_| Errno::EINVAL)?;
    match id {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => Ok(k.plat.now(Clock::Realtime)),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            Ok(k.plat.now(Clock::Monotonic))
        }
        // Until tasks are charged for their CPU time, time since boot bounds it.
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            Ok(k.plat.now(Clock::Monotonic).saturating_sub(k.boot_ns))
        }
        _ => Err(Errno::EINVAL),
    }
}

/// clock_gettime(2).
pub fn sys_clock_gettime<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let ns = read_clock(k, arg_i32(a[0]))?;
    k.copy_out(a[1], &Timespec::from_ns(ns).to_bytes())?;
    Ok(0)
}

/// clock_getres(2).
pub fn sys_clock_getres<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    read_clock(k, arg_i32(a[0]))?;
    if a[1] != 0 {
        k.copy_out(a[1], &Timespec::from_ns(1).to_bytes())?;
    }
    Ok(0)
}

/// gettimeofday(2).
pub fn sys_gettimeofday<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[0] != 0 {
        let ns = k.plat.now(Clock::Realtime);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
        k.copy_out(a[0], &b)?;
    }
    if a[1] != 0 {
        k.copy_out(a[1], &[0u8; 8])?;
    }
    Ok(0)
}

/// time(2).
pub fn sys_time<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let secs = k.plat.now(Clock::Realtime) / 1_000_000_000;
    if a[0] != 0 {
        k.copy_out(a[0], &secs.to_le_bytes())?;
    }
    Ok(secs)
}

fn read_timespec<P: Platform>(k: &mut Kernel<'_, P>, va: u64) -> KResult<u64> {
    let mut b = [0u8; 16];
    k.copy_in(va, &mut b)?;
    Timespec::from_bytes(&b).to_ns().ok_or(Errno::EINVAL)
}

/// Sleep until `deadline` (monotonic): block, and finish once it passed.
fn sleep_until<P: Platform>(k: &mut Kernel<'_, P>, deadline: u64, rem: u64) -> KResult<u64> {
    let now = k.plat.now(Clock::Monotonic);
    if now >= deadline || k.timed_out() {
        return Ok(0);
    }
    if matches!(k.cur().restart, Some(r) if r.interrupted) {
        if rem != 0 {
            k.copy_out(rem, &Timespec::from_ns(deadline - now).to_bytes())?;
        }
        return Err(Errno::EINTR);
    }
    Err(k.block(WaitKey::Sleep, Some(deadline)))
}

/// nanosleep(2).
pub fn sys_nanosleep<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let ns = read_timespec(k, a[0])?;
    let deadline = k.deadline_after(ns);
    sleep_until(k, deadline, a[1])
}

/// clock_nanosleep(2).
pub fn sys_clock_nanosleep<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const TIMER_ABSTIME: u64 = 1;
    let clock = arg_i32(a[0]);
    let now = read_clock(k, clock)?;
    let ns = read_timespec(k, a[2])?;
    let abs = a[1] & TIMER_ABSTIME != 0;
    let delta = if abs { ns.saturating_sub(now) } else { ns };
    let deadline = k.deadline_after(delta);
    sleep_until(k, deadline, if abs { 0 } else { a[3] })
}

const ITIMER_REAL: u64 = 0;

/// The current `ITIMER_REAL` as (remaining, interval) in ns.
fn itimer_get<P: Platform>(k: &Kernel<'_, P>) -> (u64, u64) {
    let tgid = k.cur().tgid;
    match k.alarms.get(&tgid) {
        Some((d, i)) => (d.saturating_sub(k.plat.now(Clock::Monotonic)).max(1), *i),
        None => (0, 0),
    }
}

fn itimer_set<P: Platform>(k: &mut Kernel<'_, P>, value: u64, interval: u64) {
    let tgid = k.cur().tgid;
    if value == 0 {
        k.alarms.remove(&tgid);
    } else {
        let d = k.plat.now(Clock::Monotonic).saturating_add(value);
        k.alarms.insert(tgid, (d, interval));
    }
}

fn timeval_bytes(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
    b
}

fn read_timeval<P: Platform>(k: &mut Kernel<'_, P>, va: u64) -> KResult<u64> {
    let mut b = [0u8; 16];
    k.copy_in(va, &mut b)?;
    let sec = i64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
    let usec = i64::from_le_bytes(b[8..].try_into().map_err(|_| Errno::EFAULT)?);
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(usec as u64 * 1000))
}

/// getitimer(2): `ITIMER_REAL` only.
pub fn sys_getitimer<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[0] != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (value, interval) = itimer_get(k);
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&timeval_bytes(interval));
    b[16..].copy_from_slice(&timeval_bytes(value));
    k.copy_out(a[1], &b)?;
    Ok(0)
}

/// setitimer(2): `ITIMER_REAL`, delivering SIGALRM.
pub fn sys_setitimer<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[0] != ITIMER_REAL {
        return Err(Errno::EINVAL);
    }
    let (old_value, old_interval) = itimer_get(k);
    if a[1] != 0 {
        let interval = read_timeval(k, a[1])?;
        let value = read_timeval(k, a[1] + 16)?;
        itimer_set(k, value, interval);
    } else {
        itimer_set(k, 0, 0);
    }
    if a[2] != 0 {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&timeval_bytes(old_interval));
        b[16..].copy_from_slice(&timeval_bytes(old_value));
        k.copy_out(a[2], &b)?;
    }
    Ok(0)
}

/// alarm(2).
pub fn sys_alarm<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (old, _) = itimer_get(k);
    itimer_set(k, (a[0] as u32 as u64).saturating_mul(1_000_000_000), 0);
    // Remaining seconds, rounded to nearest, at least 1 while pending.
    Ok(if old == 0 {
        0
    } else {
        old.div_ceil(1_000_000_000).max(1)
    })
}
