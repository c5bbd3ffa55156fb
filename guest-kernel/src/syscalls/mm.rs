//! brk, mmap, munmap, mprotect, madvise, mremap, msync, mincore.

use super::{arg_fd, Args};
use crate::abi::linux::*;
use crate::abi::{Errno, KResult, PAGE_SIZE};
use crate::fs::{DevKind, File};
use crate::kernel::Kernel;
use crate::mm::ops::{MmapRequest, Placement};
use crate::platform::{Platform, Prot};

/// brk(2).
pub fn sys_brk<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let limit = k.group().rlimits[2].0; // RLIMIT_DATA
    let (mm, frames, plat) = k.mm_parts();
    Ok(mm.set_brk(plat, frames, a[0], limit))
}

fn check_prot(bits: u64) -> KResult<Prot> {
    // PROT_GROWSDOWN/PROT_GROWSUP are accepted and ignored.
    if bits & !(0x7 | 0x0100_0000 | 0x0200_0000) != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Prot::from_bits(bits as u32))
}

/// mmap(2): anonymous memory, private file mappings, shared mappings of
/// tmpfs files (kept coherent with read and write), and read-only shared
/// mappings of the container's files.
pub fn sys_mmap<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (addr, len, flags, fd, off) = (a[0], a[1], a[3] as u32, arg_fd(a[4]), a[5]);
    let prot = check_prot(a[2])?;
    if len == 0 || !off.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    match flags & MAP_TYPE {
        MAP_PRIVATE | MAP_SHARED | MAP_SHARED_VALIDATE => {}
        _ => return Err(Errno::EINVAL),
    }
    if flags & MAP_HUGETLB != 0 {
        return Err(Errno::EINVAL);
    }
    let shared = flags & MAP_TYPE != MAP_PRIVATE;
    let file = if flags & MAP_ANONYMOUS != 0 {
        None
    } else {
        let f = k.group().fds.get(fd)?;
        match &*f {
            File::HostFile { .. } => {
                // A shared writable mapping needs a file open for writing
                // (only ever one beneath a read-write bind mount).
                if shared && prot.write && super::bindfs::writable(&f).is_none() {
                    return Err(Errno::EACCES);
                }
                if off.checked_add(len).is_none() {
                    return Err(Errno::EOVERFLOW);
                }
                Some((f.clone(), off))
            }
            File::Tmpfs(t) => {
                // A shared writable mapping needs a file open for writing.
                if shared
                    && prot.write
                    && t.flags.load(core::sync::atomic::Ordering::Relaxed) & 3 == 0
                {
                    return Err(Errno::EACCES);
                }
                Some((f.clone(), off))
            }
            File::Dir(_) => return Err(Errno::ENODEV),
            // /dev/zero maps as anonymous memory.
            File::Dev(DevKind::Zero) => None,
            File::Pipe(_)
            | File::HostStream { .. }
            | File::EventFd(_)
            | File::Epoll(_)
            | File::Socket(_)
            | File::TimerFd(_)
            | File::SignalFd(_) => return Err(Errno::EACCES),
            File::Pty(_) => return Err(Errno::ENODEV),
            File::Dev(_) => return Err(Errno::ENODEV),
        }
    };
    let placement = if flags & MAP_FIXED_NOREPLACE != 0 {
        Placement::FixedNoReplace
    } else if flags & MAP_FIXED != 0 {
        Placement::Fixed
    } else {
        Placement::Hint
    };
    let (mm, frames, plat) = k.mm_parts();
    mm.mmap(
        plat,
        frames,
        MmapRequest {
            addr,
            len,
            prot,
            placement,
            shared,
            file,
        },
    )
}

/// munmap(2).
pub fn sys_munmap<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (mm, frames, plat) = k.mm_parts();
    mm.munmap(plat, frames, a[0], a[1])?;
    frames.shared_collect(plat);
    Ok(0)
}

/// mprotect(2).
pub fn sys_mprotect<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let prot = check_prot(a[2])?;
    let (mm, _, plat) = k.mm_parts();
    mm.mprotect(plat, a[0], a[1], prot)?;
    Ok(0)
}

/// madvise(2): advice only; `MADV_DONTNEED` semantics arrive with the memory work.
pub fn sys_madvise<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const MADV_DONTNEED: u64 = 4;
    const MADV_FREE: u64 = 8;
    if !a[0].is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let len = crate::abi::page_up(a[1]).ok_or(Errno::EINVAL)?;
    let end = a[0].checked_add(len).ok_or(Errno::EINVAL)?;
    match a[2] {
        MADV_DONTNEED | MADV_FREE if len > 0 => {
            let (mm, frames, plat) = k.mm_parts();
            mm.discard(plat, frames, a[0], end)?;
            Ok(0)
        }
        // Other advice changes no semantics.
        _ => Ok(0),
    }
}

/// mremap(2).
pub fn sys_mremap<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (mm, frames, plat) = k.mm_parts();
    mm.mremap(plat, frames, [a[0], a[1], a[2], a[3], a[4]])
}

/// msync(2). Shared mappings of tmpfs files share their frames with every
/// other mapping and are copied into the file before any read of it, so
/// `MS_SYNC` only needs to write the frames back into the file now (the
/// sandbox's files live in memory: there is no disk to flush).
pub fn sys_msync<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    use crate::mm::sync::{MS_ASYNC, MS_SYNC};
    const MS_INVALIDATE: u32 = 2;
    let (start, flags) = (a[0], a[2] as u32);
    if flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 || !start.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    if flags & MS_ASYNC != 0 && flags & MS_SYNC != 0 {
        return Err(Errno::EINVAL);
    }
    let len = a[1].wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let end = start.checked_add(len).ok_or(Errno::ENOMEM)?;
    if end == start {
        return Ok(0);
    }
    let (mm, frames, plat) = k.mm_parts();
    let (ranges, hole) = mm.msync_ranges(start, end, flags)?;
    for (file, off, len) in ranges {
        if let File::Tmpfs(t) = &*file {
            if let Ok(data) = t.fs.data(t.ino) {
                frames.shared.flush(plat, &data, off, len);
            }
        }
        if let Some(h) = super::bindfs::writable(&file) {
            if let Some(key) = crate::mm::hostshared::key_of(plat, h) {
                frames.host_shared.flush(plat, key, off, len);
                let _ = crate::platform::HostOps::fsync(plat.host(), h);
            }
        }
    }
    if hole {
        return Err(Errno::ENOMEM);
    }
    Ok(0)
}

/// mincore(2): which pages of a mapped range are resident, one byte each.
pub fn sys_mincore<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (start, len, vec) = (a[0], a[1], a[2]);
    if !start.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let task_size = k.plat.max_user_address();
    let end = start
        .checked_add(len)
        .filter(|e| *e <= task_size)
        .ok_or(Errno::ENOMEM)?;
    let end = crate::abi::page_up(end).ok_or(Errno::ENOMEM)?;
    let pages = (end - start) / PAGE_SIZE;
    if vec.checked_add(pages).is_none_or(|e| e > task_size) {
        return Err(Errno::EFAULT);
    }
    if pages == 0 {
        return Ok(0);
    }
    let (mm, _, _) = k.mm_parts();
    let resident = mm.mincore(start, end)?;
    k.copy_out(vec, &resident)?;
    Ok(0)
}
