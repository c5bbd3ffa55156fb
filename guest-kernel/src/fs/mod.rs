//! Open files and the per-process descriptor table.
//!
//! Until the VFS arrives, a file is a host stream (the container's stdio),
//! a read-only host file from the container root, or a pipe.

mod devfs;
pub mod epoll;
pub mod eventfd;
pub mod filedata;
pub mod lock;
pub mod pipe;
pub mod pty;
pub mod signalfd;
pub mod socket;
pub mod timerfd;
pub mod tmpfs;
pub mod vfs;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::abi::{Errno, KResult};
use crate::platform::HostHandle;
pub use pipe::Pipe;

/// `O_NONBLOCK`, the one status flag kept per open file so far.
pub const O_NONBLOCK: u32 = 0o4000;

/// An open file description.
#[derive(Debug)]
pub enum File {
    /// A stream served by the host (stdio).
    HostStream { handle: HostHandle },
    /// A seekable host file beneath the container root or a bind mount.
    HostFile {
        handle: HostHandle,
        offset: AtomicU64,
        /// The normalized container path it was opened by (for `*at` calls).
        path: alloc::vec::Vec<u8>,
        /// `O_ACCMODE` and `O_APPEND` as opened: only a file beneath a
        /// writable bind mount is ever opened for writing.
        flags: u32,
        /// A root-image file's version as of its open: its reads go
        /// through the page cache (see `syscalls::cached`). `None` beneath
        /// bind mounts, whose files the host or the sandbox may change.
        cache: Option<crate::mm::pagecache::FileId>,
    },
    /// One end of a pipe.
    Pipe(PipeEnd),
    /// A character device of the sentry's own `/dev`.
    Dev(DevKind),
    /// An eventfd counter.
    EventFd(eventfd::EventFd),
    /// An epoll instance.
    Epoll(epoll::Epoll),
    /// A regular file (or symlink opened with `O_PATH`) of a tmpfs or of
    /// the root overlay's upper layer.
    Tmpfs(TmpFile),
    /// A directory of the sentry's namespace, listed when opened.
    Dir(DirFile),
    /// One end of an AF_UNIX socket pair.
    Socket(socket::UnixSocket),
    /// A timerfd.
    TimerFd(timerfd::TimerFd),
    /// A signalfd.
    SignalFd(signalfd::SignalFd),
    /// One end of a pseudo-terminal of the sentry's devpts.
    Pty(pty::PtyEnd),
}

/// An open tmpfs file; it keeps its inode alive after an unlink.
#[derive(Debug)]
pub struct TmpFile {
    pub fs: Arc<tmpfs::Tmpfs>,
    pub ino: u64,
    pub offset: AtomicU64,
    /// `O_ACCMODE` and `O_APPEND`/`O_NONBLOCK` bits.
    pub flags: AtomicU32,
    pub path: alloc::vec::Vec<u8>,
}

impl TmpFile {
    pub fn new(fs: Arc<tmpfs::Tmpfs>, ino: u64, flags: u32, path: alloc::vec::Vec<u8>) -> TmpFile {
        fs.hold(ino);
        TmpFile {
            fs,
            ino,
            offset: AtomicU64::new(0),
            flags: AtomicU32::new(flags),
            path,
        }
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        self.fs.release(self.ino);
    }
}

/// An open directory: its entries as of `open`, and the read position.
#[derive(Debug)]
pub struct DirFile {
    pub entries: alloc::vec::Vec<(alloc::vec::Vec<u8>, u64, u8)>,
    pub pos: AtomicU64,
    pub path: alloc::vec::Vec<u8>,
    pub node: vfs::Node,
}

/// The sentry's devices (until devfs arrives with the VFS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevKind {
    Null,
    Zero,
    Full,
    Random,
    /// `/dev/tty`: opening it gives the process's controlling terminal.
    Tty,
    /// `/dev/ptmx`: opening it makes a new pseudo-terminal.
    Ptmx,
    /// `/dev/pts/N`: the slave end of pseudo-terminal `N`.
    Pts(u32),
}

impl DevKind {
    /// The device at `path`, if the sentry provides it.
    pub fn lookup(path: &[u8]) -> Option<DevKind> {
        Some(match path {
            b"/dev/null" => DevKind::Null,
            b"/dev/zero" => DevKind::Zero,
            b"/dev/full" => DevKind::Full,
            b"/dev/random" | b"/dev/urandom" => DevKind::Random,
            b"/dev/tty" => DevKind::Tty,
            b"/dev/ptmx" => DevKind::Ptmx,
            _ => return None,
        })
    }

