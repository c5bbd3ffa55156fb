//! Address-space operations behind `mmap`, `munmap`, `mprotect` and `brk`.

use alloc::sync::Arc;

use super::{FileBacking, FrameAllocator, MmStruct, Vma, VmaKind};
use crate::abi::{page_up, Errno, KResult, PAGE_SIZE};
use crate::fs::File;
use crate::platform::{Platform, Prot};

/// A mapping to make.
#[derive(Clone, Debug)]
pub struct MmapRequest {
    pub addr: u64,
    pub len: u64,
    pub prot: Prot,
    pub placement: Placement,
    /// `MAP_SHARED`: kept shared with children across `fork`.
    pub shared: bool,
    /// A file mapping: the file and the offset of the first page.
    pub file: Option<(Arc<File>, u64)>,
}

/// How `mmap` treats its address argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A hint: used if free, otherwise the kernel picks.
    Hint,
    /// `MAP_FIXED`: replace whatever is there.
    Fixed,
    /// `MAP_FIXED_NOREPLACE`: fail with `EEXIST` if anything is there.
    FixedNoReplace,
}

/// Lowest address an `mmap` may return (Linux's default `mmap_min_addr`).
pub const MMAP_MIN_ADDR: u64 = 0x10000;

impl<P: Platform> MmStruct<P> {
    /// Highest free gap of `len` bytes below `below`, searching down.
    pub fn find_free(&self, len: u64, below: u64) -> Option<u64> {
        let mut top = below;
        for v in self.vmas.values().rev() {
            if v.start >= top {
                continue;
            }
            if v.end <= top && top - v.end >= len {
                return Some(top - len);
            }
            top = top.min(v.start);
        }
        (top >= MMAP_MIN_ADDR + len).then(|| top - len)
    }

    /// Map anonymous memory, or a file, at `addr` as `placement` says.
    pub fn mmap(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        req: MmapRequest,
    ) -> KResult<u64> {
        let MmapRequest {
            addr,
            len,
            prot,
            placement,
            shared,
            file,
        } = req;
        let len = page_up(len)
            .filter(|l| *l != 0 && *l <= self.task_size)
            .ok_or(Errno::ENOMEM)?;
        let start = if placement != Placement::Hint {
            if !addr.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            let end = addr
                .checked_add(len)
                .filter(|e| *e <= self.task_size)
                .ok_or(Errno::ENOMEM)?;
            if addr < MMAP_MIN_ADDR {
                return Err(Errno::EPERM);
            }
            if placement == Placement::FixedNoReplace && self.overlaps(addr, end) {
                return Err(Errno::EEXIST);
            }
            self.unmap_range(plat, frames, addr, end)?;
            addr
        } else {
            let hint = addr & !(PAGE_SIZE - 1);
            match hint.checked_add(len) {
                Some(end)
                    if hint >= MMAP_MIN_ADDR
                        && end <= self.task_size
                        && !self.overlaps(hint, end) =>
                {
                    hint
                }
                _ => self.find_free(len, self.mmap_base).ok_or(Errno::ENOMEM)?,
            }
        };
        let mut vma = Vma {
            start,
            end: start + len,
            prot,
            kind: VmaKind::Anon,
            shared,
            backing: None,
        };
        match file {
            Some((f, offset)) => {
                let key = Arc::as_ptr(&f) as usize as u64;
                vma.kind = VmaKind::File;
                vma.backing = Some(FileBacking { key, offset });
                self.insert_file_vma(vma, f);
            }
            None => self.insert_vma(vma),
        }
        Ok(start)
    }

    /// `munmap(2)`.
    pub fn munmap(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        addr: u64,
        len: u64,
    ) -> KResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).filter(|l| *l != 0).ok_or(Errno::EINVAL)?;
        let end = addr
            .checked_add(len)
            .filter(|e| *e <= self.task_size)
            .ok_or(Errno::EINVAL)?;
        self.unmap_range(plat, frames, addr, end)
    }

    /// `mprotect(2)`.
    pub fn mprotect(&mut self, plat: &P, addr: u64, len: u64, prot: Prot) -> KResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Ok(());
        }
        let end = addr
            .checked_add(len)
            .filter(|e| *e <= self.task_size)
            .ok_or(Errno::ENOMEM)?;
        self.protect_range(plat, addr, end, prot)
    }

    /// `brk(2)`: returns the new break, or the old one when the request fails.
    pub fn set_brk(&mut self, plat: &P, frames: &mut FrameAllocator, want: u64, limit: u64) -> u64 {
        if want < self.brk_start || want - self.brk_start > limit {
            return self.brk;
        }
        let (Some(old_top), Some(new_top)) = (page_up(self.brk), page_up(want)) else {
            return self.brk;
        };
        if new_top > old_top {
            if new_top > self.task_size || self.overlaps(old_top, new_top) {
                return self.brk;
            }
            // Grow the heap VMA in place, or start it.
            match self.find_vma(old_top.wrapping_sub(1)) {
                Some(v) if v.kind == VmaKind::Heap && v.end == old_top => {
                    if let Some(h) = self.vmas.get_mut(&v.start) {
                        h.end = new_top;
                    }
                }
                _ => self.insert_vma(Vma {
                    start: old_top,
                    end: new_top,
                    prot: Prot::RW,
                    kind: VmaKind::Heap,
                    shared: false,
                    backing: None,
                }),
            }
        } else if new_top < old_top && self.unmap_range(plat, frames, new_top, old_top).is_err() {
            return self.brk;
        }
        self.brk = want;
        want
    }
}
