//! The handle table and the host operations behind it.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use guest_kernel::abi::linux::{Stat, TERMIOS_SIZE};
use guest_kernel::abi::{Errno, KResult};
use guest_kernel::platform::{HostHandle, HostOps, HostStat, HOST_STDERR, HOST_STDIN, HOST_STDOUT};
use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Longest path the sentry may ask for (Linux's `PATH_MAX`).
const PATH_MAX: usize = 4096;
/// Bound on open handles, so a guest cannot exhaust the VMM's fds.
const MAX_HANDLES: usize = 16384;

/// Host objects opened on the sentry's behalf.
#[derive(Debug)]
pub struct HostServices {
    root: OwnedFd,
    /// Bind mounts of the spec, longest destination first. Paths beneath
    /// one resolve inside its source.
    binds: Vec<Bind>,
    /// The roots of a pod's other containers, numbered from 1: the sentry
    /// names a path beneath root N as `N:/path` (`Vfs::host_path`).
    roots: RwLock<Vec<Arc<OwnedFd>>>,
    table: Mutex<Table>,
    /// Encoded `exec` requests waiting for the sentry, and who hears of
    /// their processes' ends.
    execs: Mutex<std::collections::VecDeque<Vec<u8>>>,
    on_exit: ExitSlot,
}

/// A bind mount of the spec.
#[derive(Debug)]
pub(crate) struct Bind {
    /// The container path, without a trailing `/` (`/` itself for the root).
    dest: String,
    /// The source directory (O_PATH); for a file bind, the directory that
    /// holds the source file.
    pub(crate) dir: OwnedFd,
    /// For a file bind, the source file's name in `dir`.
    file: Option<String>,
    /// Not `ro`: writes go through to the source.
    pub(crate) writable: bool,
}

/// Where a container path resolves: a directory fd, the path relative to
/// it (resolved with `RESOLVE_IN_ROOT` beneath it), and the bind mount.
#[derive(Debug)]
pub(crate) struct Route<'a> {
    pub(crate) base: Base<'a>,
    pub(crate) rel: String,
    pub(crate) bind: Option<usize>,
}

/// Most pod containers one sandbox serves besides its own.
const MAX_ROOTS: usize = 1024;

/// The directory a path resolves beneath (see `HostServices::route`).
#[derive(Debug)]
pub(crate) enum Base<'a> {
    Own(&'a OwnedFd),
    Pod(Arc<OwnedFd>),
}

impl AsFd for Base<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Base::Own(fd) => fd.as_fd(),
            Base::Pod(fd) => fd.as_fd(),
        }
    }
}

/// Called with (exec id, exit code).
pub type ExitHandler = Box<dyn Fn(u32, i32) + Send>;

/// Holds the [`ExitHandler`].
#[derive(Default)]
struct ExitSlot(Mutex<Option<ExitHandler>>);

impl std::fmt::Debug for ExitSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExitSlot")
    }
}

#[derive(Debug)]
struct Table {
    fds: BTreeMap<u32, OwnedFd>,
    next: u32,
}

/// `d_type` of a directory entry.
fn dtype_of(t: rustix::fs::FileType) -> u8 {
    use rustix::fs::FileType as T;
    match t {
        T::Fifo => 1,
        T::CharacterDevice => 2,
        T::Directory => 4,
        T::BlockDevice => 6,
        T::RegularFile => 8,
        T::Symlink => 10,
        T::Socket => 12,
        T::Unknown => 0,
    }
}

pub(crate) fn errno_of(e: rustix::io::Errno) -> Errno {
    Errno(e.raw_os_error())
}

/// A path from the sentry as text: bounded, without NULs.
pub(crate) fn path_str(path: &[u8]) -> KResult<&str> {
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if path.contains(&0) {
        return Err(Errno::EINVAL);
    }
    std::str::from_utf8(path).map_err(|_| Errno::ENOENT)
}

