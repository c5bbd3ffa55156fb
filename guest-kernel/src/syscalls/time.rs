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
