//! The sentry's pseudo-terminals: opening `/dev/ptmx` and `/dev/pts/N`,
//! reading and writing either end, and the terminal ioctls on them
//! (`TIOCGPTN`, `TIOCSPTLCK`, `TIOCGPTPEER`, termios, window size, job
//! control). The line discipline is `fs::pty`.

use alloc::vec;

use super::Args;
use crate::abi::linux::{SIGCONT, SIGHUP, TERMIOS_SIZE};
use crate::abi::{Errno, KResult};
use crate::fs::pty::{Pty, PtyEnd, PtyIo, Termios};
use crate::fs::{DevKind, File};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::WaitKey;

const O_ACCMODE: u32 = 3;
const O_NOCTTY: u32 = 0o400;
const O_NONBLOCK: u32 = 0o4000;
const O_CLOEXEC: u32 = 0o2000000;
/// Bounce-buffer size.
const CHUNK: usize = 64 * 1024;

const TCGETS: u64 = 0x5401;
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TCSBRK: u64 = 0x5409;
const TCXONC: u64 = 0x540a;
const TCFLSH: u64 = 0x540b;
const TIOCSCTTY: u64 = 0x540e;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCOUTQ: u64 = 0x5411;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const TIOCNOTTY: u64 = 0x5422;
const TIOCGSID: u64 = 0x5429;
const TIOCGPTN: u64 = 0x8004_5430;
const TIOCSPTLCK: u64 = 0x4004_5431;
const TIOCGPTLCK: u64 = 0x8004_5439;
const TIOCGPTPEER: u64 = 0x5441;

const SIGWINCH: i32 = 28;
/// `si_code` of signals the kernel generates.
const SI_KERNEL: i32 = 0x80;

/// Open `/dev/ptmx`: a new pseudo-terminal, locked until `TIOCSPTLCK`.
pub fn open_ptmx<P: Platform>(k: &mut Kernel<'_, P>, flags: u32) -> KResult<u64> {
    let pty = k.vfs.new_pty()?;
    let end = PtyEnd::new(pty, true, flags & (O_ACCMODE | O_NONBLOCK));
    super::open::install(k, File::Pty(end), u64::from(flags))
}

/// Open the slave of pseudo-terminal `n`: `EIO` while it is locked. A
/// session leader without a terminal gets it as its controlling one,
/// unless `O_NOCTTY`.
pub fn open_pts<P: Platform>(k: &mut Kernel<'_, P>, n: u32, flags: u32) -> KResult<u64> {
    let pty = k.vfs.pty(n).ok_or(Errno::EIO)?;
    if pty.locked() {
        return Err(Errno::EIO);
    }
    let (tgid, sid, pgid) = {
        let g = k.group();
        (g.tgid, g.sid, g.pgid)
    };
    if flags & O_NOCTTY == 0 && tgid == sid && pty.control().0 == 0 && !has_ctty(k, sid) {
        pty.set_control(sid, pgid);
    }
    let end = PtyEnd::new(pty, false, flags & (O_ACCMODE | O_NONBLOCK));
    super::open::install(k, File::Pty(end), u64::from(flags))
}

/// Whether session `sid` already has one of the sentry's terminals.
fn has_ctty<P: Platform>(k: &Kernel<'_, P>, sid: i32) -> bool {
    k.vfs
        .ptys
        .lock()
        .values()
        .filter_map(|p| p.upgrade())
        .any(|p| p.control().0 == sid)
}

/// The last master of `pty` closed: the terminal hangs up (Linux's
/// `tty_vhangup`). Its session loses it, and the session leader gets
/// SIGHUP and SIGCONT; the slave now reads an end of file and writes `EIO`.
pub fn hang_up<P: Platform>(k: &mut Kernel<'_, P>, pty: &Pty) {
    let (sid, _) = pty.control();
    if sid <= 0 {
        return;
    }
    pty.set_control(0, 0);
    let alive = k.groups.get(&sid).is_some_and(|g| g.zombie.is_none());
    if alive {
        for sig in [SIGHUP, SIGCONT] {
            let info = crate::task::SigInfo {
                signo: sig,
                code: SI_KERNEL,
                ..Default::default()
            };
            crate::task::frame::send_to_group(k, sid, sig, info);
        }
    }
}

/// Process `tgid` ended. If it led a session whose controlling terminal is
/// one of the sentry's, the session loses it and the foreground process
/// group gets SIGHUP (Linux's `disassociate_ctty` on exit).
pub fn leader_exited<P: Platform>(k: &mut Kernel<'_, P>, tgid: i32) {
    if k.groups.get(&tgid).is_none_or(|g| g.sid != tgid) {
        return;
    }
    let pty = k
        .vfs
        .ptys
        .lock()
        .values()
        .filter_map(|p| p.upgrade())
        .find(|p| p.control().0 == tgid);
    if let Some(pty) = pty {
        let fg = pty.control().1;
        pty.set_control(0, 0);
        signal_pgrp(k, fg, SIGHUP);
    }
}

