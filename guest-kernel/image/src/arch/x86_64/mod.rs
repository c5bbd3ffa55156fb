//! The PVM flavour of the x86-64 arch layer: boot, per-CPU data, the IDT,
//! syscall MSRs, and the kernel-fault path.
//!
//! The VMM has already set long mode, the boot page tables (upper half
//! only: the image at `KERNEL_BASE`, all RAM at `DIRECT_MAP`), the GDT, the
//! TSS (RSP0/IST1/IST2 on the trap stacks) and GDTR/IDTR/TR. The boot stub
//! registers the vIF page; `init` does the rest.

pub mod entry;
pub mod paging;
pub mod pvm;

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::hostcall::{boot_info, gdt, gpa, DIRECT_MAP, KERNEL_BASE};

/// Size of each CPU's kernel stack.
pub const BOOT_STACK_SIZE: usize = 512 * 1024;

/// Most vCPUs (the ABI's `MAX_VCPUS`).
pub const MAX_CPUS: usize = crate::abi::hostcall::MAX_VCPUS as usize;

#[repr(C, align(4096))]
pub struct Stack(pub [u8; BOOT_STACK_SIZE]);

/// The kernel stacks, one per CPU (`_start` picks CPU `n`'s by its number).
#[no_mangle]
pub static mut BOOT_STACK: [Stack; MAX_CPUS] = [const { Stack([0; BOOT_STACK_SIZE]) }; MAX_CPUS];

/// MXCSR the sentry runs with (all exceptions masked, round to nearest).
#[no_mangle]
pub static KERNEL_MXCSR: u32 = 0x1f80;

/// Per-CPU data, reached through the kernel GS base. The entry stubs use
/// fixed offsets into it (see `entry.rs`).
#[repr(C)]
#[derive(Debug)]
pub struct PerCpu {
    pub self_ptr: u64,   // 0
    pub kernel_rsp: u64, // 8
    pub uregs: u64,      // 16
    pub fpu: u64,        // 24
    pub scratch: u64,    // 32
    pub vector: u64,     // 40
    pub error_code: u64, // 48
    pub vif: u64,        // 56: kernel VA of the vIF page
    pub user_gs: u64,    // 64: what KERNEL_GS_BASE holds (the user GS base)
    /// The kernel PGD loaded on this CPU. Written only by the CPU itself
    /// under the sentry's lock; read by others for TLB shootdowns.
    pub cr3: AtomicU64, // 72
    pub cpu: u64,        // 80
    pub syscalls: u64,   // 88
    pub traps: u64,      // 96
    pub kind: u64,       // 104
    /// TSC value the preemption timer is armed for (0: not armed).
    pub slice_deadline: u64, // 112
}

/// The per-CPU data of every vCPU.
pub static mut PERCPU: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        self_ptr: 0,
        kernel_rsp: 0,
        uregs: 0,
        fpu: 0,
        scratch: 0,
        vector: 0,
        error_code: 0,
        vif: 0,
        user_gs: 0,
        cr3: AtomicU64::new(0),
        cpu: 0,
        syscalls: 0,
        traps: 0,
        kind: 0,
        slice_deadline: 0,
    }
}; MAX_CPUS];

/// This CPU's per-CPU data (the kernel GS base points at it).
pub fn percpu() -> *mut PerCpu {
    let p: u64;
    // SAFETY: `%gs:0` is `self_ptr`, set by `percpu_init` before anything
    // else runs on the CPU.
    unsafe { asm!("movq %gs:0, {}", out(reg) p, options(att_syntax, nostack, preserves_flags, readonly)) };
    p as *mut PerCpu
}

/// CPU `n`'s per-CPU data.
pub fn percpu_of(n: usize) -> *mut PerCpu {
    // SAFETY: only the address is taken; n < MAX_CPUS is checked.
    unsafe { (&raw mut PERCPU).cast::<PerCpu>().add(n.min(MAX_CPUS - 1)) }
}

/// The number of this CPU.
pub fn this_cpu() -> usize {
    // SAFETY: per-CPU data of this CPU.
    unsafe { (*percpu()).cpu as usize }
}

/// How many vCPUs the VMM created (at least 1, at most `MAX_CPUS`).
pub fn nr_cpus() -> usize {
    (boot_info_read(boot_info::NR_VCPUS) as usize).clamp(1, MAX_CPUS)
}

/// The vIF page GPA of CPU `n`.
pub const fn vif_gpa(n: u64) -> u64 {
    gpa::VIF + n * 0x1000
}

/// Kernel virtual address of a GPA inside the image's first GiB.
pub const fn kva(gpa: u64) -> u64 {
    KERNEL_BASE + gpa
}

/// Kernel virtual address of any GPA (the direct map).
pub const fn phys_to_virt(gpa: u64) -> u64 {
    DIRECT_MAP + gpa
}

/// GPA of a kernel virtual address (image alias or direct map).
pub fn virt_to_phys(va: u64) -> u64 {
    if va >= KERNEL_BASE {
        va - KERNEL_BASE
    } else {
        va.wrapping_sub(DIRECT_MAP)
    }
}

