//! flock(2) and fcntl(2)'s record locks (F_GETLK/F_SETLK/F_SETLKW and the
//! open-file-description F_OFD_* forms). The lock table is `fs::lock`.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::{arg_fd, arg_i32, Args};
use crate::abi::{Errno, KResult};
use crate::fs::lock::{InodeId, Owner};
use crate::fs::File;
use crate::kernel::Kernel;
use crate::platform::Platform;
use crate::task::{Tid, WaitKey};

const LOCK_SH: u64 = 1;
const LOCK_EX: u64 = 2;
const LOCK_NB: u64 = 4;
const LOCK_UN: u64 = 8;

pub const F_GETLK: i32 = 5;
pub const F_SETLK: i32 = 6;
pub const F_SETLKW: i32 = 7;
pub const F_OFD_GETLK: i32 = 36;
pub const F_OFD_SETLK: i32 = 37;
pub const F_OFD_SETLKW: i32 = 38;

const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;

fn inode_id<P: Platform>(k: &Kernel<'_, P>, file: &File) -> KResult<InodeId> {
    let st = super::io::stat_of(k, file)?;
    Ok((st.st_dev, st.st_ino))
}

fn prune<P: Platform>(k: &mut Kernel<'_, P>) {
    let alive: Vec<Tid> = k
        .groups
        .iter()
        .filter(|(_, g)| g.zombie.is_none())
        .map(|(t, _)| *t)
        .collect();
    k.locks.prune(|t| alive.contains(&t));
}

/// A file was released: lock owners may be gone, so every lock waiter
/// looks again.
pub fn file_released<P: Platform>(k: &mut Kernel<'_, P>) {
    if k.locks.is_empty() {
        return;
    }
    let ids: Vec<u64> = k.locks.inodes.values().map(|l| l.id).collect();
    prune(k);
    for id in ids {
        k.wake(WaitKey::Pipe(id), usize::MAX);
    }
}

/// Process `tgid` closed a descriptor of `file`: POSIX drops every record
/// lock the process holds on that file.
pub fn descriptor_closed<P: Platform>(k: &mut Kernel<'_, P>, tgid: Tid, file: &File) {
    if k.locks.is_empty() || !matches!(file, File::Tmpfs(_) | File::HostFile { .. }) {
        return;
    }
    let Ok(id) = inode_id(k, file) else {
        return;
    };
    if let Some(l) = k.locks.inodes.get_mut(&id) {
        l.drop_owner(&Owner::Process(tgid));
        let wait = l.id;
        k.wake(WaitKey::Pipe(wait), usize::MAX);
    }
}

/// flock(2).
pub fn sys_flock<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let op = a[1] & 0xffff_ffff;
    let exclusive = match op & !LOCK_NB {
        LOCK_SH => Some(false),
        LOCK_EX => Some(true),
        LOCK_UN => None,
        _ => return Err(Errno::EINVAL),
    };
    let id = inode_id(k, &file)?;
    prune(k);
    let me = Arc::downgrade(&file);
    let l = k.locks.inode(id);
    let wait = l.id;
    match exclusive {
        None => l.set_flock(&me, None),
        Some(ex) if l.flock_conflicts(&me, ex) => {
            if op & LOCK_NB != 0 {
                return Err(Errno::EAGAIN);
            }
            // Linux drops the old lock before waiting for the new one.
            l.set_flock(&me, None);
            return Err(k.block(WaitKey::Pipe(wait), None));
        }
        Some(ex) => l.set_flock(&me, Some(ex)),
    }
    k.wake(WaitKey::Pipe(wait), usize::MAX);
    Ok(0)
}

/// `struct flock` as x86-64 lays it out.
struct Flock {
    ty: i16,
    whence: i16,
    start: i64,
    len: i64,
    pid: i32,
}

impl Flock {
    fn read<P: Platform>(k: &mut Kernel<'_, P>, va: u64) -> KResult<Flock> {
        let mut b = [0u8; 32];
        k.copy_in(va, &mut b)?;
        let i64_at = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        Ok(Flock {
            ty: i16::from_le_bytes([b[0], b[1]]),
            whence: i16::from_le_bytes([b[2], b[3]]),
            start: i64_at(8),
            len: i64_at(16),
            pid: i32::from_le_bytes([b[24], b[25], b[26], b[27]]),
        })
    }

