//! User address spaces as KPTI PGD pairs.
//!
//! Each space owns an 8 KiB-aligned pair: the kernel PGD (CR3, bit 12
//! clear) maps only the upper half, copied from the boot PGD; the user PGD
//! (CR3 | 0x1000) maps only the application's lower half. The host flips
//! between them on every transition. Page-table pages come from the kernel
//! heap and are reached through the direct map. Under PVM every kernel PTE
//! carries U (the kernel runs at hardware CPL 3), and the isolation comes
//! from the user PGD not mapping the upper half at all.

use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::sync::atomic::Ordering;

use super::{phys_to_virt, pvm, virt_to_phys};
use crate::abi::hostcall::gpa;

pub const PTE_P: u64 = 1;
pub const PTE_W: u64 = 2;
pub const PTE_U: u64 = 4;
pub const PTE_A: u64 = 1 << 5;
pub const PTE_D: u64 = 1 << 6;
pub const PTE_PS: u64 = 1 << 7;
/// Software bit: the entry holds a frame even while not present (PROT_NONE).
pub const PTE_MAPPED: u64 = 1 << 9;
pub const PTE_NX: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// End of the user half.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

const PAGE: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!(),
};
const PAIR: Layout = match Layout::from_size_align(8192, 8192) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// A user address space: the GPA of its kernel PGD (the user PGD follows).
#[derive(Debug)]
pub struct PgdPair {
    pub cr3: u64,
    /// Page-table pages below the PGD (statistics).
    pub tables: u64,
}

fn table(gpa: u64) -> *mut u64 {
    phys_to_virt(gpa) as *mut u64
}

impl PgdPair {
    /// A new pair with the kernel half shared from the boot PGD.
    pub fn new() -> Option<PgdPair> {
        // SAFETY: PAIR has a non-zero size.
        let p = unsafe { alloc_zeroed(PAIR) };
        if p.is_null() {
            return None;
        }
        let cr3 = virt_to_phys(p as u64);
        let boot = table(gpa::BOOT_PGD);
        for i in 256..512 {
            // SAFETY: both are valid, page-sized tables; index < 512.
            unsafe { *table(cr3).add(i) = *boot.add(i) };
        }
        Some(PgdPair { cr3, tables: 0 })
    }

    fn user_pgd(&self) -> *mut u64 {
        table(self.cr3 + 0x1000)
    }

    /// The leaf PTE for `va`, creating tables when `create`. Without
    /// `create`, a missing table gives `Err(span)`: the size of the
    /// aligned range around `va` that has no mappings at all.
    fn walk(&mut self, va: u64, create: bool) -> Result<*mut u64, Option<u64>> {
        let mut t = self.user_pgd();
        for level in [39u32, 30, 21] {
            let idx = ((va >> level) & 511) as usize;
            // SAFETY: `t` is a live table page of this space; idx < 512.
            let e = unsafe { t.add(idx) };
            // SAFETY: as above.
            let v = unsafe { *e };
            if v & PTE_P == 0 {
                if !create {
                    return Err(Some(1u64 << level));
                }
                // SAFETY: PAGE has a non-zero size.
                let n = unsafe { alloc_zeroed(PAGE) };
                if n.is_null() {
                    return Err(None);
                }
                self.tables += 1;
                let g = virt_to_phys(n as u64);
                // SAFETY: `e` points into a live table.
                unsafe { *e = g | PTE_P | PTE_W | PTE_U | PTE_A };
                t = n as *mut u64;
            } else {
                t = table(v & ADDR_MASK);
            }
        }
        // SAFETY: `t` is the page table; index < 512.
        Ok(unsafe { t.add(((va >> 12) & 511) as usize) })
    }

    fn flush(&self, va: u64, pages: u64) {
        // Other CPUs that have this space loaded, running it or not: a CPU
        // changes its CR3 only under the sentry's lock, which the caller
        // holds, so the set is stable. Switching to a space later reloads
        // CR3, which syncs it.
        let me = super::this_cpu();
        let mut others = 0u64;
        for n in 0..super::nr_cpus() {
            // SAFETY: `cr3` is an atomic; the per-CPU array is static.
            let cr3 = unsafe { (*super::percpu_of(n)).cr3.load(Ordering::Acquire) };
            if n != me && cr3 == self.cr3 {
                others |= 1 << n;
            }
        }
        if others != 0 {
            let r = pvm::flush_multi(others, va, pages);
            if r as i64 == -38 {
                crate::console::fatal(format_args!("the host lacks FLUSH_TLB_MULTI"));
            }
        }
        // SAFETY: reading our own per-CPU data.
        let current = unsafe { (*super::percpu()).cr3.load(Ordering::Relaxed) } == self.cr3;
        if !current {
            return;
        }
        if pages <= 4 {
            for i in 0..pages {
                pvm::flush_one(va + i * 4096);
            }
        } else {
            pvm::flush_all();
        }
    }

