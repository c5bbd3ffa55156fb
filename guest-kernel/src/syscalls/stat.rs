//! stat, lstat, newfstatat, access, faccessat, faccessat2 on container paths.
//!
//! Until the VFS arrives, paths resolve on the host beneath the container
//! root (a final symlink is described by a host `lstat` when not followed)
//! or name one of the sentry's devices.

use super::{arg_fd, Args};
use crate::abi::linux::Stat;
use crate::abi::{Errno, KResult};
use crate::fs::DevKind;
use crate::kernel::Kernel;
use crate::platform::Platform;

const AT_FDCWD: i32 = -100;
const AT_EMPTY_PATH: u64 = 0x1000;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const PATH_MAX: usize = 4095;
const R_OK: u64 = 4;
const W_OK: u64 = 2;
const X_OK: u64 = 1;

/// Resolve `dirfd` + `path` to a normalized absolute container path. The
/// host resolves symlinks again beneath the root, so a lexical `..` here
/// can never leave it.
pub fn full_path<P: Platform>(
    k: &mut Kernel<'_, P>,
    dirfd: i32,
    path: &[u8],
) -> KResult<alloc::vec::Vec<u8>> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.split(|b| *b == b'/').any(|c| c.len() > 255) {
        return Err(Errno::ENAMETOOLONG);
    }
    let base = if path.starts_with(b"/") || dirfd == AT_FDCWD {
        k.group().cwd.clone()
    } else {
        match k.group().fds.get(dirfd)?.path() {
            Some(p) => p.to_vec(),
            None => return Err(Errno::ENOTDIR),
        }
    };
    Ok(super::dir::normalize(&crate::loader::join(&base, path)))
}

fn stat_path<P: Platform>(k: &mut Kernel<'_, P>, full: &[u8], follow: bool) -> KResult<Stat> {
    if follow {
        // A /proc/PID/fd/N magic link names the open file itself.
        if let Some(file) = super::open::proc_fd_file(k, full) {
            return super::io::stat_of(k, &file);
        }
    }
    if super::procfs::is_proc(full) {
        return match super::procfs::lookup(k, full, follow)? {
            Ok(n) => Ok(super::procfs::stat(&n, full.len() as u64)),
            Err(target) => stat_path(k, &target, true),
        };
    }
    let node = k.vfs.lookup(k.plat, full, follow)?;
    if let crate::fs::vfs::Node::Proc(p) = &node {
        if p.as_slice() != full {
            // Reached through a symlink (/dev/fd/N).
            return stat_path(k, &p.clone(), follow);
        }
    }
    if let (false, crate::fs::vfs::Node::Host(p)) = (follow, &node) {
        // A final symlink of the lower layer is described, not followed.
        if let Ok(st) = k.vfs.lower_stat(k.plat, p, false) {
            return Ok(st);
        }
    }
    k.vfs.stat(k.plat, &node)
}

fn stat_common<P: Platform>(
    k: &mut Kernel<'_, P>,
    dirfd: i32,
    path: u64,
    buf: u64,
    flags: u64,
) -> KResult<u64> {
    let path = k.read_cstr(path, PATH_MAX)?;
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return super::io::sys_fstat(k, [dirfd as u32 as u64, buf, 0, 0, 0, 0]);
    }
    let full = full_path(k, dirfd, &path)?;
    let st = stat_path(k, &full, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    k.copy_out(buf, &st.to_bytes())?;
    Ok(0)
}

/// stat(2).
pub fn sys_stat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    stat_common(k, AT_FDCWD, a[0], a[1], 0)
}

/// lstat(2).
pub fn sys_lstat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    stat_common(k, AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW)
}

/// newfstatat(2).
pub fn sys_newfstatat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    stat_common(k, arg_fd(a[0]), a[1], a[2], a[3])
}

fn access_common<P: Platform>(
    k: &mut Kernel<'_, P>,
    dirfd: i32,
    path: u64,
    mode: u64,
) -> KResult<u64> {
    if mode & !(R_OK | W_OK | X_OK) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = k.read_cstr(path, PATH_MAX)?;
    let full = full_path(k, dirfd, &path)?;
    let st = stat_path(k, &full, true)?;
    // The mount's own read-only flag: a bind's, or the root's.
    let readonly = match k.vfs.bind_of(&full) {
        Some((_, writable)) => !writable,
        None => k.vfs.readonly && !full.starts_with(b"/tmp") && DevKind::lookup(&full).is_none(),
    };
    if mode & W_OK != 0 && readonly {
        return Err(Errno::EROFS);
    }
    check_access(k.group().creds, &st, mode)?;
    Ok(0)
}

/// access(2).
pub fn sys_access<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    access_common(k, AT_FDCWD, a[0], a[1])
}

/// faccessat(2) and faccessat2(2).
pub fn sys_faccessat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    access_common(k, arg_fd(a[0]), a[1], a[2])
}

