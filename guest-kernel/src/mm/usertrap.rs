//! Patched system call sites (gVisor's "usertrap" idea).
//!
//! Where a trapped `syscall` is dear (ptrace: a seccomp trap and a signal,
//! about 2.5 µs here), the common 7-byte sequence `mov $nr, %eax; syscall`
//! is rewritten, on its first call, into `jmp *ENTRY` (`ff 24 25` and a
//! 32-bit absolute address): ENTRY is an entry of a per-process table
//! below 2 GiB, holding the address of the code right after it. That code
//! loads the number into `eax` and, as `syscall` would, the return address
//! into `rcx`, and jumps to the platform's entry, if the thread's GS base
//! says it may (`SyscallPatch::gs_self`); otherwise it makes the call with
//! a `syscall` of its own, which traps as before (`from_table`). A jump,
//! not a call, and no flag changes on the way: nothing is pushed into the
//! red zone and the flags reach the entry as the application left them.
//!
//! The table lies where bits 16-23 of every address are 0x06, so the byte
//! that replaces the first byte of `syscall` is 0x06, an invalid opcode in
//! 64-bit mode. A thread that ran the old `mov` before the patch landed
//! faults on it, and so does a call the kernel restarts (rip moved back
//! over `syscall`): both jump again (`patched_fault`).
//!
//! Only private, read-only executable mappings are patched: the page gets
//! its own copy first, so no file and no other process sees the change,
//! and no JIT rewrites it meanwhile.

use alloc::collections::BTreeSet;

use super::{MmStruct, Vma, VmaKind};
use crate::abi::{Errno, UserRegs};
use crate::mm::FrameAllocator;
use crate::platform::{Platform, Prot, SyscallPatch};

/// Bytes of a table entry.
const ENTRY: u64 = 128;
/// Bytes of the table: one 64 KiB window of addresses with 0x06 in bits
/// 16-23.
const TABLE_LEN: u64 = 0x1_0000;
/// Sites remembered as looked at; past this, no more are patched.
const SEEN_MAX: usize = 8192;
/// The patched instruction: `jmp *disp32` with no base or index.
const JMP_ABS: [u8; 3] = [0xff, 0x24, 0x25];
/// `syscall`'s offset in the patched sequence.
const SYSCALL_OFF: u64 = 5;
/// Offsets in an entry: the number's immediate, the check of GS, the
/// return address's immediate, and the end of the entry's own `syscall`.
const AT_NR: u64 = 9;
const AT_CHECK: u64 = 23;
const AT_RET: u64 = 44;
const AT_SYSCALL_END: u64 = 54;

/// An address space's patches.
#[derive(Clone, Debug, Default)]
pub struct UserTrap {
    /// The table's address, once mapped.
    table: Option<u64>,
    /// Entries handed out.
    used: u64,
    /// Sites looked at, patched or not: each is looked at once.
    seen: BTreeSet<u64>,
}

/// What a fault at a patched site means (see [`MmStruct::patched_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchedFault {
    /// Not a patched site: an ordinary fault.
    No,
    /// The jump starts again (rip moved back to it).
    Restart,
    /// A call to serve now, with the number in `eax` (a `restart_syscall`,
    /// or a jump to the `syscall` with a number of its own).
    Syscall,
}

/// Whether `va` may lie in a patch table: tables take a 64 KiB window at
/// `(w << 24) | 0x06_0000`, below 2 GiB (see `trap_entry`).
pub fn in_table_window(va: u64) -> bool {
    va < 1 << 31 && va & 0x00ff_0000 == 0x06_0000
}

/// The 7 bytes a site holds before it is patched, for call `nr`.
fn unpatched(nr: u32) -> [u8; 7] {
    let n = nr.to_le_bytes();
    [0xb8, n[0], n[1], n[2], n[3], 0x0f, 0x05]
}

