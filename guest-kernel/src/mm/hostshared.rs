//! `MAP_SHARED` mappings of host files beneath read-write bind mounts:
//! every shared mapping of a file, in any process, maps the same frames,
//! one per file page, kept here with the file to write them back through.
//!
//! The host file stays the truth for everything else. The two are kept
//! coherent at the system calls, as for tmpfs (`shmem`): a read of the file
//! first writes back the frames it covers, a write refreshes them, `msync`
//! and `fsync` write them back, and so does the last unmap. There is no
//! dirty tracking: a write-back writes every frame in the range, up to the
//! file's size on the host (a page past its end stays in memory, as Linux's
//! would raise SIGBUS).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use super::frames::FrameAllocator;
use crate::abi::PAGE_SIZE;
use crate::fs::File;
use crate::platform::{HostHandle, HostOps, PhysAddr, Platform};

/// A host file's identity: device and inode on the host.
pub type HostKey = (u64, u64);

/// The frames of one host file's shared mappings.
#[derive(Debug)]
struct HostSharedFile {
    /// A writable handle to it (kept open until the frames are gone).
    file: Arc<File>,
    pages: BTreeMap<u64, PhysAddr>,
}

impl HostSharedFile {
    fn handle(&self) -> Option<HostHandle> {
        crate::syscalls::bindfs::writable(&self.file)
    }
}

/// Every host file with shared mappings.
#[derive(Debug, Default)]
pub struct HostShared {
    files: BTreeMap<HostKey, HostSharedFile>,
}

/// The identity of host file `h`.
pub fn key_of<P: Platform>(plat: &P, h: HostHandle) -> Option<HostKey> {
    plat.host().fstat(h).ok().map(|st| (st.st_dev, st.st_ino))
}

impl HostShared {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The frame for page `index` of `key`, if one exists.
    pub fn get(&self, key: HostKey, index: u64) -> Option<PhysAddr> {
        self.files.get(&key)?.pages.get(&index).copied()
    }

    /// Record `pa` (filled from the file by the caller) as page `index` of
    /// `file`; the table keeps its own reference to the frame.
    pub fn insert(
        &mut self,
        frames: &mut FrameAllocator,
        key: HostKey,
        file: &Arc<File>,
        index: u64,
        pa: PhysAddr,
    ) {
        frames.share(pa);
        self.files
            .entry(key)
            .or_insert_with(|| HostSharedFile {
                file: file.clone(),
                pages: BTreeMap::new(),
            })
            .pages
            .insert(index, pa);
    }

    /// Write the frames of `[off, off+len)` of `key` back to the host (a
    /// read of the file, `msync`, `fsync`).
    pub fn flush<P: Platform>(&self, plat: &P, key: HostKey, off: u64, len: u64) {
        if let Some(f) = self.files.get(&key) {
            write_back(
                plat,
                f,
                off / PAGE_SIZE,
                (off.saturating_add(len)).div_ceil(PAGE_SIZE),
            );
        }
    }

    /// After a write of `[off, off+len)` of `key`: read its frames again.
    pub fn refresh<P: Platform>(&self, plat: &P, key: HostKey, off: u64, len: u64) {
        let Some(f) = self.files.get(&key) else {
            return;
        };
        let Some(h) = f.handle() else {
            return;
        };
        let (first, last) = (off / PAGE_SIZE, off.saturating_add(len).div_ceil(PAGE_SIZE));
        for (&index, &pa) in f.pages.range(first..last) {
            fill(plat, h, pa, index);
        }
    }

    /// Write back and free the frames of files no mapping uses any more
    /// (only this table holds them).
    pub fn collect<P: Platform>(&mut self, plat: &P, frames: &mut FrameAllocator) {
        super::shmem::release_idle(
            &mut self.files,
            frames,
            |f| &f.pages,
            |f| {
                write_back(plat, f, 0, u64::MAX);
            },
        );
    }
}

/// Read page `index` of host file `h` into frame `pa` (zeros past its end).
pub fn fill<P: Platform>(plat: &P, h: HostHandle, pa: PhysAddr, index: u64) {
    let mut got = 0u64;
    while got < PAGE_SIZE {
        match plat.host_pread_phys(
            h,
            pa + got,
            (PAGE_SIZE - got) as usize,
            index * PAGE_SIZE + got,
        ) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    if got < PAGE_SIZE {
        plat.phys_zero(pa + got, PAGE_SIZE - got);
    }
}

/// Write pages `first..last` of `f` to the host, up to the file's size.
fn write_back<P: Platform>(plat: &P, f: &HostSharedFile, first: u64, last: u64) {
    let Some(h) = f.handle() else {
        return;
    };
    let Ok(size) = plat.host().fstat(h).map(|st| st.st_size.max(0) as u64) else {
        return;
    };
    let mut buf = alloc::vec![0u8; PAGE_SIZE as usize];
    for (&index, &pa) in f.pages.range(first..last) {
        let at = index * PAGE_SIZE;
        if at >= size {
            break;
        }
        let n = (size - at).min(PAGE_SIZE) as usize;
        plat.phys_read(pa, &mut buf[..n]);
        let mut done = 0;
        while done < n {
            match plat.host().pwrite(h, &buf[done..n], at + done as u64) {
                Ok(0) | Err(_) => break,
                Ok(w) => done += w,
            }
        }
    }
}
