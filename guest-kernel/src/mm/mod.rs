//! Application address spaces: VMAs, demand paging, and user memory access.
//!
//! `MmStruct` is the source of truth for what is mapped where. It owns the
//! frames behind every present page and mirrors them into the platform's
//! address space (page tables or a stub process). User copies translate
//! through it and touch physical memory directly, so the sentry never takes
//! a fault on a user pointer.

pub mod frames;
pub mod ops;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::abi::{page_down, Errno, KResult, PAGE_SIZE};
use crate::platform::{PhysAddr, Platform, Prot};
pub use frames::FrameAllocator;

/// Pages populated around a fault: faults are costly on both platforms
/// (about 10 µs each under PVM shadow paging, an injected syscall on ptrace).
pub const FAULT_AROUND_PAGES: u64 = 16;

/// What a mapping is, for `/proc/self/maps` and for growth rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    Anon,
    Heap,
    Stack,
    Image,
}

/// A virtual memory area: `[start, end)` with one set of permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub kind: VmaKind,
}

/// Why a user access could not be satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// No mapping at the address (`SEGV_MAPERR`).
    Unmapped,
    /// A mapping exists but forbids the access (`SEGV_ACCERR`).
    Denied,
    /// Out of memory.
    NoMemory,
}

impl From<FaultError> for Errno {
    fn from(e: FaultError) -> Errno {
        match e {
            FaultError::NoMemory => Errno::ENOMEM,
            _ => Errno::EFAULT,
        }
    }
}

/// The kind of access a copy makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// The loader writing into read-only image pages.
    Force,
}

/// An application address space.
#[derive(Debug)]
pub struct MmStruct<P: Platform> {
    pub space: P::AddressSpace,
    vmas: BTreeMap<u64, Vma>,
    pages: BTreeMap<u64, PhysAddr>,
    pub brk_start: u64,
    pub brk: u64,
    /// Top-down allocation of unhinted mmaps starts below this address.
    pub mmap_base: u64,
    /// One past the highest user address.
    pub task_size: u64,
}

impl<P: Platform> MmStruct<P> {
    pub fn new(space: P::AddressSpace, task_size: u64) -> Self {
        MmStruct {
            task_size,
            space,
            vmas: BTreeMap::new(),
            pages: BTreeMap::new(),
            brk_start: 0,
            brk: 0,
            mmap_base: 0,
        }
    }

    /// The VMA containing `addr`.
    pub fn find_vma(&self, addr: u64) -> Option<Vma> {
        let (_, v) = self.vmas.range(..=addr).next_back()?;
        (addr < v.end).then_some(*v)
    }

    /// All VMAs in address order.
    pub fn vmas(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.values()
    }

    /// Number of present pages.
    pub fn resident_pages(&self) -> usize {
        self.pages.len()
    }