/// The code of the entry at `entry` for call `nr` returning to `rip`.
fn trampoline(entry: u64, nr: u32, rip: u64, p: SyscallPatch) -> alloc::vec::Vec<u8> {
    let mut t = alloc::vec::Vec::with_capacity(ENTRY as usize);
    t.extend_from_slice(&(entry + 8).to_le_bytes());
    t.push(0xb8); // mov $nr, %eax
    t.extend_from_slice(&nr.to_le_bytes());
    t.extend_from_slice(&[0xf3, 0x49, 0x0f, 0xae, 0xcb]); // rdgsbase %r11
    t.extend_from_slice(&[0x4c, 0x89, 0xd9]); // mov %r11, %rcx
    t.extend_from_slice(&[0xe3, 0x13]); // jrcxz own
                                        // Whether GS points at its own address, without touching the flags:
                                        // rcx = r11 - gs:[gs_self], then jrcxz.
    t.extend_from_slice(&[0x65, 0x48, 0x8b, 0x0c, 0x25]); // mov %gs:gs_self, %rcx
    t.extend_from_slice(&p.gs_self.to_le_bytes());
    t.extend_from_slice(&[0x48, 0xf7, 0xd1]); // not %rcx
    t.extend_from_slice(&[0x4a, 0x8d, 0x4c, 0x19, 0x01]); // lea 1(%rcx,%r11), %rcx
    t.extend_from_slice(&[0xe3, 0x0e]); // jrcxz platform
                                        // own: the call trapped here, as from the site.
    t.extend_from_slice(&[0x48, 0xb9]); // movabs $rip, %rcx
    t.extend_from_slice(&rip.to_le_bytes());
    t.extend_from_slice(&[0x0f, 0x05, 0x0f, 0x0b]); // syscall; ud2
                                                    // platform:
    t.extend_from_slice(&[0x48, 0xb9]); // movabs $rip, %rcx
    t.extend_from_slice(&rip.to_le_bytes());
    t.extend_from_slice(&[0x49, 0xbb]); // movabs $entry, %r11
    t.extend_from_slice(&p.entry.to_le_bytes());
    t.extend_from_slice(&[0x41, 0xff, 0xe3]); // jmp *%r11
    debug_assert_eq!(t.len(), 79);
    debug_assert_eq!(&t[AT_NR as usize..AT_NR as usize + 4], &nr.to_le_bytes());
    debug_assert_eq!(t[AT_CHECK as usize], 0x65);
    debug_assert_eq!(&t[AT_RET as usize..AT_RET as usize + 8], &rip.to_le_bytes());
    debug_assert_eq!(&t[AT_SYSCALL_END as usize - 2..][..2], &[0x0f, 0x05]);
    t
}

impl<P: Platform> MmStruct<P> {
    /// The call `nr` that returns to `rip` was trapped at a `syscall`
    /// instruction: patch its site, if it is the common sequence in
    /// private code and the platform wants it. True if it did.
    pub fn patch_syscall(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        rip: u64,
        nr: u64,
    ) -> bool {
        let Some(target) = plat.syscall_patch() else {
            return false;
        };
        let (Ok(nr), Some(site)) = (u32::try_from(nr), rip.checked_sub(7)) else {
            return false;
        };
        // Another CPU may fetch the site while it changes; within one cache
        // line, it sees the stores in order (see below).
        if site % 64 > 64 - 7 {
            return false;
        }
        let ut = &mut self.usertrap;
        if ut.seen.len() >= SEEN_MAX || !ut.seen.insert(site) {
            return false;
        }
        // A shared mapping's write would reach its file or other processes;
        // a writable one may be a JIT's, rewriting it meanwhile.
        match self.find_vma(site) {
            Some(v) if !v.shared && v.prot.exec && !v.prot.write && rip <= v.end => {}
            _ => return false,
        }
        let mut code = [0u8; 7];
        if self.copy_in(plat, frames, site, &mut code).is_err() || code != unpatched(nr) {
            return false;
        }
        let Some(entry) = self.trap_entry() else {
            return false;
        };
        let t = trampoline(entry, nr, rip, target);
        if self.write_force(plat, frames, entry, &t).is_err() {
            return false;
        }
        // Other threads may run the site meanwhile, and the write is not
        // atomic: first the invalid opcode over `syscall` (a thread past
        // the `mov` faults and jumps again), then all but the first byte
        // (the `mov`'s opcode stays, so its immediate may be read torn,
        // which the fault after it makes harmless), then the first byte.
        let a = (entry as u32).to_le_bytes();
        self.write_force(plat, frames, site + SYSCALL_OFF, &[0x06])
            .and_then(|()| {
                let tail = [JMP_ABS[1], JMP_ABS[2], a[0], a[1], a[2], a[3]];
                self.write_force(plat, frames, site + 1, &tail)
            })
            .and_then(|()| self.write_force(plat, frames, site, &JMP_ABS[..1]))
            .is_ok()
    }

    /// A new entry of the table, mapped on first use in a free window.
    fn trap_entry(&mut self) -> Option<u64> {
        let table = match self.usertrap.table {
            Some(t) => t,
            None => {
                let t = (0..0x80u64).map(|w| (w << 24) | 0x06_0000).find(|&t| {
                    t + TABLE_LEN <= self.task_size && !self.overlaps(t, t + TABLE_LEN)
                })?;
                self.insert_vma(Vma {
                    start: t,
                    end: t + TABLE_LEN,
                    prot: Prot {
                        read: true,
                        write: false,
                        exec: true,
                    },
                    kind: VmaKind::Anon,
                    shared: false,
                    backing: None,
                });
                self.usertrap.table = Some(t);
                t
            }
        };
        // The application may have unmapped or replaced it: then it gets
        // no more patches, and its old ones are its own business.
        match self.find_vma(table) {
            Some(v) if v.start == table && v.end == table + TABLE_LEN && !v.shared => {}
            _ => return None,
        }
        let ut = &mut self.usertrap;
        if ut.used >= TABLE_LEN / ENTRY {
            return None;
        }
        let entry = table + ut.used * ENTRY;
        ut.used += 1;
        Some(entry)
    }

