//! Descriptor-table calls: close, close_range, dup, dup2, dup3, fcntl, pipe2.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::io::release_file;
use super::{arg_fd, arg_i32, Args};
use crate::abi::linux::RLIMIT_NOFILE;
use crate::abi::{Errno, KResult};
use crate::fs::pipe::PIPE_CAPACITY;
use crate::fs::{File, Pipe, PipeEnd, O_NONBLOCK};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::WaitKey;

const O_CLOEXEC: u64 = 0o2000000;
const F_DUPFD: i32 = 0;
const F_GETFD: i32 = 1;
const F_SETFD: i32 = 2;
const F_GETFL: i32 = 3;
const F_SETFL: i32 = 4;
const F_DUPFD_CLOEXEC: i32 = 1030;
const F_GETPIPE_SZ: i32 = 1032;
const FD_CLOEXEC: u64 = 1;
const O_RDONLY: u64 = 0;
const O_WRONLY: u64 = 1;

fn nofile<P: Platform>(k: &Kernel<'_, P>) -> u64 {
    k.group().rlimits[RLIMIT_NOFILE as usize].0
}

/// Close `fd`.
pub fn close_fd<P: Platform>(k: &mut Kernel<'_, P>, fd: i32) -> KResult<()> {
    let entry = k.group_mut().fds.remove(fd)?;
    descriptor_closed(k, entry.file);
    Ok(())
}

/// The current process no longer holds `file` at some descriptor: its
/// record locks on the file go, and pipe peers may now see EOF or EPIPE.
pub fn descriptor_closed<P: Platform>(k: &mut Kernel<'_, P>, file: Arc<File>) {
    let tgid = k.cur().tgid;
    super::lock::descriptor_closed(k, tgid, &file);
    let pipe_id = match &*file {
        File::Pipe(end) => Some(end.pipe.id),
        File::Pty(end) => Some(end.pty.id),
        _ => None,
    };
    release_file(k, file);
    if let Some(id) = pipe_id {
        k.wake(WaitKey::Pipe(id), usize::MAX);
    }
}

/// close(2).
pub fn sys_close<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    close_fd(k, arg_fd(a[0]))?;
    Ok(0)
}

/// dup(2).
pub fn sys_dup<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let limit = nofile(k);
    Ok(k.group_mut().fds.install(file, false, limit)? as u64)
}

fn dup_to<P: Platform>(k: &mut Kernel<'_, P>, old: i32, new: i32, cloexec: bool) -> KResult<u64> {
    let file = k.group().fds.get(old)?;
    if new < 0 || new as u64 >= nofile(k) {
        return Err(Errno::EBADF);
    }
    if let Some(prev) = k.group_mut().fds.install_at(new, file, cloexec)? {
        descriptor_closed(k, prev.file);
    }
    Ok(new as u64)
}

/// dup2(2).
pub fn sys_dup2<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (old, new) = (arg_fd(a[0]), arg_fd(a[1]));
    if old == new {
        k.group().fds.get(old)?;
        return Ok(new as u64);
    }
    dup_to(k, old, new, false)
}

/// dup3(2).
pub fn sys_dup3<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (old, new) = (arg_fd(a[0]), arg_fd(a[1]));
    if a[2] & !O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    dup_to(k, old, new, a[2] & O_CLOEXEC != 0)
}