/// statx(2).
pub fn sys_statx<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (dirfd, flags, buf) = (arg_fd(a[0]), a[2], a[4]);
    let path = k.read_cstr(a[1], PATH_MAX)?;
    let st = if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        let file = k.group().fds.get(dirfd)?;
        super::io::stat_of(k, &file)?
    } else {
        let full = full_path(k, dirfd, &path)?;
        stat_path(k, &full, flags & AT_SYMLINK_NOFOLLOW == 0)?
    };
    let mut b = [0u8; 256];
    let put32 =
        |b: &mut [u8; 256], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |b: &mut [u8; 256], off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut b, 0, 0x7ff); // STATX_BASIC_STATS
    put32(&mut b, 4, st.st_blksize as u32);
    put32(&mut b, 16, st.st_nlink as u32);
    put32(&mut b, 20, st.st_uid);
    put32(&mut b, 24, st.st_gid);
    b[28..30].copy_from_slice(&(st.st_mode as u16).to_le_bytes());
    put64(&mut b, 32, st.st_ino);
    put64(&mut b, 40, st.st_size as u64);
    put64(&mut b, 48, st.st_blocks as u64);
    for (off, sec, nsec) in [
        (0x40, st.st_atime, st.st_atime_nsec),
        (0x60, st.st_ctime, st.st_ctime_nsec),
        (0x70, st.st_mtime, st.st_mtime_nsec),
    ] {
        put64(&mut b, off, sec as u64);
        put32(&mut b, off + 8, nsec as u32);
    }
    let (rmaj, rmin) = (
        (st.st_rdev >> 8) & 0xfff,
        (st.st_rdev & 0xff) | ((st.st_rdev >> 12) & 0xfff00),
    );
    let (dmaj, dmin) = (
        (st.st_dev >> 8) & 0xfff,
        (st.st_dev & 0xff) | ((st.st_dev >> 12) & 0xfff00),
    );
    put32(&mut b, 0x80, rmaj as u32);
    put32(&mut b, 0x84, rmin as u32);
    put32(&mut b, 0x88, dmaj as u32);
    put32(&mut b, 0x8c, dmin as u32);
    k.copy_out(buf, &b)?;
    Ok(0)
}

/// statfs(2) and fstatfs(2): the container root is a read-only filesystem.
pub fn sys_statfs<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = k.read_cstr(a[0], PATH_MAX)?;
    let full = full_path(k, AT_FDCWD, &path)?;
    stat_path(k, &full, true)?;
    write_statfs(k, Some(&full), a[1])
}

pub fn sys_fstatfs<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let path = match &*file {
        crate::fs::File::Pipe(_) => None,
        f => Some(f.path().unwrap_or(b"/dev").to_vec()),
    };
    write_statfs(k, path.as_deref(), a[1])
}

/// `struct statfs` of the filesystem `path` is on (`None`: a pipe).
fn write_statfs<P: Platform>(k: &mut Kernel<'_, P>, path: Option<&[u8]>, buf: u64) -> KResult<u64> {
    const OVERLAYFS_MAGIC: u64 = 0x794c_7630;
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const PROC_MAGIC: u64 = 0x9fa0;
    const PIPEFS_MAGIC: u64 = 0x5049_5045;
    const SYSFS_MAGIC: u64 = 0x6265_6572;
    const ST_RDONLY: u64 = 1;
    const ST_NOSUID: u64 = 2;
    let mount = path.map(|p| k.vfs.mount_of(p));
    let (magic, flags) = match mount {
        None => (PIPEFS_MAGIC, 0),
        Some(0) if k.vfs.readonly => (OVERLAYFS_MAGIC, ST_RDONLY),
        Some(0) => (OVERLAYFS_MAGIC, 0),
        Some(1) => (PROC_MAGIC, ST_NOSUID),
        Some(2) => (SYSFS_MAGIC, ST_RDONLY | ST_NOSUID),
        Some(_) => (TMPFS_MAGIC, ST_NOSUID),
    };
    // Every tmpfs (and the overlay's upper layer) shares one memory budget.
    let (limit, used) = crate::fs::filedata::usage();
    let (blocks, free) = match magic {
        PROC_MAGIC | PIPEFS_MAGIC | SYSFS_MAGIC => (0, 0),
        _ => (limit / 4096, limit.saturating_sub(used) / 4096),
    };
    let files = if blocks == 0 { 0 } else { blocks / 4 };
    let mut b = [0u8; 120];
    let id = mount.unwrap_or(99) as u64;
    // f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree,
    // f_fsid (2 x i32), f_namelen, f_frsize, f_flags
    let fields: [u64; 11] = [
        magic, 4096, blocks, free, free, files, files, id, 255, 4096, flags,
    ];
    for (i, v) in fields.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    k.copy_out(buf, &b)?;
    Ok(0)
}

/// Whether credentials `c` may access a file with `st` for `want`
/// (`R_OK`/`W_OK`/`X_OK` bits): Linux's `generic_permission`, with root's
/// capabilities (CAP_DAC_OVERRIDE: all but execute without any x bit).
pub fn check_access(c: crate::task::Credentials, st: &Stat, want: u64) -> KResult<()> {
    let is_dir = st.st_mode & crate::abi::linux::S_IFMT == crate::abi::linux::S_IFDIR;
    if c.euid == 0 {
        if want & X_OK != 0 && !is_dir && st.st_mode & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
        return Ok(());
    }
    let bits = if st.st_uid == c.euid {
        (st.st_mode >> 6) & 7
    } else if st.st_gid == c.egid {
        (st.st_mode >> 3) & 7
    } else {
        st.st_mode & 7
    };
    if u64::from(bits) & want == want {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}