    /// The entry of the table holding `rip`, if any.
    fn entry_of(&self, rip: u64) -> Option<u64> {
        let table = self.usertrap.table?;
        let off = rip.checked_sub(table)?;
        (off < self.usertrap.used * ENTRY).then(|| table + off - off % ENTRY)
    }

    /// A call trapped at an entry's own `syscall` (a thread whose GS is not
    /// the platform's): it returns where the site does (which `syscall`
    /// left in `rcx` no longer says).
    pub fn from_table(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        regs: &mut UserRegs,
    ) -> bool {
        let Some(e) = self
            .entry_of(regs.rip)
            .filter(|e| regs.rip == e + AT_SYSCALL_END)
        else {
            return false;
        };
        let Some(ret) = self.entry_ret(plat, frames, e) else {
            return false;
        };
        regs.rip = ret;
        regs.rcx = ret;
        true
    }

    /// Where the site of entry `e` returns.
    fn entry_ret(&mut self, plat: &P, frames: &mut FrameAllocator, e: u64) -> Option<u64> {
        let mut ret = [0u8; 8];
        self.copy_in(plat, frames, e + AT_RET, &mut ret).ok()?;
        Some(u64::from_le_bytes(ret))
    }

    /// A fault that the kernel cannot serve at an entry's check of GS (a
    /// GS base of the application's own, pointing nowhere): the call, as
    /// if trapped at the site.
    pub fn check_fault(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        regs: &mut UserRegs,
    ) -> bool {
        let Some(e) = self.entry_of(regs.rip).filter(|e| regs.rip == e + AT_CHECK) else {
            return false;
        };
        let Some(ret) = self.entry_ret(plat, frames, e) else {
            return false;
        };
        regs.orig_rax = regs.rax;
        regs.rax = Errno::ENOSYS.as_ret();
        regs.rip = ret;
        regs.rcx = ret;
        true
    }

    /// A fault at `regs.rip` (an invalid opcode): if it is the one a patch
    /// left over `syscall`, a call the kernel rewound (or a thread that ran
    /// the old `mov`) goes through the jump again; a jump straight to the
    /// `syscall` with another number makes that call.
    pub fn patched_fault(
        &mut self,
        plat: &P,
        frames: &mut FrameAllocator,
        regs: &mut UserRegs,
    ) -> PatchedFault {
        let Some(table) = self.usertrap.table else {
            return PatchedFault::No;
        };
        let Some(site) = regs.rip.checked_sub(SYSCALL_OFF) else {
            return PatchedFault::No;
        };
        let mut code = [0u8; 7];
        if self.copy_in(plat, frames, site, &mut code).is_err() || code[..3] != JMP_ABS {
            return PatchedFault::No;
        }
        let entry = u64::from(u32::from_le_bytes([code[3], code[4], code[5], code[6]]));
        if code[5] != 0x06 || !(table..table + self.usertrap.used * ENTRY).contains(&entry) {
            return PatchedFault::No;
        }
        let mut nr = [0u8; 4];
        if self.copy_in(plat, frames, entry + AT_NR, &mut nr).is_err() {
            return PatchedFault::No;
        }
        // The site's own number, or an immediate read torn while the patch
        // was written (each byte the old one or the new one): the `mov`
        // ran; anything else came in another way.
        let new = [code[1], code[2], code[3], code[4]];
        let eax = regs.rax.to_le_bytes();
        let ran_mov = regs.rax >> 32 == 0 && (0..4).all(|i| eax[i] == nr[i] || eax[i] == new[i]);
        if ran_mov {
            regs.rip = site;
            return PatchedFault::Restart;
        }
        regs.orig_rax = regs.rax;
        regs.rax = Errno::ENOSYS.as_ret();
        regs.rip += 2;
        PatchedFault::Syscall
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_window_address_is_recognised_and_nothing_else() {
        for w in 0..0x80u64 {
            let t = (w << 24) | 0x06_0000;
            assert!(in_table_window(t) && in_table_window(t + TABLE_LEN - 1));
            assert!(!in_table_window(t - 1) && !in_table_window(t + TABLE_LEN));
        }
        assert!(!in_table_window(0x8006_0000));
        assert!(!in_table_window(0x7fff_f7a0_1234));
    }
}
