//! Calls that change the namespace or an inode: mkdir, unlink, rmdir,
//! rename, symlink, link, readlink, chmod, chown, utimensat.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::bindfs;
use super::open::{now, AT_FDCWD};
use super::stat::full_path;
use super::{arg_fd, arg_i32, Args};
use crate::abi::linux::{S_IFCHR, S_IFDIR, S_IFIFO, S_IFMT, S_IFREG};
use crate::abi::{Errno, KResult};
use crate::fs::tmpfs::{InodeKind, Tmpfs};
use crate::fs::vfs::{split_last, Node};
use crate::fs::File;
use crate::kernel::Kernel;
use crate::platform::Platform;

const AT_REMOVEDIR: u64 = 0x200;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EMPTY_PATH: u64 = 0x1000;
const RENAME_NOREPLACE: u64 = 1;
const RENAME_EXCHANGE: u64 = 2;
const PATH_MAX: usize = 4095;

fn path_arg<P: Platform>(k: &mut Kernel<'_, P>, dirfd: i32, ptr: u64) -> KResult<Vec<u8>> {
    let p = k.read_cstr(ptr, PATH_MAX)?;
    full_path(k, dirfd, &p)
}

fn check_writable<P: Platform>(k: &Kernel<'_, P>, node: &Node) -> KResult<()> {
    match node {
        Node::Tmp {
            overlay_path: Some(_),
            ..
        }
        | Node::Host(_)
            if k.vfs.readonly =>
        {
            Err(Errno::EROFS)
        }
        Node::Dev(_) | Node::DevDir | Node::PtsDir | Node::Proc(_) | Node::Symlink(_) => {
            Err(Errno::EPERM)
        }
        _ => Ok(()),
    }
}

/// The tmpfs inode behind `path`, copying a lower file or directory up
/// into the sandbox first (for calls that change it).
pub fn writable_inode<P: Platform>(
    k: &mut Kernel<'_, P>,
    path: &[u8],
    stamp: (i64, i64),
) -> KResult<(Arc<Tmpfs>, u64)> {
    let node = k.vfs.lookup(k.plat, path, true)?;
    check_writable(k, &node)?;
    match node {
        Node::Tmp { fs, ino, .. } => Ok((fs, ino)),
        Node::Host(p) => {
            let st = k.vfs.lower_stat(k.plat, &p, true)?;
            let ino = if st.st_mode & S_IFMT == S_IFDIR {
                k.vfs.copy_up_dir(k.plat, &p, stamp)?
            } else {
                k.vfs.copy_up_file(k.plat, &p, stamp)?
            };
            Ok((k.vfs.upper.clone(), ino))
        }
        Node::Dev(_) | Node::DevDir | Node::PtsDir | Node::Proc(_) | Node::Symlink(_) => {
            Err(Errno::EPERM)
        }
    }
}

fn create_node<P: Platform>(
    k: &mut Kernel<'_, P>,
    path: &[u8],
    kind: InodeKind,
    mode: u32,
) -> KResult<u64> {
    let stamp = now(k);
    if k.vfs.lookup(k.plat, path, false).is_ok() {
        return Err(Errno::EEXIST);
    }
    let (fs, parent, name, overlay) = k.vfs.parent_for_create(k.plat, path, stamp)?;
    if overlay && k.vfs.readonly {
        return Err(Errno::EROFS);
    }
    super::stat::check_access(k.group().creds, &fs.stat(parent)?, 3)?;
    let c = k.group().creds;
    let umask = k.group().umask;
    let ino = fs.create(parent, &name, kind, mode & !umask, (c.euid, c.egid), stamp)?;
    // A new directory over a deleted lower one must not show the old contents.
    if overlay
        && matches!(fs.inode(ino)?.kind, InodeKind::Dir { .. })
        && k.vfs.lower_stat(k.plat, path, true).is_ok()
    {
        fs.set_opaque(ino);
    }
    Ok(0)
}

/// mkdirat(2).
pub fn sys_mkdirat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = path_arg(k, arg_fd(a[0]), a[1])?;
    if bindfs::writes_through(k, &path)? {
        return bindfs::mkdir(k, &path, a[2] as u32);
    }
    let kind = InodeKind::Dir {
        entries: Default::default(),
        parent: 0,
        opaque: false,
    };
    create_node(k, &path, kind, a[2] as u32)
}

/// mkdir(2).
pub fn sys_mkdir<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_mkdirat(k, [AT_FDCWD as u32 as u64, a[0], a[1], 0, 0, 0])
}

