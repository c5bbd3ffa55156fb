//! epoll_create1, epoll_ctl, epoll_wait, epoll_pwait: level- and
//! edge-triggered, with EPOLLONESHOT.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::poll::readiness;
use super::{arg_fd, arg_i32, Args};
use crate::abi::linux::RLIMIT_NOFILE;
use crate::abi::{Errno, KResult};
use crate::fs::epoll::{Epoll, Interest};
use crate::fs::File;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::WaitKey;

const EPOLL_CLOEXEC: u64 = 0o2000000;
const EPOLL_CTL_ADD: i32 = 1;
const EPOLL_CTL_DEL: i32 = 2;
const EPOLL_CTL_MOD: i32 = 3;
const EPOLLERR: u32 = 0x8;
const EPOLLHUP: u32 = 0x10;
const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;
/// `struct epoll_event` is packed on x86-64: u32 events, u64 data.
const EVENT_SIZE: usize = 12;
/// Linux's bound on `maxevents`.
const EP_MAX_EVENTS: u64 = (i32::MAX as u64) / EVENT_SIZE as u64;

/// epoll_create1(2).
pub fn sys_epoll_create1<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[0] & !EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let limit = k.group().rlimits[RLIMIT_NOFILE as usize].0;
    let file = Arc::new(File::Epoll(Epoll::default()));
    Ok(k.group_mut()
        .fds
        .install(file, a[0] & EPOLL_CLOEXEC != 0, limit)? as u64)
}

/// epoll_create(2): `size` only has to be positive.
pub fn sys_epoll_create<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if arg_i32(a[0]) <= 0 {
        return Err(Errno::EINVAL);
    }
    sys_epoll_create1(k, [0; 6])
}

fn epoll_of(file: &Arc<File>) -> KResult<&Epoll> {
    match &**file {
        File::Epoll(ep) => Ok(ep),
        _ => Err(Errno::EINVAL),
    }
}

/// epoll_ctl(2).
pub fn sys_epoll_ctl<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (epfd, op, fd) = (arg_fd(a[0]), arg_i32(a[1]), arg_fd(a[2]));
    let epfile = k.group().fds.get(epfd)?;
    let target = k.group().fds.get(fd)?;
    let ep = epoll_of(&epfile)?;
    if Arc::ptr_eq(&epfile, &target) || ep.is(&target) {
        return Err(Errno::EINVAL);
    }
    if matches!(&*target, File::HostFile { .. }) {
        // Regular files and directories cannot be watched, as on Linux.
        return Err(Errno::EPERM);
    }
    let (events, data) = if op == EPOLL_CTL_DEL {
        (0, 0)
    } else {
        let mut b = [0u8; EVENT_SIZE];
        k.copy_in(a[3], &mut b)?;
        let events = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let data = u64::from_le_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
        (events, data)
    };
    let mut interest = ep.interest.lock();
    match op {
        EPOLL_CTL_ADD => {
            if interest.contains_key(&fd) {
                return Err(Errno::EEXIST);
            }
            let seen = if events & EPOLLET != 0 { u64::MAX } else { 0 };
            interest.insert(
                fd,
                Interest {
                    file: Arc::downgrade(&target),
                    events,
                    data,
                    disabled: false,
                    seen,
                },
            );
        }
        EPOLL_CTL_MOD => {
            let i = interest.get_mut(&fd).ok_or(Errno::ENOENT)?;
            if events & EPOLLEXCLUSIVE != 0 {
                return Err(Errno::EINVAL);
            }
            *i = Interest {
                file: Arc::downgrade(&target),
                events,
                data,
                disabled: false,
                seen: u64::MAX,
            };
        }
        EPOLL_CTL_DEL => {
            interest.remove(&fd).ok_or(Errno::ENOENT)?;
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

/// Collect up to `max` ready events.
fn collect(ep: &Epoll, max: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut interest = ep.interest.lock();
    // Interests whose file is gone (closed everywhere) drop out.
    interest.retain(|_, i| i.file.strong_count() > 0);
    for i in interest.values_mut() {
        if out.len() >= max {
            break;
        }
        if i.disabled {
            continue;
        }
        let Some(f) = i.file.upgrade() else {
            continue;
        };
        let ready = u32::from(readiness(&f)) & (i.events | EPOLLERR | EPOLLHUP);
        if ready == 0 {
            continue;
        }
        if i.events & EPOLLET != 0 {
            let generation = f.event_generation();
            if generation == i.seen {
                continue;
            }
            i.seen = generation;
        }
        if i.events & EPOLLONESHOT != 0 {
            i.disabled = true;
        }
        out.push((ready, i.data));
    }
    out
}

fn do_wait<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (epfd, events, max, timeout) = (arg_fd(a[0]), a[1], a[2], arg_i32(a[3]));
    if max == 0 || max > EP_MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    let epfile = k.group().fds.get(epfd)?;
    let ep = epoll_of(&epfile)?;
    super::poll::prepare_readiness(k);
    let ready = collect(ep, max as usize);
    // Wake at the first expiry of a watched timerfd.
    let timer_deadline = ep
        .interest
        .lock()
        .values()
        .filter_map(|i| i.file.upgrade())
        .filter_map(|f| {
            if let File::TimerFd(t) = &*f {
                t.deadline()
            } else {
                None
            }
        })
        .min();
    let deadline = match timeout {
        t if t < 0 => None,
        0 => Some(0),
        t => Some(k.deadline_after(t as u64 * 1_000_000)),
    };
    if !ready.is_empty() {
        let mut buf = Vec::with_capacity(ready.len() * EVENT_SIZE);
        for (ev, data) in &ready {
            buf.extend_from_slice(&ev.to_le_bytes());
            buf.extend_from_slice(&data.to_le_bytes());
        }
        k.copy_out(events, &buf)?;
        return Ok(ready.len() as u64);
    }
    if deadline == Some(0) || k.timed_out() {
        return Ok(0);
    }
    if matches!(k.cur().restart, Some(r) if r.interrupted) {
        return Err(Errno::EINTR);
    }
    Err(k.block(
        WaitKey::Poll,
        super::poll::min_deadline(deadline, timer_deadline),
    ))
}

/// epoll_wait(2).
pub fn sys_epoll_wait<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    do_wait(k, a)
}

/// epoll_pwait(2): the signal mask applies while waiting.
pub fn sys_epoll_pwait<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[4] == 0 {
        return do_wait(k, a);
    }
    if a[5] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = k.read_u64(a[4])?;
    let t = k.cur_mut();
    let saved = t
        .restart
        .and_then(|r| r.saved_mask)
        .unwrap_or(t.sig.blocked);
    t.sig.set_blocked(mask);
    let r = do_wait(k, a);
    if r == Err(crate::kernel::BLOCKED) {
        if let Some(rs) = k.cur_mut().restart.as_mut() {
            rs.saved_mask = Some(saved);
        }
    } else {
        k.cur_mut().sig.set_blocked(saved);
    }
    r
}
