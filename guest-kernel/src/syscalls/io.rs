//! read, write, readv, writev, open, lseek, pread64, fstat, ioctl, readlink, getcwd.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{arg_fd, arg_i32, Args};
use crate::abi::linux::Stat;
use crate::abi::linux::{SIGPIPE, S_IFIFO, TCGETS, TERMIOS_SIZE};
use crate::abi::{Errno, KResult};
use crate::fs::pipe::PipeIo;
use crate::fs::{DevKind, File, PipeEnd, O_NONBLOCK};
use crate::kernel::Kernel;
use crate::platform::{HostHandle, HostOps, Platform};
use crate::task::{SigInfo, WaitKey, SI_KERNEL};

/// Linux caps one transfer at `MAX_RW_COUNT` (2 GiB minus a page).
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// Bounce-buffer size for host I/O.
const CHUNK: usize = 64 * 1024;
/// `UIO_MAXIOV`.
const IOV_MAX: u64 = 1024;

/// Drop a file reference; the last one releases its host handle.
pub fn release_file<P: Platform>(k: &mut Kernel<'_, P>, file: Arc<File>) {
    // The peers of a pipe or pty end that goes (a process exiting with it
    // open) may now see an end of file or `EIO`.
    let peer_key = match &*file {
        File::Pipe(end) => Some(end.pipe.id),
        File::Pty(end) => Some(end.pty.id),
        _ => None,
    };
    let master = match &*file {
        File::Pty(end) if end.master => Some(end.pty.clone()),
        _ => None,
    };
    release_file_plat(k.plat, file);
    if let Some(id) = peer_key {
        k.wake(WaitKey::Pipe(id), usize::MAX);
    }
    if let Some(pty) = master.filter(|p| !p.master_open()) {
        super::tty::hang_up(k, &pty);
    }
    super::lock::file_released(k);
}

/// As [`release_file`], with only the platform at hand.
pub fn release_file_plat<P: Platform>(plat: &P, file: Arc<File>) {
    if let Ok(f) = Arc::try_unwrap(file) {
        if let Some(h) = f.handle() {
            plat.host().close(h);
        }
    }
}

pub fn pipe_nonblock(end: &PipeEnd) -> bool {
    end.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0
}

/// A write to a pipe or socket nobody reads: SIGPIPE to the writing
/// thread, and the EPIPE the call ends with.
pub fn raise_sigpipe<P: Platform>(k: &mut Kernel<'_, P>) -> Errno {
    let tid = k.cur;
    let info = SigInfo {
        signo: SIGPIPE,
        code: SI_KERNEL,
        ..Default::default()
    };
    crate::task::frame::send_to_thread(k, tid, SIGPIPE, info);
    Errno::EPIPE
}

fn write_pipe<P: Platform>(
    k: &mut Kernel<'_, P>,
    end: &PipeEnd,
    buf: u64,
    len: u64,
) -> KResult<u64> {
    let mut data = vec![0u8; len.min(crate::fs::pipe::PIPE_CAPACITY as u64) as usize];
    k.copy_in(buf, &mut data)?;
    match end.pipe.write(&data) {
        PipeIo::Done(n) => {
            k.wake(WaitKey::Pipe(end.pipe.id), usize::MAX);
            Ok(n as u64)
        }
        PipeIo::Closed => Err(raise_sigpipe(k)),
        PipeIo::WouldBlock if pipe_nonblock(end) => Err(Errno::EAGAIN),
        PipeIo::WouldBlock => Err(k.block(WaitKey::Pipe(end.pipe.id), None)),
    }
}

fn read_pipe<P: Platform>(
    k: &mut Kernel<'_, P>,
    end: &PipeEnd,
    buf: u64,
    len: u64,
) -> KResult<u64> {
    let mut data = Vec::new();
    match end.pipe.read(len.min(MAX_RW_COUNT) as usize, &mut data) {
        PipeIo::Done(n) => {
            k.wake(WaitKey::Pipe(end.pipe.id), usize::MAX);
            k.copy_out(buf, &data)?;
            Ok(n as u64)
        }
        PipeIo::Closed => Ok(0),
        PipeIo::WouldBlock if pipe_nonblock(end) => Err(Errno::EAGAIN),
        PipeIo::WouldBlock => Err(k.block(WaitKey::Pipe(end.pipe.id), None)),
    }
}