/// Read a boot info field.
pub fn boot_info_read(off: u64) -> u64 {
    // SAFETY: the boot info page is mapped at its KERNEL_BASE alias; fields are 8-byte aligned.
    unsafe { core::ptr::read_volatile(kva(gpa::BOOT_INFO + off) as *const u64) }
}

/// Write a boot info field.
pub fn boot_info_write(off: u64, v: u64) {
    // SAFETY: as for `boot_info_read`.
    unsafe { core::ptr::write_volatile(kva(gpa::BOOT_INFO + off) as *mut u64, v) }
}

/// Facts from the boot info page, checked.
#[derive(Clone, Copy, Debug)]
pub struct BootFacts {
    pub mem_size: u64,
    pub image_end: u64,
    pub tsc_khz: u64,
    pub realtime_ns: u64,
    pub boot_tsc: u64,
    pub params_len: u64,
}

static TSC_KHZ: AtomicU64 = AtomicU64::new(1);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static BOOT_REALTIME: AtomicU64 = AtomicU64::new(0);

/// Monotonic nanoseconds since boot.
pub fn monotonic_ns() -> u64 {
    let d = pvm::rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed));
    (u128::from(d) * 1_000_000 / u128::from(TSC_KHZ.load(Ordering::Relaxed).max(1))) as u64
}

/// Wall-clock nanoseconds since the epoch.
pub fn realtime_ns() -> u64 {
    BOOT_REALTIME.load(Ordering::Relaxed) + monotonic_ns()
}

/// How [`monotonic_ns`] and [`realtime_ns`] follow the TSC: (TSC kHz, TSC
/// at boot, wall-clock ns at boot). For the vDSO.
pub fn clock_params() -> (u64, u64, u64) {
    (
        TSC_KHZ.load(Ordering::Relaxed),
        BOOT_TSC.load(Ordering::Relaxed),
        BOOT_REALTIME.load(Ordering::Relaxed),
    )
}

/// Bring up the arch layer. Runs once, on the boot stack.
pub fn init() -> BootFacts {
    let boot_tsc = pvm::rdtsc();
    if boot_info_read(boot_info::MAGIC_OFF) != boot_info::MAGIC
        || boot_info_read(boot_info::VERSION_OFF) != boot_info::VERSION
    {
        crate::console::fatal(format_args!("boot info page has a bad magic or version"));
    }
    let facts = BootFacts {
        mem_size: boot_info_read(boot_info::MEM_SIZE),
        image_end: boot_info_read(boot_info::IMAGE_END),
        tsc_khz: boot_info_read(boot_info::TSC_KHZ).max(1),
        realtime_ns: boot_info_read(boot_info::REALTIME_NS),
        boot_tsc,
        params_len: boot_info_read(boot_info::PARAMS_LEN),
    };
    TSC_KHZ.store(facts.tsc_khz, Ordering::Relaxed);
    BOOT_TSC.store(boot_tsc, Ordering::Relaxed);
    BOOT_REALTIME.store(facts.realtime_ns, Ordering::Relaxed);

    // IDT: 64-bit interrupt gates, selector 0x10, IST1 for everything but
    // #NMI/#DF/#MC (IST2); int3 is callable from user mode.
    let base = &raw const entry::pvm_vectors as u64;
    for v in 0u64..256 {
        let h = base + v * 16;
        let ist: u64 = if matches!(v, 2 | 8 | 18) { 2 } else { 1 };
        let ty: u64 = if v == 3 { 0xee } else { 0x8e };
        let lo = (h & 0xffff)
            | (u64::from(gdt::KERNEL_CS) << 16)
            | (ist << 32)
            | (ty << 40)
            | (((h >> 16) & 0xffff) << 48);
        let hi = h >> 32;
        let e = kva(gpa::IDT + v * 16) as *mut u64;
        // SAFETY: the IDT page is ours; 256 gates of 16 bytes fill it exactly.
        unsafe {
            core::ptr::write_volatile(e, lo);
            core::ptr::write_volatile(e.add(1), hi);
        }
    }
    percpu_init(0);
    boot_info_write(boot_info::BOOT_STATE, boot_info::BOOTED);
    facts
}

/// Bring up what each CPU has of its own: per-CPU data and GS base, the
/// IDT, the SYSCALL MSRs and the local APIC. CPU 0 runs it from `init`,
/// the others from `ap_main`, on their own stacks.
pub fn percpu_init(cpu: usize) {
    let pc = percpu_of(cpu);
    // SAFETY: each CPU initialises only its own slot, before it runs
    // anything else; other CPUs read only its `cr3` (an atomic).
    unsafe {
        (*pc).self_ptr = pc as u64;
        (*pc).cpu = cpu as u64;
        (*pc).vif = kva(vif_gpa(cpu as u64));
        (*pc).cr3.store(gpa::BOOT_PGD, Ordering::Relaxed);
        asm!("wrgsbase {}", in(reg) pc as u64, options(nostack, preserves_flags));
    }
    pvm::wrmsr(pvm::msr::KERNEL_GS_BASE, 0);
    pvm::hypercall(pvm::hc::LOAD_IDT, kva(gpa::IDT), 0xfff, 0);

    // SYSCALL.
    pvm::wrmsr(pvm::msr::STAR, pvm::STAR_VALUE);
    pvm::wrmsr(
        pvm::msr::LSTAR,
        entry::pvm_syscall_entry as *const () as u64,
    );
    pvm::wrmsr(pvm::msr::SFMASK, pvm::SFMASK_VALUE);

    apic_init();
}

