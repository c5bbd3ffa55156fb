//! Job control on terminals (Linux's `__tty_check_change` and
//! `job_control`): a process of a background process group of its
//! session's terminal that reads from it gets SIGTTIN, and one that writes
//! to it with `TOSTOP` set, or changes its settings or foreground group,
//! gets SIGTTOU; the whole process group stops (or runs its handlers) and
//! the call runs again when it is continued. Every host terminal a
//! process has is its session's here (see `syscalls::io::job_control`).

use alloc::vec::Vec;

use super::signal::{bit, SIG_IGN};
use super::{SigInfo, Tid, WaitKey};
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::{HostHandle, HostOps, Platform};

const SIGTTIN: i32 = 21;
const SIGTTOU: i32 = 22;
/// `c_lflag` (at byte 12 of `struct termios`): background writes stop.
const TOSTOP: u32 = 0o400;

/// What a process does to its terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtyAccess {
    Read,
    Write,
    /// `tcsetattr`, `tcsetpgrp`.
    Change,
}

/// Whether process group `pgid` is orphaned: no member has a parent in
/// another group of the same session (its stop would never be undone).
fn orphaned<P: Platform>(k: &Kernel<'_, P>, pgid: Tid) -> bool {
    !k.groups
        .values()
        .filter(|g| g.pgid == pgid && g.zombie.is_none())
        .any(|g| {
            k.groups
                .get(&g.parent)
                .is_some_and(|p| p.pgid != pgid && p.sid == g.sid)
        })
}

/// Checks the current process's `access` to the terminal `handle`. `Ok`
/// lets the call go on; a background process gets its signal and the
/// call blocks, to run again once the group continues (`BLOCKED`), or
/// fails with `EIO` (a read with SIGTTIN ignored or blocked, an orphaned
/// group).
pub fn check<P: Platform>(
    k: &mut Kernel<'_, P>,
    handle: HostHandle,
    access: TtyAccess,
) -> KResult<()> {
    let (sid, pgid) = {
        let g = k.group();
        (g.sid, g.pgid)
    };
    if pgid == k.tty_fg.get(&sid).copied().unwrap_or(sid) {
        return Ok(());
    }
    // Only terminals have a foreground.
    let Ok(termios) = k.plat.host().tcgets(handle) else {
        return Ok(());
    };
    let lflag = u32::from_le_bytes([termios[12], termios[13], termios[14], termios[15]]);
    let sig = match access {
        TtyAccess::Read => SIGTTIN,
        TtyAccess::Write if lflag & TOSTOP == 0 => return Ok(()),
        TtyAccess::Write | TtyAccess::Change => SIGTTOU,
    };
    let blocked = k.cur().sig.blocked & bit(sig) != 0;
    if blocked || k.group().sighand.action(sig).handler == SIG_IGN {
        // Linux: a read is refused, a write or a change goes ahead.
        return if sig == SIGTTIN {
            Err(Errno::EIO)
        } else {
            Ok(())
        };
    }
    if orphaned(k, pgid) {
        return Err(Errno::EIO);
    }
    // Blocked first, so that the signal to our own group interrupts it.
    let e = k.block(WaitKey::Sleep, None);
    let info = SigInfo {
        signo: sig,
        code: 0x80, // SI_KERNEL
        ..Default::default()
    };
    let members: Vec<Tid> = k
        .groups
        .values()
        .filter(|g| g.pgid == pgid && g.zombie.is_none())
        .map(|g| g.tgid)
        .collect();
    for t in members {
        super::frame::send_to_group(k, t, sig, info);
    }
    Err(e)
}
