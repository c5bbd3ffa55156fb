//! Patched system call sites (gVisor's "usertrap" idea).
//!
//! Where a trapped `syscall` is dear (ptrace: a seccomp trap and a signal,
//! about 2.5 µs here), the common 7-byte sequence `mov $nr, %eax; syscall`
//! is rewritten, on its first call, into `jmp *ENTRY` (`ff 24 25` and a
//! 32-bit absolute address): ENTRY is an entry of a per-process table
//! below 2 GiB, holding the address of the code right after it, which
//! loads the number into `eax` and the return address into `rcx` (as
//! `syscall` leaves them) and jumps to the platform's entry. A jump, not a
//! call: nothing is pushed into the application's red zone.
//!
//! The table lies where bit 16-23 of every address is 0x06, so the byte
//! that replaces the first byte of `syscall` is 0x06, an invalid opcode in
//! 64-bit mode. A thread that ran the old `mov` before the patch landed
//! faults on it, and so does a call the kernel restarts (rip moved back
//! over `syscall`): both jump again (`patched_fault`).
//!
//! Only private executable mappings are patched: the page gets its own
//! copy first, so no file and no other process sees the change.

use alloc::collections::BTreeSet;

use super::{MmStruct, Vma, VmaKind};
use crate::abi::sysno::RESTART_SYSCALL;
use crate::abi::UserRegs;
use crate::mm::FrameAllocator;
use crate::platform::{Platform, Prot};

/// Bytes of a table entry.
const ENTRY: u64 = 64;
/// Bytes of the table: one 64 KiB window of addresses with 0x06 in bits
/// 16-23.
const TABLE_LEN: u64 = 0x1_0000;
/// Sites remembered as looked at; past this, no more are patched.
const SEEN_MAX: usize = 8192;
/// The patched instruction: `jmp *disp32` with no base or index.
const JMP_ABS: [u8; 3] = [0xff, 0x24, 0x25];
/// `syscall`'s offset in the patched sequence.
const SYSCALL_OFF: u64 = 5;

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
    /// A restarted `restart_syscall`: serve it as a system call now
    /// (the jump would load the site's own number instead).
    Syscall,
}

/// The 7 bytes a site holds before it is patched, for call `nr`.
fn unpatched(nr: u32) -> [u8; 7] {
    let n = nr.to_le_bytes();
    [0xb8, n[0], n[1], n[2], n[3], 0x0f, 0x05]
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
        let Some(target) = plat.syscall_patch_entry() else {
            return false;
        };
        let (Ok(nr), Some(site)) = (u32::try_from(nr), rip.checked_sub(7)) else {
            return false;
        };
        let ut = &mut self.usertrap;
        if ut.seen.len() >= SEEN_MAX || !ut.seen.insert(site) {
            return false;
        }
        let mut code = [0u8; 7];
        if self.copy_in(plat, frames, site, &mut code).is_err() || code != unpatched(nr) {
            return false;
        }
        // A shared mapping's write would reach its file or other processes.
        match self.find_vma(site) {
            Some(v) if !v.shared && v.prot.exec && rip <= v.end => {}
            _ => return false,
        }
        let Some(entry) = self.trap_entry() else {
            return false;
        };
        let mut t = alloc::vec::Vec::with_capacity(ENTRY as usize);
        t.extend_from_slice(&(entry + 8).to_le_bytes());
        t.push(0xb8); // mov $nr, %eax
        t.extend_from_slice(&nr.to_le_bytes());
        t.extend_from_slice(&[0x48, 0xb9]); // movabs $rip, %rcx
        t.extend_from_slice(&rip.to_le_bytes());
        t.extend_from_slice(&[0x49, 0xbb]); // movabs $target, %r11
        t.extend_from_slice(&target.to_le_bytes());
        t.extend_from_slice(&[0x41, 0xff, 0xe3]); // jmp *%r11
        if self.write_force(plat, frames, entry, &t).is_err() {
            return false;
        }
        // Other threads may run the site meanwhile, and the write is not
        // atomic: first the invalid opcode over `syscall` (a thread past
        // the `mov` faults and jumps again), then all but the first byte
        // (the `mov`'s opcode stays, so its immediate may be read torn,
        // which the fault after it makes harmless), then the first byte.
        let a = (entry as u32).to_le_bytes();
        let patched = self
            .write_force(plat, frames, site + SYSCALL_OFF, &[0x06])
            .and_then(|()| {
                let tail = [JMP_ABS[1], JMP_ABS[2], a[0], a[1], a[2], a[3]];
                self.write_force(plat, frames, site + 1, &tail)
            })
            .and_then(|()| self.write_force(plat, frames, site, &JMP_ABS[..1]));
        patched.is_ok()
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

    /// A fault at `regs.rip` (an invalid opcode): if it is the one a
    /// patch left over `syscall`, make the call go through its jump again.
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
        if code[5] != 0x06 || !(table..table + TABLE_LEN).contains(&entry) {
            return PatchedFault::No;
        }
        if regs.rax == RESTART_SYSCALL {
            regs.orig_rax = RESTART_SYSCALL;
            regs.rax = crate::abi::Errno::ENOSYS.as_ret();
            regs.rip += 2;
            return PatchedFault::Syscall;
        }
        regs.rip = site;
        PatchedFault::Restart
    }
}