/// The directory of a routed path opened beneath its base (O_PATH) with
/// `resolve`, and the last component, which is not resolved: for calls
/// that must not follow a final symlink.
pub(crate) fn parent_in(route: &Route<'_>, resolve: ResolveFlags) -> KResult<(OwnedFd, String)> {
    let text = route.rel.as_str();
    let (dir, name) = match text.trim_end_matches('/').rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => (".", text),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(Errno::EINVAL);
    }
    let dirfd = rustix::fs::openat2(
        &route.base,
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )
    .map_err(errno_of)?;
    Ok((dirfd, name.to_string()))
}

impl HostServices {
    /// Serve the container rooted at `root`, with `stdio` as its standard
    /// streams (duplicated, so the guest closing them leaves ours alone).
    pub fn new(root: &Path, stdio: [BorrowedFd<'_>; 3]) -> io::Result<Self> {
        let root = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut fds = BTreeMap::new();
        for (h, fd) in [HOST_STDIN, HOST_STDOUT, HOST_STDERR]
            .into_iter()
            .zip(stdio)
        {
            fds.insert(h.0, rustix::io::fcntl_dupfd_cloexec(fd, 3)?);
        }
        Ok(HostServices {
            root,
            binds: Vec::new(),
            roots: RwLock::new(Vec::new()),
            table: Mutex::new(Table { fds, next: 3 }),
            execs: Mutex::new(Default::default()),
            on_exit: ExitSlot::default(),
        })
    }

    /// The directory of `path` opened beneath its root (O_PATH), and the
    /// last component, which is not resolved: for calls that must not
    /// follow a final symlink.
    fn parent_of(&self, path: &[u8]) -> KResult<(OwnedFd, String)> {
        let route = self.route(path_str(path)?)?;
        parent_in(&route, ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)
    }

    /// Queue an encoded `ExecRequest` for the sentry (KVM fetches it with a
    /// host call).
    pub fn queue_exec(&self, req: Vec<u8>) {
        if let Ok(mut q) = self.execs.lock() {
            q.push_back(req);
        }
    }

    /// Who hears of the end of `exec`'d processes.
    pub fn set_exit_handler(&self, f: ExitHandler) {
        if let Ok(mut h) = self.on_exit.0.lock() {
            *h = Some(f);
        }
    }

    /// Take a host fd (an `exec`'d process's stdio) and name it with a handle.
    pub fn add_handle(&self, fd: OwnedFd) -> KResult<HostHandle> {
        let mut table = self.table.lock().map_err(|_| Errno::EIO)?;
        if table.fds.len() >= MAX_HANDLES {
            return Err(Errno::ENFILE);
        }
        let mut h = table.next;
        while table.fds.contains_key(&h) {
            h = h.wrapping_add(1).max(3);
        }
        table.next = h.wrapping_add(1).max(3);
        table.fds.insert(h, fd);
        Ok(HostHandle(h))
    }

    /// Serve the host directory or regular file `source` at `dest` in the
    /// container (a bind mount of the spec). Paths resolve beneath a
    /// directory source as they do beneath the root; a file source is only
    /// reached by `dest` itself. With `writable` (no `ro` option), writes
    /// go through to the source.
    pub fn add_bind(&mut self, dest: &str, source: &Path, writable: bool) -> io::Result<()> {
        let st = rustix::fs::stat(source)?;
        let (dir, file) = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Directory => (source, None),
            rustix::fs::FileType::RegularFile => {
                let name = source
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                (
                    source.parent().unwrap_or(Path::new("/")),
                    Some(name.to_string()),
                )
            }
            _ => return Err(io::ErrorKind::InvalidInput.into()),
        };
        let dir = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if let Some(name) = &file {
            // The file must still be the one we looked at.
            let now =
                rustix::fs::statat(&dir, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                return Err(io::ErrorKind::InvalidInput.into());
            }
        }
        let dest = dest.trim_end_matches('/');
        let dest = if dest.is_empty() {
            "/".to_string()
        } else {
            dest.to_string()
        };
        self.binds.push(Bind {
            dest,
            dir,
            file,
            writable,
        });
        self.binds.sort_by_key(|b| std::cmp::Reverse(b.dest.len()));
        Ok(())
    }

