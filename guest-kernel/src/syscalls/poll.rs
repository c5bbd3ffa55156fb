//! poll(2), ppoll(2).
//!
//! Readiness comes from the files themselves; a poller that must wait
//! blocks on `WaitKey::Poll`, which every pipe event also wakes.

use alloc::vec;

use super::{arg_i32, Args};
use crate::abi::linux::Timespec;
use crate::abi::{Errno, KResult};
use crate::fs::File;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::WaitKey;

const POLLIN: u16 = 0x1;
const POLLPRI: u16 = 0x2;
const POLLOUT: u16 = 0x4;
const POLLERR: u16 = 0x8;
const POLLHUP: u16 = 0x10;
const POLLNVAL: u16 = 0x20;
const POLLRDNORM: u16 = 0x40;
const POLLWRNORM: u16 = 0x100;

/// The events `file` can report now.
pub fn readiness(file: &File) -> u16 {
    match file {
        // Ready when any of its own interests is; nested instances count as
        // not ready (no recursion through epoll graphs).
        File::Epoll(ep) => {
            let ready = ep.interest.lock().values().any(|i| {
                !i.disabled
                    && i.file.upgrade().is_some_and(|f| {
                        !matches!(&*f, File::Epoll(_))
                            && readiness(&f) & (i.events as u16 | POLLERR | POLLHUP) != 0
                    })
            });
            if ready {
                POLLIN | POLLRDNORM
            } else {
                0
            }
        }
        File::Pipe(end) => {
            let (buffered, peers) = end.pipe.status(end.write);
            if end.write {
                if peers == 0 {
                    POLLERR | POLLOUT | POLLWRNORM
                } else if buffered < crate::fs::pipe::PIPE_CAPACITY {
                    POLLOUT | POLLWRNORM
                } else {
                    0
                }
            } else {
                let mut ev = if buffered > 0 { POLLIN | POLLRDNORM } else { 0 };
                if peers == 0 {
                    ev |= POLLHUP;
                }
                ev
            }
        }
        File::Pty(end) => {
            let (r, w, hup) = end.pty.readiness(end.master);
            readiness_events(r, w, hup)
        }
        File::SignalFd(s) => {
            if s.ready() {
                POLLIN | POLLRDNORM
            } else {
                0
            }
        }
        File::TimerFd(t) => {
            if t.ready() {
                POLLIN | POLLRDNORM
            } else {
                0
            }
        }
        File::Socket(s) => {
            let (r, w, hup) = s.readiness();
            readiness_events(r, w, hup)
        }
        File::EventFd(e) => {
            let v = e.value();
            let mut ev = 0;
            if v > 0 {
                ev |= POLLIN | POLLRDNORM;
            }
            if v < crate::fs::eventfd::EVENTFD_MAX {
                ev |= POLLOUT | POLLWRNORM;
            }
            ev
        }
        // Host streams and files, and devices: reads and writes do not block
        // in the sentry (a host read waits in the host).
        _ => POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM,
    }
}

/// Record what time- and task-dependent readiness is computed against:
/// the time for timerfds, the asking task's pending signals for signalfds.
pub fn prepare_readiness<P: Platform>(k: &Kernel<'_, P>) {
    crate::fs::timerfd::set_now(k.plat.now(crate::platform::Clock::Monotonic));
    crate::fs::signalfd::set_pending(k.cur().sig.pending | k.group().pending);
}

fn do_poll<P: Platform>(
    k: &mut Kernel<'_, P>,
    fds: u64,
    nfds: u64,
    deadline: Option<u64>,
) -> KResult<u64> {
    let limit = k.group().rlimits[crate::abi::linux::RLIMIT_NOFILE as usize].0;
    if nfds > limit.max(1024) {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds as usize * 8];
    k.copy_in(fds, &mut raw)?;
    prepare_readiness(k);
    let mut timer_deadline: Option<u64> = None;
    let mut ready = 0u64;
    for entry in raw.chunks_exact_mut(8) {
        let fd = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        let events = u16::from_le_bytes([entry[4], entry[5]]);
        let revents = if fd < 0 {
            0
        } else {
            match k.group().fds.get(fd) {
                Ok(f) => {
                    if let File::TimerFd(t) = &*f {
                        timer_deadline = min_deadline(timer_deadline, t.deadline());
                    }
                    readiness(&f) & (events | POLLERR | POLLHUP)
                }
                Err(_) => POLLNVAL,
            }
        };
        let _ = POLLPRI;
        entry[6..8].copy_from_slice(&revents.to_le_bytes());
        if revents != 0 {
            ready += 1;
        }
    }
    if ready > 0 || deadline == Some(0) || k.timed_out() {
        k.copy_out(fds, &raw)?;
        return Ok(ready);
    }
    if matches!(k.cur().restart, Some(r) if r.interrupted) {
        return Err(Errno::EINTR);
    }
    // Wake at the first timerfd expiry too.
    Err(k.block(WaitKey::Poll, min_deadline(deadline, timer_deadline)))
}

/// The earlier of two optional deadlines.
pub fn min_deadline(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// poll(2).
pub fn sys_poll<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let timeout_ms = arg_i32(a[2]);
    let deadline = match timeout_ms {
        t if t < 0 => None,
        0 => Some(0),
        t => Some(k.deadline_after(t as u64 * 1_000_000)),
    };
    do_poll(k, a[0], a[1], deadline)
}

