//! POSIX timers: timer_create, timer_settime, timer_gettime,
//! timer_getoverrun, timer_delete.
//!
//! Timers belong to a thread group and are kept by the kernel beside the
//! `ITIMER_REAL` alarms; the scheduler fires them the same way (see
//! [`fire`], called from `Kernel::fire_timers`). Deadlines are kept on the
//! monotonic clock: a `CLOCK_REALTIME` timer only differs in how an
//! absolute time is read.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{arg_i32, Args};
use crate::abi::linux::{Timespec, SIGALRM};
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::{Clock, Platform};
use crate::task::frame::{send_to_group, send_to_thread};
use crate::task::signal::{bit, valid};
use crate::task::{SigInfo, Tid, SI_TIMER};

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD: i32 = 2;
const SIGEV_THREAD_ID: i32 = 4;
const TIMER_ABSTIME: u64 = 1;
/// `sizeof(struct sigevent)`.
const SIGEVENT_SIZE: usize = 64;
/// Bound on one process's timers (Linux's is `RLIMIT_SIGPENDING`).
const MAX_TIMERS: usize = 4096;
/// `DELAYTIMER_MAX`: overrun counts saturate here.
const DELAYTIMER_MAX: i64 = i32::MAX as i64;

/// Whom an expiry notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notify {
    /// `SIGEV_NONE`: nobody; the timer is only read back.
    None,
    /// `SIGEV_SIGNAL` (and `SIGEV_THREAD`, which the C library builds on it).
    Group,
    /// `SIGEV_THREAD_ID`: one thread of the group.
    Thread(Tid),
}

#[derive(Clone, Copy, Debug)]
struct PosixTimer {
    realtime: bool,
    notify: Notify,
    signo: i32,
    value: u64,
    /// Next expiry (monotonic ns); `None`: disarmed.
    deadline: Option<u64>,
    interval: u64,
    /// Overrun of the last signal taken, for `timer_getoverrun`.
    overrun: i32,
}

impl PosixTimer {
    /// Time to the next expiry, moving a lapsed periodic timer on.
    fn remaining(&self, now: u64) -> u64 {
        match self.deadline {
            Some(d) if d > now => d - now,
            Some(d) if self.interval > 0 => self.interval - (now - d) % self.interval,
            _ => 0,
        }
    }
}

/// Every thread group's timers, by (tgid, timer id).
#[derive(Debug, Default)]
pub struct PosixTimers {
    timers: BTreeMap<(Tid, i32), PosixTimer>,
}

impl PosixTimers {
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// The earliest expiry that must notify someone.
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers
            .values()
            .filter(|t| t.notify != Notify::None)
            .filter_map(|t| t.deadline)
            .min()
    }

    /// Delete a process's timers (exec, exit).
    pub fn remove_group(&mut self, tgid: Tid) {
        self.timers.retain(|(g, _), _| *g != tgid);
    }
}

/// Queue the signals of the timers due at `now` and re-arm periodic ones.
pub fn fire<P: Platform>(k: &mut Kernel<'_, P>, now: u64) {
    let due: Vec<(Tid, i32)> = k
        .ptimers
        .timers
        .iter()
        .filter(|(_, t)| t.notify != Notify::None && t.deadline.is_some_and(|d| d <= now))
        .map(|(key, _)| *key)
        .collect();
    for key in due {
        let Some(t) = k.ptimers.timers.get_mut(&key) else {
            continue;
        };
        let Some(d) = t.deadline else {
            continue;
        };
        // Periods that passed unseen count as overruns.
        let missed = match (now - d).checked_div(t.interval) {
            Some(m) => {
                t.deadline = Some(d.saturating_add((m + 1).saturating_mul(t.interval)));
                m
            }
            None => {
                t.deadline = None;
                0
            }
        };
        let t = *t;
        queue_signal(k, key, &t, missed);
    }
}

/// A timer's signal was taken: its overrun is what `timer_getoverrun`
/// reports from now on (Linux's `it_overrun_last`).
pub fn delivered<P: Platform>(k: &mut Kernel<'_, P>, info: &SigInfo) {
    let key = (k.cur().tgid, info.timerid);
    if let Some(t) = k.ptimers.timers.get_mut(&key) {
        t.overrun = info.overrun;
    }
}

/// Send timer `key`'s signal, or, while its last one is still pending,
/// count this expiry as an overrun of it.
fn queue_signal<P: Platform>(
    k: &mut Kernel<'_, P>,
    (tgid, id): (Tid, i32),
    t: &PosixTimer,
    missed: u64,
) {
    let sig = t.signo;
    let missed = missed.min(DELAYTIMER_MAX as u64) as i64;
    let pending = match t.notify {
        Notify::None => return,
        Notify::Group => k
            .groups
            .get_mut(&tgid)
            .filter(|g| g.pending & bit(sig) != 0)
            .and_then(|g| g.siginfo.get_mut(&sig)),
        Notify::Thread(tid) => k
            .tasks
            .get_mut(&tid)
            .filter(|th| th.sig.pending & bit(sig) != 0)
            .and_then(|th| th.siginfo.get_mut(&sig)),
    };
    if let Some(info) = pending.filter(|i| i.code == SI_TIMER && i.timerid == id) {
        let n = (info.overrun as i64 + missed + 1).min(DELAYTIMER_MAX);
        info.overrun = n as i32;
        return;
    }
    let info = SigInfo {
        signo: sig,
        code: SI_TIMER,
        value: t.value,
        timerid: id,
        overrun: missed as i32,
        ..Default::default()
    };
    match t.notify {
        Notify::Group => send_to_group(k, tgid, sig, info),
        // A target thread that has exited gets nothing, as on Linux.
        Notify::Thread(tid) => send_to_thread(k, tid, sig, info),
        Notify::None => {}
    }
}

