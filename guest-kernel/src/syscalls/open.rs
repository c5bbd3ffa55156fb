//! open, openat, lseek, pread64, pwrite64, truncate, ftruncate, fsync.

use alloc::sync::Arc;
use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{arg_fd, Args};
use crate::abi::linux::{RLIMIT_NOFILE, S_IFDIR, S_IFMT};
use crate::abi::{Errno, KResult};
use crate::fs::tmpfs::InodeKind;
use crate::fs::vfs::Node;
use crate::fs::{DirFile, File, TmpFile};
use crate::kernel::Kernel;
use crate::platform::{Clock, HostOps, Platform};

pub const AT_FDCWD: i32 = -100;
const O_ACCMODE: u64 = 3;
const O_CREAT: u64 = 0o100;
const O_EXCL: u64 = 0o200;
const O_TRUNC: u64 = 0o1000;
/// `O_APPEND` as kept in a tmpfs file's flags.
pub const O_APPEND_BIT: u32 = 0o2000;
const O_NONBLOCK: u64 = 0o4000;
const O_DIRECTORY: u64 = 0o200000;
const O_NOFOLLOW: u64 = 0o400000;
const O_CLOEXEC: u64 = 0o2000000;
const O_PATH: u64 = 0o10000000;
const O_TMPFILE: u64 = 0o20000000;
/// Bounce-buffer size for tmpfs I/O.
const CHUNK: usize = 64 * 1024;

/// The current wall-clock time as (seconds, nanoseconds).
pub fn now<P: Platform>(k: &Kernel<'_, P>) -> (i64, i64) {
    let ns = k.plat.now(Clock::Realtime);
    ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64)
}

/// Read a tmpfs file at `off` into user memory.
pub fn pread_tmp<P: Platform>(
    k: &mut Kernel<'_, P>,
    t: &TmpFile,
    buf: u64,
    len: u64,
    off: u64,
) -> KResult<u64> {
    if !k.frames.shared.is_empty() {
        // Shared mappings may hold newer bytes than the file.
        k.frames
            .shared
            .flush(k.plat, &t.fs.data(t.ino)?, off, len.min(u64::MAX - off));
    }
    let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < len {
        let want = ((len - done) as usize).min(CHUNK);
        let n = t.fs.read(t.ino, &mut tmp[..want], off + done)?;
        if n == 0 {
            break;
        }
        k.copy_out(buf + done, &tmp[..n])?;
        done += n as u64;
    }
    Ok(done)
}

/// Write user memory into a tmpfs file at `off`.
pub fn pwrite_tmp<P: Platform>(
    k: &mut Kernel<'_, P>,
    t: &TmpFile,
    buf: u64,
    len: u64,
    off: u64,
) -> KResult<u64> {
    let mut tmp = vec![0u8; (len as usize).min(CHUNK)];
    let mut done = 0u64;
    let stamp = now(k);
    while done < len {
        let n = ((len - done) as usize).min(CHUNK);
        if let Err(e) = k.copy_in(buf + done, &mut tmp[..n]) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        t.fs.write(t.ino, &tmp[..n], off + done, stamp)?;
        done += n as u64;
    }
    if !k.frames.shared.is_empty() {
        k.frames
            .shared
            .refresh(k.plat, &t.fs.data(t.ino)?, off, done);
    }
    Ok(done)
}

/// Install `file` in the lowest free descriptor (`O_CLOEXEC` from
/// `flags`), or release it if the table is full.
pub(super) fn install<P: Platform>(k: &mut Kernel<'_, P>, file: File, flags: u64) -> KResult<u64> {
    install_arc(k, Arc::new(file), flags)
}

fn install_arc<P: Platform>(k: &mut Kernel<'_, P>, file: Arc<File>, flags: u64) -> KResult<u64> {
    let limit = k.group().rlimits[RLIMIT_NOFILE as usize].0;
    match k
        .group_mut()
        .fds
        .install(file.clone(), flags & O_CLOEXEC != 0, limit)
    {
        Ok(fd) => Ok(fd as u64),
        Err(e) => {
            super::io::release_file(k, file);
            Err(e)
        }
    }
}