    fn write<P: Platform>(&self, k: &mut Kernel<'_, P>, va: u64) -> KResult<()> {
        let mut b = [0u8; 32];
        b[0..2].copy_from_slice(&self.ty.to_le_bytes());
        b[2..4].copy_from_slice(&self.whence.to_le_bytes());
        b[8..16].copy_from_slice(&self.start.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b[24..28].copy_from_slice(&self.pid.to_le_bytes());
        k.copy_out(va, &b)
    }
}

/// The byte range `[start, end)` a `struct flock` names.
fn range<P: Platform>(k: &Kernel<'_, P>, file: &File, fl: &Flock) -> KResult<(u64, u64)> {
    let base: i64 = match fl.whence {
        0 => 0,
        1 => match file {
            File::HostFile { offset, .. } => offset.load(Ordering::Relaxed) as i64,
            File::Tmpfs(t) => t.offset.load(Ordering::Relaxed) as i64,
            _ => 0,
        },
        2 => super::io::stat_of(k, file)?.st_size,
        _ => return Err(Errno::EINVAL),
    };
    let start = base.checked_add(fl.start).ok_or(Errno::EOVERFLOW)?;
    let (start, end) = match fl.len {
        0 => (start, i64::MAX),
        n if n > 0 => (start, start.checked_add(n).ok_or(Errno::EOVERFLOW)?),
        n => (start.checked_add(n).ok_or(Errno::EINVAL)?, start),
    };
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    let end = if end == i64::MAX {
        u64::MAX
    } else {
        end as u64
    };
    Ok((start as u64, end))
}

/// fcntl's lock commands.
pub fn fcntl_lock<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let cmd = arg_i32(a[1]);
    let file = k.group().fds.get(arg_fd(a[0]))?;
    let mut fl = Flock::read(k, a[2])?;
    let ofd = matches!(cmd, F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW);
    if ofd && fl.pid != 0 {
        return Err(Errno::EINVAL);
    }
    if !matches!(fl.ty, F_RDLCK | F_WRLCK | F_UNLCK) {
        return Err(Errno::EINVAL);
    }
    let (start, end) = range(k, &file, &fl)?;
    let owner = if ofd {
        Owner::of_file(&file)
    } else {
        Owner::Process(k.cur().tgid)
    };
    let id = inode_id(k, &file)?;
    prune(k);
    let write = fl.ty == F_WRLCK;
    if matches!(cmd, F_GETLK | F_OFD_GETLK) {
        if fl.ty == F_UNLCK {
            return Err(Errno::EINVAL);
        }
        let found = k
            .locks
            .inodes
            .get(&id)
            .and_then(|l| l.conflict(&owner, write, start, end))
            .map(|r| (r.write, r.start, r.end, r.owner.clone()));
        match found {
            None => fl.ty = F_UNLCK,
            Some((w, s, e, o)) => {
                fl.ty = if w { F_WRLCK } else { F_RDLCK };
                fl.whence = 0;
                fl.start = s as i64;
                fl.len = if e == u64::MAX { 0 } else { (e - s) as i64 };
                fl.pid = match o {
                    Owner::Process(p) => p,
                    Owner::File(_) => -1,
                };
            }
        }
        fl.write(k, a[2])?;
        return Ok(0);
    }
    // The descriptor must be open for the kind of lock asked for.
    let mode = match &*file {
        File::Tmpfs(t) => t.flags.load(Ordering::Relaxed) & 3,
        File::HostFile { .. } => 0,
        _ => 2,
    };
    if (fl.ty == F_RDLCK && mode == 1) || (fl.ty == F_WRLCK && mode == 0) {
        return Err(Errno::EBADF);
    }
    let l = k.locks.inode(id);
    let wait = l.id;
    if fl.ty == F_UNLCK {
        l.unlock(&owner, start, end);
    } else if l.conflict(&owner, write, start, end).is_some() {
        if matches!(cmd, F_SETLK | F_OFD_SETLK) {
            return Err(Errno::EAGAIN);
        }
        return Err(k.block(WaitKey::Pipe(wait), None));
    } else {
        l.lock(owner, write, start, end);
    }
    k.wake(WaitKey::Pipe(wait), usize::MAX);
    Ok(0)
}