/// mknodat(2). Regular files are made as by `open(O_CREAT|O_EXCL)`. The
/// sentry has no FIFO or socket inodes (`ENOSYS`) and never makes device
/// nodes (`EPERM`), but the checks Linux makes first come first: an
/// existing name is `EEXIST`, and the read-only root is `EROFS`.
pub fn sys_mknodat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const S_IFSOCK: u32 = 0o140000;
    const S_IFBLK: u32 = 0o060000;
    let path = path_arg(k, arg_fd(a[0]), a[1])?;
    let mode = a[2] as u32;
    let refusal = match mode & S_IFMT {
        0 | S_IFREG => {
            let kind = InodeKind::File {
                data: Default::default(),
            };
            return create_node(k, &path, kind, mode & 0o7777);
        }
        S_IFIFO | S_IFSOCK => Errno::ENOSYS,
        S_IFCHR | S_IFBLK => Errno::EPERM,
        _ => return Err(Errno::EINVAL),
    };
    if k.vfs.lookup(k.plat, &path, false).is_ok() {
        return Err(Errno::EEXIST);
    }
    let (parent, _) = split_last(&path)?;
    let pnode = k.vfs.lookup(k.plat, &parent, true)?;
    check_writable(k, &pnode)?;
    Err(refusal)
}

/// mknod(2).
pub fn sys_mknod<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_mknodat(k, [AT_FDCWD as u32 as u64, a[0], a[1], a[2], 0, 0])
}

/// unlinkat(2).
pub fn sys_unlinkat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    if a[2] & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = path_arg(k, arg_fd(a[0]), a[1])?;
    if path == b"/" {
        return Err(Errno::EBUSY);
    }
    if bindfs::writes_through(k, &path)? {
        return bindfs::remove(k, &path, a[2] & AT_REMOVEDIR != 0);
    }
    let node = k.vfs.lookup(k.plat, &path, false)?;
    check_writable(k, &node)?;
    let (parent, _) = split_last(&path)?;
    let pnode = k.vfs.lookup(k.plat, &parent, true)?;
    let pst = k.vfs.stat(k.plat, &pnode)?;
    super::stat::check_access(k.group().creds, &pst, 3)?;
    let stamp = now(k);
    k.vfs
        .remove(k.plat, &path, a[2] & AT_REMOVEDIR != 0, stamp)?;
    Ok(0)
}

/// unlink(2).
pub fn sys_unlink<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_unlinkat(k, [AT_FDCWD as u32 as u64, a[0], 0, 0, 0, 0])
}

/// rmdir(2).
pub fn sys_rmdir<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_unlinkat(k, [AT_FDCWD as u32 as u64, a[0], AT_REMOVEDIR, 0, 0, 0])
}

/// renameat2(2).
pub fn sys_renameat2<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let flags = a[4];
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & RENAME_EXCHANGE != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let from = path_arg(k, arg_fd(a[0]), a[1])?;
    let to = path_arg(k, arg_fd(a[2]), a[3])?;
    if from == b"/" || to == b"/" {
        return Err(Errno::EBUSY);
    }
    if let Some(r) = bindfs::rename(k, &from, &to, flags)? {
        return Ok(r);
    }
    let stamp = now(k);
    let src = k.vfs.lookup(k.plat, &from, false)?;
    check_writable(k, &src)?;
    if to.starts_with(&from) && to.get(from.len()) == Some(&b'/') {
        return Err(Errno::EINVAL);
    }
    if flags & RENAME_NOREPLACE != 0 && k.vfs.lookup(k.plat, &to, false).is_ok() {
        return Err(Errno::EEXIST);
    }
    // The source as a tmpfs entry: a lower file is copied up; a lower
    // directory cannot move (as overlayfs without redirect_dir).
    let (src_fs, lower_src) = match &src {
        Node::Tmp {
            fs, overlay_path, ..
        } => (
            fs.clone(),
            overlay_path.is_some() && k.vfs.lower_stat(k.plat, &from, true).is_ok(),
        ),
        Node::Host(p) => {
            if k.vfs.lower_stat(k.plat, p, true)?.st_mode & S_IFMT == S_IFDIR {
                return Err(Errno::EXDEV);
            }
            k.vfs.copy_up_file(k.plat, p, stamp)?;
            (k.vfs.upper.clone(), true)
        }
        Node::Dev(_) | Node::DevDir | Node::PtsDir | Node::Proc(_) | Node::Symlink(_) => {
            return Err(Errno::EPERM)
        }
    };
    let (dst_fs, dst_parent, dst_name, dst_overlay) =
        k.vfs.parent_for_create(k.plat, &to, stamp)?;
    if !Arc::ptr_eq(&src_fs, &dst_fs) {
        return Err(Errno::EXDEV);
    }
    if dst_overlay && k.vfs.readonly {
        return Err(Errno::EROFS);
    }
    let (src_dir, src_name) = split_last(&from)?;
    let src_parent = match k.vfs.lookup(k.plat, &src_dir, true)? {
        Node::Tmp { ino, .. } => ino,
        Node::Host(p) => k.vfs.copy_up_dir(k.plat, &p, stamp)?,
        // What was made in /dev.
        Node::DevDir => crate::fs::tmpfs::ROOT_INO,
        _ => return Err(Errno::ENOENT),
    };
    // Replacing a lower-only target: it must be hidden after the move.
    if dst_overlay && src_fs.lookup(dst_parent, &dst_name)?.is_none() {
        if let Ok(st) = k.vfs.lower_stat(k.plat, &to, true) {
            let src_is_dir = src_fs
                .stat(src_fs.lookup(src_parent, &src_name)?.ok_or(Errno::ENOENT)?)?
                .st_mode
                & S_IFMT
                == S_IFDIR;
            if (st.st_mode & S_IFMT == S_IFDIR) != src_is_dir {
                return Err(if src_is_dir {
                    Errno::ENOTDIR
                } else {
                    Errno::EISDIR
                });
            }
        }
    }
    src_fs.rename(src_parent, &src_name, dst_parent, &dst_name)?;
    if lower_src {
        src_fs.create(src_parent, &src_name, InodeKind::Whiteout, 0, (0, 0), stamp)?;
    }
    Ok(0)
}