fn write_file<P: Platform>(k: &mut Kernel<'_, P>, file: &File, buf: u64, len: u64) -> KResult<u64> {
    let len = len.min(MAX_RW_COUNT);
    match file {
        File::TimerFd(_) | File::SignalFd(_) => Err(Errno::EINVAL),
        File::Pty(end) => super::tty::write(k, end, buf, len),
        File::Socket(s) => {
            let mut data = vec![0u8; len.min(1 << 20) as usize];
            k.copy_in(buf, &mut data)?;
            super::socket::send_data(k, s, &data, Vec::new(), 0)
        }
        File::Epoll(_) => Err(Errno::EINVAL),
        File::EventFd(e) => {
            if len < 8 {
                return Err(Errno::EINVAL);
            }
            let v = k.read_u64(buf)?;
            if v == u64::MAX {
                return Err(Errno::EINVAL);
            }
            if e.add(v) {
                k.wake(WaitKey::Pipe(e.id), usize::MAX);
                Ok(8)
            } else if e.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0 {
                Err(Errno::EAGAIN)
            } else {
                Err(k.block(WaitKey::Pipe(e.id), None))
            }
        }
        File::Dev(DevKind::Full) => Err(Errno::ENOSPC),
        File::Dev(_) => Ok(len),
        File::HostFile {
            handle,
            offset,
            flags,
            ..
        } if flags & 3 != 0 => {
            let off = super::bindfs::write_offset(k, file, offset.load(Ordering::Relaxed))?;
            let n = super::bindfs::pwrite(k, *handle, buf, len, off)?;
            offset.store(off + n, Ordering::Relaxed);
            Ok(n)
        }
        File::HostFile { .. } | File::Dir(_) => Err(Errno::EBADF),
        File::Tmpfs(t) => {
            let fl = t.flags.load(Ordering::Relaxed);
            if fl & 3 == 0 {
                return Err(Errno::EBADF);
            }
            let off = if fl & super::open::O_APPEND_BIT != 0 {
                t.fs.stat(t.ino)?.st_size as u64
            } else {
                t.offset.load(Ordering::Relaxed)
            };
            let n = super::open::pwrite_tmp(k, t, buf, len, off)?;
            t.offset.store(off + n, Ordering::Relaxed);
            Ok(n)
        }
        File::Pipe(end) if !end.write => Err(Errno::EBADF),
        File::Pipe(end) => write_pipe(k, end, buf, len),
        File::HostStream { handle } => {
            crate::task::tty::check(k, *handle, crate::task::tty::TtyAccess::Write)?;
            let handle = *handle;
            write_from_user(k, buf, len, |plat, chunk, _| {
                plat.host().write(handle, chunk)
            })
        }
    }
}

