//! `MAP_SHARED` mappings of tmpfs files (`/dev/shm`, `/tmp`, the root
//! overlay): every shared mapping of a file, in any process, maps the same
//! frames, one per file page, kept here.
//!
//! The file's own contents stay in its `FileData` (the sentry heap). The two
//! are kept coherent at the system calls: a `read` of the file first copies
//! the frames it covers back into the file, and a `write` copies what it
//! wrote into the frames. A file's frames are written back and freed once
//! no mapping uses them.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::frames::FrameAllocator;
use crate::abi::PAGE_SIZE;
use crate::fs::filedata::FileData;
use crate::platform::{PhysAddr, Platform};

/// The frames of one file's shared mappings.
#[derive(Debug)]
struct SharedFile {
    data: FileData,
    pages: BTreeMap<u64, PhysAddr>,
}

/// Every file with shared mappings, by its contents' identity.
#[derive(Debug, Default)]
pub struct SharedFiles {
    files: BTreeMap<usize, SharedFile>,
}

impl SharedFiles {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The frame for page `index` of `data`, if one exists.
    pub fn get(&self, data: &FileData, index: u64) -> Option<PhysAddr> {
        self.files.get(&data.id())?.pages.get(&index).copied()
    }

    /// Record `pa` (filled from the file by the caller) as page `index`;
    /// the table keeps its own reference to the frame.
    pub fn insert(
        &mut self,
        frames: &mut FrameAllocator,
        data: &FileData,
        index: u64,
        pa: PhysAddr,
    ) {
        frames.share(pa);
        self.files
            .entry(data.id())
            .or_insert_with(|| SharedFile {
                data: data.clone(),
                pages: BTreeMap::new(),
            })
            .pages
            .insert(index, pa);
    }

    /// Before a read of `[off, off+len)` of `data`: copy mapped pages back.
    pub fn flush<P: Platform>(&self, plat: &P, data: &FileData, off: u64, len: u64) {
        let Some(f) = self.files.get(&data.id()) else {
            return;
        };
        let (first, last) = (off / PAGE_SIZE, (off + len).div_ceil(PAGE_SIZE));
        let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
        for (&index, &pa) in f.pages.range(first..last) {
            let at = index * PAGE_SIZE;
            let size = data.size();
            if at >= size {
                break;
            }
            let n = (size - at).min(PAGE_SIZE) as usize;
            plat.phys_read(pa, &mut buf[..n]);
            let _ = data.write(&buf[..n], at);
        }
    }

    /// After a write of `[off, off+len)` of `data`: refresh mapped pages.
    pub fn refresh<P: Platform>(&self, plat: &P, data: &FileData, off: u64, len: u64) {
        let Some(f) = self.files.get(&data.id()) else {
            return;
        };
        let (first, last) = (off / PAGE_SIZE, (off + len).div_ceil(PAGE_SIZE));
        let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
        for (&index, &pa) in f.pages.range(first..last) {
            buf.fill(0);
            data.read(&mut buf, index * PAGE_SIZE);
            plat.phys_write(pa, &buf);
        }
    }

    /// Write back and free the frames of files that no mapping uses any
    /// more (only this table holds them).
    pub fn collect<P: Platform>(&mut self, plat: &P, frames: &mut FrameAllocator) {
        release_idle(
            &mut self.files,
            frames,
            |f| &f.pages,
            |f| {
                Self::flush_all(plat, f, f.data.size());
            },
        );
    }

    fn flush_all<P: Platform>(plat: &P, f: &SharedFile, size: u64) {
        let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
        for (&index, &pa) in &f.pages {
            let at = index * PAGE_SIZE;
            if at >= size {
                break;
            }
            let n = (size - at).min(PAGE_SIZE) as usize;
            plat.phys_read(pa, &mut buf[..n]);
            let _ = f.data.write(&buf[..n], at);
        }
    }
}

/// Take out of `files` those whose frames no mapping uses any more (only
/// the table holds them): `write_back` each, then free its frames. Shared
/// by tmpfs files and host files (`hostshared`).
pub(super) fn release_idle<K: Ord + Copy, F>(
    files: &mut BTreeMap<K, F>,
    frames: &mut FrameAllocator,
    pages: impl Fn(&F) -> &BTreeMap<u64, PhysAddr>,
    mut write_back: impl FnMut(&F),
) {
    let idle: Vec<K> = files
        .iter()
        .filter(|(_, f)| pages(f).values().all(|pa| !frames.is_shared(*pa)))
        .map(|(k, _)| *k)
        .collect();
    for key in idle {
        if let Some(f) = files.remove(&key) {
            write_back(&f);
            for pa in pages(&f).values() {
                frames.free_frame(*pa);
            }
        }
    }
}