    /// Whether `[start, end)` overlaps any VMA.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        if let Some((_, v)) = self.vmas.range(..end).next_back() {
            return v.end > start;
        }
        false
    }

    /// Add a VMA over a range known to be free.
    pub fn insert_vma(&mut self, vma: Vma) {
        debug_assert!(!self.overlaps(vma.start, vma.end));
        self.vmas.insert(vma.start, vma);
    }

    /// Split the VMA containing `addr` so that a VMA starts at `addr`.
    fn split_at(&mut self, addr: u64) {
        if let Some(v) = self.find_vma(addr) {
            if v.start < addr {
                self.vmas.insert(v.start, Vma { end: addr, ..v });
                self.vmas.insert(addr, Vma { start: addr, ..v });
            }
        }
    }

    /// Remove every mapping in `[start, end)`, freeing its frames.
    pub fn unmap_range(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        start: u64,
        end: u64,
    ) -> KResult<()> {
        if start >= end {
            return Ok(());
        }
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(k, _)| *k).collect();
        for k in keys {
            self.vmas.remove(&k);
        }
        let pages: Vec<(u64, PhysAddr)> = self
            .pages
            .range(start..end)
            .map(|(k, v)| (*k, *v))
            .collect();
        if !pages.is_empty() {
            for (va, pa) in &pages {
                self.pages.remove(va);
                frames.free_frame(*pa);
            }
            plat.unmap(&mut self.space, start, end - start)?;
        }
        Ok(())
    }

    /// Change the permissions of `[start, end)`, which must be fully mapped.
    pub fn protect_range(&mut self, plat: &P, start: u64, end: u64, prot: Prot) -> KResult<()> {
        // Linux fails with ENOMEM when part of the range is unmapped.
        let mut a = start;
        while a < end {
            let v = self.find_vma(a).ok_or(Errno::ENOMEM)?;
            a = v.end;
        }
        self.split_at(start);
        self.split_at(end);
        for (_, v) in self.vmas.range_mut(start..end) {
            v.prot = prot;
        }
        for (va, len) in self.present_runs(start, end) {
            plat.protect(&mut self.space, va, len, prot)?;
        }
        Ok(())
    }

    /// Runs of consecutive present pages in `[start, end)`, as (va, len).
    fn present_runs(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (va, _) in self.pages.range(start..end) {
            match runs.last_mut() {
                Some((s, l)) if *s + *l == *va => *l += PAGE_SIZE,
                _ => runs.push((*va, PAGE_SIZE)),
            }
        }
        runs
    }

    /// Handle an application fault at `addr`: populate the page (and its
    /// neighbours) when the VMA allows the access.
    pub fn handle_fault(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        addr: u64,
        write: Option<bool>,
    ) -> Result<(), FaultError> {
        let vma = self.find_vma(addr).ok_or(FaultError::Unmapped)?;
        let page = page_down(addr);
        if self.pages.contains_key(&page) {
            // Present but faulted: the platform refused the access itself.
            return Err(FaultError::Denied);
        }
        if vma.prot == Prot::NONE || (write == Some(true) && !vma.prot.write) {
            return Err(FaultError::Denied);
        }
        self.populate(plat, frames, vma, page)
    }

    /// Back the window around `page` with frames and map them.
    fn populate(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        page: u64,
    ) -> Result<(), FaultError> {
        let window = FAULT_AROUND_PAGES * PAGE_SIZE;
        let win_start = (page & !(window - 1)).max(vma.start);
        let win_end = (page & !(window - 1)).saturating_add(window).min(vma.end);
        let mut va = win_start;
        while va < win_end {
            if self.pages.contains_key(&va) {
                va += PAGE_SIZE;
                continue;
            }
            let mut n = 0;
            while va + n * PAGE_SIZE < win_end && !self.pages.contains_key(&(va + n * PAGE_SIZE)) {
                n += 1;
            }
            let mut done = 0;
            while done < n {
                let Some(run) = frames.alloc_run(n - done) else {
                    // Neighbours are optional; the faulting page is not.
                    return if self.pages.contains_key(&page) {
                        Ok(())
                    } else {
                        Err(FaultError::NoMemory)
                    };
                };
                if run.dirty {
                    plat.phys_zero(run.pa, run.pages * PAGE_SIZE);
                }
                let at = va + done * PAGE_SIZE;
                for i in 0..run.pages {
                    self.pages
                        .insert(at + i * PAGE_SIZE, run.pa + i * PAGE_SIZE);
                }
                plat.map(&mut self.space, at, run.pa, run.pages * PAGE_SIZE, vma.prot)
                    .map_err(|_| FaultError::NoMemory)?;
                done += run.pages;
            }
            va += n * PAGE_SIZE;
        }
        Ok(())
    }

    /// The physical address behind `va` for an access, populating on demand.
    fn translate(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
        access: Access,
    ) -> Result<PhysAddr, FaultError> {
        let page = page_down(va);
        let vma = self.find_vma(va).ok_or(FaultError::Unmapped)?;
        let allowed = match access {
            Access::Read => vma.prot.read,
            Access::Write => vma.prot.write,
            Access::Force => true,
        };
        if !allowed {
            return Err(FaultError::Denied);
        }
        if !self.pages.contains_key(&page) {
            self.populate(plat, frames, vma, page)?;
        }
        let pa = self.pages.get(&page).ok_or(FaultError::NoMemory)?;
        Ok(pa + (va - page))
    }

    fn copy(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
        len: usize,
        access: Access,
        mut f: impl FnMut(&P, PhysAddr, core::ops::Range<usize>),
    ) -> Result<(), FaultError> {
        let end = va.checked_add(len as u64).ok_or(FaultError::Unmapped)?;
        let mut cur = va;
        while cur < end {
            let chunk = (PAGE_SIZE - (cur % PAGE_SIZE)).min(end - cur);
            let pa = self.translate(plat, frames, cur, access)?;
            let off = (cur - va) as usize;
            f(plat, pa, off..off + chunk as usize);
            cur += chunk;
        }
        Ok(())
    }

    /// Copy `buf.len()` bytes from user address `va`.
    pub fn copy_in(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
        buf: &mut [u8],
    ) -> KResult<()> {
        let len = buf.len();
        self.copy(plat, frames, va, len, Access::Read, |p, pa, r| {
            p.phys_read(pa, &mut buf[r])
        })?;
        Ok(())
    }

    /// Copy `data` to user address `va`.
    pub fn copy_out(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
        data: &[u8],
    ) -> KResult<()> {
        self.copy(plat, frames, va, data.len(), Access::Write, |p, pa, r| {
            p.phys_write(pa, &data[r])
        })?;
        Ok(())
    }

    /// Write `data` at `va` regardless of the VMA's permissions (the loader).
    pub fn write_force(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
        data: &[u8],
    ) -> KResult<()> {
        self.copy(plat, frames, va, data.len(), Access::Force, |p, pa, r| {
            p.phys_write(pa, &data[r])
        })?;
        Ok(())
    }

    /// Read a NUL-terminated string of at most `max` bytes (without the NUL).
    pub fn read_cstr(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
        max: usize,
    ) -> KResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur = va;
        loop {
            let chunk = (PAGE_SIZE - (cur % PAGE_SIZE)) as usize;
            let mut buf = alloc::vec![0u8; chunk];
            self.copy_in(plat, frames, cur, &mut buf)?;
            if let Some(n) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..n]);
                if out.len() > max {
                    return Err(Errno::ENAMETOOLONG);
                }
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            if out.len() > max {
                return Err(Errno::ENAMETOOLONG);
            }
            cur = cur.checked_add(chunk as u64).ok_or(Errno::EFAULT)?;
        }
    }

    /// Read a `u64` from user memory.
    pub fn read_u64(&mut self, plat: &P, frames: &mut FrameAllocator, va: u64) -> KResult<u64> {
        let mut b = [0u8; 8];
        self.copy_in(plat, frames, va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Release every mapping (process exit).
    pub fn teardown(&mut self, plat: &P, frames: &mut FrameAllocator) {
        let _ = self.unmap_range(plat, frames, 0, self.task_size);
    }
}
