//! Application address spaces: VMAs, demand paging, and user memory access.
//!
//! `MmStruct` is the source of truth for what is mapped where. It owns the
//! frames behind every present page and mirrors them into the platform's
//! address space (page tables or a stub process). User copies translate
//! through it and touch physical memory directly, so the sentry never takes
//! a fault on a user pointer.

mod fileback;
mod fork;
pub mod frames;
pub mod hostshared;
pub mod ops;
pub mod pagecache;
pub mod prefault;
mod remap;
pub mod shmem;
pub mod sync;
pub mod usertrap;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::abi::{page_down, Errno, KResult, PAGE_SIZE};
use alloc::sync::Arc;

use crate::fs::File;
use crate::platform::{PhysAddr, Platform, Prot};
pub use frames::FrameAllocator;

/// Pages populated around a fault: faults are costly on both platforms
/// (about 10 µs each under PVM shadow paging, an injected syscall on ptrace).
pub const FAULT_AROUND_PAGES: u64 = 16;
/// The window where memory is being filled up: anonymous memory next to
/// present pages, and the first write to a private file mapping's data.
pub const FILLING_PAGES: u64 = 64;
/// The same for root-image file mappings (program text and data, shared
/// libraries): their misses are read from the host in one call each, and
/// a host call costs more than reading 256 KiB more.
pub const FILE_FAULT_AROUND_PAGES: u64 = 64;

/// What a mapping is, for `/proc/self/maps` and for growth rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    Anon,
    Heap,
    Stack,
    Image,
    File,
}

/// The file behind a file mapping: pages fault in from the host file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileBacking {
    /// Identifies the file in `MmStruct::files`.
    pub key: u64,
    /// File offset of the VMA's start.
    pub offset: u64,
}

/// A virtual memory area: `[start, end)` with one set of permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub prot: Prot,
    pub kind: VmaKind,
    /// `MAP_SHARED`: pages stay shared across `fork` instead of copy-on-write.
    pub shared: bool,
    pub backing: Option<FileBacking>,
}

/// A present page: its frame, and whether it is mapped read-only for
/// copy-on-write although its VMA allows writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pte {
    pub pa: PhysAddr,
    pub cow: bool,
}

/// What a faulting access was (see `Trap::PageFault`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultAccess {
    pub write: Option<bool>,
    pub not_present: bool,
    pub exec: bool,
    /// Another CPU served a fault of this space while the faulting task
    /// ran: where the platform cannot tell the access (`write: None`), a
    /// fault on a present page is then retried, not refused.
    pub raced: bool,
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
    pages: BTreeMap<u64, Pte>,
    pub brk_start: u64,
    pub brk: u64,
    /// Top-down allocation of unhinted mmaps starts below this address.
    pub mmap_base: u64,
    /// One past the highest user address.
    pub task_size: u64,
    /// Files behind file mappings, with the number of VMAs using each;
    /// they stay open while mapped, even after `close`.
    /// The third field names a root-image file's pages in the page cache.
    files: BTreeMap<u64, (Arc<File>, usize, Option<pagecache::FileId>)>,
    /// Faults that mapped or unshared a page (see `FaultAccess::raced`).
    pub faults_served: u64,
    /// Patched system call sites.
    pub usertrap: usertrap::UserTrap,
}

