//! Faults on file mappings that share frames: root-image files through the
//! page cache (copy-on-write), and `MAP_SHARED` tmpfs files through their
//! shared frames.

use alloc::vec::Vec;

use super::{mapped_prot, pagecache, FaultError, FileBacking, FrameAllocator, MmStruct, Pte, Vma};
use crate::abi::PAGE_SIZE;
use crate::fs::File;
use crate::platform::{PhysAddr, Platform};

impl<P: Platform> MmStruct<P> {
    /// The page-cache identity of mapped file `key`, if it is a root-image
    /// file (learnt on its first fault).
    pub(super) fn cache_id(&mut self, plat: &P, key: u64) -> Option<pagecache::FileId> {
        let e = self.files.get_mut(&key)?;
        if e.2.is_none() {
            if let File::HostFile { handle, cache, .. } = &*e.0 {
                // The version it was opened as (whose pages its reads
                // cached too), else the host's word on it.
                e.2 = cache.or_else(|| {
                    crate::platform::HostOps::fstat(plat.host(), *handle)
                        .ok()
                        .map(|st| pagecache::FileId::of(&st))
                });
            }
        }
        e.2
    }

    /// `populate` for a root-image file: pages come from the page cache,
    /// or are read (a run of misses in one host call) and cached. They are
    /// mapped copy-on-write: a write gets a private copy.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn populate_cached(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        b: FileBacking,
        id: pagecache::FileId,
        (win_start, win_end): (u64, u64),
        page: u64,
    ) -> Result<(), FaultError> {
        let index = |va: u64| (b.offset + (va - vma.start)) / PAGE_SIZE;
        // Pages to map, (va, pa), mapped at the end in contiguous runs: a
        // map is a stub system call on ptrace.
        let mut new: Vec<(u64, PhysAddr)> = Vec::new();
        let mut va = win_start;
        while va < win_end {
            if self.pages.contains_key(&va) {
                va += PAGE_SIZE;
                continue;
            }
            if let Some(pa) = frames.cache.get(id, index(va)) {
                frames.share(pa);
                new.push((va, pa));
                va += PAGE_SIZE;
                continue;
            }
            // A run of pages missing from both the table and the cache.
            let mut n = 1;
            while va + n * PAGE_SIZE < win_end
                && !self.pages.contains_key(&(va + n * PAGE_SIZE))
                && frames.cache.get(id, index(va + n * PAGE_SIZE)).is_none()
            {
                n += 1;
            }
            let Some(run) = frames.alloc_run(n) else {
                break;
            };
            let file = self.files.get(&b.key).map(|e| e.0.clone());
            // Straight into the frames (on KVM the VMM preads into guest
            // memory); past the end of the file, zeros.
            let Some(File::HostFile { handle, .. }) = file.as_deref() else {
                for i in 0..run.pages {
                    frames.free_frame(run.pa + i * PAGE_SIZE);
                }
                break;
            };
            let len = run.pages * PAGE_SIZE;
            let mut got = 0;
            while got < len {
                match plat.host_pread_phys(
                    *handle,
                    run.pa + got,
                    (len - got) as usize,
                    index(va) * PAGE_SIZE + got,
                ) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k as u64,
                }
            }
            if got < len {
                plat.phys_zero(run.pa + got, len - got);
            }
            for i in 0..run.pages {
                let pa = run.pa + i * PAGE_SIZE;
                frames.cache_insert(id, index(va) + i, pa);
                new.push((va + i * PAGE_SIZE, pa));
            }
            va += run.pages * PAGE_SIZE;
        }
        let prot = mapped_prot(vma.prot, true);
        let mut i = 0;
        while i < new.len() {
            let (start, pa) = new[i];
            let mut n = 1;
            while i + n < new.len()
                && new[i + n] == (start + n as u64 * PAGE_SIZE, pa + n as u64 * PAGE_SIZE)
            {
                n += 1;
            }
            for (va, pa) in &new[i..i + n] {
                self.pages.insert(*va, Pte { pa: *pa, cow: true });
            }
            plat.map(&mut self.space, start, pa, n as u64 * PAGE_SIZE, prot)
                .map_err(|_| FaultError::NoMemory)?;
            i += n;
        }
        if self.pages.contains_key(&page) {
            Ok(())
        } else {
            Err(FaultError::NoMemory)
        }
    }

    /// A write to a copy-on-write page of a private root-image mapping (a
    /// program's or library's data, its relocations). If the page is still
    /// the page cache's, this is the first write to the file's data here:
    /// the other pages of the fault-around window that are still the page
    /// cache's get their private copies now too, because programs write
    /// their data densely and each fault costs far more than a page copy.
    pub(super) fn break_cow_cached(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        b: FileBacking,
        id: pagecache::FileId,
        page: u64,
    ) -> Result<(), FaultError> {
        let index = |va: u64| (b.offset + (va - vma.start)) / PAGE_SIZE;
        let from_cache = |mm: &Self, frames: &mut FrameAllocator, va: u64| {
            mm.pages
                .get(&va)
                .is_some_and(|pte| pte.cow && frames.cache.get(id, index(va)) == Some(pte.pa))
        };
        if !from_cache(self, frames, page) {
            return self.break_cow(plat, frames, vma, page);
        }
        // A library's data: small, and written all over at start-up.
        let window = super::FILLING_PAGES * PAGE_SIZE;
        let win_start = (page & !(window - 1)).max(vma.start);
        let win_end = (page & !(window - 1)).saturating_add(window).min(vma.end);
        let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
        let mut va = win_start;
        while va < win_end {
            if !from_cache(self, frames, va) {
                va += PAGE_SIZE;
                continue;
            }
            let mut n = 1;
            while va + n * PAGE_SIZE < win_end && from_cache(self, frames, va + n * PAGE_SIZE) {
                n += 1;
            }
            let Some(run) = frames.alloc_run(n) else {
                // The neighbours are optional; the faulting page is not.
                return match self.pages.get(&page) {
                    Some(pte) if !pte.cow => Ok(()),
                    _ => self.break_cow(plat, frames, vma, page),
                };
            };
            for i in 0..run.pages {
                let at = va + i * PAGE_SIZE;
                let Some(old) = self.pages.get(&at).map(|pte| pte.pa) else {
                    continue;
                };
                plat.phys_read(old, &mut buf);
                plat.phys_write(run.pa + i * PAGE_SIZE, &buf);
                frames.free_frame(old);
                self.pages.insert(
                    at,
                    Pte {
                        pa: run.pa + i * PAGE_SIZE,
                        cow: false,
                    },
                );
            }
            plat.map(&mut self.space, va, run.pa, run.pages * PAGE_SIZE, vma.prot)
                .map_err(|_| FaultError::NoMemory)?;
            va += run.pages * PAGE_SIZE;
        }
        Ok(())
    }

    /// `populate` for a `MAP_SHARED` mapping of a host file open for
    /// writing (beneath a read-write bind): the file page's one shared
    /// frame, read from the host on first use (see `hostshared`).
    pub(super) fn populate_host_shared(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        b: FileBacking,
        file: &alloc::sync::Arc<File>,
        window: (u64, u64),
    ) -> Result<(), FaultError> {
        let h = crate::syscalls::bindfs::writable(file).ok_or(FaultError::Denied)?;
        let key = super::hostshared::key_of(plat, h).ok_or(FaultError::NoMemory)?;
        self.populate_shared_frames(plat, frames, vma, b, window, |frames, index| {
            if let Some(pa) = frames.host_shared.get(key, index) {
                frames.share(pa);
                return Ok(pa);
            }
            let run = frames.alloc_run(1).ok_or(FaultError::NoMemory)?;
            super::hostshared::fill(plat, h, run.pa, index);
            frames.host_shared_insert(key, file, index, run.pa);
            Ok(run.pa)
        })
    }

    /// `populate` for a `MAP_SHARED` tmpfs mapping: the file page's one
    /// shared frame, made (and filled from the file) on first use.
    pub(super) fn populate_shared(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        b: FileBacking,
        data: &crate::fs::filedata::FileData,
        window: (u64, u64),
    ) -> Result<(), FaultError> {
        self.populate_shared_frames(plat, frames, vma, b, window, |frames, index| {
            if let Some(pa) = frames.shared.get(data, index) {
                frames.share(pa);
                return Ok(pa);
            }
            let run = frames.alloc_run(1).ok_or(FaultError::NoMemory)?;
            let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
            data.read(&mut buf, index * PAGE_SIZE);
            plat.phys_write(run.pa, &buf);
            frames.shared_insert(data, index, run.pa);
            Ok(run.pa)
        })
    }

    /// Map the window's missing pages of a shared file mapping to the
    /// frames `frame_of` gives for their file page indexes (a reference
    /// each, for the mapping).
    fn populate_shared_frames(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        vma: Vma,
        b: FileBacking,
        (win_start, win_end): (u64, u64),
        mut frame_of: impl FnMut(&mut FrameAllocator, u64) -> Result<PhysAddr, FaultError>,
    ) -> Result<(), FaultError> {
        let mut va = win_start;
        while va < win_end {
            if self.pages.contains_key(&va) {
                va += PAGE_SIZE;
                continue;
            }
            let pa = frame_of(frames, (b.offset + (va - vma.start)) / PAGE_SIZE)?;
            self.pages.insert(va, Pte { pa, cow: false });
            plat.map(&mut self.space, va, pa, PAGE_SIZE, vma.prot)
                .map_err(|_| FaultError::NoMemory)?;
            va += PAGE_SIZE;
        }
        Ok(())
    }
}
