//! Mapping an image's pages ahead of its first touches.
//!
//! A fault costs a trap into the sentry (about 10 µs under PVM's shadow
//! paging, more under ptrace, where the mapping is a further injected
//! call). A program touches most of a small image's pages as it starts,
//! so `execve` maps at once, within a budget and in the batch that builds
//! the new address space, those of its file pages that the page cache
//! holds already (a program run again, as by a shell or a build): pages
//! that would have to be read from the host are left to their faults,
//! since a large image's are mostly never touched.

use alloc::vec::Vec;

use super::{FaultError, MmStruct, Vma, VmaKind, FAULT_AROUND_PAGES};
use crate::abi::PAGE_SIZE;
use crate::mm::frames::FrameAllocator;
use crate::platform::Platform;

/// Most bytes of image mapped ahead per `execve`.
pub const PREFAULT_MAX: u64 = 2 << 20;

impl<P: Platform> MmStruct<P> {
    /// Map the cached file pages of the image segments (the program's and
    /// its interpreter's, lowest first) until `budget` bytes are covered.
    /// A page that cannot be had now is left to fault in later.
    pub fn prefault_image(&mut self, plat: &P, frames: &mut FrameAllocator, budget: u64) {
        let window = FAULT_AROUND_PAGES * PAGE_SIZE;
        let images: Vec<Vma> = self
            .vmas
            .values()
            .filter(|v| v.kind == VmaKind::Image && v.prot.read && v.backing.is_some())
            .copied()
            .collect();
        let mut left = budget;
        for v in images {
            let Some(b) = v.backing else {
                continue;
            };
            let Some(id) = self.cache_id(plat, b.key) else {
                continue;
            };
            let mut page = v.start;
            while page < v.end && left > 0 {
                let index = (b.offset + (page - v.start)) / PAGE_SIZE;
                if !self.pages.contains_key(&page) && frames.cache.get(id, index).is_some() {
                    match self.populate(plat, frames, v, page) {
                        Ok(()) => {}
                        Err(FaultError::NoMemory) => return,
                        Err(_) => break,
                    }
                }
                let next = (page & !(window - 1)).saturating_add(window).min(v.end);
                left = left.saturating_sub(next - page);
                page = next;
            }
        }
    }
}