impl<P: Platform> MmStruct<P> {
    pub fn new(space: P::AddressSpace, task_size: u64) -> Self {
        MmStruct {
            task_size,
            files: BTreeMap::new(),
            space,
            vmas: BTreeMap::new(),
            pages: BTreeMap::new(),
            faults_served: 0,
            usertrap: usertrap::UserTrap::default(),
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
        if let Some(b) = vma.backing {
            if let Some(e) = self.files.get_mut(&b.key) {
                e.1 += 1;
            }
        }
        self.vmas.insert(vma.start, vma);
    }

    /// Add a file mapping: the file stays referenced while any part is mapped.
    pub fn insert_file_vma(&mut self, vma: Vma, file: Arc<File>) {
        if let Some(b) = vma.backing {
            self.files.entry(b.key).or_insert((file, 0, None));
        }
        self.insert_vma(vma);
    }

    /// Map frames someone else keeps a reference to (the vDSO's, shared by
    /// every address space) over the free range of `vma`, taking one
    /// reference per page. The pages are copy-on-write: a write, even after
    /// `mprotect`, gets a private copy and never reaches the shared frame.
    pub fn map_frames(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        pa: PhysAddr,
    ) -> KResult<()> {
        if vma.start >= vma.end || self.overlaps(vma.start, vma.end) {
            return Err(Errno::EINVAL);
        }
        let len = vma.end - vma.start;
        plat.map(
            &mut self.space,
            vma.start,
            pa,
            len,
            mapped_prot(vma.prot, true),
        )?;
        self.insert_vma(vma);
        for off in (0..len).step_by(PAGE_SIZE as usize) {
            frames.share(pa + off);
            self.pages.insert(
                vma.start + off,
                Pte {
                    pa: pa + off,
                    cow: true,
                },
            );
        }
        Ok(())
    }

    /// Drop a VMA's reference to its file; the last one releases it.
    fn put_backing(&mut self, plat: &P, vma: &Vma) {
        let Some(b) = vma.backing else {
            return;
        };
        if let Some(e) = self.files.get_mut(&b.key) {
            e.1 -= 1;
            if e.1 == 0 {
                if let Some((file, _, _)) = self.files.remove(&b.key) {
                    crate::syscalls::io::release_file_plat(plat, file);
                }
            }
        }
    }

    /// Split the VMA containing `addr` so that a VMA starts at `addr`.
    fn split_at(&mut self, addr: u64) {
        if let Some(v) = self.find_vma(addr) {
            if v.start < addr {
                let backing = v.backing.map(|b| FileBacking {
                    offset: b.offset + (addr - v.start),
                    ..b
                });
                if let Some(b) = backing {
                    if let Some(e) = self.files.get_mut(&b.key) {
                        e.1 += 1;
                    }
                }
                self.vmas.insert(v.start, Vma { end: addr, ..v });
                self.vmas.insert(
                    addr,
                    Vma {
                        start: addr,
                        backing,
                        ..v
                    },
                );
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
            if let Some(v) = self.vmas.remove(&k) {
                self.put_backing(plat, &v);
            }
        }
        let pages: Vec<(u64, Pte)> = self
            .pages
            .range(start..end)
            .map(|(k, v)| (*k, *v))
            .collect();
        if !pages.is_empty() {
            for (va, pte) in &pages {
                self.pages.remove(va);
                frames.free_frame(pte.pa);
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
        for (va, len, cow) in self.present_runs(start, end) {
            plat.protect(&mut self.space, va, len, mapped_prot(prot, cow))?;
        }
        Ok(())
    }

    /// Runs of consecutive present pages in `[start, end)` with the same
    /// copy-on-write state, as (va, len, cow).
    fn present_runs(&self, start: u64, end: u64) -> Vec<(u64, u64, bool)> {
        let mut runs: Vec<(u64, u64, bool)> = Vec::new();
        for (va, pte) in self.pages.range(start..end) {
            match runs.last_mut() {
                Some((s, l, c)) if *s + *l == *va && *c == pte.cow => *l += PAGE_SIZE,
                _ => runs.push((*va, PAGE_SIZE, pte.cow)),
            }
        }
        runs
    }

    /// Give a copy-on-write page its own frame (or take back the only one).
    pub(super) fn break_cow(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        page: u64,
    ) -> Result<(), FaultError> {
        let pte = *self.pages.get(&page).ok_or(FaultError::Unmapped)?;
        let pa = if frames.is_shared(pte.pa) {
            let run = frames.alloc_run(1).ok_or(FaultError::NoMemory)?;
            let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
            plat.phys_read(pte.pa, &mut buf);
            plat.phys_write(run.pa, &buf);
            frames.free_frame(pte.pa);
            run.pa
        } else {
            pte.pa
        };
        self.pages.insert(page, Pte { pa, cow: false });
        plat.map(&mut self.space, page, pa, PAGE_SIZE, vma.prot)
            .map_err(|_| FaultError::NoMemory)
    }

    /// Handle an application fault at `addr`: populate the page (and its
    /// neighbours) when the VMA allows the access.
    pub fn handle_fault(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        addr: u64,
        access: FaultAccess,
    ) -> Result<(), FaultError> {
        let write = access.write;
        let vma = self.find_vma(addr).ok_or(FaultError::Unmapped)?;
        let page = page_down(addr);
        if let Some(pte) = self.pages.get(&page) {
            // A write to a copy-on-write page.
            if pte.cow && vma.prot.write && write != Some(false) {
                self.faults_served += 1;
                if let (Some(b), false) = (vma.backing, vma.shared) {
                    if let Some(id) = self.cache_id(plat, b.key) {
                        return self.break_cow_cached(plat, frames, vma, b, id, page);
                    }
                }
                return self.break_cow(plat, frames, vma, page);
            }
            // Another CPU mapped the page, or broke its copy-on-write,
            // between the fault and now: the access is allowed, so retry.
            // Anything else on a present page is an access the VMA forbids.
            let spurious = vma.prot != Prot::NONE
                && if access.exec {
                    vma.prot.exec && access.not_present
                } else {
                    match write {
                        Some(true) => vma.prot.write && !pte.cow,
                        Some(false) => access.not_present,
                        None => access.raced,
                    }
                };
            return if spurious {
                Ok(())
            } else {
                Err(FaultError::Denied)
            };
        }
        if vma.prot == Prot::NONE || (write == Some(true) && !vma.prot.write) {
            return Err(FaultError::Denied);
        }
        self.faults_served += 1;
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
        let window = |pages: u64| {
            let w = pages * PAGE_SIZE;
            let start = page & !(w - 1);
            (start.max(vma.start), start.saturating_add(w).min(vma.end))
        };
        let (mut win_start, mut win_end) = window(FAULT_AROUND_PAGES);
        // Anonymous memory filled window after window (a heap, an arena, a
        // stack going down) gets bigger windows: a fault costs a host call
        // or an exit whatever its size. A first touch (a new thread's stack)
        // keeps the small one.
        if vma.backing.is_none() {
            let below = win_start.checked_sub(PAGE_SIZE);
            if below.is_some_and(|b| self.pages.contains_key(&b))
                || self.pages.contains_key(&win_end)
            {
                (win_start, win_end) = window(FILLING_PAGES);
            }
        }
        if let (Some(b), true) = (vma.backing, vma.shared) {
            let data = match self.files.get(&b.key).map(|e| &*e.0) {
                Some(File::Tmpfs(t)) => t.fs.data(t.ino).ok(),
                _ => None,
            };
            if let Some(data) = data {
                return self.populate_shared(plat, frames, vma, b, &data, (win_start, win_end));
            }
            if let Some(file) = self.files.get(&b.key).map(|e| e.0.clone()) {
                if crate::syscalls::bindfs::writable(&file).is_some() {
                    return self.populate_host_shared(
                        plat,
                        frames,
                        vma,
                        b,
                        &file,
                        (win_start, win_end),
                    );
                }
            }
        }
        if let Some(b) = vma.backing {
            if let Some(id) = self.cache_id(plat, b.key) {
                let win = window(FILE_FAULT_AROUND_PAGES);
                return self.populate_cached(plat, frames, vma, b, id, win, page);
            }
        }
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
                let at = va + done * PAGE_SIZE;
                if let Some(b) = vma.backing {
                    // File pages: read the file; past its end, zeros.
                    let mut buf = alloc::vec![0u8; (run.pages * PAGE_SIZE) as usize];
                    let mut got = 0;
                    while got < buf.len() {
                        let Some(file) = self.files.get(&b.key).map(|e| e.0.clone()) else {
                            break;
                        };
                        match crate::fs::read_at(
                            plat,
                            &file,
                            &mut buf[got..],
                            b.offset + (at - vma.start) + got as u64,
                        ) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                    plat.phys_write(run.pa, &buf);
                } else if run.dirty {
                    plat.phys_zero(run.pa, run.pages * PAGE_SIZE);
                }
                for i in 0..run.pages {
                    self.pages.insert(
                        at + i * PAGE_SIZE,
                        Pte {
                            pa: run.pa + i * PAGE_SIZE,
                            cow: false,
                        },
                    );
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
        match self.pages.get(&page) {
            None => self.populate(plat, frames, vma, page)?,
            Some(pte) if pte.cow && access != Access::Read => {
                self.break_cow(plat, frames, vma, page)?
            }
            Some(_) => {}
        }
        let pte = self.pages.get(&page).ok_or(FaultError::NoMemory)?;
        Ok(pte.pa + (va - page))
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

    /// The physical address of a writable user word (shared futex keys):
    /// a copy-on-write page gets its own frame first.
    pub fn user_phys(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
    ) -> KResult<PhysAddr> {
        Ok(self.translate(plat, frames, va, Access::Write)?)
    }

    /// The physical runs behind user range `[va, va+len)`, populated (and,
    /// for `write`, made private) on demand, contiguous frames merged. Stops
    /// at the first page that cannot be had: EFAULT if that is the first.
    pub fn user_phys_runs(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        va: u64,
        len: u64,
        write: bool,
    ) -> KResult<Vec<(PhysAddr, usize)>> {
        let access = if write { Access::Write } else { Access::Read };
        let end = va.checked_add(len).ok_or(Errno::EFAULT)?;
        let mut runs: Vec<(PhysAddr, usize)> = Vec::new();
        let mut cur = va;
        while cur < end {
            let chunk = (PAGE_SIZE - (cur % PAGE_SIZE)).min(end - cur);
            let pa = match self.translate(plat, frames, cur, access) {
                Ok(pa) => pa,
                Err(e) if runs.is_empty() => return Err(e.into()),
                Err(_) => break,
            };
            match runs.last_mut() {
                Some((start, n)) if *start + *n as u64 == pa => *n += chunk as usize,
                _ => runs.push((pa, chunk as usize)),
            }
            cur += chunk;
        }
        Ok(runs)
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

/// The permissions a page is mapped with: copy-on-write pages lose write.
fn mapped_prot(prot: Prot, cow: bool) -> Prot {
    Prot {
        write: prot.write && !cow,
        ..prot
    }
}
