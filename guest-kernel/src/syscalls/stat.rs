//! stat, lstat, newfstatat, access, faccessat, faccessat2 on container paths.
//!
//! Until the VFS arrives, paths resolve on the host beneath the container
//! root (symlinks are followed, so `lstat` of a symlink reports its target)
//! or name one of the sentry's devices.

use super::{arg_fd, Args};
use crate::abi::linux::Stat;
use crate::abi::{Errno, KResult};
use crate::fs::DevKind;
use crate::kernel::Kernel;
use crate::platform::{HostOps, Platform};

const AT_FDCWD: i32 = -100;
const AT_EMPTY_PATH: u64 = 0x1000;
const PATH_MAX: usize = 4095;
const R_OK: u64 = 4;
const W_OK: u64 = 2;
const X_OK: u64 = 1;

/// Resolve `dirfd` + `path` to an absolute container path.
fn full_path<P: Platform>(
    k: &mut Kernel<'_, P>,
    dirfd: i32,
    path: &[u8],
) -> KResult<alloc::vec::Vec<u8>> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if dirfd != AT_FDCWD && !path.starts_with(b"/") {
        k.group().fds.get(dirfd)?;
        return Err(Errno::ENOSYS);
    }
    if path.split(|b| *b == b'/').any(|c| c.len() > 255) {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(crate::loader::join(&k.group().cwd, path))
}

fn stat_path<P: Platform>(k: &mut Kernel<'_, P>, full: &[u8]) -> KResult<Stat> {
    if let Some(d) = DevKind::lookup(full) {
        return Ok(Stat {
            st_dev: 5,
            st_ino: d.rdev(),
            st_nlink: 1,
            st_mode: crate::abi::linux::S_IFCHR | 0o666,
            st_rdev: d.rdev(),
            st_blksize: 4096,
            ..Default::default()
        });
    }
    let host = k.plat.host();
    let h = host.open(full)?;
    let st = host.fstat(h);
    host.close(h);
    st
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
    let st = stat_path(k, &full)?;
    k.copy_out(buf, &st.to_bytes())?;
    Ok(0)
}

/// stat(2).
pub fn sys_stat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    stat_common(k, AT_FDCWD, a[0], a[1], 0)
}

/// lstat(2).
pub fn sys_lstat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    stat_common(k, AT_FDCWD, a[0], a[1], 0)
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
    let st = stat_path(k, &full)?;
    if mode & W_OK != 0 && DevKind::lookup(&full).is_none() {
        return Err(Errno::EROFS);
    }
    let creds = k.group().creds;
    if mode & X_OK != 0 {
        // Even root needs one execute bit on a non-directory.
        let is_dir = st.st_mode & crate::abi::linux::S_IFMT == crate::abi::linux::S_IFDIR;
        if !is_dir && st.st_mode & 0o111 == 0 {
            return Err(Errno::EACCES);
        }
    }
    if creds.euid != 0 {
        let bits = if st.st_uid == creds.euid {
            (st.st_mode >> 6) & 7
        } else if st.st_gid == creds.egid {
            (st.st_mode >> 3) & 7
        } else {
            st.st_mode & 7
        };
        if u64::from(bits) & mode != mode & (R_OK | X_OK) {
            return Err(Errno::EACCES);
        }
    }
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