/// `stat` of an end.
pub fn stat(end: &PtyEnd) -> crate::abi::linux::Stat {
    if end.master {
        DevKind::Ptmx.stat()
    } else {
        DevKind::Pts(end.pty.index).stat()
    }
}

/// Signal every process of group `pgid`, as the terminal does.
fn signal_pgrp<P: Platform>(k: &mut Kernel<'_, P>, pgid: i32, sig: i32) {
    if pgid <= 0 {
        return;
    }
    let targets: vec::Vec<i32> = k
        .groups
        .values()
        .filter(|g| g.zombie.is_none() && g.pgid == pgid)
        .map(|g| g.tgid)
        .collect();
    let info = crate::task::SigInfo {
        signo: sig,
        code: SI_KERNEL,
        ..Default::default()
    };
    for t in targets {
        crate::task::frame::send_to_group(k, t, sig, info);
    }
}

/// read(2) on an end.
pub fn read<P: Platform>(k: &mut Kernel<'_, P>, end: &PtyEnd, buf: u64, len: u64) -> KResult<u64> {
    if end.flags.load(core::sync::atomic::Ordering::Relaxed) & O_ACCMODE == 1 {
        return Err(Errno::EBADF);
    }
    if !end.master {
        if let Some(r) = raw_wait(k, end, len) {
            return r;
        }
    }
    let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
    let r = if end.master {
        end.pty.read_master(&mut tmp)?
    } else {
        end.pty.read_slave(&mut tmp)
    };
    match r {
        PtyIo::Done(n) => {
            k.wake(WaitKey::Pipe(end.pty.id), usize::MAX);
            k.copy_out(buf, &tmp[..n])?;
            Ok(n as u64)
        }
        PtyIo::WouldBlock if end.nonblock() => Err(Errno::EAGAIN),
        PtyIo::WouldBlock => Err(k.block(WaitKey::Pipe(end.pty.id), None)),
    }
}

/// A non-canonical read of the slave waits as `VMIN` and `VTIME` say
/// (termios(3)): for `VMIN` bytes (or as many as asked), for the first
/// byte for `VTIME` tenths of a second, or, with both, for `VMIN` bytes
/// with `VTIME` as the timer between bytes. `None`: read what there is.
fn raw_wait<P: Platform>(k: &mut Kernel<'_, P>, end: &PtyEnd, len: u64) -> Option<KResult<u64>> {
    use crate::fs::pty::{VMIN, VTIME};
    let t = end.pty.termios(false);
    if t.lflag & crate::fs::pty::ICANON != 0 || !end.pty.master_open() {
        return None;
    }
    let (min, time) = (u64::from(t.cc[VMIN]), u64::from(t.cc[VTIME]) * 100_000_000);
    if min == 0 && time == 0 {
        return None;
    }
    let avail = end.pty.readable(false) as u64;
    let key = WaitKey::Pipe(end.pty.id);
    if min == 0 {
        // Data, or the timer since the read began.
        return match () {
            _ if avail > 0 => None,
            _ if k.timed_out() => Some(Ok(0)),
            _ if end.nonblock() => Some(Err(Errno::EAGAIN)),
            _ => {
                let d = k.deadline_after(time);
                Some(Err(k.block(key, Some(d))))
            }
        };
    }
    if avail >= min.min(len) || (avail > 0 && end.nonblock()) {
        return None;
    }
    if avail == 0 {
        return Some(if end.nonblock() {
            Err(Errno::EAGAIN)
        } else {
            Err(k.block(key, None))
        });
    }
    // Some bytes, too few: with a timer, the rest have until it runs out.
    if time == 0 {
        return Some(Err(k.block(key, None)));
    }
    let due = end
        .pty
        .last_input
        .load(core::sync::atomic::Ordering::Relaxed)
        .saturating_add(time);
    if k.plat.now(crate::platform::Clock::Monotonic) >= due {
        return None;
    }
    Some(Err(k.block(key, Some(due))))
}

/// write(2) on an end. What the master writes is the slave's input; the
/// signals its `ISIG` characters raise go to the foreground group.
pub fn write<P: Platform>(k: &mut Kernel<'_, P>, end: &PtyEnd, buf: u64, len: u64) -> KResult<u64> {
    if end.flags.load(core::sync::atomic::Ordering::Relaxed) & O_ACCMODE == 0 {
        return Err(Errno::EBADF);
    }
    let mut data = vec![0u8; (len as usize).min(CHUNK)];
    k.copy_in(buf, &mut data)?;
    if end.master {
        let now = k.plat.now(crate::platform::Clock::Monotonic);
        end.pty
            .last_input
            .store(now, core::sync::atomic::Ordering::Relaxed);
        let sigs = end.pty.write_master(&data);
        k.wake(WaitKey::Pipe(end.pty.id), usize::MAX);
        let fg = end.pty.control().1;
        for sig in sigs {
            signal_pgrp(k, fg, sig);
        }
        return Ok(data.len() as u64);
    }
    match end.pty.write_slave(&data)? {
        PtyIo::Done(n) => {
            k.wake(WaitKey::Pipe(end.pty.id), usize::MAX);
            Ok(n as u64)
        }
        PtyIo::WouldBlock if end.nonblock() => Err(Errno::EAGAIN),
        PtyIo::WouldBlock => Err(k.block(WaitKey::Pipe(end.pty.id), None)),
    }
}

