//! Arch self-tests, selected by the VMM through the boot info page. They
//! drive `PvmPlatform` directly with tiny hand-written user programs, until
//! (and besides) the sentry proper: syscall round trips, user faults and
//! exceptions, FPU and FS-base preservation, host calls, a kernel fault.

use core::arch::global_asm;

use crate::abi::hostcall::boot_info;
use crate::abi::UserRegs;
use crate::arch::x86_64::{boot_info_write, pvm};
use crate::platform::PvmPlatform;
use guest_kernel::platform::{HostOps, Platform, Prot, Trap, HOST_STDOUT};

/// Self-test numbers (boot info `SELFTEST`).
pub const HELLO: u64 = 1;
pub const SYSCALL_BENCH: u64 = 2;
pub const TRAPS: u64 = 3;
pub const KERNEL_FAULT: u64 = 4;
pub const HOSTCALL_BENCH: u64 = 5;
pub const HOST_SIGNALS: u64 = 6;

const CODE_VA: u64 = 0x40_0000;
const STACK_VA: u64 = 0x7fff_0000;
const DATA_VA: u64 = 0x60_0000;

global_asm!(
    r#"
.section .rodata.usercode, "a"
.globl user_bench_start, user_bench_end, user_traps_start, user_traps_end
.globl user_spin_start, user_spin_end
/* spin in user mode for ever */
user_spin_start:
1:  jmp 1b
user_spin_end:
/* rbx = iterations: getppid in a loop, then exit(0) */
user_bench_start:
1:  movl $110, %eax
    syscall
    decq %rbx
    jnz 1b
    movl $60, %eax
    xorl %edi, %edi
    syscall
    ud2
user_bench_end:

user_traps_start:
    /* 1: a write fault on an unmapped page (the kernel maps it) */
    movq $0x1234, 0x600008
    /* 2: xmm5 survives a syscall */
    movabsq $0x1111222233334444, %rax
    movq %rax, %xmm5
    movl $110, %eax
    syscall
    movq %xmm5, %rdi
    movl $1001, %eax
    syscall
    /* 3: FS base survives a syscall */
    movq $0x600100, %rax
    wrfsbase %rax
    movq $0x77, %fs:0
    movl $110, %eax
    syscall
    rdfsbase %rdi
    movq %fs:0, %rsi
    movl $1002, %eax
    syscall
    /* 4: #UD, 5: int3, 6: #DE (the kernel skips each) */
    ud2
    int3
    xorl %ecx, %ecx
    divq %rcx
    /* 7: a jump into the kernel half */
    movabsq $0xffffffff80200000, %rax
    jmp *%rax
user_traps_end:
.text
"#,
    options(att_syntax)
);

extern "C" {
    static user_bench_start: u8;
    static user_bench_end: u8;
    static user_traps_start: u8;
    static user_traps_end: u8;
    static user_spin_start: u8;
    static user_spin_end: u8;
}

fn result(i: u64, v: u64) {
    boot_info_write(boot_info::RESULTS + 8 * i, v);
}

fn code(start: *const u8, end: *const u8) -> &'static [u8] {
    // SAFETY: both symbols delimit one blob in .rodata.
    unsafe { core::slice::from_raw_parts(start, end as usize - start as usize) }
}

struct Proc {
    space: <PvmPlatform as Platform>::AddressSpace,
    thread: <PvmPlatform as Platform>::Thread,
    regs: UserRegs,
    next_frame: u64,
}

impl Proc {
    fn new(p: &PvmPlatform, text: &[u8]) -> Proc {
        let mut space = p.new_address_space().expect("address space");
        let thread = p.new_thread(&mut space).expect("thread");
        // Frames: a trivial bump over the sentry's physical range.
        let mut pr = Proc {
            space,
            thread,
            regs: UserRegs::new_user(CODE_VA, STACK_VA),
            next_frame: p.phys_range().0,
        };
        let f = pr.frame(p);
        p.phys_write(f, text);
        p.map(
            &mut pr.space,
            CODE_VA,
            f,
            4096,
            Prot {
                read: true,
                write: false,
                exec: true,
            },
        )
        .expect("map text");
        let s = pr.frame(p);
        p.map(&mut pr.space, STACK_VA - 4096, s, 4096, Prot::RW)
            .expect("map stack");
        pr
    }

    fn frame(&mut self, p: &PvmPlatform) -> u64 {
        let f = self.next_frame;
        self.next_frame += 4096;
        p.phys_zero(f, 4096);
        f
    }
}

/// Print through the host-call queue.
fn hello(p: &PvmPlatform) -> i32 {
    let h = p.host();
    for i in 0..3 {
        let line = alloc::format!("hello from the sentry, line {i}\n");
        let _ = h.write(HOST_STDOUT, line.as_bytes());
    }
    0
}

fn syscall_bench(p: &PvmPlatform, n: u64) -> i32 {
    let text = code(&raw const user_bench_start, &raw const user_bench_end);
    let mut pr = Proc::new(p, text);
    pr.regs.rbx = n.max(1);
    let t0 = pvm::rdtsc();
    let mut count = 0u64;
    loop {
        match p.switch(p.activate(&mut pr.space), &mut pr.thread, &mut pr.regs) {
            Ok(Trap::Syscall) => match pr.regs.orig_rax {
                110 => {
                    pr.regs.rax = 1;
                    count += 1;
                }
                60 => break,
                _ => pr.regs.rax = (-38i64) as u64,
            },
            // A preemption tick: nothing else to run.
            Ok(Trap::Interrupt) => {}
            other => crate::console::fatal(format_args!(
                "bench: unexpected {other:?} at {:#x}",
                pr.regs.rip
            )),
        }
    }
    let t1 = pvm::rdtsc();
    result(0, t1 - t0);
    result(1, count);
    0
}