    /// Map `[va, va+len)` to GPAs from `gpa_base` with leaf flags `flags`.
    pub fn map(&mut self, va: u64, gpa_base: u64, len: u64, flags: u64) -> Result<(), ()> {
        let mut replaced = false;
        for off in (0..len).step_by(4096) {
            let e = self.walk(va + off, true).map_err(|_| ())?;
            // SAFETY: `e` is a live leaf entry of this space.
            unsafe {
                replaced |= *e & PTE_MAPPED != 0;
                *e = (gpa_base + off) | flags | PTE_MAPPED;
            }
        }
        if replaced {
            self.flush(va, len / 4096);
        }
        Ok(())
    }

    /// Clear `[va, va+len)`.
    pub fn unmap(&mut self, va: u64, len: u64) {
        self.update(va, len, |_| 0);
    }

    /// Re-flag mapped pages of `[va, va+len)`.
    pub fn protect(&mut self, va: u64, len: u64, flags: u64) {
        self.update(va, len, |old| (old & ADDR_MASK) | flags | PTE_MAPPED);
    }

    fn update(&mut self, va: u64, len: u64, f: impl Fn(u64) -> u64) {
        let mut touched = false;
        let mut off = 0;
        while off < len {
            let a = va + off;
            match self.walk(a, false) {
                Ok(e) => {
                    // SAFETY: `e` is a live leaf entry.
                    unsafe {
                        if *e & PTE_MAPPED != 0 {
                            *e = f(*e);
                            touched = true;
                        }
                    }
                    off += 4096;
                }
                // No table here: skip the whole unmapped span (2 MiB, 1 GiB
                // or 512 GiB), so tearing down the user half is cheap.
                Err(span) => {
                    let span = span.unwrap_or(4096);
                    off = ((a | (span - 1)) + 1) - va;
                }
            }
        }
        if touched {
            self.flush(va, len / 4096);
        }
    }

    /// Make this space current (kernel CR3; the host derives the user one).
    pub fn activate(&self) {
        set_cr3(self.cr3);
    }
}

/// Load kernel PGD `cr3` on this CPU (a hypercall only if it changes).
fn set_cr3(cr3: u64) {
    // SAFETY: per-CPU data of this CPU.
    let cur = unsafe { &(*super::percpu()).cr3 };
    if cur.load(Ordering::Relaxed) != cr3 {
        // Published first, so a shootdown that changes `cr3`'s tables
        // after this store reaches this CPU; one before it is seen by the
        // CR3 load, which syncs.
        cur.store(cr3, Ordering::SeqCst);
        pvm::set_cr3(cr3);
    }
}

/// Switch this CPU to the boot PGD (kernel half only).
pub fn unload() {
    set_cr3(gpa::BOOT_PGD);
}

impl Drop for PgdPair {
    fn drop(&mut self) {
        // SAFETY: per-CPU data of this CPU.
        if unsafe { (*super::percpu()).cr3.load(Ordering::Relaxed) } == self.cr3 {
            unload();
        }
        free_level(self.user_pgd(), 3, 256);
        // SAFETY: allocated with PAIR in `new`.
        unsafe { dealloc(phys_to_virt(self.cr3) as *mut u8, PAIR) };
    }
}

/// Free the tables below the first `n` entries of `t` (a level-`level` table).
fn free_level(t: *mut u64, level: u32, n: usize) {
    if level == 0 {
        return;
    }
    for i in 0..n {
        // SAFETY: `t` is a live table; i < 512.
        let v = unsafe { *t.add(i) };
        if v & PTE_P != 0 && v & PTE_PS == 0 {
            let child = table(v & ADDR_MASK);
            free_level(child, level - 1, 512);
            // SAFETY: table pages are allocated with PAGE in `walk`.
            unsafe { dealloc(child as *mut u8, PAGE) };
        }
    }
}