/// renameat(2).
pub fn sys_renameat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_renameat2(k, [a[0], a[1], a[2], a[3], 0, 0])
}

/// rename(2).
pub fn sys_rename<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let cwd = AT_FDCWD as u32 as u64;
    sys_renameat2(k, [cwd, a[0], cwd, a[1], 0, 0])
}

/// symlinkat(2).
pub fn sys_symlinkat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let target = k.read_cstr(a[0], PATH_MAX)?;
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let path = path_arg(k, arg_fd(a[1]), a[2])?;
    if bindfs::writes_through(k, &path)? {
        return bindfs::symlink(k, &path, &target);
    }
    create_node(k, &path, InodeKind::Symlink { target }, 0o777)
}

/// symlink(2).
pub fn sys_symlink<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_symlinkat(k, [a[0], AT_FDCWD as u32 as u64, a[1], 0, 0, 0])
}

/// linkat(2).
pub fn sys_linkat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let from = path_arg(k, arg_fd(a[0]), a[1])?;
    let to = path_arg(k, arg_fd(a[2]), a[3])?;
    if let Some(r) = bindfs::link(k, &from, &to)? {
        return Ok(r);
    }
    let stamp = now(k);
    if k.vfs.lookup(k.plat, &to, false).is_ok() {
        return Err(Errno::EEXIST);
    }
    let (src_fs, ino) = writable_inode(k, &from, stamp)?;
    if src_fs.stat(ino)?.st_mode & S_IFMT == S_IFDIR {
        return Err(Errno::EPERM);
    }
    let (dst_fs, parent, name, _) = k.vfs.parent_for_create(k.plat, &to, stamp)?;
    if !Arc::ptr_eq(&src_fs, &dst_fs) {
        return Err(Errno::EXDEV);
    }
    dst_fs.link(ino, parent, &name)?;
    Ok(0)
}

/// link(2).
pub fn sys_link<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let cwd = AT_FDCWD as u32 as u64;
    sys_linkat(k, [cwd, a[0], cwd, a[1], 0, 0])
}

/// readlinkat(2) for the sentry's symlinks; `None` when the path is not one.
pub fn readlink_tmp<P: Platform>(k: &mut Kernel<'_, P>, path: &[u8]) -> KResult<Option<Vec<u8>>> {
    match k.vfs.lookup(k.plat, path, false) {
        Ok(Node::Tmp { fs, ino, .. }) => match fs.inode(ino)?.kind {
            InodeKind::Symlink { target } => Ok(Some(target)),
            _ => Err(Errno::EINVAL),
        },
        Ok(Node::Symlink(target)) => Ok(Some(target)),
        // A lower-layer symlink (possibly dangling): the host reads it.
        Ok(Node::Host(_)) | Err(Errno::ENOENT) => Ok(None),
        Ok(_) => Err(Errno::EINVAL),
        Err(e) => Err(e),
    }
}