    /// `stat` of the device node.
    pub fn stat(self) -> crate::abi::linux::Stat {
        crate::abi::linux::Stat {
            st_dev: 5,
            st_ino: self.rdev(),
            st_nlink: 1,
            st_mode: crate::abi::linux::S_IFCHR
                | if matches!(self, DevKind::Pts(_)) {
                    0o620
                } else {
                    0o666
                },
            // A pty slave belongs to the `tty` group, as devpts' `gid=5`.
            st_gid: if matches!(self, DevKind::Pts(_)) {
                5
            } else {
                0
            },
            st_rdev: self.rdev(),
            st_blksize: 4096,
            ..Default::default()
        }
    }

    /// Linux's device number (major 1; 5 for the tty) for `stat`.
    pub fn rdev(self) -> u64 {
        match self {
            DevKind::Tty => return 5 << 8,
            DevKind::Ptmx => return (5 << 8) | 2,
            // Major 136 (UNIX98 pty slaves), in `new_encode_dev` form.
            DevKind::Pts(n) => {
                let n = u64::from(n);
                return (n & 0xff) | (136 << 8) | ((n & !0xff) << 12);
            }
            _ => {}
        }
        let minor = match self {
            DevKind::Null => 3,
            DevKind::Zero => 5,
            DevKind::Full => 7,
            DevKind::Random => 9,
            DevKind::Tty | DevKind::Ptmx | DevKind::Pts(_) => 0,
        };
        (1 << 8) | minor
    }
}

/// A pipe end; dropping the last reference closes it.
#[derive(Debug)]
pub struct PipeEnd {
    pub pipe: Arc<Pipe>,
    pub write: bool,
    pub flags: AtomicU32,
}

impl PipeEnd {
    pub fn new(pipe: Arc<Pipe>, write: bool, flags: u32) -> Self {
        pipe.open_end(write);
        PipeEnd {
            pipe,
            write,
            flags: AtomicU32::new(flags),
        }
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        self.pipe.close_end(self.write);
    }
}

/// Read file contents at `off` (file mappings fault through this).
pub fn read_at<P: crate::platform::Platform>(
    plat: &P,
    file: &File,
    buf: &mut [u8],
    off: u64,
) -> KResult<usize> {
    use crate::platform::HostOps;
    match file {
        File::HostFile { handle, .. } => plat.host().pread(*handle, buf, off),
        File::Tmpfs(t) => t.fs.read(t.ino, buf, off),
        _ => Err(Errno::ENODEV),
    }
}

impl File {
    /// The container path the file was opened by, for `*at` calls.
    pub fn path(&self) -> Option<&[u8]> {
        match self {
            File::HostFile { path, .. } => Some(path),
            File::Tmpfs(t) => Some(&t.path),
            File::Dir(d) => Some(&d.path),
            _ => None,
        }
    }

    /// A counter that changes whenever the file's readiness may have
    /// changed (edge-triggered epoll); 0 for files that are always ready.
    pub fn event_generation(&self) -> u64 {
        use core::sync::atomic::Ordering;
        match self {
            File::Pipe(end) => end.pipe.generation.load(Ordering::Relaxed),
            File::EventFd(e) => e.generation.load(Ordering::Relaxed),
            File::TimerFd(t) => t.generation.load(Ordering::Relaxed),
            File::SignalFd(s) => s.generation(),
            File::Pty(p) => p.pty.generation.load(Ordering::Relaxed),
            File::Socket(s) => {
                s.rx.generation
                    .load(Ordering::Relaxed)
                    .wrapping_add(s.tx.generation.load(Ordering::Relaxed))
            }
            _ => 0,
        }
    }

    /// The host object behind the file, if any.
    pub fn handle(&self) -> Option<HostHandle> {
        match self {
            File::HostStream { handle } | File::HostFile { handle, .. } => Some(*handle),
            _ => None,
        }
    }
}

/// One descriptor slot.
#[derive(Clone, Debug)]
pub struct FdEntry {
    pub file: Arc<File>,
    pub cloexec: bool,
}

/// Descriptors open in every table at once, and the most there may be:
/// Linux's `file-max`, so that a sandbox full of processes that raised
/// their `RLIMIT_NOFILE` gets `ENFILE` instead of exhausting the sentry's
/// memory (about 200 bytes each). Set at boot (see `set_file_max`).
static OPEN_FDS: AtomicUsize = AtomicUsize::new(0);
static FILE_MAX: AtomicUsize = AtomicUsize::new(1 << 18);

/// Bound descriptors to one per 256 bytes of `bytes` (the tmpfs budget:
/// on KVM, half the kernel heap, which gives 262,144 for 512 MiB).
pub fn set_file_max(bytes: u64) {
    let n = usize::try_from(bytes / 256).unwrap_or(usize::MAX).max(1024);
    FILE_MAX.store(n, Ordering::Relaxed);
}

