//! Writes through read-write bind mounts.
//!
//! A bind mount without `ro` is the one place where the guest changes
//! host files. Every operation names a container path; it must route to a
//! writable bind (else `EROFS`), and it resolves beneath the bind's source
//! with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`, so
//! neither `..`, nor a symlink (absolute or relative), nor a mount point
//! inside the source leads out of it. Calls that act on the last
//! component itself (`unlinkat`, `mkdirat`, `renameat2`, `symlinkat`)
//! get it as a name in the resolved parent directory, never followed.

use std::os::fd::OwnedFd;

use guest_kernel::abi::hostcall::queue::{path_op, OPEN_RW_FLAGS};
use guest_kernel::abi::{Errno, KResult};
use guest_kernel::platform::HostHandle;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Timespec, Timestamps,
};

use crate::host::{errno_of, parent_in, path_str, HostServices, Route};

/// Mode bits the guest may set on host files: never set-user-ID or
/// set-group-ID (the VMM's files are the host's; a program in the sandbox
/// must not leave a set-ID executable for host users).
const MODE_MASK: u32 = 0o1777;

/// How paths beneath a writable bind resolve.
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const RENAME_NOREPLACE: u64 = 1;
const RENAME_EXCHANGE: u64 = 2;

impl HostServices {
    /// The route of `path`, which must be beneath a writable bind.
    fn writable_route(&self, path: &[u8]) -> KResult<Route<'_>> {
        let route = self.route(path_str(path)?)?;
        match route.bind.and_then(|i| self.bind(i)) {
            Some(b) if b.writable => Ok(route),
            _ => Err(Errno::EROFS),
        }
    }

    /// `open` beneath a writable bind. As for reads, only regular files and
    /// directories are ever opened (a device node or FIFO placed in the
    /// source by someone else is refused), and the object opened must be
    /// the one looked at.
    pub(crate) fn bind_open(&self, path: &[u8], flags: u32, mode: u32) -> KResult<HostHandle> {
        if flags & !OPEN_RW_FLAGS != 0 || mode & !0o7777 != 0 {
            return Err(Errno::EINVAL);
        }
        let route = self.writable_route(path)?;
        let oflags =
            OFlags::from_bits_retain(flags) | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let probe = match rustix::fs::openat2(
            &route.base,
            route.rel.as_str(),
            OFlags::PATH | OFlags::CLOEXEC | (oflags & OFlags::NOFOLLOW),
            Mode::empty(),
            RESOLVE,
        ) {
            Ok(fd) => Some(rustix::fs::fstat(&fd).map_err(errno_of)?),
            Err(rustix::io::Errno::NOENT) if flags & OFlags::CREATE.bits() != 0 => None,
            Err(e) => return Err(errno_of(e)),
        };
        if let Some(st) = &probe {
            if flags & OFlags::NOFOLLOW.bits() != 0
                && FileType::from_raw_mode(st.st_mode) == FileType::Symlink
            {
                return Err(Errno::ELOOP);
            }
            check_kind(st)?;
        }
        let fd = rustix::fs::openat2(
            &route.base,
            route.rel.as_str(),
            oflags,
            Mode::from_bits_truncate(mode & MODE_MASK),
            RESOLVE,
        )
        .map_err(errno_of)?;
        let after = rustix::fs::fstat(&fd).map_err(errno_of)?;
        check_kind(&after)?;
        if let Some(before) = probe {
            if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
                return Err(Errno::EAGAIN); // swapped underneath us
            }
        }
        self.add_handle(fd)
    }

    /// The regular file or directory at a writable path, following a
    /// final symlink beneath the bind, opened for `fchmod`/`futimens`.
    fn open_target(&self, route: &Route<'_>) -> KResult<OwnedFd> {
        let probe = rustix::fs::openat2(
            &route.base,
            route.rel.as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(errno_of)?;
        let before = rustix::fs::fstat(&probe).map_err(errno_of)?;
        check_kind(&before)?;
        let fd = rustix::fs::openat2(
            &route.base,
            route.rel.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(errno_of)?;
        let after = rustix::fs::fstat(&fd).map_err(errno_of)?;
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) {
            return Err(Errno::EAGAIN);
        }
        Ok(fd)
    }

    /// One `OP_PATH` operation (see `queue::path_op`).
    pub(crate) fn bind_path_op(&self, op: u32, path: &[u8], extra: &[u8], arg: u64) -> KResult<()> {
        let route = self.writable_route(path)?;
        let file_bind = route.bind.is_some_and(|i| self.is_file_bind(i));
        match op {
            path_op::CHMOD => {
                if arg & !0o7777 != 0 {
                    return Err(Errno::EINVAL);
                }
                let fd = self.open_target(&route)?;
                let mode = arg as u32 & MODE_MASK;
                rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(errno_of)
            }
            path_op::CHOWN | path_op::LCHOWN => {
                let id = |v: u32| (v != u32::MAX).then_some(v);
                let owner = id(arg as u32).map(rustix::fs::Uid::from_raw);
                let group = id((arg >> 32) as u32).map(rustix::fs::Gid::from_raw);
                if op == path_op::LCHOWN && !file_bind {
                    let (dir, name) = parent_in(&route, RESOLVE).map_err(busy)?;
                    rustix::fs::chownat(
                        &dir,
                        name.as_str(),
                        owner,
                        group,
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(errno_of)
                } else {
                    let fd = self.open_target(&route)?;
                    rustix::fs::fchown(&fd, owner, group).map_err(errno_of)
                }
            }
            path_op::UTIMENS => {
                let times = timestamps(extra)?;
                match arg {
                    0 => {
                        let fd = self.open_target(&route)?;
                        rustix::fs::futimens(&fd, &times).map_err(errno_of)
                    }
                    AT_SYMLINK_NOFOLLOW if !file_bind => {
                        let (dir, name) = parent_in(&route, RESOLVE).map_err(busy)?;
                        rustix::fs::utimensat(
                            &dir,
                            name.as_str(),
                            &times,
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                        .map_err(errno_of)
                    }
                    AT_SYMLINK_NOFOLLOW => {
                        let fd = self.open_target(&route)?;
                        rustix::fs::futimens(&fd, &times).map_err(errno_of)
                    }
                    _ => Err(Errno::EINVAL),
                }
            }
            // The rest change the name itself: a file bind's destination
            // is a mount point, which cannot be removed or replaced.
            _ if file_bind => Err(Errno::EBUSY),
            path_op::MKDIR => {
                if arg & !0o7777 != 0 {
                    return Err(Errno::EINVAL);
                }
                let (dir, name) = parent_in(&route, RESOLVE).map_err(exists)?;
                let mode = arg as u32 & MODE_MASK;
                rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_bits_truncate(mode))
                    .map_err(errno_of)
            }
            path_op::UNLINK | path_op::RMDIR => {
                let (dir, name) = parent_in(&route, RESOLVE).map_err(busy)?;
                let flags = if op == path_op::RMDIR {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                rustix::fs::unlinkat(&dir, name.as_str(), flags).map_err(errno_of)
            }
            path_op::RENAME => {
                let flags = match arg {
                    0 => RenameFlags::empty(),
                    RENAME_NOREPLACE => RenameFlags::NOREPLACE,
                    RENAME_EXCHANGE => RenameFlags::EXCHANGE,
                    _ => return Err(Errno::EINVAL),
                };
                let to = self.writable_route(extra)?;
                if to.bind != route.bind {
                    return Err(Errno::EXDEV);
                }
                let (from_dir, from_name) = parent_in(&route, RESOLVE).map_err(busy)?;
                let (to_dir, to_name) = parent_in(&to, RESOLVE).map_err(busy)?;
                rustix::fs::renameat_with(
                    &from_dir,
                    from_name.as_str(),
                    &to_dir,
                    to_name.as_str(),
                    flags,
                )
                .map_err(errno_of)
            }
            path_op::LINK => {
                if arg != 0 {
                    return Err(Errno::EINVAL);
                }
                let to = self.writable_route(extra)?;
                if to.bind != route.bind {
                    return Err(Errno::EXDEV);
                }
                let (from_dir, from_name) = parent_in(&route, RESOLVE).map_err(busy)?;
                let (to_dir, to_name) = parent_in(&to, RESOLVE).map_err(exists)?;
                rustix::fs::linkat(
                    &from_dir,
                    from_name.as_str(),
                    &to_dir,
                    to_name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(errno_of)
            }
            path_op::SYMLINK => {
                if extra.is_empty() || extra.len() >= 4096 || extra.contains(&0) {
                    return Err(Errno::EINVAL);
                }
                let (dir, name) = parent_in(&route, RESOLVE).map_err(exists)?;
                let target = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(extra);
                rustix::fs::symlinkat(target, &dir, name.as_str()).map_err(errno_of)
            }
            _ => Err(Errno::ENOSYS),
        }
    }
}

/// Only regular files and directories of the host are opened for the guest.
fn check_kind(st: &rustix::fs::Stat) -> KResult<()> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile | FileType::Directory => Ok(()),
        _ => Err(Errno::EACCES),
    }
}

/// The bind's root itself (no last component): it is a mount point.
fn busy(e: Errno) -> Errno {
    if e == Errno::EINVAL {
        Errno::EBUSY
    } else {
        e
    }
}

/// Making the bind's root: it exists.
fn exists(e: Errno) -> Errno {
    if e == Errno::EINVAL {
        Errno::EEXIST
    } else {
        e
    }
}

/// Two `struct timespec` from the sentry; `tv_nsec` is below 1e9 or one of
/// `UTIME_NOW`/`UTIME_OMIT`.
fn timestamps(raw: &[u8]) -> KResult<Timestamps> {
    const UTIME_NOW: i64 = (1 << 30) - 1;
    const UTIME_OMIT: i64 = (1 << 30) - 2;
    if raw.len() != 32 {
        return Err(Errno::EINVAL);
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        i64::from_le_bytes(b)
    };
    let spec = |i: usize| -> KResult<Timespec> {
        let (sec, nsec) = (word(i), word(i + 1));
        if !(0..1_000_000_000).contains(&nsec) && nsec != UTIME_NOW && nsec != UTIME_OMIT {
            return Err(Errno::EINVAL);
        }
        Ok(Timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        })
    };
    Ok(Timestamps {
        last_access: spec(0)?,
        last_modification: spec(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_kernel::platform::HostOps;
    use std::os::unix::fs::MetadataExt;

    use crate::host::tests::services;

    #[test]
    fn only_writable_binds_are_written_and_never_outside_them() {
        let base = std::env::temp_dir().join(format!("rf-bind-{}", std::process::id()));
        let (root, rw, ro) = (base.join("root"), base.join("rw"), base.join("ro"));
        for d in [&root, &rw, &ro] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(root.join("image"), b"image").unwrap();
        std::fs::write(ro.join("kept"), b"kept").unwrap();
        std::fs::write(base.join("outside"), b"outside").unwrap();
        std::os::unix::fs::symlink("../outside", rw.join("up")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), rw.join("abs")).unwrap();
        let mut s = services(&root);
        s.add_bind("/rw", &rw, true).unwrap();
        s.add_bind("/ro", &ro, false).unwrap();
        let creat = OFlags::CREATE.bits() | OFlags::WRONLY.bits();

        // The root and read-only binds are never written.
        assert_eq!(s.open_rw(b"/image", 1, 0), Err(Errno::EROFS));
        assert_eq!(s.open_rw(b"/new", creat, 0o644), Err(Errno::EROFS));
        assert_eq!(s.open_rw(b"/ro/kept", 1, 0), Err(Errno::EROFS));
        assert_eq!(
            s.path_op(path_op::UNLINK, b"/ro/kept", &[], 0),
            Err(Errno::EROFS)
        );
        assert_eq!(
            s.path_op(path_op::MKDIR, b"/rwx", &[], 0o755),
            Err(Errno::EROFS)
        );
        // Bad arguments.
        assert_eq!(
            s.open_rw(b"/rw/f", creat | 0o20000000, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(s.open_rw(b"/rw/f", creat, 0o70000), Err(Errno::EINVAL));
        assert_eq!(s.open_rw(b"/rw/\0f", creat, 0), Err(Errno::EINVAL));
        assert_eq!(s.path_op(99, b"/rw/f", &[], 0), Err(Errno::ENOSYS));
        assert_eq!(
            s.path_op(path_op::RENAME, b"/rw/f", b"/rw/g", 8),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.path_op(path_op::UTIMENS, b"/rw/f", &[0; 31], 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            s.path_op(path_op::SYMLINK, b"/rw/s", b"", 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(s.path_op(path_op::RMDIR, b"/rw", &[], 0), Err(Errno::EBUSY));
        // A write through the bind reaches its source.
        let h = s.open_rw(b"/rw/f", creat, 0o600).unwrap();
        assert_eq!(s.pwrite(h, b"data", 2), Ok(4));
        assert_eq!(s.ftruncate(h, 3), Ok(()));
        assert_eq!(s.fsync(h), Ok(()));
        s.close(h);
        assert_eq!(std::fs::read(rw.join("f")).unwrap(), b"\0\0d");
        assert_eq!(
            s.path_op(path_op::RENAME, b"/rw/f", b"/ro/f", 0),
            Err(Errno::EROFS)
        );
        assert_eq!(s.path_op(path_op::RENAME, b"/rw/f", b"/rw/g", 0), Ok(()));
        assert!(rw.join("g").exists());
        assert_eq!(s.path_op(path_op::LINK, b"/rw/g", b"/rw/h", 0), Ok(()));
        assert_eq!(
            s.path_op(path_op::LINK, b"/rw/g", b"/ro/h", 0),
            Err(Errno::EROFS)
        );
        assert_eq!(
            s.path_op(path_op::LINK, b"/rw/g", b"/h", 0),
            Err(Errno::EROFS)
        );
        assert_eq!(std::fs::metadata(rw.join("h")).unwrap().nlink(), 2);
        assert_eq!(
            s.path_op(
                path_op::CHOWN,
                b"/rw/g",
                &[],
                u64::from(u32::MAX) << 32 | 4321
            ),
            Ok(())
        );
        assert_eq!(std::fs::metadata(rw.join("g")).unwrap().uid(), 4321);
        assert_eq!(
            s.path_op(path_op::CHOWN, b"/ro/kept", &[], 0),
            Err(Errno::EROFS)
        );
        // No set-ID bits reach the host.
        assert_eq!(s.path_op(path_op::CHMOD, b"/rw/g", &[], 0o6755), Ok(()));
        let mode = std::fs::metadata(rw.join("g")).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
            0o755
        );
        std::os::unix::fs::symlink("g", rw.join("tog")).unwrap();
        let nofollow = creat | OFlags::NOFOLLOW.bits();
        assert_eq!(s.open_rw(b"/rw/tog", nofollow, 0), Err(Errno::ELOOP));
        // Symlinks out of the source resolve beneath it.
        assert_eq!(s.open_rw(b"/rw/up", creat, 0o644).map(|_| ()), Ok(()));
        assert_eq!(
            s.open_rw(b"/rw/abs", 1 | OFlags::TRUNC.bits(), 0),
            Err(Errno::ENOENT)
        );
        assert_eq!(
            s.path_op(path_op::CHMOD, b"/rw/abs", &[], 0o777),
            Err(Errno::ENOENT)
        );
        assert_eq!(std::fs::read(base.join("outside")).unwrap(), b"outside");
        assert!(
            rw.join("outside").exists(),
            "up -> ../outside names <rw>/outside"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
