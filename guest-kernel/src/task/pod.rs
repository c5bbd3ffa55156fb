//! Pod containers: several containers' processes in one sentry.
//!
//! Each thread group belongs to one container (`ThreadGroup::root`, 0 for
//! the sandbox's own, inherited by children), which selects its file
//! namespace. There is one pid namespace: a container's processes see the
//! others' pids in `/proc`, but host signals (`kill`, `kill --all`) reach
//! only the container they are for, and a pod container's processes die
//! with its first process, as those of a pid namespace die with its init.

use alloc::vec::Vec;

use crate::abi::linux::SIGKILL;
use crate::kernel::Kernel;
use crate::platform::{HostSignal, Platform};
use crate::task::{SigInfo, Tid};

/// The thread groups a host signal is for.
pub fn host_signal_targets<P: Platform>(k: &Kernel<'_, P>, hs: &HostSignal) -> Vec<Tid> {
    if hs.exec {
        // The foreground group of the exec'd process's session.
        let Some(g) = k
            .groups
            .values()
            .find(|g| g.zombie.is_none() && g.exec_id == u32::try_from(hs.pid).ok())
        else {
            return Vec::new();
        };
        let (root, sid) = (g.root, g.sid);
        let fg = k.tty_fg.get(&sid).copied().unwrap_or(sid);
        return k
            .groups
            .values()
            .filter(|g| g.zombie.is_none() && g.root == root && g.pgid == fg)
            .map(|g| g.tgid)
            .collect();
    }
    let init = if hs.container == 0 {
        1
    } else {
        match k.container_init.get(&hs.container) {
            Some(t) => *t,
            None => return Vec::new(),
        }
    };
    let in_container = |pgid: Option<Tid>| {
        k.groups
            .values()
            .filter(|g| g.zombie.is_none() && g.root == hs.container)
            .filter(|g| pgid.is_none_or(|p| g.pgid == p))
            .map(|g| g.tgid)
            .collect()
    };
    if hs.all {
        in_container(None)
    } else if hs.pgrp {
        in_container(Some(hs.pid))
    } else if hs.pid == HostSignal::FOREGROUND {
        let sid = k.groups.get(&init).map_or(init, |g| g.sid);
        in_container(Some(k.tty_fg.get(&sid).copied().unwrap_or(sid)))
    } else if hs.pid == 0 {
        alloc::vec![init]
    } else {
        match k.groups.get(&hs.pid) {
            Some(g) if g.root == hs.container => alloc::vec![hs.pid],
            _ => Vec::new(),
        }
    }
}

/// Process `tgid` has exited: if it was a pod container's first process,
/// the rest of that container is killed.
pub fn process_exited<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, root: u32) {
    if root == 0 || k.container_init.get(&root) != Some(&tgid) {
        return;
    }
    k.container_init.remove(&root);
    let rest: Vec<Tid> = k
        .groups
        .values()
        .filter(|g| g.zombie.is_none() && g.root == root && g.tgid != tgid)
        .map(|g| g.tgid)
        .collect();
    let info = SigInfo {
        signo: SIGKILL,
        code: 0x80, // SI_KERNEL
        ..Default::default()
    };
    for t in rest {
        crate::task::frame::send_to_group(k, t, SIGKILL, info);
    }
}