/// Read from a host file at `off` straight into the user buffer's frames.
/// Copy `len` bytes of user memory at `buf` out through `put(plat,
/// chunk, done)` a chunk at a time, `done` being the bytes already
/// written. A short write ends it; a fault or an error after some bytes
/// returns what was written, as Linux does.
pub fn write_from_user<P: Platform>(
    k: &mut Kernel<'_, P>,
    buf: u64,
    len: u64,
    mut put: impl FnMut(&P, &[u8], u64) -> KResult<usize>,
) -> KResult<u64> {
    let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < len {
        let n = ((len - done) as usize).min(CHUNK);
        if let Err(e) = k.copy_in(buf + done, &mut tmp[..n]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        match put(k.plat, &tmp[..n], done) {
            Ok(w) => {
                done += w as u64;
                if w < n {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

pub fn pread_host<P: Platform>(
    k: &mut Kernel<'_, P>,
    handle: HostHandle,
    buf: u64,
    len: u64,
    off: u64,
) -> KResult<u64> {
    let runs = k.user_phys_runs(buf, len, true)?;
    let mut done = 0u64;
    for (pa, n) in runs {
        let mut at = 0;
        while at < n {
            let got = match k
                .plat
                .host_pread_phys(handle, pa + at as u64, n - at, off + done)
            {
                Ok(got) => got,
                Err(e) if done == 0 => return Err(e),
                Err(_) => return Ok(done),
            };
            done += got as u64;
            if got == 0 {
                return Ok(done);
            }
            at += got;
        }
    }
    Ok(done)
}

fn read_file<P: Platform>(k: &mut Kernel<'_, P>, file: &File, buf: u64, len: u64) -> KResult<u64> {
    let len = len.min(MAX_RW_COUNT);
    match file {
        File::TimerFd(t) => {
            if len < 8 {
                return Err(Errno::EINVAL);
            }
            let now = k.plat.now(crate::platform::Clock::Monotonic);
            match t.take(now) {
                0 if t.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0 => Err(Errno::EAGAIN),
                0 => {
                    let d = t.deadline();
                    Err(k.block(WaitKey::Pipe(t.id), d))
                }
                n => {
                    k.copy_out(buf, &n.to_le_bytes())?;
                    Ok(8)
                }
            }
        }
        File::SignalFd(s) => super::signalfd::read(k, s, buf, len),
        File::Socket(s) => {
            let (data, _rights, _) = super::socket::recv_data(k, s, len.min(1 << 20) as usize, 0)?;
            k.copy_out(buf, &data)?;
            Ok(data.len() as u64)
        }
        File::Epoll(_) => Err(Errno::EINVAL),
        File::EventFd(e) => {
            if len < 8 {
                return Err(Errno::EINVAL);
            }
            match e.take() {
                Some(v) => {
                    k.wake(WaitKey::Pipe(e.id), usize::MAX);
                    k.copy_out(buf, &v.to_le_bytes())?;
                    Ok(8)
                }
                None if e.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0 => Err(Errno::EAGAIN),
                None => Err(k.block(WaitKey::Pipe(e.id), None)),
            }
        }
        File::Dev(DevKind::Null) => Ok(0),
        File::Dev(kind) => {
            // The whole request, as Linux gives it (`dd bs=1M` counts on it).
            let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
            let mut done = 0u64;
            while done < len {
                let n = ((len - done) as usize).min(CHUNK);
                if *kind == DevKind::Random {
                    k.plat.random(&mut tmp[..n]);
                }
                if let Err(e) = k.copy_out(buf + done, &tmp[..n]) {
                    return if done > 0 { Ok(done) } else { Err(e) };
                }
                done += n as u64;
            }
            Ok(done)
        }
        File::HostFile {
            handle,
            offset,
            cache,
            ..
        } => {
            let off = offset.load(Ordering::Relaxed);
            let n = super::cached::pread(k, *handle, *cache, buf, len, off)?;
            offset.store(off + n, Ordering::Relaxed);
            Ok(n)
        }
        File::Dir(_) => Err(Errno::EISDIR),
        File::Pty(end) => super::tty::read(k, end, buf, len),
        File::Tmpfs(t) => {
            if t.flags.load(Ordering::Relaxed) & 3 == 1 {
                return Err(Errno::EBADF);
            }
            let off = t.offset.load(Ordering::Relaxed);
            let n = super::open::pread_tmp(k, t, buf, len, off)?;
            t.offset.store(off + n, Ordering::Relaxed);
            Ok(n)
        }
        File::Pipe(end) if end.write => Err(Errno::EBADF),
        File::Pipe(end) => read_pipe(k, end, buf, len),
        File::HostStream { handle } => {
            crate::task::tty::check(k, *handle, crate::task::tty::TtyAccess::Read)?;
            let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
            let n = k.plat.host().read(*handle, &mut tmp)?;
            k.copy_out(buf, &tmp[..n])?;
            Ok(n as u64)
        }
    }
}

/// read(2).
pub fn sys_read<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    if a[2] == 0 {
        return Ok(0);
    }
    read_file(k, &file, a[1], a[2])
}

/// write(2).
pub fn sys_write<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    if a[2] == 0 {
        return Ok(0);
    }
    write_file(k, &file, a[1], a[2])
}

/// Read an iovec array from user memory.
fn read_iovecs<P: Platform>(k: &mut Kernel<'_, P>, iov: u64, cnt: u64) -> KResult<Vec<(u64, u64)>> {
    if cnt > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; cnt as usize * 16];
    k.copy_in(iov, &mut raw)?;
    let mut out = Vec::with_capacity(cnt as usize);
    let mut total: u64 = 0;
    for c in raw.chunks_exact(16) {
        let base = u64::from_le_bytes(c[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let len = u64::from_le_bytes(c[8..].try_into().map_err(|_| Errno::EFAULT)?);
        total = total
            .checked_add(len)
            .filter(|t| *t <= i64::MAX as u64)
            .ok_or(Errno::EINVAL)?;
        out.push((base, len));
    }
    Ok(out)
}

/// writev(2). Small vectors are gathered into one write so a line is not split.
pub fn sys_writev<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let iovs = read_iovecs(k, a[1], a[2])?;
    let total: u64 = iovs.iter().map(|v| v.1).sum();
    if total <= CHUNK as u64 {
        let mut buf = vec![0u8; total as usize];
        let mut off = 0usize;
        for (base, len) in &iovs {
            let len = *len as usize;
            k.copy_in(*base, &mut buf[off..off + len])?;
            off += len;
        }
        match &*file {
            File::HostStream { handle } => {
                crate::task::tty::check(k, *handle, crate::task::tty::TtyAccess::Write)?;
                return k.plat.host().write(*handle, &buf).map(|n| n as u64);
            }
            File::Pipe(end) if end.write => {
                // Write the gathered bytes through the pipe path via a
                // single user-visible result.
                return match end.pipe.write(&buf) {
                    PipeIo::Done(n) => {
                        k.wake(WaitKey::Pipe(end.pipe.id), usize::MAX);
                        Ok(n as u64)
                    }
                    PipeIo::Closed => Err(raise_sigpipe(k)),
                    PipeIo::WouldBlock if pipe_nonblock(end) => Err(Errno::EAGAIN),
                    PipeIo::WouldBlock => Err(k.block(WaitKey::Pipe(end.pipe.id), None)),
                };
            }
            _ => {}
        }
    }
    let mut done = 0;
    for (base, len) in iovs {
        if len == 0 {
            continue;
        }
        let n = match write_file(k, &file, base, len) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += n;
        if n < len {
            break;
        }
    }
    Ok(done)
}

/// readv(2).
pub fn sys_readv<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let iovs = read_iovecs(k, a[1], a[2])?;
    let mut done = 0;
    for (base, len) in iovs {
        if len == 0 {
            continue;
        }
        let n = match read_file(k, &file, base, len) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += n;
        if n < len {
            break;
        }
    }
    Ok(done)
}

pub fn stat_of<P: Platform>(k: &Kernel<'_, P>, file: &File) -> KResult<Stat> {
    match file {
        File::Pipe(end) => Ok(Stat {
            st_dev: 12,
            st_ino: end.pipe.id,
            st_nlink: 1,
            st_mode: S_IFIFO | 0o600,
            st_blksize: 4096,
            ..Default::default()
        }),
        File::Tmpfs(t) => t.fs.stat(t.ino),
        File::SignalFd(s) => Ok(Stat {
            st_dev: 13,
            st_ino: s.id,
            st_nlink: 1,
            st_mode: 0o600,
            st_blksize: 4096,
            ..Default::default()
        }),
        File::TimerFd(t) => Ok(Stat {
            st_dev: 13,
            st_ino: t.id,
            st_nlink: 1,
            st_mode: 0o600,
            st_blksize: 4096,
            ..Default::default()
        }),
        File::Socket(s) => Ok(Stat {
            st_dev: 8,
            st_ino: s.rx.id,
            st_nlink: 1,
            st_mode: 0o140777,
            st_blksize: 4096,
            ..Default::default()
        }),
        File::Dir(d) => k.vfs.stat(k.plat, &d.node),
        File::Pty(end) => Ok(super::tty::stat(end)),
        File::Epoll(_) => Ok(Stat {
            st_dev: 13,
            st_nlink: 1,
            st_mode: 0o600,
            st_blksize: 4096,
            ..Default::default()
        }),
        File::EventFd(e) => Ok(Stat {
            st_dev: 13,
            st_ino: e.id,
            st_nlink: 1,
            st_mode: 0o600,
            st_blksize: 4096,
            ..Default::default()
        }),
        File::Dev(d) => Ok(Stat {
            st_dev: 5,
            st_ino: d.rdev(),
            st_nlink: 1,
            st_mode: crate::abi::linux::S_IFCHR | 0o666,
            st_rdev: d.rdev(),
            st_blksize: 4096,
            ..Default::default()
        }),
        // A root-image file: the attribute cache, as for a stat by path.
        File::HostFile { handle, path, .. } => k
            .vfs
            .lower_stat(k.plat, path, true)
            .or_else(|_| k.plat.host().fstat(*handle)),
        f => k.plat.host().fstat(f.handle().ok_or(Errno::EBADF)?),
    }
}

/// fstat(2).
pub fn sys_fstat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let st = stat_of(k, &file)?;
    k.copy_out(a[1], &st.to_bytes())?;
    Ok(0)
}

/// ioctl(2): terminal queries on host streams.
pub fn sys_ioctl<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    if let File::Pty(end) = &*file {
        return super::tty::ioctl(k, end, a);
    }
    let File::HostStream { handle } = &*file else {
        return Err(Errno::ENOTTY);
    };
    match a[1] & 0xffff_ffff {
        TIOCGPGRP | TIOCSPGRP | TIOCGSID | TIOCSCTTY | TIOCNOTTY => job_control(k, *handle, a),
        TCGETS => {
            let t: [u8; TERMIOS_SIZE] = k.plat.host().tcgets(*handle)?;
            k.copy_out(a[2], &t)?;
            Ok(0)
        }
        cmd => {
            let cmd = cmd as u32;
            let size = crate::abi::hostcall::queue::tty_ioctl_size(cmd).ok_or(Errno::ENOTTY)?;
            let mut arg = alloc::vec![0u8; size as usize];
            let query = cmd == crate::abi::linux::TIOCGWINSZ as u32;
            if !query {
                k.copy_in(a[2], &mut arg)?;
            }
            // TCSETS, TCSETSW, TCSETSF from the background: SIGTTOU.
            if (0x5402..=0x5404).contains(&cmd) {
                crate::task::tty::check(k, *handle, crate::task::tty::TtyAccess::Change)?;
            }
            k.plat.host().tty_ioctl(*handle, cmd, &mut arg)?;
            if query {
                k.copy_out(a[2], &arg)?;
            }
            Ok(0)
        }
    }
}

const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCNOTTY: u64 = 0x5422;
const TIOCGSID: u64 = 0x5429;

/// The terminal's process groups, kept in the sentry: the host terminal
/// is the sandbox's, so its own foreground group means nothing here. One
/// terminal per session: the caller's session's.
fn job_control<P: Platform>(
    k: &mut Kernel<'_, P>,
    handle: crate::platform::HostHandle,
    a: Args,
) -> KResult<u64> {
    // Only terminals have process groups.
    k.plat.host().tcgets(handle)?;
    let sid = k.group().sid;
    match a[1] & 0xffff_ffff {
        TIOCGPGRP => {
            let fg = k.tty_fg.get(&sid).copied().unwrap_or(sid);
            k.copy_out(a[2], &fg.to_le_bytes())?;
        }
        TIOCSPGRP => {
            crate::task::tty::check(k, handle, crate::task::tty::TtyAccess::Change)?;
            let mut b = [0u8; 4];
            k.copy_in(a[2], &mut b)?;
            let pgid = i32::from_le_bytes(b);
            if pgid < 0 {
                return Err(Errno::EINVAL);
            }
            if !k
                .groups
                .values()
                .any(|g| g.pgid == pgid && g.sid == sid && g.zombie.is_none())
            {
                return Err(Errno::EPERM);
            }
            k.tty_fg.insert(sid, pgid);
        }
        TIOCGSID => k.copy_out(a[2], &sid.to_le_bytes())?,
        // Every terminal here is its session's already.
        _ => {}
    }
    Ok(0)
}

fn readlink_common<P: Platform>(
    k: &mut Kernel<'_, P>,
    dirfd: i32,
    path: u64,
    buf: u64,
    size: u64,
) -> KResult<u64> {
    let size = arg_i32(size);
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = k.read_cstr(path, 4096)?;
    let own = alloc::format!("/proc/{}/exe", k.cur().tgid);
    if path == b"/proc/self/exe" || path == own.as_bytes() || path == b"/proc/thread-self/exe" {
        let exe = k.group().exe_path.clone();
        let n = exe.len().min(size as usize);
        k.copy_out(buf, &exe[..n])?;
        return Ok(n as u64);
    }
    let full = super::stat::full_path(k, dirfd, &path)?;
    if super::procfs::is_proc(&full) {
        let super::procfs::ProcNode::Symlink(target) =
            super::procfs::lookup(k, &full, false)?.map_err(|_| Errno::EINVAL)?
        else {
            return Err(Errno::EINVAL);
        };
        let n = target.len().min(size as usize);
        k.copy_out(buf, &target[..n])?;
        return Ok(n as u64);
    }
    match super::namei::readlink_tmp(k, &full)? {
        Some(target) => {
            let n = target.len().min(size as usize);
            k.copy_out(buf, &target[..n])?;
            Ok(n as u64)
        }
        // A symlink of the lower layer: the host reads it beneath the root.
        None => {
            let mut target = vec![0u8; 4096];
            let n = k
                .plat
                .host()
                .readlink(&k.vfs.host_path(&full), &mut target)?;
            let n = n.min(size as usize);
            k.copy_out(buf, &target[..n])?;
            Ok(n as u64)
        }
    }
}

/// readlink(2).
pub fn sys_readlink<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    readlink_common(k, AT_FDCWD, a[0], a[1], a[2])
}

const AT_FDCWD: i32 = -100;

/// readlinkat(2).
pub fn sys_readlinkat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    readlink_common(k, arg_fd(a[0]), a[1], a[2], a[3])
}

/// getcwd(2).
pub fn sys_getcwd<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let mut cwd = k.group().cwd.clone();
    cwd.push(0);
    if (a[1] as usize) < cwd.len() {
        return Err(Errno::ERANGE);
    }
    k.copy_out(a[0], &cwd)?;
    Ok(cwd.len() as u64)
}
