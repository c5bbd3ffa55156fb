//! The PVM host interface: hypercalls (`int $0x1b`), the CPUID gate
//! (`int $0x1a`), port I/O and MSR numbers. See `FACTS.md`, "The KVM on
//! these machines".

use core::arch::asm;

/// Hypercall numbers.
pub mod hc {
    pub const SET_CR3: u64 = 0x1001;
    pub const WRMSR: u64 = 0x1003;
    pub const LOAD_IDT: u64 = 0x1005;
    pub const FLUSH_TLB: u64 = 0x1007;
    pub const FLUSH_TLB_ONE: u64 = 0x1008;
    pub const HALT: u64 = 0x1009;
    pub const FLUSH_TLB_MULTI: u64 = 0x100e;
}

/// MSR numbers.
pub mod msr {
    pub const STAR: u32 = 0xc000_0081;
    pub const LSTAR: u32 = 0xc000_0082;
    pub const SFMASK: u32 = 0xc000_0084;
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    pub const PVM_VIF: u32 = 0x4b56_4d10;
    pub const APIC_BASE: u32 = 0x1b;
    pub const TSC_DEADLINE: u32 = 0x6e0;
    /// x2APIC registers.
    pub const X2APIC_TPR: u32 = 0x808;
    pub const X2APIC_SVR: u32 = 0x80f;
    pub const X2APIC_LVTT: u32 = 0x832;
    pub const X2APIC_LINT0: u32 = 0x835;
    pub const X2APIC_ICR: u32 = 0x830;
}

/// User selectors as the host defines them: SYSRET CS = 0x23+16 = 0x33,
/// SS = 0x23+8 = 0x2b; kernel CS 0x10.
pub const STAR_VALUE: u64 = 0x0023_0010_0000_0000;
/// TF | IF | DF | IOPL | NT | AC cleared on `syscall`.
pub const SFMASK_VALUE: u64 = 0x47700;
/// vIF registration flags: KPTI, CR3/GS flip on exceptions and SYSCALL,
/// `int $0x19`, CR2 into vIF+8, kernel entry/ERETU.
pub const VIF_FLAGS: u64 = 0x7f;

/// A hypercall. Unknown numbers return `-38`.
#[inline(always)]
pub fn hypercall(nr: u64, a: u64, b: u64, c: u64) -> u64 {
    let ret;
    // SAFETY: int $0x1b is the PVM hypercall gate; it only clobbers rax (the
    // result). rbx cannot be an asm operand, so it is swapped in and out.
    unsafe {
        asm!("xchg {a}, rbx", "int 0x1b", "xchg {a}, rbx",
             a = inout(reg) a => _, inout("rax") nr => ret, in("rcx") b, in("rdx") c,
             options(nostack));
    }
    ret
}

/// WRMSR through the hypercall (about 1.4 µs, against 3 µs for an emulated `wrmsr`).
pub fn wrmsr(index: u32, value: u64) {
    hypercall(hc::WRMSR, u64::from(index), value, 0);
}

/// Plain `rdmsr` (emulated by the host: about 3 µs; boot only).
pub fn rdmsr(index: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the host emulates rdmsr for the guest kernel; it has no memory effects.
    unsafe {
        asm!("rdmsr", in("ecx") index, out("eax") lo, out("edx") hi,
             options(nostack, nomem, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// 32-bit port write.
#[inline(always)]
pub fn outl(port: u16, value: u32) {
    // SAFETY: port I/O to the VMM's ports (an exit or an ioeventfd); no memory effects.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags))
    };
}

/// Stop until an interrupt (or forever, with vIF.if = 0).
pub fn halt() {
    hypercall(hc::HALT, 0, 0, 0);
}

/// CPUID as the VMM configured it (plain `cpuid` returns the host's values).
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u64, u32, u32);
    // SAFETY: int $0x1a is the CPUID gate: eax/ecx in, eax..edx out; rbx is
    // saved around it because it cannot be an operand.
    unsafe {
        asm!("xchg {b}, rbx", "int 0x1a", "xchg {b}, rbx",
             b = out(reg) b, inout("eax") leaf => a, inout("ecx") sub => c, out("edx") d,
             options(nostack));
    }
    [a, b as u32, c, d]
}

/// Load a new kernel CR3 (the host derives the user PGD as CR3 | 0x1000).
pub fn set_cr3(cr3: u64) {
    hypercall(hc::SET_CR3, cr3, 0, 0);
}

/// Flush one page of the current address space.
pub fn flush_one(va: u64) {
    hypercall(hc::FLUSH_TLB_ONE, va, 0, 0);
}

/// Flush the whole TLB.
pub fn flush_all() {
    hypercall(hc::FLUSH_TLB, 0, 0, 0);
}

/// Flush `pages` pages from `va` on the vCPUs of `mask` (bit n: vCPU n).
/// The host makes them drop their translations before they run again.
pub fn flush_multi(mask: u64, va: u64, pages: u64) -> u64 {
    hypercall(hc::FLUSH_TLB_MULTI, mask, va, pages)
}

/// Timestamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc is unprivileged and has no memory effects.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nostack, nomem, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}
