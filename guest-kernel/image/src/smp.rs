//! Bringing the other vCPUs into the sentry.
//!
//! Every vCPU enters the image at `_start` with its number. CPU 0 boots the
//! sentry; the others (APs) set up their own per-CPU state as soon as the
//! shared arch state is ready, then halt until CPU 0 opens the scheduler
//! to them with [`run_cpus`], run its CPU loop, and halt for good when it
//! returns. CPU 0 waits for every AP that entered the loop to leave it
//! before the kernel the loop borrows goes away.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::x86_64::{self as arch, idle};

/// Set by CPU 0 once the IDT and clocks exist.
static ARCH_READY: AtomicBool = AtomicBool::new(false);
/// Set by CPU 0 once `ENTRY` holds the CPU loop.
static OPEN: AtomicBool = AtomicBool::new(false);
/// Set by CPU 0 when the sentry is done: APs no longer enter the loop.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// APs that passed the `CLOSED` check, and APs that left the loop.
static ENTERED: AtomicUsize = AtomicUsize::new(0);
static LEFT: AtomicUsize = AtomicUsize::new(0);

type CpuLoop = &'static (dyn Fn(usize) + Sync);

/// The CPU loop, published by CPU 0 while `OPEN` and not yet drained.
struct Entry(core::cell::UnsafeCell<Option<CpuLoop>>);

// SAFETY: written by CPU 0 only before `OPEN` is set (Release) and after
// every AP that read it has left (`LEFT == ENTERED` after `CLOSED`); read
// by APs only after seeing `OPEN` (Acquire).
unsafe impl Sync for Entry {}

static ENTRY: Entry = Entry(core::cell::UnsafeCell::new(None));

/// CPU 0: the shared arch state is ready for the APs' `percpu_init`.
pub fn arch_ready() {
    ARCH_READY.store(true, Ordering::Release);
}

/// An AP's life after `_start`: wait for the arch state, set up its own,
/// run the CPU loop once CPU 0 opens it, then halt for good.
pub fn ap_main(cpu: usize) -> ! {
    while !ARCH_READY.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    arch::percpu_init(cpu);
    while !OPEN.load(Ordering::Acquire) {
        idle();
    }
    ENTERED.fetch_add(1, Ordering::SeqCst);
    if !CLOSED.load(Ordering::SeqCst) {
        // SAFETY: see `Entry`: CPU 0 keeps it valid until `LEFT` counts us.
        if let Some(f) = unsafe { *ENTRY.0.get() } {
            f(cpu);
        }
    }
    LEFT.fetch_add(1, Ordering::SeqCst);
    loop {
        idle();
    }
}

/// CPU 0: run `cpu_loop` on every vCPU; return once CPU 0's has returned
/// and no AP is inside its own any more.
pub fn run_cpus(cpu_loop: &(dyn Fn(usize) + Sync)) {
    let n = arch::nr_cpus();
    if n > 1 {
        // SAFETY: the lifetime is extended only until this function
        // returns, and it returns only after every AP that could call the
        // loop has left it (`CLOSED`, then `LEFT == ENTERED`).
        let f: CpuLoop = unsafe { core::mem::transmute::<&(dyn Fn(usize) + Sync), CpuLoop>(cpu_loop) };
        // SAFETY: no AP reads `ENTRY` before `OPEN` (see `Entry`).
        unsafe { *ENTRY.0.get() = Some(f) };
        OPEN.store(true, Ordering::Release);
        for c in 1..n {
            arch::kick(c);
        }
    }
    cpu_loop(0);
    if n > 1 {
        CLOSED.store(true, Ordering::SeqCst);
        while LEFT.load(Ordering::SeqCst) != ENTERED.load(Ordering::SeqCst) {
            for c in 1..n {
                arch::kick(c);
            }
            arch::halt_until(arch::monotonic_ns() + 50_000);
        }
        // SAFETY: every AP that read `ENTRY` has left the loop.
        unsafe { *ENTRY.0.get() = None };
    }
}
