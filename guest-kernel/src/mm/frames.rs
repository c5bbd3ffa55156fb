//! The physical frame allocator.
//!
//! The sentry owns every frame of platform memory. Frames above the
//! high-water mark have never been handed out and are known to be zero (both
//! platforms start from untouched zero pages), so only recycled frames are
//! zeroed on allocation.

use alloc::vec;
use alloc::vec::Vec;

use crate::abi::PAGE_SIZE;
use crate::platform::PhysAddr;

/// A bitmap allocator over `[first, first+count)` frames.
#[derive(Debug)]
pub struct FrameAllocator {
    base: PhysAddr,
    count: u64,
    /// One bit per frame: 1 = in use.
    used: Vec<u64>,
    /// Extra references per frame beyond the first (copy-on-write sharing).
    shares: alloc::collections::BTreeMap<u64, u32>,
    /// Frames at or above this index have never been allocated.
    high_water: u64,
    /// Where the next search starts (next-fit keeps runs contiguous).
    cursor: u64,
    free: u64,
    /// File pages kept for the next mapping of the same file.
    pub cache: super::pagecache::PageCache,
    /// The frames of `MAP_SHARED` tmpfs mappings.
    pub shared: super::shmem::SharedFiles,
    /// The frames of `MAP_SHARED` mappings of host files in read-write binds.
    pub host_shared: super::hostshared::HostShared,
}

/// A run of contiguous frames returned by [`FrameAllocator::alloc_run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRun {
    pub pa: PhysAddr,
    pub pages: u64,
    /// Whether the frames may hold old data and must be zeroed before use.
    pub dirty: bool,
}

impl FrameAllocator {
    /// Manage `len` bytes of physical memory starting at `base` (page-aligned).
    pub fn new(base: PhysAddr, len: u64) -> Self {
        let count = len / PAGE_SIZE;
        FrameAllocator {
            base,
            count,
            used: vec![0; count.div_ceil(64) as usize],
            shares: alloc::collections::BTreeMap::new(),
            high_water: 0,
            cursor: 0,
            free: count,
            // A quarter of memory at most; idle pages go first when memory
            // runs short.
            cache: super::pagecache::PageCache::with_limit((count / 4) as usize),
            shared: Default::default(),
            host_shared: Default::default(),
        }
    }

    /// Frames not in use.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames in use.
    pub fn used_frames(&self) -> u64 {
        self.count - self.free
    }

