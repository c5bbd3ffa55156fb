//! `fork`'s copy of an address space.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::{mapped_prot, MmStruct, Pte, Vma};
use crate::abi::{Errno, KResult, PAGE_SIZE};
use crate::mm::FrameAllocator;
use crate::platform::{PhysAddr, Platform};

impl<P: Platform> MmStruct<P> {
    /// A copy of this address space for `fork`: private pages become
    /// copy-on-write in both, shared ones stay shared.
    pub fn fork(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        child_space: P::AddressSpace,
    ) -> KResult<Self> {
        // Shared anonymous memory has no object behind it for pages to fault
        // in from later, so each side would get its own zero page: back it
        // all now, and both address spaces map the same frames.
        let shared_anon: Vec<Vma> = self
            .vmas
            .values()
            .filter(|v| v.shared && v.backing.is_none())
            .copied()
            .collect();
        for v in shared_anon {
            let mut page = v.start;
            while page < v.end {
                if !self.pages.contains_key(&page) {
                    self.populate(plat, frames, v, page)
                        .map_err(|_| Errno::ENOMEM)?;
                }
                page += PAGE_SIZE;
            }
        }
        let mut child = MmStruct {
            space: child_space,
            vmas: self.vmas.clone(),
            pages: BTreeMap::new(),
            faults_served: 0,
            usertrap: self.usertrap.clone(),
            brk_start: self.brk_start,
            brk: self.brk,
            mmap_base: self.mmap_base,
            task_size: self.task_size,
            files: self.files.clone(),
        };
        // The copy is applied as one batch per space where the platform
        // batches (ptrace: two injections instead of one per run).
        plat.begin_batch(&mut child.space);
        plat.begin_batch(&mut self.space);
        let copied = self.fork_pages(plat, frames, &mut child);
        let parent = plat.end_batch(&mut self.space);
        let ended = plat.end_batch(&mut child.space);
        copied.and(parent).and(ended)?;
        Ok(child)
    }

    /// `fork`'s copy of the present pages into `child`: shared frames,
    /// copy-on-write on both sides for private memory.
    fn fork_pages(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        child: &mut MmStruct<P>,
    ) -> KResult<()> {
        let vmas: Vec<Vma> = self.vmas.values().copied().collect();
        for v in vmas {
            // Read-only private pages too: an `mprotect` or a forced write
            // (a patched call site, see `usertrap`) must not reach the other
            // side's copy later.
            let make_cow = !v.shared;
            let entries: Vec<(u64, Pte)> = self
                .pages
                .range(v.start..v.end)
                .map(|(k, p)| (*k, *p))
                .collect();
            for (va, pte) in &entries {
                frames.share(pte.pa);
                let cow = pte.cow || make_cow;
                child.pages.insert(*va, Pte { pa: pte.pa, cow });
                if make_cow && !pte.cow {
                    self.pages.insert(
                        *va,
                        Pte {
                            pa: pte.pa,
                            cow: true,
                        },
                    );
                }
            }
            if make_cow && v.prot.write {
                for (va, len, _) in self.present_runs(v.start, v.end) {
                    plat.protect(&mut self.space, va, len, mapped_prot(v.prot, true))?;
                }
            }
            // Map the child's pages in runs of contiguous frames.
            let mut run: Option<(u64, PhysAddr, u64, bool)> = None;
            let child_entries: Vec<(u64, Pte)> = child
                .pages
                .range(v.start..v.end)
                .map(|(k, p)| (*k, *p))
                .collect();
            for (va, pte) in child_entries {
                match run.as_mut() {
                    Some((s, pa, l, c)) if *s + *l == va && *pa + *l == pte.pa && *c == pte.cow => {
                        *l += PAGE_SIZE
                    }
                    _ => {
                        if let Some((s, pa, l, c)) = run.take() {
                            plat.map(&mut child.space, s, pa, l, mapped_prot(v.prot, c))?;
                        }
                        run = Some((va, pte.pa, PAGE_SIZE, pte.cow));
                    }
                }
            }
            if let Some((s, pa, l, c)) = run {
                plat.map(&mut child.space, s, pa, l, mapped_prot(v.prot, c))?;
            }
        }
        Ok(())
    }
}