fn read_i32<P: Platform>(k: &mut Kernel<'_, P>, at: u64) -> KResult<i32> {
    let mut b = [0u8; 4];
    k.copy_in(at, &mut b)?;
    Ok(i32::from_le_bytes(b))
}

/// ioctl(2) on an end.
pub fn ioctl<P: Platform>(k: &mut Kernel<'_, P>, end: &PtyEnd, a: Args) -> KResult<u64> {
    let pty = end.pty.clone();
    let (sid, pgid, tgid) = {
        let g = k.group();
        (g.sid, g.pgid, g.tgid)
    };
    let arg = a[2];
    match a[1] & 0xffff_ffff {
        TCGETS => {
            k.copy_out(arg, &pty.termios(end.master).to_bytes())?;
        }
        cmd @ (TCSETS | TCSETSW | TCSETSF) => {
            let mut raw = [0u8; TERMIOS_SIZE];
            k.copy_in(arg, &mut raw)?;
            if cmd == TCSETSF {
                pty.flush(true, false);
            }
            pty.set_termios(end.master, Termios::from_bytes(&raw));
            k.wake(WaitKey::Pipe(pty.id), usize::MAX);
        }
        TIOCGWINSZ => k.copy_out(arg, &pty.winsize())?,
        TIOCSWINSZ => {
            let mut w = [0u8; 8];
            k.copy_in(arg, &mut w)?;
            if pty.set_winsize(w) {
                signal_pgrp(k, pty.control().1, SIGWINCH);
            }
        }
        FIONREAD => {
            let n = pty.readable(end.master) as i32;
            k.copy_out(arg, &n.to_le_bytes())?;
        }
        TIOCOUTQ => k.copy_out(arg, &0i32.to_le_bytes())?,
        TCSBRK | TCXONC => {}
        TCFLSH => match arg {
            0 => pty.flush(!end.master, end.master),
            1 => pty.flush(end.master, !end.master),
            2 => pty.flush(true, true),
            _ => return Err(Errno::EINVAL),
        },
        TIOCGPTN if end.master => k.copy_out(arg, &pty.index.to_le_bytes())?,
        TIOCSPTLCK if end.master => {
            let lock = read_i32(k, arg)?;
            pty.set_locked(lock != 0);
        }
        TIOCGPTLCK if end.master => {
            let lock = i32::from(pty.locked());
            k.copy_out(arg, &lock.to_le_bytes())?;
        }
        TIOCGPTPEER if end.master => {
            let flags = arg as u32;
            if flags & !(O_ACCMODE | O_NOCTTY | O_NONBLOCK | O_CLOEXEC) != 0 {
                return Err(Errno::EINVAL);
            }
            return open_pts(k, pty.index, flags);
        }
        TIOCSCTTY => {
            let (owner, _) = pty.control();
            if owner == sid {
                return Ok(0);
            }
            if tgid != sid || has_ctty(k, sid) {
                return Err(Errno::EPERM);
            }
            // Stealing another session's terminal takes `arg == 1` and root.
            if owner != 0 && !(arg == 1 && k.group().creds.euid == 0) {
                return Err(Errno::EPERM);
            }
            pty.set_control(sid, pgid);
        }
        TIOCNOTTY => {
            if pty.control().0 != sid {
                return Err(Errno::ENOTTY);
            }
            if tgid == sid {
                pty.set_control(0, 0);
            }
        }
        TIOCGPGRP => {
            let (owner, fg) = pty.control();
            if !end.master && owner != sid {
                return Err(Errno::ENOTTY);
            }
            k.copy_out(arg, &fg.to_le_bytes())?;
        }
        TIOCGSID => {
            let (owner, _) = pty.control();
            if owner == 0 || (!end.master && owner != sid) {
                return Err(Errno::ENOTTY);
            }
            k.copy_out(arg, &owner.to_le_bytes())?;
        }
        TIOCSPGRP => {
            if pty.control().0 != sid {
                return Err(Errno::ENOTTY);
            }
            let want = read_i32(k, arg)?;
            if want < 0 {
                return Err(Errno::EINVAL);
            }
            let groups: vec::Vec<(i32, i32)> = k
                .groups
                .values()
                .filter(|g| g.zombie.is_none() && g.pgid == want)
                .map(|g| (g.pgid, g.sid))
                .collect();
            if groups.is_empty() {
                return Err(Errno::ESRCH);
            }
            if groups.iter().any(|(_, s)| *s != sid) {
                return Err(Errno::EPERM);
            }
            pty.set_control(sid, want);
        }
        _ => return Err(Errno::ENOTTY),
    }
    Ok(0)
}
