//! The kernel heap: the global allocator of the sentry image.
//!
//! A region of guest RAM reserved at boot (outside the sentry's physical
//! frame range) and reached through the direct map. Small blocks (up to
//! 2 KiB) come from power-of-two free lists carved out of 64 KiB chunks;
//! larger blocks are runs of pages from an address-ordered, coalescing
//! free list. One vCPU and no kernel-mode interrupt handlers touch it, so a
//! simple spin lock is enough; it also makes the allocator safe for SMP
//! later.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, Ordering};

const PAGE: usize = 4096;
const SMALL_MAX: usize = 2048;
const NR_CLASSES: usize = 8; // 16, 32, ..., 2048
const CHUNK: usize = 64 * 1024;

/// A free run of pages: lives in its first page.
struct Run {
    pages: usize,
    next: *mut Run,
}

struct Inner {
    classes: [*mut u8; NR_CLASSES],
    runs: *mut Run,
    free_pages: usize,
}

/// The allocator. `init` must run before the first allocation.
pub struct KernelHeap {
    lock: AtomicBool,
    inner: core::cell::UnsafeCell<Inner>,
}

// SAFETY: all access to `inner` happens under `lock`.
unsafe impl Sync for KernelHeap {}

#[global_allocator]
pub static HEAP: KernelHeap = KernelHeap {
    lock: AtomicBool::new(false),
    inner: core::cell::UnsafeCell::new(Inner {
        classes: [null_mut(); NR_CLASSES],
        runs: null_mut(),
        free_pages: 0,
    }),
};

fn class_of(size: usize) -> usize {
    let size = size.max(16).next_power_of_two();
    size.trailing_zeros() as usize - 4
}

impl KernelHeap {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock gives exclusive access to `inner`.
        let r = f(unsafe { &mut *self.inner.get() });
        self.lock.store(false, Ordering::Release);
        r
    }

    /// Hand the heap `[start, start+len)` (kernel virtual, page aligned).
    ///
    /// # Safety
    /// The range is mapped, unused by anything else, and stays so forever.
    pub unsafe fn init(&self, start: u64, len: u64) {
        self.with(|h| {
            // SAFETY: per the contract, the range is ours.
            unsafe { h.free_run(start as *mut u8, len as usize / PAGE) };
        });
    }

    /// Free heap pages (for statistics).
    pub fn free_pages(&self) -> usize {
        self.with(|h| h.free_pages)
    }
}

impl Inner {
    /// Take `pages` pages aligned to `align` (a power of two, >= PAGE).
    unsafe fn alloc_run(&mut self, pages: usize, align: usize) -> *mut u8 {
        let mut prev: *mut *mut Run = &mut self.runs;
        // SAFETY: the list only holds runs inside the heap, each headed by a valid Run.
        unsafe {
            while !(*prev).is_null() {
                let run = *prev;
                let start = run as usize;
                let end = start + (*run).pages * PAGE;
                let at = (start + align - 1) & !(align - 1);
                if at + pages * PAGE <= end {
                    let next = (*run).next;
                    *prev = next;
                    self.free_pages -= (end - start) / PAGE;
                    if at > start {
                        self.free_run(start as *mut u8, (at - start) / PAGE);
                    }
                    let tail = at + pages * PAGE;
                    if tail < end {
                        self.free_run(tail as *mut u8, (end - tail) / PAGE);
                    }
                    return at as *mut u8;
                }
                prev = &mut (*run).next;
            }
        }
        null_mut()
    }

    /// Return a run, keeping the list address-ordered and coalesced.
    unsafe fn free_run(&mut self, p: *mut u8, pages: usize) {
        if pages == 0 {
            return;
        }
        self.free_pages += pages;
        let addr = p as usize;
        let mut prev: *mut Run = null_mut();
        let mut cur = self.runs;
        // SAFETY: list nodes are valid runs; `p` is a free run handed back by the caller.
        unsafe {
            while !cur.is_null() && (cur as usize) < addr {
                prev = cur;
                cur = (*cur).next;
            }
            let node = p as *mut Run;
            ptr::write(node, Run { pages, next: cur });
            if !cur.is_null() && addr + pages * PAGE == cur as usize {
                (*node).pages += (*cur).pages;
                (*node).next = (*cur).next;
            }
            if prev.is_null() {
                self.runs = node;
            } else if prev as usize + (*prev).pages * PAGE == addr {
                (*prev).pages += (*node).pages;
                (*prev).next = (*node).next;
            } else {
                (*prev).next = node;
            }
        }
    }

    unsafe fn alloc_small(&mut self, class: usize) -> *mut u8 {
        let size = 16usize << class;
        if self.classes[class].is_null() {
            // SAFETY: a fresh chunk from the page allocator.
            let chunk = unsafe { self.alloc_run(CHUNK / PAGE, PAGE) };
            if chunk.is_null() {
                return null_mut();
            }
            let mut off = CHUNK;
            while off >= size {
                off -= size;
                // SAFETY: `chunk + off` is inside the fresh chunk, aligned to `size`.
                unsafe {
                    let blk = chunk.add(off);
                    *(blk as *mut *mut u8) = self.classes[class];
                    self.classes[class] = blk;
                }
            }
        }
        let blk = self.classes[class];
        // SAFETY: free blocks store the next pointer in their first word.
        self.classes[class] = unsafe { *(blk as *mut *mut u8) };
        blk
    }
}

// SAFETY: blocks are handed out at most once until freed, aligned as the
// layout asks (small classes are naturally aligned to their power-of-two
// size, runs to at least a page).
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size().max(layout.align());
        self.with(|h| {
            if size <= SMALL_MAX {
                // SAFETY: the heap is initialised before use.
                unsafe { h.alloc_small(class_of(size)) }
            } else {
                let pages = layout.size().div_ceil(PAGE);
                // SAFETY: as above.
                unsafe { h.alloc_run(pages, layout.align().max(PAGE)) }
            }
        })
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let size = layout.size().max(layout.align());
        self.with(|h| {
            if size <= SMALL_MAX {
                let class = class_of(size);
                // SAFETY: `p` came from this class; it becomes the list head.
                unsafe { *(p as *mut *mut u8) = h.classes[class] };
                h.classes[class] = p;
            } else {
                // SAFETY: `p` is a run of this many pages from alloc_run.
                unsafe { h.free_run(p, layout.size().div_ceil(PAGE)) };
            }
        })
    }
}