fn tmp_file(
    fs: Arc<crate::fs::tmpfs::Tmpfs>,
    ino: u64,
    flags: u64,
    path: alloc::vec::Vec<u8>,
) -> File {
    let kept = (flags & O_ACCMODE) as u32 | (flags as u32 & (O_APPEND_BIT | O_NONBLOCK as u32));
    File::Tmpfs(TmpFile::new(fs, ino, kept, path))
}

/// openat(2).
pub fn sys_openat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (dirfd, flags, mode) = (arg_fd(a[0]), a[2], a[3] as u32);
    let path = k.read_cstr(a[1], 4095)?;
    if flags & O_TMPFILE == O_TMPFILE {
        return Err(Errno::EOPNOTSUPP);
    }
    let full = super::stat::full_path(k, dirfd, &path)?;
    open_full(k, full, flags, mode)
}

/// Every `O_*` flag open(2) knows (`O_LARGEFILE` and `O_NOATIME` included).
const O_ALL: u64 = 0o37777703;

/// openat2(2): `struct open_how` with strict flag checks and the
/// `RESOLVE_*` restrictions.
pub fn sys_openat2<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    use super::resolve::{RESOLVE_ALL, RESOLVE_BENEATH, RESOLVE_CACHED, RESOLVE_IN_ROOT};
    let (dirfd, how, size) = (arg_fd(a[0]), a[2], a[3]);
    const OPEN_HOW_SIZE_VER0: u64 = 24;
    if size < OPEN_HOW_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let mut raw = vec![0u8; size as usize];
    k.copy_in(how, &mut raw)?;
    // A larger struct from a newer libc is fine if its extra fields are 0.
    if raw[24..].iter().any(|b| *b != 0) {
        return Err(Errno::E2BIG);
    }
    let field = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (flags, mode, resolve) = (field(0), field(1), field(2));
    if flags & !O_ALL != 0 || resolve & !RESOLVE_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    // Unlike open(2), a mode without O_CREAT is an error, not ignored.
    if mode & !0o7777 != 0 || (flags & (O_CREAT | O_TMPFILE) == 0 && mode != 0) {
        return Err(Errno::EINVAL);
    }
    if resolve & RESOLVE_BENEATH != 0 && resolve & RESOLVE_IN_ROOT != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & O_TMPFILE == O_TMPFILE {
        return Err(Errno::EOPNOTSUPP);
    }
    if resolve & RESOLVE_CACHED != 0 && flags & (O_CREAT | O_TRUNC) != 0 {
        return Err(Errno::EAGAIN);
    }
    let path = k.read_cstr(a[1], 4095)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.split(|b| *b == b'/').any(|c| c.len() > 255) {
        return Err(Errno::ENAMETOOLONG);
    }
    let base = if dirfd == AT_FDCWD {
        k.group().cwd.clone()
    } else {
        k.group()
            .fds
            .get(dirfd)?
            .path()
            .ok_or(Errno::ENOTDIR)?
            .to_vec()
    };
    let follow = flags & O_NOFOLLOW == 0;
    let full = super::resolve::walk(k, &base, &path, resolve, follow)?;
    open_full(k, full, flags, mode as u32)
}