    /// Serve another container of the pod: its root directory `root`,
    /// opened as the first one is; paths beneath it resolve inside it (no
    /// bind mounts). Returns its number, for `ExecRequest::root`.
    pub fn add_root(&self, root: &Path) -> io::Result<u32> {
        let fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut roots = self
            .roots
            .write()
            .map_err(|_| io::Error::other("the root table is poisoned"))?;
        if roots.len() >= MAX_ROOTS {
            return Err(io::Error::other(format!(
                "a sandbox serves at most {MAX_ROOTS} pod containers"
            )));
        }
        roots.push(Arc::new(fd));
        u32::try_from(roots.len()).map_err(io::Error::other)
    }

    /// Where a container path resolves. A path beneath a file bind is
    /// `ENOTDIR`.
    pub(crate) fn route<'a>(&'a self, path: &str) -> KResult<Route<'a>> {
        // `N:/path`: beneath pod root N (no bind mounts there).
        if let Some((n, rest)) = path.split_once(':') {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                let n: usize = n.parse().map_err(|_| Errno::ENOENT)?;
                let roots = self.roots.read().map_err(|_| Errno::EIO)?;
                let fd = n
                    .checked_sub(1)
                    .and_then(|i| roots.get(i))
                    .ok_or(Errno::ENOENT)?;
                return Ok(Route {
                    base: Base::Pod(fd.clone()),
                    rel: rest.to_string(),
                    bind: None,
                });
            }
        }
        for (i, b) in self.binds.iter().enumerate() {
            let Some(rest) = path.strip_prefix(b.dest.as_str()) else {
                continue;
            };
            let rel = match (&b.file, rest) {
                (Some(name), "") => name.clone(),
                (Some(_), r) if r.starts_with('/') => return Err(Errno::ENOTDIR),
                (None, "") => ".".to_string(),
                (None, r) if r.starts_with('/') || b.dest == "/" => r.to_string(),
                _ => continue,
            };
            return Ok(Route {
                base: Base::Own(&b.dir),
                rel,
                bind: Some(i),
            });
        }
        Ok(Route {
            base: Base::Own(&self.root),
            rel: path.to_string(),
            bind: None,
        })
    }

    /// The bind mount `i`.
    pub(crate) fn bind(&self, i: usize) -> Option<&Bind> {
        self.binds.get(i)
    }

    /// Whether bind `i` is a file bind.
    pub(crate) fn is_file_bind(&self, i: usize) -> bool {
        self.binds.get(i).is_some_and(|b| b.file.is_some())
    }

    pub(crate) fn with_fd<T>(
        &self,
        h: HostHandle,
        f: impl FnOnce(BorrowedFd<'_>) -> KResult<T>,
    ) -> KResult<T> {
        let table = self.table.lock().map_err(|_| Errno::EIO)?;
        let fd = table.fds.get(&h.0).ok_or(Errno::EBADF)?;
        f(fd.as_fd())
    }
}

