//! wait4(2), waitid(2): exits, and job-control stops and continues.

use super::{arg_i32, Args};
use crate::abi::linux::{SIGCHLD, SIGCONT};
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::exit::reap;
use crate::task::stop::{JobReport, CLD_CONTINUED, CLD_STOPPED};
use crate::task::{GroupExit, SigInfo, Tid, WaitKey, CLD_EXITED, CLD_KILLED};

const WNOHANG: u64 = 1;
const WUNTRACED: u64 = 2;
const WCONTINUED: u64 = 8;
const WALL: u64 = 0x4000_0000;
const WCLONE: u64 = 0x8000_0000;
const WNOTHREAD: u64 = 0x2000_0000;

/// What a wait reports of one child.
#[derive(Clone, Copy)]
enum Event {
    Exited(GroupExit),
    Stopped(i32),
    Continued,
}

impl Event {
    /// The `wait4` status word.
    fn status(self) -> i32 {
        match self {
            Event::Exited(how) => how.wait_status(),
            Event::Stopped(sig) => (sig << 8) | 0x7f,
            Event::Continued => 0xffff,
        }
    }

    /// `waitid`'s `si_code` and `si_status`.
    fn code_status(self) -> (i32, i32) {
        match self {
            Event::Exited(GroupExit::Exited(c)) => (CLD_EXITED, c),
            Event::Exited(GroupExit::Signaled(s)) => (CLD_KILLED, s),
            Event::Stopped(sig) => (CLD_STOPPED, sig),
            Event::Continued => (CLD_CONTINUED, SIGCONT),
        }
    }
}

/// The first child with an event the caller asked for; each child in turn
/// offers its exit, else its stop, else its continue (as Linux's
/// `wait_consider_task`).
fn find_event<P: Platform>(
    k: &Kernel<'_, P>,
    candidates: &[Tid],
    exited: bool,
    stopped: bool,
    continued: bool,
) -> Option<(Tid, Event)> {
    candidates.iter().find_map(|&c| {
        let g = k.groups.get(&c)?;
        if let Some(how) = g.zombie {
            return exited.then_some((c, Event::Exited(how)));
        }
        match g.job.report? {
            JobReport::Stopped(sig) if stopped => Some((c, Event::Stopped(sig))),
            JobReport::Continued if continued => Some((c, Event::Continued)),
            _ => None,
        }
    })
}

/// The event is reported: reap the zombie, or forget the stop/continue.
fn consume<P: Platform>(k: &mut Kernel<'_, P>, child: Tid, ev: Event) {
    match ev {
        Event::Exited(_) => reap(k, child),
        _ => {
            if let Some(g) = k.groups.get_mut(&child) {
                g.job.report = None;
            }
        }
    }
}

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
    let event = find_event(
        k,
        &candidates,
        true,
        options & WUNTRACED != 0,
        options & WCONTINUED != 0,
    );
    if let Some((child, ev)) = event {
        if status_ptr != 0 {
            k.copy_out(status_ptr, &ev.status().to_le_bytes())?;
        }
        if a[3] != 0 {
            // struct rusage: no accounting yet, all zero.
            k.copy_out(a[3], &[0u8; 144])?;
        }
        consume(k, child, ev);
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
    let event = find_event(
        k,
        &candidates,
        options & WEXITED != 0,
        options & WSTOPPED != 0,
        options & WCONTINUED != 0,
    );
    if let Some((child, ev)) = event {
        if infop != 0 {
            let (code, status) = ev.code_status();
            let uid = k.groups.get(&child).map(|g| g.creds.uid).unwrap_or(0);
            let info = SigInfo {
                signo: SIGCHLD,
                code,
                pid: child,
                uid,
                status,
                ..Default::default()
            };
            k.copy_out(infop, &info.to_bytes())?;
        }
        if options & WNOWAIT == 0 {
            consume(k, child, ev);
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