/// Open the normalized absolute path `full`.
fn open_full<P: Platform>(
    k: &mut Kernel<'_, P>,
    full: alloc::vec::Vec<u8>,
    flags: u64,
    mode: u32,
) -> KResult<u64> {
    let acc = flags & O_ACCMODE;
    if acc == 3 {
        return Err(Errno::EINVAL);
    }
    let follow = flags & O_NOFOLLOW == 0;
    if super::procfs::is_proc(&full) {
        match proc_open(k, &full, flags, mode, follow)? {
            Some(fd) => return Ok(fd),
            None => return Err(Errno::ENOENT),
        }
    }
    let stamp = now(k);
    let node = match k.vfs.lookup(k.plat, &full, follow) {
        Ok(n) => {
            if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            n
        }
        Err(Errno::ENOENT) if flags & O_CREAT != 0 => {
            if flags & O_DIRECTORY != 0 {
                return Err(Errno::EINVAL);
            }
            if super::bindfs::writes_through(k, &full)? {
                let mode = mode & !k.group().umask;
                let file = super::bindfs::create(k, &full, flags, mode)?;
                return install(k, file, flags);
            }
            let (fs, parent, name, overlay) = k.vfs.parent_for_create(k.plat, &full, stamp)?;
            // A new file in the root is a write to it, like any other.
            if overlay && k.vfs.readonly {
                return Err(Errno::EROFS);
            }
            super::stat::check_access(k.group().creds, &fs.stat(parent)?, 3)?;
            let umask = k.group().umask;
            let c = k.group().creds;
            let ino = fs.create(
                parent,
                &name,
                InodeKind::File {
                    data: Default::default(),
                },
                mode & !umask,
                (c.euid, c.egid),
                stamp,
            )?;
            return install(k, tmp_file(fs, ino, flags, full), flags);
        }
        Err(e) => return Err(e),
    };
    if flags & O_PATH == 0 && !matches!(node, Node::Dev(_)) {
        let st = k.vfs.stat(k.plat, &node)?;
        let want = match acc {
            0 => 4,
            1 => 2,
            _ => 6,
        } | if flags & O_TRUNC != 0 { 2 } else { 0 };
        super::stat::check_access(k.group().creds, &st, want)?;
    }
    let file = match node {
        Node::Dev(crate::fs::DevKind::Tty) => return open_ctty(k, flags),
        Node::Dev(crate::fs::DevKind::Ptmx) if flags & O_PATH == 0 => {
            return super::tty::open_ptmx(k, flags as u32)
        }
        Node::Dev(crate::fs::DevKind::Pts(n)) if flags & O_PATH == 0 => {
            return super::tty::open_pts(k, n, flags as u32)
        }
        Node::Dev(d) => File::Dev(d),
        Node::DevDir | Node::PtsDir | Node::Tmp { .. } if is_dir(k, &node)? => {
            if acc != 0 {
                return Err(Errno::EISDIR);
            }
            let entries = k.vfs.list(k.plat, &node)?;
            File::Dir(DirFile {
                entries,
                pos: AtomicU64::new(0),
                path: full,
                node,
            })
        }
        // A path that led into /proc through a symlink (/dev/fd/N).
        Node::Proc(p) => {
            return match proc_open(k, &p, flags, mode, follow)? {
                Some(fd) => Ok(fd),
                None => Err(Errno::ENOENT),
            }
        }
        Node::DevDir | Node::PtsDir => return Err(Errno::ENOENT),
        // Only reached unfollowed (O_NOFOLLOW, O_PATH): as for any symlink.
        Node::Symlink(_) => return Err(Errno::ELOOP),
        Node::Tmp { fs, ino, .. } => {
            if flags & O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            match fs.inode(ino)?.kind {
                InodeKind::Symlink { .. } if flags & O_PATH == 0 => return Err(Errno::ELOOP),
                InodeKind::File { .. } if flags & O_TRUNC != 0 && acc != 0 => {
                    fs.truncate(ino, 0, stamp)?
                }
                _ => {}
            }
            tmp_file(fs, ino, flags, full)
        }
        Node::Host(p) => {
            let st = k.vfs.lower_stat(k.plat, &p, true)?;
            let dir = st.st_mode & S_IFMT == S_IFDIR;
            if dir && acc != 0 {
                return Err(Errno::EISDIR);
            }
            if !dir && flags & O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            if !dir && (acc != 0 || flags & O_TRUNC != 0) && super::bindfs::writes_through(k, &p)? {
                super::bindfs::open(k, &p, flags & !(O_CREAT | O_EXCL), 0)?
            } else if !dir && (acc != 0 || flags & O_TRUNC != 0) {
                // First write to a lower file: copy it up into the sandbox.
                if k.vfs.readonly {
                    return Err(Errno::EROFS);
                }
                let ino = k.vfs.copy_up_file(k.plat, &p, stamp)?;
                let fs = k.vfs.upper.clone();
                if flags & O_TRUNC != 0 {
                    fs.truncate(ino, 0, stamp)?;
                }
                tmp_file(fs, ino, flags, full)
            } else {
                let handle = k.plat.host().open(&k.vfs.host_path(&p))?;
                File::HostFile {
                    handle,
                    offset: AtomicU64::new(0),
                    path: full,
                    flags: 0,
                    cache: super::cached::identity(k, &p, &st),
                }
            }
        }
    };
    install(k, file, flags)
}