impl HostOps for HostServices {
    fn open(&self, path: &[u8]) -> KResult<HostHandle> {
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if path.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let text = std::str::from_utf8(path).map_err(|_| Errno::ENOENT)?;
        let route = self.route(text)?;
        let (base, rel) = (&route.base, std::ffi::OsStr::new(&route.rel));
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        // Look before opening: opening a device node can have effects of its
        // own (a watchdog, a tape, a terminal), so only regular files and
        // directories of the host are ever opened for the guest.
        let probe = rustix::fs::openat2(
            base,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        )
        .map_err(errno_of)?;
        let before = rustix::fs::fstat(&probe).map_err(errno_of)?;
        let kind = rustix::fs::FileType::from_raw_mode(before.st_mode);
        if !matches!(
            kind,
            rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory
        ) {
            return Err(Errno::EACCES);
        }
        let fd = rustix::fs::openat2(
            base,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            resolve,
        )
        .map_err(errno_of)?;
        let after = rustix::fs::fstat(&fd).map_err(errno_of)?;
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
            return Err(Errno::EAGAIN); // swapped underneath us
        }
        self.add_handle(fd)
    }

    fn read(&self, h: HostHandle, buf: &mut [u8]) -> KResult<usize> {
        self.with_fd(h, |fd| rustix::io::read(fd, buf).map_err(errno_of))
    }

    fn pread(&self, h: HostHandle, buf: &mut [u8], offset: u64) -> KResult<usize> {
        self.with_fd(h, |fd| rustix::io::pread(fd, buf, offset).map_err(errno_of))
    }

    fn write(&self, h: HostHandle, data: &[u8]) -> KResult<usize> {
        self.with_fd(h, |fd| loop {
            match rustix::io::write(fd, data) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(errno_of),
            }
        })
    }

    fn fstat(&self, h: HostHandle) -> KResult<HostStat> {
        self.with_fd(h, |fd| {
            Ok(stat_of(&rustix::fs::fstat(fd).map_err(errno_of)?))
        })
    }

    fn lstat(&self, path: &[u8]) -> KResult<HostStat> {
        let (dirfd, name) = self.parent_of(path)?;
        let st = rustix::fs::statat(&dirfd, &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(errno_of)?;
        Ok(stat_of(&st))
    }

    fn tcgets(&self, h: HostHandle) -> KResult<[u8; TERMIOS_SIZE]> {
        self.with_fd(h, |fd| {
            let t = nix::sys::termios::tcgetattr(fd).map_err(|e| Errno(e as i32))?;
            let raw: libc::termios = t.into();
            // The kernel's `struct termios`: four flag words, c_line, c_cc[19].
            let mut out = [0u8; TERMIOS_SIZE];
            out[0..4].copy_from_slice(&raw.c_iflag.to_le_bytes());
            out[4..8].copy_from_slice(&raw.c_oflag.to_le_bytes());
            out[8..12].copy_from_slice(&raw.c_cflag.to_le_bytes());
            out[12..16].copy_from_slice(&raw.c_lflag.to_le_bytes());
            out[16] = raw.c_line;
            out[17..36].copy_from_slice(&raw.c_cc[..19]);
            Ok(out)
        })
    }

    fn tty_ioctl(&self, h: HostHandle, cmd: u32, arg: &mut [u8]) -> KResult<()> {
        use nix::sys::termios::{tcgetattr, tcsetattr, SetArg};
        let want = guest_kernel::abi::hostcall::queue::tty_ioctl_size(cmd).ok_or(Errno::ENOTTY)?;
        if arg.len() as u64 != want {
            return Err(Errno::EINVAL);
        }
        let errno = |e: nix::errno::Errno| Errno(e as i32);
        self.with_fd(h, |fd| match cmd {
            0x5402..=0x5404 => {
                let mut raw: libc::termios = tcgetattr(fd).map_err(errno)?.into();
                let word =
                    |i: usize| u32::from_le_bytes([arg[i], arg[i + 1], arg[i + 2], arg[i + 3]]);
                raw.c_iflag = word(0);
                raw.c_oflag = word(4);
                raw.c_cflag = word(8);
                raw.c_lflag = word(12);
                raw.c_line = arg[16];
                raw.c_cc[..19].copy_from_slice(&arg[17..36]);
                let how = match cmd {
                    0x5402 => SetArg::TCSANOW,
                    0x5403 => SetArg::TCSADRAIN,
                    _ => SetArg::TCSAFLUSH,
                };
                tcsetattr(fd, how, &raw.into()).map_err(errno)
            }
            0x5413 => {
                let w = rustix::termios::tcgetwinsize(fd).map_err(|e| Errno(e.raw_os_error()))?;
                for (i, v) in [w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel]
                    .into_iter()
                    .enumerate()
                {
                    arg[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
            _ => {
                let half = |i: usize| u16::from_le_bytes([arg[i], arg[i + 1]]);
                let w = rustix::termios::Winsize {
                    ws_row: half(0),
                    ws_col: half(2),
                    ws_xpixel: half(4),
                    ws_ypixel: half(6),
                };
                rustix::termios::tcsetwinsize(fd, w).map_err(|e| Errno(e.raw_os_error()))
            }
        })
    }

    fn getdents64(&self, h: HostHandle, buf: &mut [u8]) -> KResult<usize> {
        self.with_fd(h, |fd| {
            // One host getdents64 into a buffer of the guest's size: the
            // records are re-encoded in the same format, so they fit.
            let mut host = vec![std::mem::MaybeUninit::<u8>::uninit(); buf.len().min(1 << 16)];
            let mut dir = rustix::fs::RawDir::new(fd, &mut host);
            let mut out = 0usize;
            let mut first = true;
            loop {
                if !first && dir.is_buffer_empty() {
                    break;
                }
                first = false;
                let Some(entry) = dir.next() else {
                    break;
                };
                let entry = entry.map_err(errno_of)?;
                let name = entry.file_name().to_bytes_with_nul();
                let reclen = (19 + name.len()).next_multiple_of(8);
                if out + reclen > buf.len() {
                    return if out == 0 {
                        Err(Errno::EINVAL)
                    } else {
                        Ok(out)
                    };
                }
                let rec = &mut buf[out..out + reclen];
                rec.fill(0);
                rec[0..8].copy_from_slice(&entry.ino().to_le_bytes());
                rec[8..16].copy_from_slice(&entry.next_entry_cookie().to_le_bytes());
                rec[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
                rec[18] = dtype_of(entry.file_type());
                rec[19..19 + name.len()].copy_from_slice(name);
                out += reclen;
            }
            Ok(out)
        })
    }

    fn readlink(&self, path: &[u8], buf: &mut [u8]) -> KResult<usize> {
        let (dirfd, name) = self.parent_of(path)?;
        let target = rustix::fs::readlinkat(&dirfd, &name, Vec::new()).map_err(errno_of)?;
        let bytes = target.as_bytes();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn take_exec(&self, buf: &mut [u8]) -> KResult<usize> {
        let mut q = self.execs.lock().map_err(|_| Errno::EIO)?;
        match q.front() {
            None => Ok(0),
            Some(r) if r.len() > buf.len() => {
                // Never leave it blocking the queue.
                q.pop_front();
                Err(Errno::E2BIG)
            }
            Some(_) => {
                let r = q.pop_front().unwrap_or_default();
                buf[..r.len()].copy_from_slice(&r);
                Ok(r.len())
            }
        }
    }

    fn exec_exited(&self, id: u32, code: i32) {
        if let Ok(h) = self.on_exit.0.lock() {
            if let Some(f) = h.as_ref() {
                f(id, code);
            }
        }
    }

    fn open_rw(&self, path: &[u8], flags: u32, mode: u32) -> KResult<HostHandle> {
        self.bind_open(path, flags, mode)
    }

    fn pwrite(&self, h: HostHandle, data: &[u8], offset: u64) -> KResult<usize> {
        if offset > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        self.with_fd(h, |fd| loop {
            match rustix::io::pwrite(fd, data, offset) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(errno_of),
            }
        })
    }

    fn ftruncate(&self, h: HostHandle, len: u64) -> KResult<()> {
        if len > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        self.with_fd(h, |fd| rustix::fs::ftruncate(fd, len).map_err(errno_of))
    }

    fn fsync(&self, h: HostHandle) -> KResult<()> {
        self.with_fd(h, |fd| rustix::fs::fsync(fd).map_err(errno_of))
    }

    fn path_op(&self, op: u32, path: &[u8], extra: &[u8], arg: u64) -> KResult<()> {
        self.bind_path_op(op, path, extra, arg)
    }

    fn close(&self, h: HostHandle) {
        if let Ok(mut t) = self.table.lock() {
            t.fds.remove(&h.0);
        }
    }
}

/// Linux's `struct stat` from the host's.
fn stat_of(st: &rustix::fs::Stat) -> HostStat {
    Stat {
        st_dev: st.st_dev,
        st_ino: st.st_ino,
        st_nlink: st.st_nlink,
        st_mode: st.st_mode,
        st_uid: st.st_uid,
        st_gid: st.st_gid,
        pad0: 0,
        st_rdev: st.st_rdev,
        st_size: st.st_size,
        st_blksize: st.st_blksize,
        st_blocks: st.st_blocks,
        st_atime: st.st_atime,
        st_atime_nsec: st.st_atime_nsec as i64,
        st_mtime: st.st_mtime,
        st_mtime_nsec: st.st_mtime_nsec as i64,
        st_ctime: st.st_ctime,
        st_ctime_nsec: st.st_ctime_nsec as i64,
        reserved: [0; 3],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Host services over `root`, with `/dev/null` as every standard stream.
    pub(crate) fn services(root: &Path) -> HostServices {
        let null = std::fs::File::open("/dev/null").unwrap();
        HostServices::new(root, [null.as_fd(), null.as_fd(), null.as_fd()]).unwrap()
    }

    #[test]
    fn paths_stay_beneath_the_root() {
        let base = std::env::temp_dir().join(format!("rf-devices-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/inside"), b"in").unwrap();
        std::fs::write(base.join("outside"), b"secret").unwrap();
        std::os::unix::fs::symlink("/outside", root.join("abs-link")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("etc/rel-link")).unwrap();
        let s = services(&root);

        let h = s.open(b"/etc/inside").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(s.pread(h, &mut buf, 0), Ok(2));
        assert_eq!(&buf[..2], b"in");
        s.close(h);
        // `..`, absolute symlinks and relative escapes all resolve inside.
        for p in [
            &b"/../outside"[..],
            b"../../outside",
            b"/abs-link",
            b"/etc/rel-link",
            b"/proc/self/root/outside",
        ] {
            assert_eq!(
                s.open(p),
                Err(Errno::ENOENT),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        assert_eq!(s.open(&[b'a'; 5000]), Err(Errno::ENAMETOOLONG));
        assert_eq!(s.open(b"/etc/\0x"), Err(Errno::EINVAL));
        assert_eq!(s.read(HostHandle(999), &mut buf), Err(Errno::EBADF));
        assert_eq!(s.tcgets(HOST_STDOUT), Err(Errno::ENOTTY));
        // A bind mount resolves beneath its own directory.
        let mut with_bind = services(&root);
        with_bind
            .add_bind("/mnt/data", &base.join("root/etc"), false)
            .unwrap();
        let h = with_bind.open(b"/mnt/data/inside").unwrap();
        assert_eq!(with_bind.pread(h, &mut buf, 0), Ok(2));
        assert_eq!(
            with_bind.open(b"/mnt/data/../../outside"),
            Err(Errno::ENOENT)
        );
        // A pod's second root: `1:/path` beneath it, confined the same way.
        let second = base.join("second");
        std::fs::create_dir_all(&second).unwrap();
        std::fs::write(second.join("marker"), b"two").unwrap();
        assert_eq!(s.add_root(&second).unwrap(), 1);
        let h = s.open(b"1:/marker").unwrap();
        assert_eq!(s.pread(h, &mut buf, 0), Ok(3));
        assert_eq!(s.open(b"/marker"), Err(Errno::ENOENT));
        assert_eq!(s.open(b"1:/etc/inside"), Err(Errno::ENOENT));
        assert_eq!(s.open(b"1:/../outside"), Err(Errno::ENOENT));
        assert_eq!(s.open(b"2:/marker"), Err(Errno::ENOENT));
        assert_eq!(s.open(b"0:/etc/inside"), Err(Errno::ENOENT));
        assert!(s.add_root(&base.join("missing")).is_err());
        let mut link = [0u8; 64];
        assert_eq!(s.readlink(b"/abs-link", &mut link), Ok(8));
        assert_eq!(&link[..8], b"/outside");
        assert_eq!(s.readlink(b"/etc/inside", &mut link), Err(Errno::EINVAL));
        // Device nodes of the host are never opened for the guest.
        let host_root = services(Path::new("/"));
        assert_eq!(host_root.open(b"/dev/null"), Err(Errno::EACCES));
        assert_eq!(
            host_root
                .open(b"/dev/kvm")
                .err()
                .map(|e| e == Errno::EACCES || e == Errno::ENOENT),
            Some(true)
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