/// ppoll(2): the signal mask applies while waiting.
pub fn sys_ppoll<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let deadline = if a[2] == 0 {
        None
    } else {
        let mut b = [0u8; 16];
        k.copy_in(a[2], &mut b)?;
        let ns = Timespec::from_bytes(&b).to_ns().ok_or(Errno::EINVAL)?;
        if ns == 0 {
            Some(0)
        } else {
            Some(k.deadline_after(ns))
        }
    };
    if a[3] != 0 {
        if a[4] != 8 {
            return Err(Errno::EINVAL);
        }
        let mask = k.read_u64(a[3])?;
        let t = k.cur_mut();
        let saved = t
            .restart
            .and_then(|r| r.saved_mask)
            .unwrap_or(t.sig.blocked);
        t.sig.set_blocked(mask);
        let r = do_poll(k, a[0], a[1], deadline);
        if r == Err(crate::kernel::BLOCKED) {
            if let Some(rs) = k.cur_mut().restart.as_mut() {
                rs.saved_mask = Some(saved);
            }
        } else {
            k.cur_mut().sig.set_blocked(saved);
        }
        return r;
    }
    do_poll(k, a[0], a[1], deadline)
}

/// Largest descriptor set `select` accepts (`FD_SETSIZE`).
const FD_SETSIZE: u64 = 1024;

/// The shared body of select(2) and pselect6(2): `sets` are the user
/// addresses of the read, write and except sets (0 when absent).
fn do_select<P: Platform>(
    k: &mut Kernel<'_, P>,
    nfds: u64,
    sets: [u64; 3],
    deadline: Option<u64>,
) -> KResult<u64> {
    if nfds > FD_SETSIZE {
        return Err(Errno::EINVAL);
    }
    let bytes = nfds.div_ceil(64) as usize * 8;
    let mut input = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    for (i, addr) in sets.iter().enumerate() {
        if *addr != 0 {
            k.copy_in(*addr, &mut input[i])?;
        }
    }
    let mut output = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let mut ready = 0u64;
    prepare_readiness(k);
    for fd in 0..nfds as usize {
        let (byte, bit) = (fd / 8, 1u8 << (fd % 8));
        let wanted = [0, 1, 2].map(|i| input[i][byte] & bit != 0);
        if !wanted.iter().any(|w| *w) {
            continue;
        }
        let file = k.group().fds.get(fd as i32)?;
        let ev = readiness(&file);
        let got = [
            ev & (POLLIN | POLLHUP | POLLERR) != 0,
            ev & (POLLOUT | POLLERR) != 0,
            false,
        ];
        for i in 0..3 {
            if wanted[i] && got[i] {
                output[i][byte] |= bit;
                ready += 1;
            }
        }
    }
    if ready > 0 || deadline == Some(0) || k.timed_out() {
        for (i, addr) in sets.iter().enumerate() {
            if *addr != 0 {
                k.copy_out(*addr, &output[i])?;
            }
        }
        return Ok(ready);
    }
    if matches!(k.cur().restart, Some(r) if r.interrupted) {
        return Err(Errno::EINTR);
    }
    Err(k.block(WaitKey::Poll, deadline))
}

/// select(2), with a `struct timeval` timeout.
pub fn sys_select<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let deadline = if a[4] == 0 {
        None
    } else {
        let mut b = [0u8; 16];
        k.copy_in(a[4], &mut b)?;
        let sec = i64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let usec = i64::from_le_bytes(b[8..].try_into().map_err(|_| Errno::EFAULT)?);
        if sec < 0 || !(0..1_000_000).contains(&usec) {
            return Err(Errno::EINVAL);
        }
        let ns = (sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(usec as u64 * 1000);
        Some(if ns == 0 { 0 } else { k.deadline_after(ns) })
    };
    do_select(k, a[0], [a[1], a[2], a[3]], deadline)
}

/// pselect6(2): a `timespec` timeout and a signal mask while waiting.
pub fn sys_pselect6<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let deadline = if a[4] == 0 {
        None
    } else {
        let mut b = [0u8; 16];
        k.copy_in(a[4], &mut b)?;
        let ns = Timespec::from_bytes(&b).to_ns().ok_or(Errno::EINVAL)?;
        Some(if ns == 0 { 0 } else { k.deadline_after(ns) })
    };
    // a[5] points at { const sigset_t *ss; size_t ss_len; }.
    let mask = if a[5] != 0 {
        let ss = k.read_u64(a[5])?;
        let len = k.read_u64(a[5] + 8)?;
        if ss != 0 {
            if len != 8 {
                return Err(Errno::EINVAL);
            }
            Some(k.read_u64(ss)?)
        } else {
            None
        }
    } else {
        None
    };
    let Some(mask) = mask else {
        return do_select(k, a[0], [a[1], a[2], a[3]], deadline);
    };
    let t = k.cur_mut();
    let saved = t
        .restart
        .and_then(|r| r.saved_mask)
        .unwrap_or(t.sig.blocked);
    t.sig.set_blocked(mask);
    let r = do_select(k, a[0], [a[1], a[2], a[3]], deadline);
    if r == Err(crate::kernel::BLOCKED) {
        if let Some(rs) = k.cur_mut().restart.as_mut() {
            rs.saved_mask = Some(saved);
        }
    } else {
        k.cur_mut().sig.set_blocked(saved);
    }
    r
}

/// Poll events of an end that is readable, writable or hung up.
fn readiness_events(readable: bool, writable: bool, hup: bool) -> u16 {
    let mut ev = 0;
    if readable {
        ev |= POLLIN | POLLRDNORM;
    }
    if writable {
        ev |= POLLOUT | POLLWRNORM;
    }
    if hup {
        ev |= POLLHUP;
    }
    ev
}