fn is_dir<P: Platform>(k: &Kernel<'_, P>, node: &Node) -> KResult<bool> {
    Ok(k.vfs.stat(k.plat, node)?.st_mode & S_IFMT == S_IFDIR)
}

/// open(2).
pub fn sys_open<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_openat(k, [AT_FDCWD as u32 as u64, a[0], a[1], a[2], 0, 0])
}

/// creat(2).
pub fn sys_creat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_openat(
        k,
        [
            AT_FDCWD as u32 as u64,
            a[0],
            O_CREAT | 1 | O_TRUNC,
            a[1],
            0,
            0,
        ],
    )
}

/// lseek(2).
pub fn sys_lseek<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let (offset, size) = match &*file {
        File::HostFile { handle, offset, .. } => (
            offset,
            if a[2] == 2 {
                k.plat.host().fstat(*handle)?.st_size
            } else {
                0
            },
        ),
        File::Tmpfs(t) => (
            &t.offset,
            if a[2] == 2 {
                t.fs.stat(t.ino)?.st_size
            } else {
                0
            },
        ),
        File::Dir(d) => (&d.pos, d.entries.len() as i64),
        _ => return Err(Errno::ESPIPE),
    };
    let off = a[1] as i64;
    let base = match a[2] {
        0 => 0,
        1 => offset.load(Ordering::Relaxed) as i64,
        2 => size,
        _ => return Err(Errno::EINVAL),
    };
    let new = base
        .checked_add(off)
        .filter(|n| *n >= 0)
        .ok_or(Errno::EINVAL)?;
    offset.store(new as u64, Ordering::Relaxed);
    Ok(new as u64)
}

/// Linux's check of a positioned transfer: the offset and its end must
/// be valid `loff_t`s.
fn rw_verify_area(off: u64, len: u64) -> KResult<()> {
    match (off as i64).checked_add(len as i64) {
        Some(_) if (off as i64) >= 0 => Ok(()),
        _ => Err(Errno::EINVAL),
    }
}

/// pread64(2).
pub fn sys_pread64<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let len = a[2].min(0x7fff_f000);
    rw_verify_area(a[3], len)?;
    match &*file {
        File::HostFile { handle, cache, .. } => {
            super::cached::pread(k, *handle, *cache, a[1], len, a[3])
        }
        File::Tmpfs(t) if t.flags.load(Ordering::Relaxed) & 3 != 1 => {
            pread_tmp(k, t, a[1], len, a[3])
        }
        File::Tmpfs(_) => Err(Errno::EBADF),
        File::Dir(_) => Err(Errno::EISDIR),
        _ => Err(Errno::ESPIPE),
    }
}

/// pwrite64(2).
pub fn sys_pwrite64<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    rw_verify_area(a[3], a[2].min(0x7fff_f000))?;
    match &*file {
        File::Tmpfs(t) if t.flags.load(Ordering::Relaxed) & 3 != 0 => {
            pwrite_tmp(k, t, a[1], a[2].min(0x7fff_f000), a[3])
        }
        File::HostFile { handle, flags, .. } if flags & 3 != 0 => {
            super::bindfs::pwrite(k, *handle, a[1], a[2].min(0x7fff_f000), a[3])
        }
        File::Tmpfs(_) | File::HostFile { .. } | File::Dir(_) => Err(Errno::EBADF),
        _ => Err(Errno::ESPIPE),
    }
}

/// ftruncate(2).
pub fn sys_ftruncate<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let stamp = now(k);
    match &*file {
        File::Tmpfs(t) if t.flags.load(Ordering::Relaxed) & 3 != 0 => {
            t.fs.truncate(t.ino, a[1], stamp)?;
            Ok(0)
        }
        File::HostFile { handle, flags, .. } if flags & 3 != 0 => {
            k.plat.host().ftruncate(*handle, a[1])?;
            Ok(0)
        }
        File::Tmpfs(_) | File::HostFile { .. } => Err(Errno::EBADF),
        _ => Err(Errno::EINVAL),
    }
}