/// Read an `itimerspec` as (interval, value) in ns.
fn read_itimerspec<P: Platform>(k: &mut Kernel<'_, P>, va: u64) -> KResult<(u64, u64)> {
    let mut b = [0u8; 32];
    k.copy_in(va, &mut b)?;
    let ts = |r: &[u8]| {
        let mut x = [0u8; 16];
        x.copy_from_slice(r);
        Timespec::from_bytes(&x).to_ns().ok_or(Errno::EINVAL)
    };
    Ok((ts(&b[..16])?, ts(&b[16..])?))
}

fn write_itimerspec<P: Platform>(
    k: &mut Kernel<'_, P>,
    va: u64,
    interval: u64,
    value: u64,
) -> KResult<()> {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&Timespec::from_ns(interval).to_bytes());
    b[16..].copy_from_slice(&Timespec::from_ns(value).to_bytes());
    k.copy_out(va, &b)
}

/// The current process's timer `id`.
fn timer_key<P: Platform>(k: &Kernel<'_, P>, id: u64) -> KResult<(Tid, i32)> {
    let key = (k.cur().tgid, arg_i32(id));
    if k.ptimers.timers.contains_key(&key) {
        Ok(key)
    } else {
        Err(Errno::EINVAL)
    }
}

/// timer_create(2).
pub fn sys_timer_create<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    // The clocks the sentry reads (CPU-time clocks are not charged yet).
    let realtime = match arg_i32(a[0]) {
        0 | 8 => true,      // CLOCK_REALTIME, CLOCK_REALTIME_ALARM
        1 | 7 | 9 => false, // CLOCK_MONOTONIC, CLOCK_BOOTTIME(_ALARM)
        _ => return Err(Errno::EINVAL),
    };
    let tgid = k.cur().tgid;
    let id = (0..MAX_TIMERS as i32)
        .find(|i| !k.ptimers.timers.contains_key(&(tgid, *i)))
        .ok_or(Errno::EAGAIN)?;
    let (notify, signo, value) = if a[1] == 0 {
        // No sigevent: SIGALRM to the process, carrying the timer id.
        (Notify::Group, SIGALRM, id as u64)
    } else {
        let mut b = [0u8; SIGEVENT_SIZE];
        k.copy_in(a[1], &mut b)?;
        let word = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let value = u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let (signo, how) = (word(8), word(12));
        let notify = match how {
            SIGEV_NONE => Notify::None,
            SIGEV_SIGNAL | SIGEV_THREAD => Notify::Group,
            SIGEV_THREAD_ID => {
                let tid = word(16);
                match k.tasks.get(&tid) {
                    Some(t) if t.tgid == tgid => Notify::Thread(tid),
                    _ => return Err(Errno::EINVAL),
                }
            }
            _ => return Err(Errno::EINVAL),
        };
        if notify != Notify::None && !valid(signo) {
            return Err(Errno::EINVAL);
        }
        (notify, signo, value)
    };
    k.ptimers.timers.insert(
        (tgid, id),
        PosixTimer {
            realtime,
            notify,
            signo,
            value,
            deadline: None,
            interval: 0,
            overrun: 0,
        },
    );
    if let Err(e) = k.copy_out(a[2], &id.to_le_bytes()) {
        k.ptimers.timers.remove(&(tgid, id));
        return Err(e);
    }
    Ok(0)
}

/// timer_settime(2): arm (relative or `TIMER_ABSTIME`) or disarm.
pub fn sys_timer_settime<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[2] == 0 {
        return Err(Errno::EINVAL);
    }
    let (interval, value) = read_itimerspec(k, a[2])?;
    let key = timer_key(k, a[0])?;
    let mono = k.plat.now(Clock::Monotonic);
    let Some(t) = k.ptimers.timers.get(&key).copied() else {
        return Err(Errno::EINVAL);
    };
    let old = (t.interval, t.remaining(mono));
    let deadline = if value == 0 {
        None
    } else if a[1] & TIMER_ABSTIME != 0 {
        // An absolute time already past fires at once.
        let now = if t.realtime {
            k.plat.now(Clock::Realtime)
        } else {
            mono
        };
        Some(mono.saturating_add(value.saturating_sub(now)))
    } else {
        Some(mono.saturating_add(value))
    };
    if let Some(t) = k.ptimers.timers.get_mut(&key) {
        t.deadline = deadline;
        t.overrun = 0;
        // Disarming keeps the old interval, which timer_gettime reports.
        if deadline.is_some() {
            t.interval = interval;
        }
    }
    if a[3] != 0 {
        write_itimerspec(k, a[3], old.0, old.1)?;
    }
    Ok(0)
}

/// timer_gettime(2).
pub fn sys_timer_gettime<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let key = timer_key(k, a[0])?;
    let t = k.ptimers.timers[&key];
    let value = t.remaining(k.plat.now(Clock::Monotonic));
    write_itimerspec(k, a[1], t.interval, value)?;
    Ok(0)
}

/// timer_getoverrun(2).
pub fn sys_timer_getoverrun<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let key = timer_key(k, a[0])?;
    Ok(k.ptimers.timers[&key].overrun as u64)
}

/// timer_delete(2).
pub fn sys_timer_delete<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let key = timer_key(k, a[0])?;
    k.ptimers.timers.remove(&key);
    Ok(0)
}