fn traps(p: &PvmPlatform) -> i32 {
    let text = code(&raw const user_traps_start, &raw const user_traps_end);
    let mut pr = Proc::new(p, text);
    let mut step = 0u64;
    loop {
        let trap = p.switch(p.activate(&mut pr.space), &mut pr.thread, &mut pr.regs);
        match trap {
            Ok(Trap::PageFault { addr, write, .. }) if addr >> 12 == DATA_VA >> 12 => {
                let f = pr.frame(p);
                p.map(&mut pr.space, DATA_VA, f, 4096, Prot::RW)
                    .expect("map data");
                result(0, addr | u64::from(write == Some(true)) << 63);
            }
            Ok(Trap::Syscall) => match pr.regs.orig_rax {
                110 => pr.regs.rax = 1,
                1001 => result(1, pr.regs.rdi),
                1002 => {
                    result(2, pr.regs.rdi);
                    result(3, pr.regs.rsi);
                }
                _ => pr.regs.rax = (-38i64) as u64,
            },
            Ok(Trap::Exception { signo, .. }) if step < 3 => {
                // #UD (2 bytes): skip; int3: already past; #DE (div %rcx, 3 bytes): skip.
                let skip = [2, 0, 3][step as usize];
                pr.regs.rip += skip;
                result(4 + step, signo as u64);
                step += 1;
            }
            Ok(Trap::PageFault { addr, .. }) => {
                result(7, addr);
                break;
            }
            Ok(Trap::Interrupt) => {}
            other => crate::console::fatal(format_args!(
                "traps: unexpected {other:?} at {:#x}",
                pr.regs.rip
            )),
        }
    }
    0
}

fn hostcall_bench(n: u64) -> i32 {
    let t0 = pvm::rdtsc();
    for _ in 0..n {
        crate::hostcall::nop();
    }
    result(0, pvm::rdtsc() - t0);
    result(
        1,
        crate::hostcall::DOORBELLS.load(core::sync::atomic::Ordering::Relaxed),
    );
    0
}

/// A host signal as one number: `sig | pid << 8 | all << 40`.
fn encode(s: guest_kernel::platform::HostSignal) -> u64 {
    s.sig as u64 | (s.pid as u32 as u64) << 8 | u64::from(s.all) << 40
}

/// Signals from the host, in phases the VMM follows through `RESULTS[7]`:
/// 1. halted in `idle` until one arrives (`RESULTS[0]` the signal,
///    `RESULTS[1]` the wait in ns);
/// 2. while a user program spins (`RESULTS[2]` the signal, `RESULTS[3]`
///    the interrupts it took);
/// 3. malformed entries the host wrote around a good one (`RESULTS[4]`
///    the good one, `RESULTS[5]` how many were rejected);
/// 4. a `HEAD` far beyond the ring (`RESULTS[6]`: rejected by then).
fn host_signals(p: &PvmPlatform) -> i32 {
    use crate::arch::x86_64::monotonic_ns;
    const PHASE: u64 = 7;
    // Give up on a phase after this long: the VMM side failed.
    const LIMIT_NS: u64 = 10_000_000_000;
    result(PHASE, 1);
    let t0 = monotonic_ns();
    let sig = loop {
        if let Some(s) = p.take_host_signal() {
            break s;
        }
        if monotonic_ns() - t0 > LIMIT_NS {
            return 3;
        }
        p.idle(None);
    };
    result(1, monotonic_ns() - t0);
    result(0, encode(sig));

    let text = code(&raw const user_spin_start, &raw const user_spin_end);
    let mut pr = Proc::new(p, text);
    let mut interrupts = 0;
    result(PHASE, 2);
    let t0 = monotonic_ns();
    let sig = loop {
        match p.switch(p.activate(&mut pr.space), &mut pr.thread, &mut pr.regs) {
            Ok(Trap::Interrupt) => {
                interrupts += 1;
                if let Some(s) = p.take_host_signal() {
                    break s;
                }
            }
            other => crate::console::fatal(format_args!("signals: unexpected {other:?}")),
        }
        if monotonic_ns() - t0 > LIMIT_NS {
            return 4;
        }
    };
    result(2, encode(sig));
    result(3, interrupts);

    for (phase, slot) in [(3, 4), (4, 6)] {
        let before = p.signals_rejected();
        result(PHASE, phase);
        let t0 = monotonic_ns();
        loop {
            if let Some(s) = p.take_host_signal() {
                result(slot, encode(s));
            }
            if p.signals_rejected() > before && (phase == 4 || slot_filled(slot)) {
                break;
            }
            if monotonic_ns() - t0 > LIMIT_NS {
                return 5;
            }
            p.idle(Some(monotonic_ns() + 1_000_000));
        }
        if phase == 3 {
            result(5, p.signals_rejected() - before);
        } else {
            result(6, p.signals_rejected() - before);
        }
    }
    0
}

fn slot_filled(i: u64) -> bool {
    crate::arch::x86_64::boot_info_read(boot_info::RESULTS + 8 * i) != 0
}

/// Run self-test `which`; returns the exit status.
pub fn run(p: &PvmPlatform, which: u64, arg: u64) -> i32 {
    match which {
        HELLO => hello(p),
        SYSCALL_BENCH => syscall_bench(p, arg),
        TRAPS => traps(p),
        KERNEL_FAULT => {
            // SAFETY: deliberately touching an unmapped kernel address to
            // exercise the kernel-fault report; this never returns.
            unsafe { core::ptr::read_volatile(0xffff_ffff_ffff_f000 as *const u64) as i32 }
        }
        HOSTCALL_BENCH => hostcall_bench(arg),
        HOST_SIGNALS => host_signals(p),
        _ => 2,
    }
}