/// fallocate(2) on tmpfs and overlay files: space is memory, so allocating
/// is growing the size, and punching a hole or zeroing a range writes zeros.
pub fn sys_fallocate<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const KEEP_SIZE: u64 = 1;
    const PUNCH_HOLE: u64 = 2;
    const ZERO_RANGE: u64 = 0x10;
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let (mode, off, len) = (a[1] & 0xffff_ffff, a[2] as i64, a[3] as i64);
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let end = (off as u64)
        .checked_add(len as u64)
        .filter(|e| *e <= i64::MAX as u64)
        .ok_or(Errno::EFBIG)?;
    let t = match &*file {
        File::Tmpfs(t) if t.flags.load(Ordering::Relaxed) & 3 != 0 => t,
        File::Tmpfs(_) | File::HostFile { .. } => return Err(Errno::EBADF),
        File::Pipe(_) | File::Socket(_) => return Err(Errno::ESPIPE),
        File::Dir(_) => return Err(Errno::EISDIR),
        _ => return Err(Errno::ENODEV),
    };
    if mode & PUNCH_HOLE != 0 && mode & ZERO_RANGE != 0 {
        return Err(Errno::EINVAL);
    }
    if mode & PUNCH_HOLE != 0 && mode & KEEP_SIZE == 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if mode & !(KEEP_SIZE | PUNCH_HOLE | ZERO_RANGE) != 0 {
        // COLLAPSE/INSERT_RANGE and friends: tmpfs has none of them either.
        return Err(Errno::EOPNOTSUPP);
    }
    let stamp = now(k);
    let size = t.fs.stat(t.ino)?.st_size as u64;
    if mode & (PUNCH_HOLE | ZERO_RANGE) != 0 {
        // Zero what exists of the range; growing is done below.
        let zero_end = end.min(size);
        let zeros = vec![0u8; CHUNK];
        let mut at = off as u64;
        while at < zero_end {
            let n = ((zero_end - at) as usize).min(CHUNK);
            t.fs.write(t.ino, &zeros[..n], at, stamp)?;
            at += n as u64;
        }
    }
    if mode & KEEP_SIZE == 0 && end > size {
        t.fs.truncate(t.ino, end, stamp)?;
    }
    Ok(0)
}

/// truncate(2).
pub fn sys_truncate<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = k.read_cstr(a[0], 4095)?;
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let full = super::stat::full_path(k, AT_FDCWD, &path)?;
    if super::bindfs::writes_through(k, &full)? {
        return super::bindfs::truncate(k, &full, a[1]);
    }
    let stamp = now(k);
    let (fs, ino) = super::namei::writable_inode(k, &full, stamp)?;
    fs.truncate(ino, a[1], stamp)?;
    Ok(0)
}

/// fsync(2), fdatasync(2), syncfs(2): the sandbox's files live in memory;
/// a file written through a bind mount is flushed on the host.
pub fn sys_fsync<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    if let Some(h) = super::bindfs::writable(&file) {
        super::bindfs::flush_mapped(k, h, 0, u64::MAX);
        k.plat.host().fsync(h)?;
    }
    Ok(0)
}

/// Open a `/proc` path: a file is a snapshot in a private tmpfs, a
/// directory its entries. `None` if it leads out of `/proc` (a symlink such
/// as `/proc/self/cwd`), which the caller then opens itself.
fn proc_open<P: Platform>(
    k: &mut Kernel<'_, P>,
    full: &[u8],
    flags: u64,
    mode: u32,
    follow: bool,
) -> KResult<Option<u64>> {
    use super::procfs::ProcNode;
    if follow {
        if let Some(file) = proc_fd_file(k, full) {
            // A magic link: a file with a path opens anew (its own offset
            // and flags); a pipe, socket or stream is the same file again.
            return match file.path() {
                Some(p) => {
                    let p = p.to_vec();
                    open_full(k, p, flags, mode).map(Some)
                }
                None => install_arc(k, file, flags).map(Some),
            };
        }
    }
    let writes = flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0;
    let node = match super::procfs::lookup(k, full, follow) {
        Ok(Ok(n)) => n,
        // A magic link (`root`, `cwd`, `fd/N`) to a container path: opened
        // for writing, it is that path opened for writing, with every check
        // (and `EROFS`) of the normal open.
        Ok(Err(target)) if writes => return open_full(k, target, flags, mode).map(Some),
        Ok(Err(target)) => return open_path(k, &target, flags).map(Some),
        // /sys is mounted read-only.
        Err(_) if writes && full.starts_with(b"/sys") => return Err(Errno::EROFS),
        Err(_) if writes => return Err(Errno::EACCES),
        Err(e) => return Err(e),
    };
    if writes && full.starts_with(b"/sys") {
        return Err(Errno::EROFS);
    }
    if writes {
        return Err(Errno::EACCES);
    }
    let file = match node {
        ProcNode::Dir(entries) => {
            let entries = entries
                .into_iter()
                .enumerate()
                .map(|(i, (n, t))| (n, 100 + i as u64, t))
                .collect();
            File::Dir(DirFile {
                entries,
                pos: AtomicU64::new(0),
                path: full.to_vec(),
                node: Node::Proc(full.to_vec()),
            })
        }
        ProcNode::File(data) => {
            if flags & O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            let fs = Arc::new(crate::fs::tmpfs::Tmpfs::new(0x40, 0o555));
            let ino = fs.create(
                crate::fs::tmpfs::ROOT_INO,
                b"f",
                InodeKind::File {
                    data: crate::fs::filedata::FileData::from_bytes(&data)?,
                },
                0o444,
                (0, 0),
                now(k),
            )?;
            tmp_file(fs, ino, 0, full.to_vec())
        }
        ProcNode::Symlink(_) => return Err(Errno::ELOOP),
    };
    install(k, file, flags).map(Some)
}

