//! The calls that change files beneath the spec's bind mounts.
//!
//! Beneath a bind mount the sentry keeps no overlay: a writable bind
//! writes through to its host source (host calls that the host confines
//! beneath the source), and a read-only one refuses every change with
//! `EROFS`. The sentry names files by container path; it never sees the
//! host's.

use core::sync::atomic::AtomicU64;

use crate::abi::hostcall::queue::{path_op, OPEN_RW_FLAGS};
use crate::abi::{Errno, KResult};
use crate::fs::File;
use crate::kernel::Kernel;
use crate::platform::{HostHandle, HostOps, Platform};

/// Bounce-buffer size for writes.
const O_ACCMODE: u32 = 3;
const O_APPEND: u32 = 0o2000;

/// Whether a change to `path` goes to the host: `true` beneath a
/// writable bind mount, `EROFS` beneath a read-only one, `false`
/// elsewhere (the sandbox's own namespace).
pub fn writes_through<P: Platform>(k: &Kernel<'_, P>, path: &[u8]) -> KResult<bool> {
    match k.vfs.bind_of(path) {
        Some((_, true)) => Ok(true),
        Some((_, false)) => Err(Errno::EROFS),
        None => Ok(false),
    }
}

/// Open `path` beneath a writable bind mount for writing (or creation).
pub fn open<P: Platform>(
    k: &mut Kernel<'_, P>,
    path: &[u8],
    flags: u64,
    mode: u32,
) -> KResult<File> {
    let host_flags = flags as u32 & OPEN_RW_FLAGS;
    let handle = k.plat.host().open_rw(path, host_flags, mode & 0o7777)?;
    Ok(File::HostFile {
        handle,
        offset: AtomicU64::new(0),
        path: path.to_vec(),
        flags: host_flags & (O_ACCMODE | O_APPEND),
        cache: None,
    })
}

/// Create `path` beneath a writable bind mount (the caller found it
/// missing) and open it. `O_EXCL` on the host, so that only a file made
/// here gets the creator's ids: if the name exists after all (another
/// creator won the race, or it is a dangling symlink, which `O_CREAT`
/// follows), the caller's own flags open or create it.
pub fn create<P: Platform>(
    k: &mut Kernel<'_, P>,
    path: &[u8],
    flags: u64,
    mode: u32,
) -> KResult<File> {
    const O_EXCL: u64 = 0o200;
    match open(k, path, flags | O_EXCL, mode) {
        Ok(file) => {
            own_new(k, path);
            Ok(file)
        }
        Err(Errno::EEXIST) if flags & O_EXCL == 0 => open(k, path, flags, mode),
        Err(e) => Err(e),
    }
}

/// Give what the sandbox just created beneath a writable bind the
/// creating process's ids, as the container's own kernel would (the host
/// made it as the VMM's user); the group stays the directory's if that is
/// set-group-ID, as the host already made it. Best effort: a VMM without
/// `CAP_CHOWN` (rootless) leaves its own.
pub fn own_new<P: Platform>(k: &Kernel<'_, P>, path: &[u8]) {
    const S_ISGID: u32 = 0o2000;
    let c = k.group().creds;
    if c.euid == 0 && c.egid == 0 {
        return;
    }
    let setgid_dir = crate::fs::vfs::split_last(path)
        .ok()
        .and_then(|(dir, _)| k.plat.host().lstat(&dir).ok())
        .is_some_and(|st| st.st_mode & S_ISGID != 0);
    let gid = if setgid_dir { u32::MAX } else { c.egid };
    let _ = path_call(
        k,
        path_op::LCHOWN,
        path,
        &[],
        u64::from(c.euid) | u64::from(gid) << 32,
    );
}

/// Whether `file` is a host file open for writing.
pub fn writable(file: &File) -> Option<HostHandle> {
    match file {
        File::HostFile { handle, flags, .. } if flags & O_ACCMODE != 0 => Some(*handle),
        _ => None,
    }
}

/// The offset a write to a host file starts at: the end with `O_APPEND`.
pub fn write_offset<P: Platform>(k: &Kernel<'_, P>, file: &File, current: u64) -> KResult<u64> {
    match file {
        File::HostFile { handle, flags, .. } if flags & O_APPEND != 0 => {
            Ok(k.plat.host().fstat(*handle)?.st_size as u64)
        }
        _ => Ok(current),
    }
}

/// Write user memory to a host file at `off`.
pub fn pwrite<P: Platform>(
    k: &mut Kernel<'_, P>,
    handle: HostHandle,
    buf: u64,
    len: u64,
    off: u64,
) -> KResult<u64> {
    let n = super::io::write_from_user(k, buf, len, |plat, chunk, done| {
        plat.host().pwrite(handle, chunk, off + done)
    })?;
    if let Some(key) = mapped_key(k, handle) {
        k.frames.host_shared.refresh(k.plat, key, off, n);
    }
    Ok(n)
}

/// The host identity of `handle` if any host file has shared mappings
/// (else nothing to keep coherent, and no host call).
fn mapped_key<P: Platform>(
    k: &Kernel<'_, P>,
    handle: HostHandle,
) -> Option<crate::mm::hostshared::HostKey> {
    if k.frames.host_shared.is_empty() {
        return None;
    }
    crate::mm::hostshared::key_of(k.plat, handle)
}

