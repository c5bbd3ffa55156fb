//! The contents of a tmpfs file: 4 KiB pages allocated as they are written,
//! so sparse files cost nothing, a growing file never needs one large
//! contiguous allocation, and running out of memory is `ENOSPC`, not a
//! sentry panic. All tmpfs instances draw on one page budget, set at boot
//! from the sandbox's memory (Linux's tmpfs default is half of RAM).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::abi::{Errno, KResult};

const PAGE: usize = 4096;

/// Pages held by every tmpfs file, and the most they may hold.
static PAGES_USED: AtomicU64 = AtomicU64::new(0);
static PAGES_LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Bound all tmpfs contents to `bytes`.
pub fn set_limit(bytes: u64) {
    PAGES_LIMIT.store(bytes / PAGE as u64, Ordering::Relaxed);
}

/// Bytes the budget allows, and bytes in use (for `statfs`).
pub fn usage() -> (u64, u64) {
    let limit = PAGES_LIMIT.load(Ordering::Relaxed);
    (
        limit.saturating_mul(PAGE as u64),
        PAGES_USED.load(Ordering::Relaxed) * PAGE as u64,
    )
}

type Page = Box<[u8; PAGE]>;

/// One zeroed page from the budget and the heap, or ENOSPC.
fn new_page() -> KResult<Page> {
    let limit = PAGES_LIMIT.load(Ordering::Relaxed);
    if PAGES_USED
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_err()
    {
        return Err(Errno::ENOSPC);
    }
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(PAGE).is_err() {
        PAGES_USED.fetch_sub(1, Ordering::Relaxed);
        return Err(Errno::ENOSPC);
    }
    v.resize(PAGE, 0);
    v.into_boxed_slice().try_into().map_err(|_| {
        PAGES_USED.fetch_sub(1, Ordering::Relaxed);
        Errno::ENOSPC
    })
}

#[derive(Debug, Default)]
struct Pages {
    size: u64,
    pages: BTreeMap<u64, Page>,
}

impl Pages {
    fn drop_pages_from(&mut self, first: u64) {
        let gone = self.pages.split_off(&first);
        PAGES_USED.fetch_sub(gone.len() as u64, Ordering::Relaxed);
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        PAGES_USED.fetch_sub(self.pages.len() as u64, Ordering::Relaxed);
    }
}

/// A file's contents, shared by its hard links (cloning an inode is cheap).
#[derive(Clone, Debug, Default)]
pub struct FileData(Arc<Mutex<Pages>>);

impl PartialEq for FileData {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for FileData {}

impl FileData {
    /// Contents initialised from `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> KResult<FileData> {
        let d = FileData::default();
        d.write(bytes, 0)?;
        Ok(d)
    }

    /// Identity of these contents (shared by hard links and clones).
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    pub fn size(&self) -> u64 {
        self.0.lock().size
    }

    /// Bytes of memory held (for `st_blocks`).
    pub fn allocated(&self) -> u64 {
        self.0.lock().pages.len() as u64 * PAGE as u64
    }

    /// Read at `off`; holes read as zeros.
    pub fn read(&self, buf: &mut [u8], off: u64) -> usize {
        let p = self.0.lock();
        if off >= p.size {
            return 0;
        }
        let n = buf.len().min((p.size - off) as usize);
        let mut done = 0;
        while done < n {
            let at = off + done as u64;
            let (idx, in_page) = (at / PAGE as u64, (at % PAGE as u64) as usize);
            let len = (PAGE - in_page).min(n - done);
            match p.pages.get(&idx) {
                Some(page) => buf[done..done + len].copy_from_slice(&page[in_page..in_page + len]),
                None => buf[done..done + len].fill(0),
            }
            done += len;
        }
        n
    }

    /// Write at `off`, growing the file. A write that runs out of space
    /// stops there: a short count, or ENOSPC if nothing was written.
    pub fn write(&self, data: &[u8], off: u64) -> KResult<usize> {
        let mut p = self.0.lock();
        let mut done = 0;
        while done < data.len() {
            let at = off + done as u64;
            let (idx, in_page) = (at / PAGE as u64, (at % PAGE as u64) as usize);
            let len = (PAGE - in_page).min(data.len() - done);
            let page = match p.pages.entry(idx) {
                alloc::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                alloc::collections::btree_map::Entry::Vacant(e) => match new_page() {
                    Ok(page) => e.insert(page),
                    Err(err) if done == 0 => return Err(err),
                    Err(_) => break,
                },
            };
            page[in_page..in_page + len].copy_from_slice(&data[done..done + len]);
            done += len;
        }
        p.size = p.size.max(off + done as u64);
        Ok(done)
    }

    /// Set the size: shrinking frees pages and zeroes the tail of the last
    /// one (so growing again reads zeros); growing allocates nothing.
    pub fn truncate(&self, len: u64) {
        let mut p = self.0.lock();
        if len < p.size {
            let first_gone = len.div_ceil(PAGE as u64);
            p.drop_pages_from(first_gone);
            let tail = (len % PAGE as u64) as usize;
            if tail != 0 {
                if let Some(page) = p.pages.get_mut(&(len / PAGE as u64)) {
                    page[tail..].fill(0);
                }
            }
        }
        p.size = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_writes_read_back_with_zero_holes() {
        let d = FileData::default();
        assert_eq!(d.write(b"abc", 10_000), Ok(3));
        assert_eq!(d.size(), 10_003);
        assert_eq!(d.allocated(), 4096);
        let mut buf = [1u8; 10_003];
        assert_eq!(d.read(&mut buf, 0), 10_003);
        assert!(buf[..10_000].iter().all(|b| *b == 0));
        assert_eq!(&buf[10_000..], b"abc");
        // Shrink into the page, grow again: the cut bytes read as zeros.
        d.truncate(10_001);
        d.truncate(20_000);
        let mut two = [9u8; 2];
        assert_eq!(d.read(&mut two, 10_000), 2);
        assert_eq!(two, [b'a', 0]);
        d.truncate(0);
        assert_eq!(d.allocated(), 0);
    }
}