fn chmod_path<P: Platform>(k: &mut Kernel<'_, P>, path: &[u8], mode: u32) -> KResult<u64> {
    let c = k.group().creds;
    if c.euid != 0 {
        let node = k.vfs.lookup(k.plat, path, true)?;
        if k.vfs.stat(k.plat, &node)?.st_uid != c.euid {
            return Err(Errno::EPERM);
        }
    }
    if bindfs::writes_through(k, path)? {
        return bindfs::chmod(k, path, mode);
    }
    let stamp = now(k);
    let (fs, ino) = writable_inode(k, path, stamp)?;
    fs.set_attr(ino, Some(mode), None, stamp)?;
    Ok(0)
}

/// fchmodat(2) (and fchmodat2's flag-less form).
pub fn sys_fchmodat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = path_arg(k, arg_fd(a[0]), a[1])?;
    chmod_path(k, &path, a[2] as u32)
}

/// chmod(2).
pub fn sys_chmod<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_fchmodat(k, [AT_FDCWD as u32 as u64, a[0], a[1], 0, 0, 0])
}

fn fd_path<P: Platform>(k: &mut Kernel<'_, P>, fd: i32) -> KResult<Vec<u8>> {
    let file = k.group().fds.get(fd)?;
    match &*file {
        File::Tmpfs(t) => Ok(t.path.clone()),
        File::HostFile { path, .. } => Ok(path.clone()),
        File::Dir(d) => Ok(d.path.clone()),
        _ => Err(Errno::EINVAL),
    }
}

/// fchmod(2).
pub fn sys_fchmod<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = fd_path(k, arg_fd(a[0]))?;
    chmod_path(k, &path, a[1] as u32)
}

fn chown_path<P: Platform>(
    k: &mut Kernel<'_, P>,
    path: &[u8],
    uid: u32,
    gid: u32,
    nofollow: bool,
) -> KResult<u64> {
    if k.group().creds.euid != 0 {
        return Err(Errno::EPERM);
    }
    if bindfs::writes_through(k, path)? {
        return bindfs::chown(k, path, uid, gid, nofollow);
    }
    let stamp = now(k);
    let (fs, ino) = writable_inode(k, path, stamp)?;
    fs.set_attr(ino, None, Some((uid, gid)), stamp)?;
    Ok(0)
}

/// fchownat(2), chown(2), lchown(2), fchown(2).
pub fn sys_fchownat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = if a[4] & AT_EMPTY_PATH != 0 && k.read_cstr(a[1], PATH_MAX)?.is_empty() {
        fd_path(k, arg_fd(a[0]))?
    } else {
        path_arg(k, arg_fd(a[0]), a[1])?
    };
    let nofollow = a[4] & AT_SYMLINK_NOFOLLOW != 0;
    chown_path(k, &path, a[2] as u32, a[3] as u32, nofollow)
}

pub fn sys_chown<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_fchownat(k, [AT_FDCWD as u32 as u64, a[0], a[1], a[2], 0, 0])
}

pub fn sys_lchown<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let cwd = AT_FDCWD as u32 as u64;
    sys_fchownat(k, [cwd, a[0], a[1], a[2], AT_SYMLINK_NOFOLLOW, 0])
}

pub fn sys_fchown<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = fd_path(k, arg_fd(a[0]))?;
    chown_path(k, &path, a[1] as u32, a[2] as u32, false)
}

/// utimensat(2): the modification time (access times are not kept).
pub fn sys_utimensat<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const UTIME_NOW: i64 = (1 << 30) - 1;
    const UTIME_OMIT: i64 = (1 << 30) - 2;
    let path = if a[1] == 0 {
        fd_path(k, arg_fd(a[0]))?
    } else {
        path_arg(k, arg_fd(a[0]), a[1])?
    };
    if bindfs::writes_through(k, &path)? {
        let mut times = bindfs::times_now();
        if a[2] != 0 {
            k.copy_in(a[2], &mut times)?;
        }
        return bindfs::utimens(k, &path, &times, a[3] & AT_SYMLINK_NOFOLLOW != 0);
    }
    let stamp = now(k);
    let mtime = if a[2] == 0 {
        Some(stamp)
    } else {
        let mut b = [0u8; 32];
        k.copy_in(a[2], &mut b)?;
        let sec = i64::from_le_bytes(b[16..24].try_into().map_err(|_| Errno::EFAULT)?);
        let nsec = i64::from_le_bytes(b[24..32].try_into().map_err(|_| Errno::EFAULT)?);
        match nsec {
            UTIME_OMIT => None,
            UTIME_NOW => Some(stamp),
            n if (0..1_000_000_000).contains(&n) => Some((sec, n)),
            _ => return Err(Errno::EINVAL),
        }
    };
    let (fs, ino) = writable_inode(k, &path, stamp)?;
    if let Some(t) = mtime {
        fs.set_mtime(ino, t)?;
    }
    let _ = arg_i32(a[3]);
    Ok(0)
}
