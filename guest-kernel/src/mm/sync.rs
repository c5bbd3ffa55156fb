//! What `msync` and `mincore` ask of an address space.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::MmStruct;
use crate::abi::{Errno, PAGE_SIZE};
use crate::fs::File;
use crate::platform::Platform;

/// A range of a shared file mapping to write back: the file, the offset
/// and the length.
pub type SyncRange = (Arc<File>, u64, u64);

/// `msync` flags.
pub const MS_ASYNC: u32 = 1;
pub const MS_SYNC: u32 = 4;

impl<P: Platform> MmStruct<P> {
    /// The shared file ranges `msync(flags)` of `[start, end)` (page
    /// aligned, non-empty) writes back, as Linux walks them: a hole in the
    /// range is skipped but makes the call fail with `ENOMEM` at the end
    /// (the second value); a range past the last mapping fails at once,
    /// and so does a hole for a plain `MS_ASYNC`, which has nothing to do.
    pub fn msync_ranges(
        &self,
        mut start: u64,
        end: u64,
        flags: u32,
    ) -> Result<(Vec<SyncRange>, bool), Errno> {
        let mut out = Vec::new();
        let mut hole = false;
        loop {
            let (_, vma) = self
                .vmas
                .range(..end)
                .find(|(_, v)| v.end > start)
                .ok_or(Errno::ENOMEM)?;
            if start < vma.start {
                if flags == MS_ASYNC {
                    return Err(Errno::ENOMEM);
                }
                start = vma.start;
                hole = true;
            }
            let stop = vma.end.min(end);
            if let (Some(b), true, true) = (vma.backing, vma.shared, flags & MS_SYNC != 0) {
                if let Some((file, _, _)) = self.files.get(&b.key) {
                    out.push((file.clone(), b.offset + (start - vma.start), stop - start));
                }
            }
            start = vma.end;
            if start >= end {
                return Ok((out, hole));
            }
        }
    }

    /// `mincore` of `[start, end)` (page aligned): one byte per page, 1
    /// where the page is resident (mapped here); `ENOMEM` if any page is
    /// not mapped at all.
    pub fn mincore(&self, start: u64, end: u64) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::with_capacity(((end - start) / PAGE_SIZE) as usize);
        let mut va = start;
        while va < end {
            let vma = self.find_vma(va).ok_or(Errno::ENOMEM)?;
            let stop = vma.end.min(end);
            out.extend(
                (va..stop)
                    .step_by(PAGE_SIZE as usize)
                    .map(|p| u8::from(self.pages.contains_key(&p))),
            );
            va = stop;
        }
        Ok(out)
    }
}