/// fcntl(2): descriptor flags, status flags and duplication.
pub fn sys_fcntl<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let fd = arg_fd(a[0]);
    match arg_i32(a[1]) {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = arg_i32(a[2]);
            let limit = nofile(k);
            if min < 0 || min as u64 >= limit {
                return Err(Errno::EINVAL);
            }
            let file = k.group().fds.get(fd)?;
            let cloexec = arg_i32(a[1]) == F_DUPFD_CLOEXEC;
            Ok(k.group_mut().fds.install_from(min, file, cloexec, limit)? as u64)
        }
        F_GETFD => Ok(if k.group_mut().fds.entry_mut(fd)?.cloexec {
            FD_CLOEXEC
        } else {
            0
        }),
        F_SETFD => {
            k.group_mut().fds.entry_mut(fd)?.cloexec = a[2] & FD_CLOEXEC != 0;
            Ok(0)
        }
        F_GETFL => {
            let file = k.group().fds.get(fd)?;
            Ok(status_flags(&file))
        }
        F_SETFL => {
            let file = k.group().fds.get(fd)?;
            match &*file {
                File::Pipe(end) => end.flags.store(a[2] as u32 & O_NONBLOCK, Ordering::Relaxed),
                File::EventFd(e) => e.flags.store(a[2] as u32 & O_NONBLOCK, Ordering::Relaxed),
                File::Socket(s) => s.flags.store(a[2] as u32 & O_NONBLOCK, Ordering::Relaxed),
                File::TimerFd(t) => t.flags.store(a[2] as u32 & O_NONBLOCK, Ordering::Relaxed),
                File::SignalFd(s) => s.flags.store(a[2] as u32 & O_NONBLOCK, Ordering::Relaxed),
                File::Pty(p) => {
                    let acc = p.flags.load(Ordering::Relaxed) & 3;
                    p.flags
                        .store(acc | (a[2] as u32 & O_NONBLOCK), Ordering::Relaxed)
                }
                _ => {}
            }
            Ok(0)
        }
        super::lock::F_GETLK
        | super::lock::F_SETLK
        | super::lock::F_SETLKW
        | super::lock::F_OFD_GETLK
        | super::lock::F_OFD_SETLK
        | super::lock::F_OFD_SETLKW => super::lock::fcntl_lock(k, a),
        F_GETPIPE_SZ => match &*k.group().fds.get(fd)? {
            File::Pipe(_) => Ok(PIPE_CAPACITY as u64),
            _ => Err(Errno::EBADF),
        },
        _ => Err(Errno::EINVAL),
    }
}

/// A file's status flags and access mode, as `F_GETFL` reports them.
pub fn status_flags(file: &File) -> u64 {
    match file {
        File::Pipe(end) => {
            u64::from(end.flags.load(Ordering::Relaxed))
                | if end.write { O_WRONLY } else { O_RDONLY }
        }
        File::HostStream { handle } if handle.0 == 0 => O_RDONLY,
        File::HostStream { .. } => O_WRONLY,
        File::HostFile { flags, .. } => u64::from(*flags),
        File::Dev(_) | File::Epoll(_) => 2, // O_RDWR
        File::Tmpfs(t) => u64::from(t.flags.load(Ordering::Relaxed)),
        File::Dir(_) => 0o200000, // O_DIRECTORY
        File::Socket(s) => 2 | u64::from(s.flags.load(Ordering::Relaxed)),
        File::TimerFd(t) => u64::from(t.flags.load(Ordering::Relaxed)),
        File::EventFd(e) => 2 | u64::from(e.flags.load(Ordering::Relaxed)),
        File::SignalFd(s) => 2 | u64::from(s.flags.load(Ordering::Relaxed)),
        File::Pty(p) => u64::from(p.flags.load(Ordering::Relaxed)),
    }
}

/// pipe2(2).
pub fn sys_pipe2<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let flags = a[1];
    if flags & !(O_CLOEXEC | u64::from(O_NONBLOCK)) != 0 {
        return Err(Errno::EINVAL);
    }
    let cloexec = flags & O_CLOEXEC != 0;
    let fl = flags as u32 & O_NONBLOCK;
    let pipe = Arc::new(Pipe::new());
    let r = Arc::new(File::Pipe(PipeEnd::new(pipe.clone(), false, fl)));
    let w = Arc::new(File::Pipe(PipeEnd::new(pipe, true, fl)));
    let limit = nofile(k);
    let rfd = k.group_mut().fds.install(r, cloexec, limit)?;
    let wfd = match k.group_mut().fds.install(w, cloexec, limit) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = close_fd(k, rfd);
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&rfd.to_le_bytes());
    b[4..].copy_from_slice(&wfd.to_le_bytes());
    if let Err(e) = k.copy_out(a[0], &b) {
        let _ = close_fd(k, rfd);
        let _ = close_fd(k, wfd);
        return Err(e);
    }
    Ok(0)
}

/// eventfd2(2) and eventfd(2).
pub fn sys_eventfd2<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const EFD_SEMAPHORE: u64 = 1;
    let flags = a[1];
    if flags & !(O_CLOEXEC | u64::from(O_NONBLOCK) | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let e = crate::fs::eventfd::EventFd::new(
        a[0] as u32 as u64,
        flags & EFD_SEMAPHORE != 0,
        flags as u32 & O_NONBLOCK,
    );
    let limit = nofile(k);
    Ok(k.group_mut()
        .fds
        .install(Arc::new(File::EventFd(e)), flags & O_CLOEXEC != 0, limit)? as u64)
}