    fn is_used(&self, i: u64) -> bool {
        self.used[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64, v: bool) {
        let w = &mut self.used[(i / 64) as usize];
        if v {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }

    /// Allocate between 1 and `want` contiguous frames (as many as are free
    /// at the first free spot found). `None` when memory is exhausted.
    pub fn alloc_run(&mut self, want: u64) -> Option<FrameRun> {
        if self.free == 0 && !self.cache.is_empty() {
            let mut cache = core::mem::take(&mut self.cache);
            cache.shrink(self, 64);
            self.cache = cache;
        }
        if self.free == 0 || want == 0 {
            return None;
        }
        // Fresh frames first: they are contiguous and need no zeroing.
        let start = if self.high_water < self.count {
            self.high_water
        } else {
            let mut i = self.cursor;
            let mut scanned = 0;
            while self.is_used(i) {
                i = (i + 1) % self.count;
                scanned += 1;
                if scanned > self.count {
                    return None;
                }
            }
            i
        };
        let mut n = 0;
        let mut dirty = false;
        while n < want && start + n < self.count && !self.is_used(start + n) {
            if start + n < self.high_water {
                dirty = true;
            }
            self.set(start + n, true);
            n += 1;
        }
        self.high_water = self.high_water.max(start + n);
        self.cursor = (start + n) % self.count;
        self.free -= n;
        Some(FrameRun {
            pa: self.base + start * PAGE_SIZE,
            pages: n,
            dirty,
        })
    }

    /// Keep `pa` in the page cache as page `index` of `file`.
    pub fn cache_insert(&mut self, file: super::pagecache::FileId, index: u64, pa: PhysAddr) {
        let mut cache = core::mem::take(&mut self.cache);
        cache.insert(self, file, index, pa);
        self.cache = cache;
    }

    /// Make `pa` the shared-mapping frame of page `index` of `data`.
    pub fn shared_insert(
        &mut self,
        data: &crate::fs::filedata::FileData,
        index: u64,
        pa: PhysAddr,
    ) {
        let mut shared = core::mem::take(&mut self.shared);
        shared.insert(self, data, index, pa);
        self.shared = shared;
    }

    /// Write back and free shared-mapping frames nothing maps any more.
    pub fn shared_collect<P: crate::platform::Platform>(&mut self, plat: &P) {
        if !self.shared.is_empty() {
            let mut shared = core::mem::take(&mut self.shared);
            shared.collect(plat, self);
            self.shared = shared;
        }
        if !self.host_shared.is_empty() {
            let mut shared = core::mem::take(&mut self.host_shared);
            shared.collect(plat, self);
            self.host_shared = shared;
        }
    }

    /// Make `pa` the shared-mapping frame of page `index` of host file `key`.
    pub fn host_shared_insert(
        &mut self,
        key: super::hostshared::HostKey,
        file: &alloc::sync::Arc<crate::fs::File>,
        index: u64,
        pa: PhysAddr,
    ) {
        let mut shared = core::mem::take(&mut self.host_shared);
        shared.insert(self, key, file, index, pa);
        self.host_shared = shared;
    }

    /// Take another reference to an allocated frame (copy-on-write).
    pub fn share(&mut self, pa: PhysAddr) {
        *self.shares.entry(pa).or_insert(0) += 1;
    }

    /// Whether more than one mapping refers to the frame.
    pub fn is_shared(&self, pa: PhysAddr) -> bool {
        self.shares.contains_key(&pa)
    }

    /// Drop one reference to a frame; the last one frees it.
    pub fn free_frame(&mut self, pa: PhysAddr) {
        if let Some(n) = self.shares.get_mut(&pa) {
            *n -= 1;
            if *n == 0 {
                self.shares.remove(&pa);
            }
            return;
        }
        let Some(off) = pa.checked_sub(self.base) else {
            return;
        };
        let i = off / PAGE_SIZE;
        if i < self.count && self.is_used(i) {
            self.set(i, false);
            self.free += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_runs_are_contiguous_and_clean() {
        let mut a = FrameAllocator::new(0x10_0000, 64 * PAGE_SIZE);
        let r = a.alloc_run(16).unwrap();
        assert_eq!(
            r,
            FrameRun {
                pa: 0x10_0000,
                pages: 16,
                dirty: false
            }
        );
        let r2 = a.alloc_run(16).unwrap();
        assert_eq!(r2.pa, 0x10_0000 + 16 * PAGE_SIZE);
        assert_eq!(a.free_frames(), 32);
    }

    #[test]
    fn recycled_frames_are_dirty_and_exhaustion_is_reported() {
        let mut a = FrameAllocator::new(0, 4 * PAGE_SIZE);
        let r = a.alloc_run(4).unwrap();
        assert_eq!(r.pages, 4);
        assert!(a.alloc_run(1).is_none());
        a.free_frame(2 * PAGE_SIZE);
        let r = a.alloc_run(4).unwrap();
        assert_eq!((r.pa, r.pages, r.dirty), (2 * PAGE_SIZE, 1, true));
        // Out-of-range and double frees are ignored.
        a.free_frame(1 << 40);
        a.free_frame(3 * PAGE_SIZE);
        a.free_frame(3 * PAGE_SIZE);
        assert_eq!(a.free_frames(), 1);
    }

    #[test]
    fn shared_frames_are_freed_by_the_last_reference() {
        let mut a = FrameAllocator::new(0, 4 * PAGE_SIZE);
        let r = a.alloc_run(1).unwrap();
        a.share(r.pa);
        assert!(a.is_shared(r.pa));
        a.free_frame(r.pa);
        assert!(!a.is_shared(r.pa));
        assert_eq!(a.free_frames(), 3);
        a.free_frame(r.pa);
        assert_eq!(a.free_frames(), 4);
    }
}
