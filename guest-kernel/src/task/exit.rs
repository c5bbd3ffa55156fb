//! Thread and process exit: clear-child-tid, zombies, reparenting, and the
//! end of the container when its init dies.

use alloc::vec::Vec;

use log::debug;

use super::signal::SIG_IGN;
use super::{GroupExit, SigInfo, Tid, WaitKey, CLD_EXITED, CLD_KILLED};
use crate::abi::linux::{SIGCHLD, SIGKILL};
use crate::boot::ExitStatus;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::syscalls;

/// `SA_NOCLDWAIT`: children of this process are reaped automatically.
const SA_NOCLDWAIT: u64 = 2;

/// Free a task's platform thread and address space, without notifying anyone.
pub fn release_task<P: Platform>(k: &mut Kernel<'_, P>, tid: Tid) -> Option<super::Task<P>> {
    // A task running on another CPU is released there when it comes back.
    k.kick_task(tid);
    let mut t = k.tasks.remove(&tid)?;
    if let Some(th) = t.thread.take() {
        if let Some(e) = k.mms.get_mut(&t.mm) {
            k.plat.release_thread(&mut e.mm.space, th);
        }
    }
    k.put_mm(t.mm);
    Some(t)
}

/// One thread ends with `status` (its group's status if the group is exiting).
pub fn exit_thread<P: Platform>(k: &mut Kernel<'_, P>, tid: Tid, status: GroupExit) {
    let Some(t) = k.tasks.get(&tid) else {
        return;
    };
    let (mm, ctid, tgid, vfork_parent) = (t.mm, t.clear_child_tid, t.tgid, t.vfork_parent);
    // Locks the thread still holds pass to their waiters as owner-died.
    let robust_head = t.robust_list.0;
    if robust_head != 0 {
        syscalls::futex::exit_robust_list(k, mm, tid, robust_head);
    }
    // CLONE_CHILD_CLEARTID: zero the word and wake one futex waiter
    // (pthread_join), while the address space still exists.
    if ctid != 0 {
        let cleared = match k.mms.get_mut(&mm) {
            Some(e) => {
                e.users > 1
                    && e.mm
                        .copy_out(k.plat, &mut k.frames, ctid, &0u32.to_le_bytes())
                        .is_ok()
            }
            None => false,
        };
        if cleared {
            if let Ok(key) = syscalls::futex::key_in(k, mm, ctid, false) {
                k.wake(key, 1);
            }
        }
    }
    release_task(k, tid);
    if vfork_parent.is_some() {
        k.wake(WaitKey::Vfork(tid), 1);
    }
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    g.threads.retain(|t| *t != tid);
    if g.threads.is_empty() {
        let status = g.group_exit.unwrap_or(status);
        group_dead(k, tgid, status);
    }
}

/// The whole thread group exits (`exit_group`, a fatal signal).
pub fn group_exit<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, status: GroupExit) {
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    if g.zombie.is_some() {
        return;
    }
    let status = *g.group_exit.get_or_insert(status);
    let threads = g.threads.clone();
    for tid in threads {
        exit_thread(k, tid, status);
    }
}

/// The last thread of `tgid` is gone: close its files, make it a zombie,
/// and tell its parent (or end the container if it is init).
fn group_dead<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, status: GroupExit) {
    let Some(g) = k.groups.get_mut(&tgid) else {
        return;
    };
    let files: Vec<_> = g.fds.drain().collect();
    g.zombie = Some(status);
    g.job = Default::default();
    k.alarms.remove(&tgid);
    k.ptimers.remove_group(tgid);
    let (parent, exit_signal, children) =
        (g.parent, g.exit_signal, core::mem::take(&mut g.children));
    for e in files {
        syscalls::io::release_file(k, e.file);
    }
    syscalls::tty::leader_exited(k, tgid);
    debug!("process {tgid} exited: {status:?}");
    let (exec_id, root) = k
        .groups
        .get(&tgid)
        .map_or((None, 0), |g| (g.exec_id, g.root));
    crate::task::pod::process_exited(k, tgid, root);
    if let (0, Some(id)) = (parent, exec_id) {
        // A process the host started: report it; its children go to init.
        for c in &children {
            if let Some(cg) = k.groups.get_mut(c) {
                cg.parent = 1;
            }
        }
        if let Some(init) = k.groups.get_mut(&1) {
            init.children.extend(children.iter().copied());
        }
        let code = match status {
            GroupExit::Exited(c) => c & 0xff,
            GroupExit::Signaled(s) => 128 + s,
        };
        k.plat.exec_exited(id, code);
        reap(k, tgid);
        return;
    }
    if parent == 0 {
        // The container's init: every other process dies with it.
        k.init_exit = Some(match status {
            GroupExit::Exited(c) => ExitStatus::Exited(c),
            GroupExit::Signaled(s) => ExitStatus::Signaled(s),
        });
        let others: Vec<Tid> = k.groups.keys().copied().filter(|t| *t != tgid).collect();
        for o in others {
            group_exit(k, o, GroupExit::Signaled(SIGKILL));
        }
        return;
    }
    // Orphans go to init, which reaps them.
    for c in &children {
        if let Some(cg) = k.groups.get_mut(c) {
            cg.parent = 1;
        }
    }
    if let Some(init) = k.groups.get_mut(&1) {
        init.children
            .extend(children.iter().copied().filter(|c| *c != 1));
    }
    let (auto_reap, parent_alive) = match k.groups.get(&parent) {
        Some(pg) => {
            let act = pg.sighand.action(SIGCHLD);
            (
                exit_signal == SIGCHLD && (act.handler == SIG_IGN || act.flags & SA_NOCLDWAIT != 0),
                pg.zombie.is_none(),
            )
        }
        None => (true, false),
    };
    if auto_reap || !parent_alive {
        reap(k, tgid);
    }
    if parent_alive {
        if exit_signal > 0 {
            let (code, st) = match status {
                GroupExit::Exited(c) => (CLD_EXITED, c),
                GroupExit::Signaled(s) => (CLD_KILLED, s),
            };
            let info = SigInfo {
                signo: exit_signal,
                code,
                pid: tgid,
                uid: 0,
                addr: 0,
                status: st,
                ..Default::default()
            };
            super::frame::send_to_group(k, parent, exit_signal, info);
        }
        k.wake(WaitKey::Child(parent), usize::MAX);
    }
}

/// Remove a zombie from the tables.
pub fn reap<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid) {
    if let Some(g) = k.groups.remove(&tgid) {
        if let Some(pg) = k.groups.get_mut(&g.parent) {
            pg.children.retain(|c| *c != tgid);
        }
    }
}
