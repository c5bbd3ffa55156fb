//! `read` and `pread` of root-image files through the page cache.
//!
//! The root image is the container's own (as gVisor's default "exclusive"
//! file access assumes): an open file is read as the version it was opened
//! as, whose pages the cache keys by identity, modification time and size
//! (`FileId`). Small files, the ones programs read again and again
//! (Python's modules, configuration, locale data), are read through the
//! cache: a miss costs one host call for a run of pages, a hit none, and
//! the same frames serve the file's mappings. Big files stream straight
//! into the reader's buffer with no copy in the sentry, as before.

use crate::abi::linux::Stat;
use crate::abi::{KResult, PAGE_SIZE};
use crate::kernel::Kernel;
use crate::mm::pagecache::FileId;
use crate::platform::{HostHandle, Platform};

/// Files up to this size are read through the page cache.
const CACHED_FILE_MAX: u64 = 2 << 20;

/// The page-cache identity for a root-image file at container path `path`
/// with attributes `st`: none beneath a bind mount (a volume the host or
/// the sandbox may change under an open file).
pub fn identity<P: Platform>(k: &Kernel<'_, P>, path: &[u8], st: &Stat) -> Option<FileId> {
    k.vfs.bind_of(path).is_none().then(|| FileId::of(st))
}

/// Read `len` bytes at `off` of host file `handle` into user memory at
/// `buf`, through the page cache if `id` says which version it is.
pub fn pread<P: Platform>(
    k: &mut Kernel<'_, P>,
    handle: HostHandle,
    id: Option<FileId>,
    buf: u64,
    len: u64,
    off: u64,
) -> KResult<u64> {
    let Some(id) = id.filter(|id| id.size() <= CACHED_FILE_MAX && k.frames.cache.limit > 0) else {
        k.stats.host_reads += 1;
        super::bindfs::flush_mapped(k, handle, off, len);
        return super::io::pread_host(k, handle, buf, len, off);
    };
    let end = id.size().min(off.saturating_add(len));
    if off >= end {
        k.stats.cached_reads += 1;
        return Ok(0);
    }
    if fill(k, handle, id, off / PAGE_SIZE, (end - 1) / PAGE_SIZE) {
        k.stats.host_reads += 1;
    } else {
        k.stats.cached_reads += 1;
    }
    let mut page = alloc::vec![0u8; PAGE_SIZE as usize];
    let mut done = 0u64;
    while off + done < end {
        let pos = off + done;
        let in_page = pos % PAGE_SIZE;
        let n = (PAGE_SIZE - in_page).min(end - pos);
        let Some(pa) = k.frames.cache.get(id, pos / PAGE_SIZE) else {
            // Evicted meanwhile (memory is short): the rest straight.
            return match super::io::pread_host(k, handle, buf + done, end - pos, pos) {
                Ok(m) => Ok(done + m),
                Err(_) if done > 0 => Ok(done),
                Err(e) => Err(e),
            };
        };
        let chunk = &mut page[..n as usize];
        k.plat.phys_read(pa + in_page, chunk);
        if let Err(e) = k.copy_out(buf + done, chunk) {
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n;
    }
    Ok(done)
}

/// Bring pages `first..=last` of `id` into the cache, as far as memory and
/// the host allow: each run of misses is read in one host call, straight
/// into its frames.
///
/// Whether it asked the host.
fn fill<P: Platform>(
    k: &mut Kernel<'_, P>,
    handle: HostHandle,
    id: FileId,
    first: u64,
    last: u64,
) -> bool {
    let mut asked = false;
    let mut index = first;
    while index <= last {
        if k.frames.cache.get(id, index).is_some() {
            index += 1;
            continue;
        }
        let mut n = 1;
        while index + n <= last && k.frames.cache.get(id, index + n).is_none() {
            n += 1;
        }
        // No memory to spare: the copy-out finds the pages missing and
        // reads the rest straight.
        let Some(run) = k.frames.alloc_run(n) else {
            return asked;
        };
        asked = true;
        let len = run.pages * PAGE_SIZE;
        let mut got = 0u64;
        let mut err = None;
        while got < len {
            match k.plat.host_pread_phys(
                handle,
                run.pa + got,
                (len - got) as usize,
                index * PAGE_SIZE + got,
            ) {
                Ok(0) => break,
                Ok(m) => got += m as u64,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if got < len {
            k.plat.phys_zero(run.pa + got, len - got);
        }
        // Only whole pages the host gave (or that lie past its end) are
        // cached; the cache takes its own reference to each.
        let good = match err {
            Some(_) => got / PAGE_SIZE,
            None => run.pages,
        };
        for i in 0..run.pages {
            let pa = run.pa + i * PAGE_SIZE;
            if i < good {
                k.frames.cache_insert(id, index + i, pa);
            }
            k.frames.free_frame(pa);
        }
        if err.is_some() {
            // The copy-out reads the rest straight, and reports the error.
            return true;
        }
        index += run.pages;
    }
    asked
}
