//! The page cache for root-image files: frames holding file pages, shared
//! copy-on-write by every private mapping of them, so a program that runs
//! again (every `fork`+`exec` of the same binary, every shared library)
//! maps pages it already has instead of reading the host file again.
//!
//! A page is keyed by its file's identity, modification time and size
//! (`FileId`), and its page index: a file the host changes gets new keys,
//! and its old pages age out. The cache holds one reference to each frame;
//! mappings hold their own, so evicting a page only drops the cache's.

use alloc::collections::BTreeMap;

use super::frames::FrameAllocator;
use crate::abi::linux::Stat;
use crate::platform::PhysAddr;

/// What identifies a version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileId {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    size: i64,
}

impl FileId {
    pub fn of(st: &Stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            size: st.st_size,
        }
    }

    /// The file's size in this version.
    pub fn size(&self) -> u64 {
        self.size.max(0) as u64
    }
}

/// Cached pages, least recently used first out.
#[derive(Debug, Default)]
pub struct PageCache {
    pages: BTreeMap<(FileId, u64), (PhysAddr, u64)>,
    /// Use stamp -> key, oldest first.
    lru: BTreeMap<u64, (FileId, u64)>,
    clock: u64,
    /// Most pages kept (0 until the owner sets it: no caching).
    pub limit: usize,
}

impl PageCache {
    pub fn with_limit(limit: usize) -> PageCache {
        PageCache {
            limit,
            ..Default::default()
        }
    }

    /// The frame holding page `index` of `file`, if cached.
    pub fn get(&mut self, file: FileId, index: u64) -> Option<PhysAddr> {
        self.clock += 1;
        let stamp = self.clock;
        let (pa, old) = self.pages.get_mut(&(file, index)).map(|e| {
            let old = e.1;
            e.1 = stamp;
            (e.0, old)
        })?;
        self.lru.remove(&old);
        self.lru.insert(stamp, (file, index));
        Some(pa)
    }

    /// Keep frame `pa` as page `index` of `file` (taking a reference to
    /// it), evicting the oldest pages beyond the limit.
    pub fn insert(&mut self, frames: &mut FrameAllocator, file: FileId, index: u64, pa: PhysAddr) {
        if self.limit == 0 || self.pages.contains_key(&(file, index)) {
            return;
        }
        while self.pages.len() >= self.limit {
            if !self.evict_oldest(frames) {
                return;
            }
        }
        self.clock += 1;
        frames.share(pa);
        self.pages.insert((file, index), (pa, self.clock));
        self.lru.insert(self.clock, (file, index));
    }

    fn evict_oldest(&mut self, frames: &mut FrameAllocator) -> bool {
        let Some((_, key)) = self.lru.pop_first() else {
            return false;
        };
        if let Some((pa, _)) = self.pages.remove(&key) {
            frames.free_frame(pa);
        }
        true
    }

    /// Memory is short: drop up to `n` pages that nothing maps, so their
    /// frames come free. Returns how many were dropped.
    pub fn shrink(&mut self, frames: &mut FrameAllocator, n: usize) -> usize {
        let idle: alloc::vec::Vec<(u64, (FileId, u64))> = self
            .lru
            .iter()
            .filter(|(_, k)| {
                self.pages
                    .get(k)
                    .is_some_and(|(pa, _)| !frames.is_shared(*pa))
            })
            .take(n)
            .map(|(s, k)| (*s, *k))
            .collect();
        for (stamp, key) in &idle {
            self.lru.remove(stamp);
            if let Some((pa, _)) = self.pages.remove(key) {
                frames.free_frame(pa);
            }
        }
        idle.len()
    }

    pub fn len(&self) -> usize {
        self.pages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::PAGE_SIZE;

    fn id(ino: u64) -> FileId {
        FileId {
            dev: 1,
            ino,
            mtime: (0, 0),
            size: 100,
        }
    }

    #[test]
    fn cached_frames_outlive_their_mappings_until_evicted() {
        let mut frames = FrameAllocator::new(0, 8 * PAGE_SIZE);
        let mut c = PageCache {
            limit: 2,
            ..Default::default()
        };
        let a = frames.alloc_run(1).unwrap().pa;
        c.insert(&mut frames, id(1), 0, a);
        frames.free_frame(a); // the mapping goes; the cache keeps it
        assert_eq!(frames.free_frames(), 7);
        assert_eq!(c.get(id(1), 0), Some(a));
        let b = frames.alloc_run(1).unwrap().pa;
        c.insert(&mut frames, id(2), 0, b);
        let d = frames.alloc_run(1).unwrap().pa;
        // Full: the least recently used (id 1 was used after id 2 was not).
        c.get(id(1), 0);
        c.insert(&mut frames, id(3), 0, d);
        assert_eq!(c.get(id(2), 0), None);
        assert_eq!(c.len(), 2);
        // b is mapped still (its first reference): eviction freed nothing.
        assert_eq!(frames.free_frames(), 5);
        // Shrink drops only pages nothing else holds.
        assert_eq!(c.shrink(&mut frames, 10), 1);
        assert_eq!(c.get(id(1), 0), None);
        assert_eq!(c.get(id(3), 0), Some(d));
    }
}