/// timerfd_create(2).
pub fn sys_timerfd_create<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let realtime = match a[0] {
        0 | 8 => true,      // CLOCK_REALTIME, CLOCK_REALTIME_ALARM
        1 | 7 | 9 => false, // CLOCK_MONOTONIC, CLOCK_BOOTTIME(_ALARM)
        _ => return Err(Errno::EINVAL),
    };
    if a[1] & !(O_CLOEXEC | u64::from(O_NONBLOCK)) != 0 {
        return Err(Errno::EINVAL);
    }
    let t = crate::fs::timerfd::TimerFd::new(realtime, a[1] as u32 & O_NONBLOCK);
    let limit = nofile(k);
    Ok(k.group_mut()
        .fds
        .install(Arc::new(File::TimerFd(t)), a[1] & O_CLOEXEC != 0, limit)? as u64)
}

fn timerfd_of(file: &Arc<File>) -> KResult<&crate::fs::timerfd::TimerFd> {
    match &**file {
        File::TimerFd(t) => Ok(t),
        _ => Err(Errno::EINVAL),
    }
}

fn itimerspec(interval: u64, value: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&crate::abi::linux::Timespec::from_ns(interval).to_bytes());
    b[16..].copy_from_slice(&crate::abi::linux::Timespec::from_ns(value).to_bytes());
    b
}

/// timerfd_settime(2).
pub fn sys_timerfd_settime<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const TFD_TIMER_ABSTIME: u64 = 1;
    const TFD_TIMER_CANCEL_ON_SET: u64 = 2;
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let t = timerfd_of(&file)?;
    if a[1] & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 32];
    k.copy_in(a[2], &mut b)?;
    let ts = |r: &[u8]| {
        let mut x = [0u8; 16];
        x.copy_from_slice(r);
        crate::abi::linux::Timespec::from_bytes(&x)
            .to_ns()
            .ok_or(Errno::EINVAL)
    };
    let (interval, value) = (ts(&b[..16])?, ts(&b[16..])?);
    let mono = k.plat.now(crate::platform::Clock::Monotonic);
    let (old_value, old_interval) = t.get(mono);
    let relative = if a[1] & TFD_TIMER_ABSTIME != 0 && value != 0 {
        let now = if t.realtime {
            k.plat.now(crate::platform::Clock::Realtime)
        } else {
            mono
        };
        value.saturating_sub(now).max(1)
    } else {
        value
    };
    t.arm(mono, relative, interval);
    if a[3] != 0 {
        k.copy_out(a[3], &itimerspec(old_interval, old_value))?;
    }
    Ok(0)
}

/// timerfd_gettime(2).
pub fn sys_timerfd_gettime<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let t = timerfd_of(&file)?;
    let (value, interval) = t.get(k.plat.now(crate::platform::Clock::Monotonic));
    k.copy_out(a[1], &itimerspec(interval, value))?;
    Ok(0)
}

/// close_range(2): close, or mark close-on-exec, the descriptors in
/// `first..=last`.
pub fn sys_close_range<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const CLOSE_RANGE_UNSHARE: u64 = 1 << 1;
    const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
    let (first, last) = (a[0] as u32, a[1] as u32);
    if a[2] & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    // Descriptors above i32::MAX cannot exist. CLOSE_RANGE_UNSHARE needs
    // nothing: a process's table is never shared with another process here
    // (CLONE_FILES without CLONE_THREAD copies it).
    let Ok(first) = i32::try_from(first) else {
        return Ok(0);
    };
    let last = i32::try_from(last).unwrap_or(i32::MAX);
    let fds: alloc::vec::Vec<i32> = k
        .group()
        .fds
        .fds()
        .into_iter()
        .filter(|fd| (first..=last).contains(fd))
        .collect();
    for fd in fds {
        if a[2] & CLOSE_RANGE_CLOEXEC != 0 {
            k.group_mut().fds.entry_mut(fd)?.cloexec = true;
        } else {
            close_fd(k, fd)?;
        }
    }
    Ok(0)
}
