//! Job control: group stop and continue (SIGSTOP, SIGTSTP, SIGTTIN,
//! SIGTTOU, SIGCONT), as Linux's `prepare_signal` and `do_signal_stop`.
//!
//! A stop signal taken with its default action stops the whole thread
//! group: each runnable thread parks in `TaskState::Stopped` the next time
//! it would return to user mode, and a thread blocked in a system call
//! stays blocked, or parks as soon as it is woken. Nothing of a stopped
//! group runs user code until SIGCONT or SIGKILL; other signals, fatal
//! ones included, wait for the continue (as Linux's `wants_signal`).

use super::frame::send_to_group;
use super::signal::bit;
use super::{SigInfo, TaskState, Tid, WaitKey};
use crate::abi::linux::{SIGCHLD, SIGCONT, SIGSTOP};
use crate::kernel::Kernel;
use crate::platform::Platform;

/// `si_code` of a SIGCHLD for a stop and a continue.
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;
/// `sa_flags` of the parent's SIGCHLD action: no SIGCHLD on stop/continue.
const SA_NOCLDSTOP: u64 = 1;

/// SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU.
pub const STOP_SIGNALS: u64 = bit(19) | bit(20) | bit(21) | bit(22);

/// A change the parent's `wait` has yet to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobReport {
    /// Stopped by this signal (`WUNTRACED`/`WSTOPPED`).
    Stopped(i32),
    /// Continued by SIGCONT (`WCONTINUED`).
    Continued,
}

/// A thread group's job-control state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCtl {
    /// The signal that stopped the group, while it is stopped.
    pub stopped: Option<i32>,
    pub report: Option<JobReport>,
}

/// What sending `sig` does at once, even if it is blocked or ignored: a
/// stop signal discards a pending SIGCONT; SIGCONT discards pending stop
/// signals and continues a stopped group.
pub fn prepare_signal<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, sig: i32) {
    let discard = if sig == SIGCONT {
        STOP_SIGNALS
    } else if STOP_SIGNALS & bit(sig) != 0 {
        bit(SIGCONT)
    } else {
        return;
    };
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    g.pending &= !discard;
    g.siginfo.retain(|s, _| discard & bit(*s) == 0);
    let threads = g.threads.clone();
    for tid in &threads {
        if let Some(t) = k.tasks.get_mut(tid) {
            t.sig.pending &= !discard;
            t.siginfo.retain(|s, _| discard & bit(*s) == 0);
        }
    }
    if sig != SIGCONT {
        return;
    }
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    if g.job.stopped.take().is_none() {
        return;
    }
    g.job.report = Some(JobReport::Continued);
    for tid in threads {
        if k.tasks
            .get(&tid)
            .is_some_and(|t| t.state == TaskState::Stopped)
        {
            if let Some(t) = k.tasks.get_mut(&tid) {
                t.state = TaskState::Runnable;
            }
            k.runq.push_back(tid);
        }
    }
    notify_parent(k, tgid, CLD_CONTINUED, SIGCONT);
}

/// The current thread took stop signal `sig` with its default action:
/// stop its group, unless the signal is a terminal stop (not SIGSTOP) and
/// the process group is orphaned, when Linux discards it.
pub fn group_stop<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, sig: i32) {
    let Some(g) = k.groups.get(&tgid) else {
        return;
    };
    if g.group_exit.is_some() || (sig != SIGSTOP && pgrp_orphaned(k, g.pgid)) {
        return;
    }
    if let Some(g) = k.groups.get_mut(&tgid) {
        g.job = JobCtl {
            stopped: Some(sig),
            report: Some(JobReport::Stopped(sig)),
        };
    }
    // Threads running on other CPUs park when they come back.
    if let Some(g) = k.groups.get(&tgid) {
        for t in &g.threads {
            k.kick_task(*t);
        }
    }
    // Threads that cannot run user code count as stopped already, so the
    // parent hears of the stop now.
    notify_parent(k, tgid, CLD_STOPPED, sig);
}

/// A SIGSTOP from the host (`ringfence kill CTR STOP`) stops `tgid` at
/// once, rather than when one of its threads next enters the kernel: it
/// can be neither caught nor blocked, so nothing else could happen
/// first, and a signal the host sends right after it (a `kill TERM`
/// before the sandbox has run) must find the group stopped, as it would
/// on Linux, where the stop takes effect within microseconds.
pub fn stop_now<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid) {
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    if g.pending & bit(SIGSTOP) == 0 || g.zombie.is_some() {
        return;
    }
    g.pending &= !bit(SIGSTOP);
    g.siginfo.remove(&SIGSTOP);
    group_stop(k, tgid, SIGSTOP);
}

/// Park the current task if its group is stopped. Returns whether it did.
pub fn park_if_stopped<P: Platform>(k: &mut Kernel<'_, P>) -> bool {
    let Some(t) = k.tasks.get(&k.cur) else {
        return false;
    };
    if k.groups
        .get(&t.tgid)
        .is_none_or(|g| g.job.stopped.is_none())
    {
        return false;
    }
    k.cur_mut().state = TaskState::Stopped;
    true
}

/// Tell the parent of a stop or continue: SIGCHLD unless its action has
/// `SA_NOCLDSTOP`, and a wake-up of its `wait`.
fn notify_parent<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, code: i32, status: i32) {
    let Some(g) = k.groups.get(&tgid) else {
        return;
    };
    let (parent, uid) = (g.parent, g.creds.uid);
    let Some(pg) = k.groups.get(&parent).filter(|p| p.zombie.is_none()) else {
        return; // init, or a process the host started
    };
    if pg.sighand.action(SIGCHLD).flags & SA_NOCLDSTOP == 0 {
        let info = SigInfo {
            signo: SIGCHLD,
            code,
            pid: tgid,
            uid,
            status,
            ..Default::default()
        };
        send_to_group(k, parent, SIGCHLD, info);
    }
    k.wake(WaitKey::Child(parent), usize::MAX);
}

/// Linux's `will_become_orphaned_pgrp`: no member has a parent in another
/// process group of the same session. The sandbox's init is not the host's
/// init, so a parent that is pid 1 counts, as in a pid namespace.
fn pgrp_orphaned<P: Platform>(k: &Kernel<'_, P>, pgid: Tid) -> bool {
    !k.groups
        .values()
        .filter(|g| g.pgid == pgid && g.zombie.is_none())
        .any(|g| {
            k.groups
                .get(&g.parent)
                .is_some_and(|p| p.pgid != pgid && p.sid == g.sid)
        })
}
