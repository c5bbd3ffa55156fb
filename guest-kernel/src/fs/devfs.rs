//! The sentry's `/dev`: the names it keeps for its devices, and devpts.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::vfs::Vfs;
use super::DevKind;
use crate::abi::{Errno, KResult};

/// Whether `/dev/NAME` is one of the sentry's own (a device, `pts`,
/// `shm`, a symlink): nothing else can be made there under that name.
pub(super) fn dev_reserved(name: &[u8]) -> bool {
    let mut path = b"/dev/".to_vec();
    path.extend_from_slice(name);
    DevKind::lookup(&path).is_some()
        || matches!(name, b"pts" | b"shm")
        || dev_symlink(name).is_some()
}

/// The symlinks of the sentry's `/dev`, as a container's `/dev` has them.
pub(super) fn dev_symlink(name: &[u8]) -> Option<&'static [u8]> {
    Some(match name {
        b"fd" => b"/proc/self/fd",
        b"stdin" => b"/proc/self/fd/0",
        b"stdout" => b"/proc/self/fd/1",
        b"stderr" => b"/proc/self/fd/2",
        _ => return None,
    })
}

/// The number a `/dev/pts` name spells: decimal digits, no leading zero.
pub(super) fn pty_number(name: &[u8]) -> Option<u32> {
    if name.is_empty()
        || !name.iter().all(u8::is_ascii_digit)
        || (name.len() > 1 && name[0] == b'0')
    {
        return None;
    }
    core::str::from_utf8(name).ok()?.parse().ok()
}

impl Vfs {
    /// A new pseudo-terminal with the lowest free number; `ENOSPC` past
    /// [`PTY_MAX`](crate::fs::pty::PTY_MAX).
    pub fn new_pty(&self) -> KResult<Arc<crate::fs::pty::Pty>> {
        let mut ptys = self.ptys.lock();
        ptys.retain(|_, p| p.strong_count() > 0);
        let n = (0..crate::fs::pty::PTY_MAX)
            .find(|n| !ptys.contains_key(n))
            .ok_or(Errno::ENOSPC)?;
        let pty = Arc::new(crate::fs::pty::Pty::new(n));
        ptys.insert(n, Arc::downgrade(&pty));
        Ok(pty)
    }

    /// Pseudo-terminal `n`, while its master is open.
    pub fn pty(&self, n: u32) -> Option<Arc<crate::fs::pty::Pty>> {
        self.ptys
            .lock()
            .get(&n)
            .and_then(|p| p.upgrade())
            .filter(|p| p.master_open())
    }

    /// The numbers `/dev/pts` lists.
    pub(super) fn pty_numbers(&self) -> Vec<u32> {
        let ptys = self.ptys.lock();
        ptys.iter()
            .filter(|(_, p)| p.upgrade().is_some_and(|p| p.master_open()))
            .map(|(n, _)| *n)
            .collect()
    }
}