/// (open, most): `/proc/sys/fs/file-nr` and `file-max`.
pub fn file_counts() -> (usize, usize) {
    (
        OPEN_FDS.load(Ordering::Relaxed),
        FILE_MAX.load(Ordering::Relaxed),
    )
}

/// Take `n` descriptors from the sandbox-wide budget.
fn charge(n: usize) -> KResult<()> {
    let max = FILE_MAX.load(Ordering::Relaxed);
    let mut cur = OPEN_FDS.load(Ordering::Relaxed);
    loop {
        let new = cur
            .checked_add(n)
            .filter(|v| *v <= max)
            .ok_or(Errno::ENFILE)?;
        match OPEN_FDS.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(v) => cur = v,
        }
    }
}

fn uncharge(n: usize) {
    OPEN_FDS.fetch_sub(n, Ordering::Relaxed);
}

/// A process's descriptor table.
#[derive(Debug, Default)]
pub struct FdTable {
    fds: BTreeMap<i32, FdEntry>,
    /// No descriptor below this one is free (Linux's `next_fd`), so that
    /// filling a table costs O(n log n), not O(n²).
    free_from: i32,
}

impl Drop for FdTable {
    fn drop(&mut self) {
        uncharge(self.fds.len());
    }
}

impl FdTable {
    /// A copy for a new process (fork); `ENFILE` past the budget.
    pub fn try_clone(&self) -> KResult<FdTable> {
        charge(self.fds.len())?;
        Ok(FdTable {
            fds: self.fds.clone(),
            free_from: self.free_from,
        })
    }

    pub fn get(&self, fd: i32) -> KResult<Arc<File>> {
        self.fds
            .get(&fd)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)
    }

    pub fn entry_mut(&mut self, fd: i32) -> KResult<&mut FdEntry> {
        self.fds.get_mut(&fd).ok_or(Errno::EBADF)
    }

    /// Install `file` at exactly `fd`, returning what was there (`ENFILE`
    /// if the slot was free and the sandbox has no descriptor left).
    pub fn install_at(
        &mut self,
        fd: i32,
        file: Arc<File>,
        cloexec: bool,
    ) -> KResult<Option<FdEntry>> {
        if !self.fds.contains_key(&fd) {
            charge(1)?;
        }
        Ok(self.fds.insert(fd, FdEntry { file, cloexec }))
    }

    /// Install `file` at the lowest free descriptor at or above `min`, below `limit`.
    pub fn install_from(
        &mut self,
        min: i32,
        file: Arc<File>,
        cloexec: bool,
        limit: u64,
    ) -> KResult<i32> {
        let min = min.max(0);
        let mut fd = min.max(self.free_from);
        for k in self.fds.range(fd..).map(|(k, _)| *k) {
            if k != fd {
                break;
            }
            fd += 1;
        }
        if fd as u64 >= limit {
            return Err(Errno::EMFILE);
        }
        charge(1)?;
        self.fds.insert(fd, FdEntry { file, cloexec });
        if min <= self.free_from {
            self.free_from = fd + 1;
        }
        Ok(fd)
    }

    /// Install `file` at the lowest free descriptor below `limit`.
    pub fn install(&mut self, file: Arc<File>, cloexec: bool, limit: u64) -> KResult<i32> {
        self.install_from(0, file, cloexec, limit)
    }

    /// The open descriptors, in order.
    pub fn fds(&self) -> alloc::vec::Vec<i32> {
        self.fds.keys().copied().collect()
    }

    /// Remove `fd`, returning its entry.
    pub fn remove(&mut self, fd: i32) -> KResult<FdEntry> {
        let e = self.fds.remove(&fd).ok_or(Errno::EBADF)?;
        uncharge(1);
        self.free_from = self.free_from.min(fd);
        Ok(e)
    }

    /// Remove the close-on-exec descriptors.
    pub fn take_cloexec(&mut self) -> alloc::vec::Vec<FdEntry> {
        let fds: alloc::vec::Vec<i32> = self
            .fds
            .iter()
            .filter(|(_, e)| e.cloexec)
            .map(|(k, _)| *k)
            .collect();
        fds.into_iter()
            .filter_map(|fd| self.remove(fd).ok())
            .collect()
    }

    /// Remove every descriptor.
    pub fn drain(&mut self) -> impl Iterator<Item = FdEntry> + '_ {
        uncharge(self.fds.len());
        self.free_from = 0;
        core::mem::take(&mut self.fds).into_values()
    }
}
