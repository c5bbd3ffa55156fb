//! `mremap` and `madvise(MADV_DONTNEED)`.

use alloc::vec::Vec;

use super::{FileBacking, FrameAllocator, MmStruct, Pte, Vma};
use crate::abi::{page_up, Errno, KResult, PAGE_SIZE};
use crate::platform::Platform;

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;

impl<P: Platform> MmStruct<P> {
    /// Drop the pages of `[start, end)` but keep the mappings: anonymous
    /// memory reads back as zeros, file pages are read again.
    pub fn discard(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        start: u64,
        end: u64,
    ) -> KResult<()> {
        let mut a = start;
        while a < end {
            let v = self.find_vma(a).ok_or(Errno::ENOMEM)?;
            if v.shared {
                // Shared memory keeps its contents for the other users.
                a = v.end;
                continue;
            }
            let stop = v.end.min(end);
            let pages: Vec<(u64, Pte)> = self.pages.range(a..stop).map(|(k, p)| (*k, *p)).collect();
            if !pages.is_empty() {
                for (va, pte) in &pages {
                    self.pages.remove(va);
                    frames.free_frame(pte.pa);
                }
                plat.unmap(&mut self.space, a, stop - a)?;
            }
            a = stop;
        }
        Ok(())
    }

    /// `mremap(2)`: shrink, grow in place, or move a mapping. `args` are the
    /// syscall's: old address, old size, new size, flags, new address.
    pub fn mremap(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        args: [u64; 5],
    ) -> KResult<u64> {
        let [old, old_size, new_size, flags, new_addr] = args;
        if !old.is_multiple_of(PAGE_SIZE) || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & MREMAP_FIXED != 0
            && (flags & MREMAP_MAYMOVE == 0 || !new_addr.is_multiple_of(PAGE_SIZE))
        {
            return Err(Errno::EINVAL);
        }
        let old_size = page_up(old_size).ok_or(Errno::EINVAL)?;
        let new_size = page_up(new_size).filter(|s| *s != 0).ok_or(Errno::EINVAL)?;
        let old_end = old.checked_add(old_size).ok_or(Errno::EINVAL)?;
        let v = self.find_vma(old).ok_or(Errno::EFAULT)?;
        if old_size == 0 || old_end > v.end {
            return Err(Errno::EFAULT);
        }
        if flags & MREMAP_FIXED == 0 {
            if new_size <= old_size {
                self.unmap_range(plat, frames, old + new_size, old_end)?;
                return Ok(old);
            }
            let grow_end = old.checked_add(new_size).ok_or(Errno::ENOMEM)?;
            if old_end == v.end && grow_end <= self.task_size && !self.overlaps(old_end, grow_end) {
                if let Some(e) = self.vmas.get_mut(&v.start) {
                    e.end = grow_end;
                }
                return Ok(old);
            }
            if flags & MREMAP_MAYMOVE == 0 {
                return Err(Errno::ENOMEM);
            }
        }
        // Move: a new VMA elsewhere takes the pages (same frames, new addresses).
        let dest = if flags & MREMAP_FIXED != 0 {
            let end = new_addr
                .checked_add(new_size)
                .filter(|e| *e <= self.task_size)
                .ok_or(Errno::EINVAL)?;
            if new_addr < old_end && old < end {
                return Err(Errno::EINVAL);
            }
            self.unmap_range(plat, frames, new_addr, end)?;
            new_addr
        } else {
            self.find_free(new_size, self.mmap_base)
                .ok_or(Errno::ENOMEM)?
        };
        let keep = old_size.min(new_size);
        let moved: Vec<(u64, Pte)> = self
            .pages
            .range(old..old + keep)
            .map(|(k, p)| (*k, *p))
            .collect();
        for (va, _) in &moved {
            self.pages.remove(va);
        }
        let backing = v.backing.map(|b| FileBacking {
            offset: b.offset + (old - v.start),
            ..b
        });
        // Take the file reference along before the old range goes.
        if let Some(b) = backing {
            if let Some(e) = self.files.get_mut(&b.key) {
                e.1 += 1;
            }
        }
        self.unmap_range(plat, frames, old, old_end)?;
        // The moved pages left the table first, so drop their old mappings here.
        plat.unmap(&mut self.space, old, old_size)?;
        self.vmas.insert(
            dest,
            Vma {
                start: dest,
                end: dest + new_size,
                backing,
                ..v
            },
        );
        for (va, pte) in moved {
            let to = dest + (va - old);
            self.pages.insert(to, pte);
            plat.map(
                &mut self.space,
                to,
                pte.pa,
                PAGE_SIZE,
                super::mapped_prot(v.prot, pte.cow),
            )?;
        }
        Ok(dest)
    }
}
