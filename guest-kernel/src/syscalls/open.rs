//! open, openat, lseek, pread64, pwrite64, truncate, ftruncate, fsync.

use alloc::sync::Arc;
use alloc::vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::{arg_fd, Args};
use crate::abi::linux::{RLIMIT_NOFILE, S_IFDIR, S_IFMT};
use crate::abi::{Errno, KResult};
use crate::fs::tmpfs::InodeKind;
use crate::fs::vfs::{host_stat, Node};
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
    Ok(done)
}

fn install<P: Platform>(k: &mut Kernel<'_, P>, file: File, flags: u64) -> KResult<u64> {
    let limit = k.group().rlimits[RLIMIT_NOFILE as usize].0;
    let file = Arc::new(file);
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
    File::Tmpfs(TmpFile {
        fs,
        ino,
        offset: AtomicU64::new(0),
        flags: AtomicU32::new(kept),
        path,
    })
}

/// openat(2).
pub fn sys_openat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (dirfd, flags, mode) = (arg_fd(a[0]), a[2], a[3] as u32);
    let path = k.read_cstr(a[1], 4095)?;
    if flags & O_TMPFILE == O_TMPFILE {
        return Err(Errno::EOPNOTSUPP);
    }
    let full = super::stat::full_path(k, dirfd, &path)?;
    let acc = flags & O_ACCMODE;
    if acc == 3 {
        return Err(Errno::EINVAL);
    }
    let follow = flags & O_NOFOLLOW == 0;
    if super::procfs::is_proc(&full) {
        match proc_open(k, &full, flags, follow)? {
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
            let (fs, parent, name, overlay) = k.vfs.parent_for_create(k.plat, &full, stamp)?;
            super::stat::check_access(k.group().creds, &fs.stat(parent)?, 3)?;
            let umask = k.group().umask;
            let c = k.group().creds;
            let ino = fs.create(
                parent,
                &name,
                InodeKind::File { data: vec![] },
                mode & !umask,
                (c.euid, c.egid),
                stamp,
            )?;
            let _ = overlay;
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
        Node::Dev(d) => File::Dev(d),
        Node::DevDir | Node::Tmp { .. } if is_dir(k, &node)? => {
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
        Node::DevDir | Node::Proc(_) => return Err(Errno::ENOENT),
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
            let st = host_stat(k.plat, &p)?;
            let dir = st.st_mode & S_IFMT == S_IFDIR;
            if dir && acc != 0 {
                return Err(Errno::EISDIR);
            }
            if !dir && flags & O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            if !dir && (acc != 0 || flags & O_TRUNC != 0) {
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
                let handle = k.plat.host().open(&p)?;
                File::HostFile {
                    handle,
                    offset: AtomicU64::new(0),
                    path: full,
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

/// pread64(2).
pub fn sys_pread64<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let len = a[2].min(0x7fff_f000);
    match &*file {
        File::HostFile { handle, .. } => super::io::pread_host(k, *handle, a[1], len, a[3]),
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
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    match &*file {
        File::Tmpfs(t) if t.flags.load(Ordering::Relaxed) & 3 != 0 => {
            pwrite_tmp(k, t, a[1], a[2].min(0x7fff_f000), a[3])
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
        File::Tmpfs(_) | File::HostFile { .. } => Err(Errno::EBADF),
        _ => Err(Errno::EINVAL),
    }
}

/// truncate(2).
pub fn sys_truncate<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = k.read_cstr(a[0], 4095)?;
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let full = super::stat::full_path(k, AT_FDCWD, &path)?;
    let stamp = now(k);
    let (fs, ino) = super::namei::writable_inode(k, &full, stamp)?;
    fs.truncate(ino, a[1], stamp)?;
    Ok(0)
}

/// fsync(2), fdatasync(2), syncfs(2): the sandbox's files live in memory.
pub fn sys_fsync<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    k.group().fds.get(arg_fd(a[0]))?;
    Ok(0)
}

/// Open a `/proc` path: a file is a snapshot in a private tmpfs, a
/// directory its entries. `None` if it leads out of `/proc` (a symlink such
/// as `/proc/self/cwd`), which the caller then opens itself.
fn proc_open<P: Platform>(
    k: &mut Kernel<'_, P>,
    full: &[u8],
    flags: u64,
    follow: bool,
) -> KResult<Option<u64>> {
    use super::procfs::ProcNode;
    if flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0 {
        return Err(Errno::EACCES);
    }
    let node = match super::procfs::lookup(k, full, follow)? {
        Ok(n) => n,
        Err(target) => return open_path(k, &target, flags).map(Some),
    };
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
                InodeKind::File { data },
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

/// Open an absolute, normalized path read-only (a `/proc` symlink's target).
fn open_path<P: Platform>(k: &mut Kernel<'_, P>, full: &[u8], flags: u64) -> KResult<u64> {
    let node = k.vfs.lookup(k.plat, full, true)?;
    let file = match node {
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
        Node::Host(p) if host_stat(k.plat, &p)?.st_mode & S_IFMT != S_IFDIR => {
            let handle = k.plat.host().open(&p)?;
            File::HostFile {
                handle,
                offset: AtomicU64::new(0),
                path: full.to_vec(),
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
