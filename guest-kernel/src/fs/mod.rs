//! Open files and the per-process descriptor table.
//!
//! Until the VFS arrives, a file is a host stream (the container's stdio)
//! or a read-only host file from the container root.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::AtomicU64;

use crate::abi::{Errno, KResult};
use crate::platform::HostHandle;

/// An open file description.
#[derive(Debug)]
pub enum File {
    /// A stream served by the host (stdio).
    HostStream { handle: HostHandle },
    /// A seekable host file opened read-only beneath the container root.
    HostFile {
        handle: HostHandle,
        offset: AtomicU64,
    },
}

impl File {
    /// The host object behind the file.
    pub fn handle(&self) -> HostHandle {
        match self {
            File::HostStream { handle } | File::HostFile { handle, .. } => *handle,
        }
    }
}

/// One descriptor slot.
#[derive(Clone, Debug)]
pub struct FdEntry {
    pub file: Arc<File>,
    pub cloexec: bool,
}

/// A process's descriptor table.
#[derive(Debug, Default)]
pub struct FdTable {
    fds: BTreeMap<i32, FdEntry>,
}

impl FdTable {
    pub fn get(&self, fd: i32) -> KResult<Arc<File>> {
        self.fds
            .get(&fd)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)
    }

    /// Install `file` at exactly `fd`, returning what was there.
    pub fn install_at(&mut self, fd: i32, file: Arc<File>, cloexec: bool) -> Option<FdEntry> {
        self.fds.insert(fd, FdEntry { file, cloexec })
    }

    /// Install `file` at the lowest free descriptor below `limit`.
    pub fn install(&mut self, file: Arc<File>, cloexec: bool, limit: u64) -> KResult<i32> {
        let mut fd = 0i32;
        for k in self.fds.keys() {
            if *k != fd {
                break;
            }
            fd += 1;
        }
        if fd as u64 >= limit {
            return Err(Errno::EMFILE);
        }
        self.fds.insert(fd, FdEntry { file, cloexec });
        Ok(fd)
    }

    /// Remove `fd`, returning its entry.
    pub fn remove(&mut self, fd: i32) -> KResult<FdEntry> {
        self.fds.remove(&fd).ok_or(Errno::EBADF)
    }

    /// Remove every descriptor.
    pub fn drain(&mut self) -> impl Iterator<Item = FdEntry> + '_ {
        core::mem::take(&mut self.fds).into_values()
    }
}