/// Before a read of `[off, off+len)` of a host file, or (`len` maximal)
/// its `fsync`: what shared mappings wrote there goes to the host first.
pub fn flush_mapped<P: Platform>(k: &Kernel<'_, P>, handle: HostHandle, off: u64, len: u64) {
    if let Some(key) = mapped_key(k, handle) {
        k.frames.host_shared.flush(k.plat, key, off, len);
    }
}

/// truncate(2) of a path beneath a writable bind mount.
pub fn truncate<P: Platform>(k: &mut Kernel<'_, P>, path: &[u8], len: u64) -> KResult<u64> {
    let host = k.plat.host();
    let h = host.open_rw(path, 1, 0)?;
    let r = host.ftruncate(h, len);
    host.close(h);
    r.map(|_| 0)
}

/// One namespace change on the host (`queue::path_op`).
fn path_call<P: Platform>(
    k: &Kernel<'_, P>,
    op: u32,
    path: &[u8],
    extra: &[u8],
    arg: u64,
) -> KResult<u64> {
    k.plat.host().path_op(op, path, extra, arg).map(|_| 0)
}

/// mkdir beneath a writable bind mount.
pub fn mkdir<P: Platform>(k: &Kernel<'_, P>, path: &[u8], mode: u32) -> KResult<u64> {
    let mode = mode & 0o7777 & !k.group().umask;
    path_call(k, path_op::MKDIR, path, &[], u64::from(mode))?;
    own_new(k, path);
    Ok(0)
}

/// unlink or (with `dir`) rmdir beneath a writable bind mount.
pub fn remove<P: Platform>(k: &Kernel<'_, P>, path: &[u8], dir: bool) -> KResult<u64> {
    let op = if dir { path_op::RMDIR } else { path_op::UNLINK };
    path_call(k, op, path, &[], 0)
}

/// rename within one writable bind mount; `EXDEV` between a bind mount
/// and anything else, as between two mounts. `None` when neither path is
/// beneath a bind mount.
pub fn rename<P: Platform>(
    k: &Kernel<'_, P>,
    from: &[u8],
    to: &[u8],
    flags: u64,
) -> KResult<Option<u64>> {
    two_paths(k, path_op::RENAME, from, to, flags)
}

/// link within one writable bind mount, as [`rename`].
pub fn link<P: Platform>(k: &Kernel<'_, P>, from: &[u8], to: &[u8]) -> KResult<Option<u64>> {
    two_paths(k, path_op::LINK, from, to, 0)
}

fn two_paths<P: Platform>(
    k: &Kernel<'_, P>,
    op: u32,
    from: &[u8],
    to: &[u8],
    arg: u64,
) -> KResult<Option<u64>> {
    match (k.vfs.bind_of(from), k.vfs.bind_of(to)) {
        (None, None) => Ok(None),
        (Some((a, writable)), Some((b, _))) if a == b => {
            if !writable {
                return Err(Errno::EROFS);
            }
            path_call(k, op, from, to, arg).map(Some)
        }
        _ => Err(Errno::EXDEV),
    }
}

/// symlink beneath a writable bind mount.
pub fn symlink<P: Platform>(k: &Kernel<'_, P>, path: &[u8], target: &[u8]) -> KResult<u64> {
    path_call(k, path_op::SYMLINK, path, target, 0)?;
    own_new(k, path);
    Ok(0)
}

/// chmod beneath a writable bind mount.
pub fn chmod<P: Platform>(k: &Kernel<'_, P>, path: &[u8], mode: u32) -> KResult<u64> {
    path_call(k, path_op::CHMOD, path, &[], u64::from(mode & 0o7777))
}

/// chown beneath a writable bind mount (`u32::MAX`: unchanged); with
/// `nofollow`, a final symlink itself.
pub fn chown<P: Platform>(
    k: &Kernel<'_, P>,
    path: &[u8],
    uid: u32,
    gid: u32,
    nofollow: bool,
) -> KResult<u64> {
    let op = if nofollow {
        path_op::LCHOWN
    } else {
        path_op::CHOWN
    };
    path_call(k, op, path, &[], u64::from(uid) | u64::from(gid) << 32)
}

/// utimensat beneath a writable bind mount: `times` is the two `struct
/// timespec` (with `UTIME_NOW`/`UTIME_OMIT`), `nofollow` the flag.
pub fn utimens<P: Platform>(
    k: &Kernel<'_, P>,
    path: &[u8],
    times: &[u8; 32],
    nofollow: bool,
) -> KResult<u64> {
    const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
    let arg = if nofollow { AT_SYMLINK_NOFOLLOW } else { 0 };
    path_call(k, path_op::UTIMENS, path, times, arg)
}

/// The two `struct timespec` of `utimensat` for "now".
pub fn times_now() -> [u8; 32] {
    const UTIME_NOW: i64 = (1 << 30) - 1;
    let mut t = [0u8; 32];
    t[8..16].copy_from_slice(&UTIME_NOW.to_le_bytes());
    t[24..32].copy_from_slice(&UTIME_NOW.to_le_bytes());
    t
}