/// `/dev/tty`: the calling process's controlling terminal, which here is
/// the host terminal its standard streams are on; ENXIO without one.
fn open_ctty<P: Platform>(k: &mut Kernel<'_, P>, flags: u64) -> KResult<u64> {
    // As the job-control ioctls: a host terminal on a standard stream is
    // the session's terminal.
    for fd in 0..3 {
        if let Ok(file) = k.group().fds.get(fd) {
            if let File::HostStream { handle } = &*file {
                if k.plat.host().tcgets(*handle).is_ok() {
                    return install_arc(k, file, flags);
                }
            }
        }
    }
    Err(Errno::ENXIO)
}

/// The open file behind `/proc/{self,thread-self,PID}/fd/N`.
pub fn proc_fd_file<P: Platform>(k: &Kernel<'_, P>, full: &[u8]) -> Option<Arc<File>> {
    let parts: alloc::vec::Vec<&[u8]> = full
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let [b"proc", who, b"fd", n] = parts.as_slice() else {
        return None;
    };
    let tgid = match *who {
        b"self" | b"thread-self" => k.cur().tgid,
        pid => core::str::from_utf8(pid).ok()?.parse().ok()?,
    };
    let fd: i32 = core::str::from_utf8(n).ok()?.parse().ok()?;
    k.groups.get(&tgid)?.fds.get(fd).ok()
}

/// Open an absolute, normalized path read-only (a `/proc` symlink's target).
fn open_path<P: Platform>(k: &mut Kernel<'_, P>, full: &[u8], flags: u64) -> KResult<u64> {
    let node = k.vfs.lookup(k.plat, full, true)?;
    // A root file's attributes: whether it is a directory, and its
    // page-cache identity.
    let host_file = match &node {
        Node::Host(p) => {
            Some(k.vfs.lower_stat(k.plat, p, true)?).filter(|st| st.st_mode & S_IFMT != S_IFDIR)
        }
        _ => None,
    };
    let file = match node {
        Node::Dev(crate::fs::DevKind::Tty) => return open_ctty(k, flags),
        Node::Dev(d) => File::Dev(d),
        Node::Tmp { fs, ino, .. }
            if !is_dir(
                k,
                &Node::Tmp {
                    fs: fs.clone(),
                    ino,
                    overlay_path: None,
                },
            )? =>
        {
            tmp_file(fs, ino, flags & !O_ACCMODE, full.to_vec())
        }
        Node::Host(p) if host_file.is_some() => {
            let st = host_file.ok_or(Errno::EIO)?;
            let handle = k.plat.host().open(&k.vfs.host_path(&p))?;
            File::HostFile {
                handle,
                offset: AtomicU64::new(0),
                path: full.to_vec(),
                flags: 0,
                cache: super::cached::identity(k, &p, &st),
            }
        }
        node => {
            let entries = k.vfs.list(k.plat, &node)?;
            File::Dir(DirFile {
                entries,
                pos: AtomicU64::new(0),
                path: full.to_vec(),
                node,
            })
        }
    };
    install(k, file, flags)
}