/// The vector other CPUs kick this one with (`kick`).
pub const KICK_VECTOR: u64 = 0xf0;

/// Interrupt CPU `cpu` (an IPI through the x2APIC ICR): it leaves user
/// mode, or its halt, and looks at the sentry's state again.
pub fn kick(cpu: usize) {
    if cpu < nr_cpus() {
        pvm::wrmsr(pvm::msr::X2APIC_ICR, ((cpu as u64) << 32) | KICK_VECTOR);
    }
}

/// The vector of the LAPIC timer.
pub const TIMER_VECTOR: u64 = 0xec;

/// The local APIC in x2APIC mode with the timer in TSC-deadline mode,
/// disarmed (FACTS.md, "Interrupts under PVM"). The in-kernel irqchip
/// serves all of it without exits to the VMM.
fn apic_init() {
    let base = pvm::rdmsr(pvm::msr::APIC_BASE);
    pvm::wrmsr(pvm::msr::APIC_BASE, base | 0xc00);
    pvm::wrmsr(pvm::msr::X2APIC_SVR, 0x1ff);
    pvm::wrmsr(pvm::msr::X2APIC_LINT0, 0x1_0000);
    pvm::wrmsr(pvm::msr::X2APIC_TPR, 0);
    pvm::wrmsr(pvm::msr::X2APIC_LVTT, TIMER_VECTOR | (2 << 17));
    pvm::wrmsr(pvm::msr::TSC_DEADLINE, 0);
}

/// TSC value at monotonic time `ns`.
fn tsc_at(ns: u64) -> u64 {
    let khz = u128::from(TSC_KHZ.load(Ordering::Relaxed).max(1));
    let ticks = u128::from(ns) * khz / 1_000_000;
    BOOT_TSC
        .load(Ordering::Relaxed)
        .saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
}

/// Halt until monotonic time `deadline_ns` (or an earlier interrupt):
/// the LAPIC TSC-deadline timer wakes the HALT.
pub fn halt_until(deadline_ns: u64) {
    pvm::wrmsr(pvm::msr::TSC_DEADLINE, tsc_at(deadline_ns));
    idle();
    // Disarm, in case something else woke us first; this also cancels a
    // preemption slice, so the next switch to user mode arms a new one.
    pvm::wrmsr(pvm::msr::TSC_DEADLINE, 0);
    // SAFETY: per-CPU data of this CPU.
    unsafe { (*percpu()).slice_deadline = 0 };
}

/// Length of a time slice of user code before the timer interrupts it.
pub const SLICE_NS: u64 = 10_000_000;

/// Make sure the preemption timer will interrupt user code within a time
/// slice. It costs a WRMSR hypercall only when no slice is pending, i.e.
/// about once per slice, not once per system call.
pub fn arm_slice() {
    let pc = percpu();
    let now = pvm::rdtsc();
    // SAFETY: per-CPU data of this CPU.
    let armed = unsafe { (*pc).slice_deadline };
    if armed == 0 || now >= armed {
        let ticks = SLICE_NS * TSC_KHZ.load(Ordering::Relaxed).max(1) / 1_000_000;
        let deadline = now + ticks;
        pvm::wrmsr(pvm::msr::TSC_DEADLINE, deadline);
        // SAFETY: as above.
        unsafe { (*pc).slice_deadline = deadline };
    }
}

/// The vIF page of this CPU.
pub fn vif() -> *mut u8 {
    // SAFETY: per-CPU data of this CPU.
    unsafe { (*percpu()).vif as *mut u8 }
}

/// The CR2 of the last user page fault (written by the host into vIF+8).
pub fn fault_cr2() -> u64 {
    // SAFETY: vIF page, 8-byte aligned field at +8.
    unsafe { core::ptr::read_volatile((vif() as u64 + 8) as *const u64) }
}

/// Block until an interrupt (vIF.if = 1 around a HALT).
pub fn idle() {
    // SAFETY: the vIF page is mapped; pvm_idle restores vIF.if = 0.
    unsafe { entry::pvm_idle(vif()) };
}

/// A fault in kernel mode: the sentry is broken. Report and stop.
/// `frame` points at [vector, error, rip, cs, rflags, rsp, ss].
extern "C" fn kernel_fault(frame: *const u64) -> ! {
    // SAFETY: the stub passes the IST frame it was called on.
    let f = unsafe { core::slice::from_raw_parts(frame, 7) };
    let cr2 = if f[0] == 14 { fault_cr2() } else { 0 };
    crate::console::fatal(format_args!(
        "sentry kernel-mode fault: vector {} error {:#x} rip {:#x} rsp {:#x} rflags {:#x} cr2 {:#x}",
        f[0], f[1], f[2], f[5], f[4], cr2
    ))
}
