//! The seccomp-trap fast path ("sysmsg", after gVisor's systrap).
//!
//! A `PTRACE_SYSEMU` round trip costs about 10 µs here; a system call
//! trapped by seccomp into a signal handler of the stub, and handed to the
//! sentry through shared memory, about 2.5 µs. So application code runs on
//! an *untraced* thread of the stub, one per (space, CPU): its filter turns
//! every system call made outside the stub's code page into `SIGSYS`, and
//! its handler (stub code, on an alternate stack in the slot below)
//! publishes the signal frame, spins and then sleeps on a shared futex
//! until the sentry has written the next registers into that same frame,
//! and returns through `rt_sigreturn`. Faults and kicks (`SIGURG`) take
//! the same handler. The traced threads stay for injected calls.
//!
//! Each stub gets a region of `cpus` slots from one memfd area that the
//! sentry maps once. A slot is [`SLOT`] bytes: a page of message words,
//! the filter and the signal action, then the signal stack. The
//! application can write its own slots: the sentry reads every word once,
//! checks each offset against the slot, and never follows a pointer out of
//! it.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use guest_kernel::abi::UserRegs;
use guest_kernel::platform::{PlatformError, Trap};
use nix::unistd::Pid;

/// Bytes of a slot; slots sit at multiples of it in every stub.
pub const SLOT: u64 = 0x8000;
/// Where the signal stack starts, after the message page.
pub const STACK: u64 = 0x1000;

// Message words (offsets in the slot).
pub const STATE: u64 = 0;
pub const SENTRY_SLEEPS: u64 = 4;
pub const STUB_SLEEPS: u64 = 8;
pub const SIGNO: u64 = 16;
pub const INFO: u64 = 24;
pub const UCTX: u64 = 32;
pub const FS_WANT: u64 = 40;
pub const FS_CUR: u64 = 48;
pub const GS_WANT: u64 = 56;
pub const GS_CUR: u64 = 64;
pub const ERR: u64 = 72;
/// How long the handler spins before it sleeps (`pause` iterations).
pub const SPIN_N: u64 = 84;
/// 1 when the thread runs "far" (see `adapt`).
const MODE: u64 = 88;
/// Evidence for the other mode, in switches.
const STREAK: u64 = 92;
/// The slot's own address, which a patched call's code checks GS against.
pub const SELF: u64 = 96;
/// A kick came while a patched call was on its way back (see the stub's
/// handler).
pub const KICK: u64 = 104;
/// The sentry wrote the FPU state of the slot's own frame: a patched call
/// loads it on its way back.
pub const FPU_DIRTY: u64 = 108;
/// The slot's own frame, laid out as a signal's (`ucontext`, then the
/// XSAVE area): patched calls save the registers there, below the part of
/// the signal stack that signal frames use.
pub const FAKE: u64 = STACK;
pub const FAKE_FP: u64 = STACK + 0x400;
/// Room a signal frame needs at the top of the slot, besides the XSAVE area.
const FRAME_ROOM: u64 = 0x1000;
// What setting a thread up reads, in the stub's read-only batch page (see
// `setup_data`): the application could rewrite anything in its slots
// between the sentry's writing it and the kernel's reading it.
/// The kernel's `struct sigaction` for `rt_sigaction`.
pub const DATA_SIGACT: u64 = 0;
/// `stack_t` for `sigaltstack`.
pub const DATA_SS: u64 = 32;
/// `struct sock_fprog` for `seccomp`.
pub const DATA_FPROG: u64 = 64;
/// The filter's instructions.
const DATA_FILTER: u64 = 128;

// States.
pub const NEW: u32 = 0;
pub const TRAPPED: u32 = 1;
pub const RUN: u32 = 2;
pub const FAILED: u32 = 3;

/// Handler spins before it sleeps when far (`pause` iterations, about
/// 8 µs here).
const STUB_SPIN: u32 = 300;
/// A switch that ends in a system call this soon is short.
const SHORT: Duration = Duration::from_micros(30);
/// Short switches in a row that send a thread far, and others that bring
/// it back.
const TO_FAR: u32 = 16;
const TO_NEAR: u32 = 8;
/// How often the sentry checks on a thread that has not trapped, and how
/// many checks it lets go unanswered (5 s).
const QUIET: Duration = Duration::from_millis(200);
const UNANSWERED: u32 = 25;
/// How long the sentry spins for a trap before it sleeps.
const SENTRY_SPIN: Duration = Duration::from_micros(20);

/// Signals the handler takes.
pub const SIGNALS: [i32; 7] = [
    libc::SIGSYS,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGURG,
];

const SA_RESTORER: u64 = 0x0400_0000;
const SS_AUTODISARM: u32 = 1 << 31;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X86_TRAP_PF: u64 = 14;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// Stubs with a region at once; the others run under `PTRACE_SYSEMU`.
const STUBS_MAX: usize = 1024;

/// Whether new stubs use the fast path (`RINGFENCE_PTRACE_SYSEMU=1` keeps
/// every stub on `PTRACE_SYSEMU`).
pub fn enabled() -> bool {
    std::env::var_os("RINGFENCE_PTRACE_SYSEMU").is_none_or(|v| v.is_empty() || v == "0")
}

/// Whether system call sites are patched to jump into the stub (see the
/// sentry's `mm::usertrap`): set once, when the platform starts.
static PATCHING: AtomicBool = AtomicBool::new(false);
/// The XSAVE area's size, for the slot's own frame.
static XSAVE_SIZE: AtomicU32 = AtomicU32::new(0);

/// Turn patching on if this machine allows it: the patched path reads
/// and writes FS and GS in user mode (`FSGSBASE`, which Linux exposes as
/// `HWCAP2_FSGSBASE`), and its frame must fit below the signal frames.
/// `RINGFENCE_PTRACE_PATCH=0` keeps every call trapping.
pub fn enable_patching() -> bool {
    let off = std::env::var_os("RINGFENCE_PTRACE_PATCH").is_some_and(|v| v == "0");
    // SAFETY: getauxval only reads the process's auxiliary vector.
    let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
    // Leaf 0xd's EBX: the XSAVE area's size for the features enabled now.
    let size = std::arch::x86_64::__cpuid_count(0xd, 0).ebx;
    let fits = size >= 576 && FAKE_FP + u64::from(size) + FRAME_ROOM + u64::from(size) <= SLOT;
    let on = !off && enabled() && hwcap2 & 2 != 0 && fits;
    XSAVE_SIZE.store(size, Ordering::Relaxed);
    PATCHING.store(on, Ordering::Relaxed);
    on
}

fn patching() -> bool {
    PATCHING.load(Ordering::Relaxed)
}

/// The memfd area the stubs' regions come from, mapped in the sentry.
#[derive(Debug)]
pub struct Area {
    base: NonNull<u8>,
    fd: RawFd,
    /// Where the area starts in the memfd.
    file_off: u64,
    /// Bytes per stub: `cpus` slots.
    per_stub: u64,
    free: std::sync::Mutex<Vec<u32>>,
    /// For each sentry CPU, its own host CPU and another one where its
    /// sysmsg threads may run far from it (`None`: they stay where they
    /// start, and nobody spins).
    places: Vec<Option<(usize, usize)>>,
}

// SAFETY: the mapping is shared memory owned by this value for the
// platform's life; every access is a bounds-checked volatile or atomic one.
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Area {
    /// The bytes to add to the memfd for `cpus` CPUs.
    pub fn bytes(cpus: usize) -> u64 {
        STUBS_MAX as u64 * cpus as u64 * SLOT
    }

    /// Map `bytes(cpus)` of `fd` from `file_off`. `allowed` are the host
    /// CPUs, the first `cpus` of them the sentry CPUs' own when `pinned`.
    pub fn new(
        fd: BorrowedFd<'_>,
        file_off: u64,
        cpus: usize,
        allowed: &[usize],
        pinned: bool,
    ) -> nix::Result<Self> {
        let base = crate::physmem::map_shared(fd, file_off, Self::bytes(cpus))?;
        Ok(Area {
            base,
            fd: fd.as_raw_fd(),
            file_off,
            per_stub: cpus as u64 * SLOT,
            free: std::sync::Mutex::new((0..STUBS_MAX as u32).rev().collect()),
            // Far: a host CPU of its own if there are enough, else the
            // next sentry CPU's.
            places: (0..cpus)
                .map(|c| {
                    let n = allowed.len();
                    (pinned && n > 1).then(|| {
                        let far = if n >= 2 * cpus {
                            allowed[cpus + c]
                        } else {
                            allowed[(c + 1) % n]
                        };
                        (allowed[c], far)
                    })
                })
                .collect(),
        })
    }

    /// Sentry CPU `cpu`'s host CPU and its far one.
    pub fn places(&self, cpu: usize) -> Option<(usize, usize)> {
        self.places.get(cpu).copied().flatten()
    }

    /// A region for a stub: its index, its memfd offset and length.
    pub fn alloc(&self) -> Option<Region> {
        let idx = self.free.lock().ok()?.pop()?;
        Some(Region {
            idx,
            file_off: self.file_off + u64::from(idx) * self.per_stub,
            len: self.per_stub,
            ptr: self.base.as_ptr() as usize + (u64::from(idx) * self.per_stub) as usize,
        })
    }

    /// Give a region back once its stub is dead; its memory goes back to
    /// the host.
    pub fn release(&self, r: &Region) {
        let mode = nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
            | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        // SAFETY: the fd is the memfd this area maps, open for the
        // platform's life; punching only zeroes the region's pages.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        if nix::fcntl::fallocate(fd, mode, r.file_off as i64, r.len as i64).is_err() {
            // Zero it by hand: a reused slot must not start in an old state.
            // SAFETY: the region lies inside the mapping (see `alloc`).
            unsafe { std::ptr::write_bytes(r.ptr as *mut u8, 0, r.len as usize) };
        }
        if let Ok(mut f) = self.free.lock() {
            f.push(r.idx);
        }
    }
}

/// A stub's share of the area.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    idx: u32,
    pub file_off: u64,
    pub len: u64,
    ptr: usize,
}

impl Region {
    /// CPU `cpu`'s slot, the stub's region starting at `va`.
    pub fn slot(&self, cpu: usize, va: u64) -> Slot {
        Slot {
            ptr: self.ptr + cpu * SLOT as usize,
            va: va + cpu as u64 * SLOT,
        }
    }
}

/// One slot: `ptr` in the sentry, `va` in the stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub ptr: usize,
    pub va: u64,
}

impl Slot {
    fn word(&self, off: u64) -> &AtomicU32 {
        debug_assert!(off + 4 <= STACK);
        // SAFETY: `ptr` is a slot of the area's mapping (SLOT bytes, page
        // aligned), alive for the platform's life, and `off` a message
        // word inside its first page; AtomicU32 has u32's layout.
        unsafe { &*((self.ptr + off as usize) as *const AtomicU32) }
    }

    fn get(&self, off: u64) -> u64 {
        assert!(off + 8 <= SLOT);
        // SAFETY: in bounds of the slot (asserted); another process may
        // write it at any time, hence the volatile read.
        unsafe { ((self.ptr + off as usize) as *const u64).read_volatile() }
    }

    fn set(&self, off: u64, v: u64) {
        assert!(off + 8 <= SLOT);
        // SAFETY: as in `get`.
        unsafe { ((self.ptr + off as usize) as *mut u64).write_volatile(v) }
    }

    fn state(&self) -> &AtomicU32 {
        self.word(STATE)
    }

    /// The slot offset of stub address `p` holding `len` bytes, if it lies
    /// in the signal stack.
    fn offset_of(&self, p: u64, len: u64, align: u64) -> Option<u64> {
        let off = p.checked_sub(self.va)?;
        (off >= STACK && off.checked_add(len)? <= SLOT && off % align == 0).then_some(off)
    }

    /// Copy `buf.len()` bytes from slot offset `off`.
    fn read(&self, off: u64, buf: &mut [u8]) {
        assert!(off + buf.len() as u64 <= SLOT);
        // SAFETY: in bounds (asserted); the bytes may change under us (the
        // stub's own business), which only changes the values we copy.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (self.ptr + off as usize) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
    }

    fn write(&self, off: u64, data: &[u8]) {
        assert!(off + data.len() as u64 <= SLOT);
        // SAFETY: in bounds (asserted); only the stub reads it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                (self.ptr + off as usize) as *mut u8,
                data.len(),
            )
        }
    }

    /// Clear the slot's messages for a new thread.
    pub fn prepare(&self) {
        self.write(0, &[0u8; STACK as usize]);
        self.forget_segments();
        self.set(SELF, self.va);
        // The own frame's XSAVE area described as the kernel describes a
        // signal frame's (`fpstate` reads it so); XSAVE leaves these bytes.
        let size = XSAVE_SIZE.load(Ordering::Relaxed);
        let mut sw = [0u8; 20];
        sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        sw[4..8].copy_from_slice(&(size + 4).to_le_bytes());
        sw[16..20].copy_from_slice(&size.to_le_bytes());
        self.write(FAKE_FP + 464, &sw);
    }

    /// Make the thread set both segment bases before it next runs.
    pub fn forget_segments(&self) {
        self.set(FS_CUR, u64::MAX);
        self.set(GS_CUR, u64::MAX);
    }

    /// What this slot's new thread and the handler's installation read,
    /// to be placed at stub address `at` (in the read-only batch page):
    /// the signal action, the signal stack, and the filter allowing the
    /// stub code at `code` (one page) only the calls the handler makes.
    pub fn setup_data(&self, at: u64, code: u64, handler: u64, restorer: u64) -> Vec<u8> {
        let mut d = vec![0u8; DATA_FILTER as usize];
        let mut put = |off: u64, v: u64| {
            d[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
        };
        put(DATA_SIGACT, handler);
        let flags = (libc::SA_SIGINFO | libc::SA_ONSTACK) as u64 | SA_RESTORER;
        put(DATA_SIGACT + 8, flags);
        put(DATA_SIGACT + 16, restorer);
        put(DATA_SIGACT + 24, u64::MAX);
        // stack_t: ss_sp, ss_flags (+pad), ss_size.
        put(DATA_SS, self.va + STACK);
        put(DATA_SS + 8, u64::from(SS_AUTODISARM));
        put(DATA_SS + 16, SLOT - STACK);
        let prog = filter(code);
        put(DATA_FPROG, prog.len() as u64);
        put(DATA_FPROG + 8, at + DATA_FILTER);
        for i in &prog {
            d.extend_from_slice(&i.code.to_le_bytes());
            d.push(i.jt);
            d.push(i.jf);
            d.extend_from_slice(&i.k.to_le_bytes());
        }
        d
    }

    /// Wait for the slot's thread to leave `RUN` (or `NEW`): spin a little
    /// (when `spin`), then sleep on the futex; checks that the thread
    /// lives every so often.
    pub fn wait_trap(&self, pid: Pid, tid: Pid, spin: bool) -> Result<(), PlatformError> {
        let st = self.state();
        let busy = |s: u32| s == RUN || s == NEW;
        if spin {
            let t0 = Instant::now();
            'spin: loop {
                for _ in 0..64 {
                    if !busy(st.load(Ordering::Acquire)) {
                        break 'spin;
                    }
                    std::hint::spin_loop();
                }
                if t0.elapsed() > SENTRY_SPIN {
                    break;
                }
            }
        }
        let sleeps = self.word(SENTRY_SLEEPS);
        // Checked by the clock, not by futex timeouts: the application can
        // wake the futex as often as it likes.
        let mut quiet_since: Option<Instant> = None;
        let mut checks = 0;
        loop {
            let s = st.load(Ordering::SeqCst);
            if !busy(s) {
                break;
            }
            let since = *quiet_since.get_or_insert_with(Instant::now);
            sleeps.store(1, Ordering::SeqCst);
            if busy(st.load(Ordering::SeqCst)) {
                let _ = futex_wait(st, s, QUIET);
            }
            sleeps.store(0, Ordering::Relaxed);
            if !busy(st.load(Ordering::SeqCst)) || since.elapsed() < QUIET {
                continue;
            }
            if !alive(pid, tid) {
                return Err(PlatformError::Lost("stub thread died", 0));
            }
            // A thread running application code traps at once on SIGURG
            // (so does one starting up, within microseconds). One that does
            // not for seconds has blocked it or lost its signal stack with a
            // forged rt_sigreturn: its process goes, not this CPU.
            checks += 1;
            if checks > UNANSWERED {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return Err(PlatformError::Lost("stub thread does not answer", 0));
            }
            if s == RUN {
                urge(pid, tid);
            }
            quiet_since = Some(Instant::now());
        }
        match st.load(Ordering::Acquire) {
            TRAPPED => Ok(()),
            FAILED => Err(PlatformError::Lost(
                "stub thread failed to start",
                (self.get(ERR) as i64).wrapping_neg() as i32,
            )),
            // Only the application writes anything else there.
            _ => Err(PlatformError::Lost("stub message corrupted", 0)),
        }
    }

    /// Let the thread go on from the frame the sentry wrote.
    fn release(&self) {
        self.state().swap(RUN, Ordering::SeqCst);
        if self.word(STUB_SLEEPS).load(Ordering::SeqCst) != 0 {
            futex_wake(self.state());
        }
    }

    /// The slot offset of the published `ucontext`, checked.
    fn uctx(&self) -> Result<u64, PlatformError> {
        let p = self.get(UCTX);
        self.offset_of(p, UC_SIZE, 8).ok_or_else(|| {
            log::debug!(
                "sysmsg slot {:#x}: ucontext at {p:#x}, signal {}, state {}",
                self.va,
                self.get(SIGNO),
                self.state().load(Ordering::Relaxed)
            );
            PlatformError::Lost("stub message corrupted", 0)
        })
    }

    /// The frame's XSAVE area: its slot offset and size (from the
    /// kernel's software bytes; 512 for a legacy frame).
    fn fpstate(&self) -> Option<(u64, usize)> {
        let uc = self.uctx().ok()?;
        let p = self.get(uc + UC_MCONTEXT + 23 * 8);
        let off = self.offset_of(p, 512, 64)?;
        let mut sw = [0u8; 24];
        self.read(off + 464, &mut sw);
        let magic = u32::from_le_bytes([sw[0], sw[1], sw[2], sw[3]]);
        let size = u32::from_le_bytes([sw[16], sw[17], sw[18], sw[19]]) as u64;
        let size = if magic == FP_XSTATE_MAGIC1 && size >= 576 && off + size <= SLOT {
            size
        } else {
            512
        };
        Some((off, size as usize))
    }

    /// The frame's XSAVE image, its software bytes cleared.
    pub fn read_fpstate(&self) -> Option<Vec<u8>> {
        let (off, size) = self.fpstate()?;
        let mut buf = vec![0u8; size];
        self.read(off, &mut buf);
        buf[464..512].fill(0);
        Some(buf)
    }

    /// Put XSAVE image `x` into the frame, keeping the frame's software
    /// bytes (the kernel's own description of the frame).
    pub fn write_fpstate(&self, x: &[u8]) -> Result<(), PlatformError> {
        let (off, size) = self
            .fpstate()
            .ok_or(PlatformError::Lost("stub message corrupted", 0))?;
        self.write(off, &x[..x.len().min(464)]);
        let n = x.len().min(size);
        if n > 512 {
            self.write(off + 512, &x[512..n]);
        }
        self.word(FPU_DIRTY).store(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the thread runs far from its sentry CPU (both spin then).
    pub fn far(&self) -> bool {
        self.word(MODE).load(Ordering::Relaxed) == 1
    }

    /// After a switch of `took` ending in `trap`: move the thread between
    /// its sentry CPU's host CPU (`near`) and another (`far`). Near, a trap
    /// costs two host context switches (about 8 µs here); far, both sides
    /// spin and one costs about 2.5 µs, but the application's data goes
    /// cold in the other CPU's cache and a spinning CPU is lost to
    /// others. So a run of quick system calls goes far, and a run of
    /// anything else (faults, long runs, blocking) comes back.
    pub fn adapt(&self, tid: Pid, trap: &Trap, took: Duration, (near, far_cpu): (usize, usize)) {
        let short = matches!(trap, Trap::Syscall) && took < SHORT;
        let far = self.far();
        let streak = self.word(STREAK);
        let n = if short != far {
            streak.load(Ordering::Relaxed).saturating_add(1)
        } else {
            0
        };
        if n < if far { TO_NEAR } else { TO_FAR } {
            streak.store(n, Ordering::Relaxed);
            return;
        }
        let mut set = nix::sched::CpuSet::new();
        if set.set(if far { near } else { far_cpu }).is_ok()
            && nix::sched::sched_setaffinity(tid, &set).is_ok()
        {
            self.word(MODE).store(u32::from(!far), Ordering::Relaxed);
            let spin = if far { 0 } else { STUB_SPIN };
            self.word(SPIN_N).store(spin, Ordering::Relaxed);
        }
        streak.store(0, Ordering::Relaxed);
    }

    /// Whether a kick was noted in patched-call code, forgetting it.
    pub fn take_kick(&self) -> bool {
        self.word(KICK).swap(0, Ordering::Relaxed) != 0
    }

    /// Whether the thread said it could not set itself up (and exited).
    pub fn failed(&self) -> bool {
        self.state().load(Ordering::SeqCst) == FAILED
    }

    /// The error it gave then.
    pub fn err(&self) -> i32 {
        (self.get(ERR) as i64).wrapping_neg() as i32
    }

    /// The signal and instruction pointer of the trap just taken.
    pub fn first_trap(&self) -> Option<(i32, u64)> {
        let uc = self.uctx().ok()?;
        Some((self.get(SIGNO) as i32, self.get(uc + UC_MCONTEXT + 16 * 8)))
    }

    /// Write `v` at `off` unless it is there already: a line the sentry
    /// only read stays valid in the stub's CPU cache.
    fn update(&self, off: u64, v: u64) {
        if self.get(off) != v {
            self.set(off, v);
        }
    }

    /// Write `regs` into the frame and let the thread run them.
    pub fn run(&self, regs: &UserRegs) -> Result<(), PlatformError> {
        let uc = self.uctx()?;
        let g = uc + UC_MCONTEXT;
        for (i, v) in gregs_of(regs).iter().enumerate() {
            self.update(g + 8 * i as u64, *v);
        }
        self.update(g + 17 * 8, regs.rflags);
        // The stack the next signal finds, and the host signal mask: ours,
        // whatever the frame says.
        self.update(uc + 16, self.va + STACK);
        self.update(uc + 24, u64::from(SS_AUTODISARM));
        self.update(uc + 32, SLOT - STACK);
        self.update(uc + UC_SIGMASK, 0);
        self.update(FS_WANT, regs.fs_base);
        // GS is the slot where the application has none of its own (as
        // almost none has): patched calls find their slot through it.
        let gs = match regs.gs_base {
            0 if patching() => self.va,
            gs => gs,
        };
        self.update(GS_WANT, gs);
        self.release();
        Ok(())
    }

    /// What stopped the thread, with its registers in `regs` (the segment
    /// bases stay the sentry's: the application changes them only through
    /// it). Only faults other than page faults need the `siginfo`: each
    /// line read here comes from another CPU's cache.
    pub fn trap(&self, regs: &mut UserRegs) -> Result<Trap, PlatformError> {
        let uc = self.uctx()?;
        let g = uc + UC_MCONTEXT;
        let mut v = [0u64; 17];
        for (i, w) in v.iter_mut().enumerate() {
            *w = self.get(g + 8 * i as u64);
        }
        set_gregs(regs, &v);
        regs.rflags = self.get(g + 17 * 8);
        let signo = self.get(SIGNO) as i32;
        Ok(match signo {
            // Only seccomp sends SIGSYS (the application cannot signal its
            // stub), for x86-64 calls only (the filter answers the others
            // ENOSYS); the kernel left the number in rax. As
            // PTRACE_SYSEMU leaves them:
            // 0: a patched call, from the slot's own frame.
            0 | libc::SIGSYS => {
                regs.orig_rax = regs.rax;
                regs.rax = (-(libc::ENOSYS as i64)) as u64;
                Trap::Syscall
            }
            libc::SIGSEGV if self.get(g + 20 * 8) == X86_TRAP_PF => {
                let err = self.get(g + 19 * 8);
                Trap::PageFault {
                    addr: self.get(g + 22 * 8),
                    write: Some(err & 2 != 0),
                    not_present: err & 1 == 0,
                    exec: err & 16 != 0,
                }
            }
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP => {
                let info = self.offset_of(self.get(INFO), 128, 8).ok_or_else(|| {
                    log::debug!(
                        "sysmsg slot {:#x}: siginfo at {:#x}",
                        self.va,
                        self.get(INFO)
                    );
                    PlatformError::Lost("stub message corrupted", 0)
                })?;
                let mut si = [0u8; 24];
                self.read(info, &mut si);
                let code = i32::from_le_bytes([si[8], si[9], si[10], si[11]]);
                let mut a = [0u8; 8];
                a.copy_from_slice(&si[16..24]);
                Trap::Exception {
                    signo,
                    code,
                    addr: u64::from_le_bytes(a),
                }
            }
            _ => Trap::Interrupt,
        })
    }
}

/// `struct ucontext` (the kernel's): `uc_mcontext` and `uc_sigmask`.
pub const UC_MCONTEXT: u64 = 40;
const UC_SIGMASK: u64 = UC_MCONTEXT + 32 * 8;
const UC_SIZE: u64 = UC_SIGMASK + 8;

/// `sigcontext`'s first 17 words: r8-r15, rdi, rsi, rbp, rbx, rdx, rax,
/// rcx, rsp, rip.
fn gregs_of(r: &UserRegs) -> [u64; 17] {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip,
    ]
}

fn set_gregs(r: &mut UserRegs, v: &[u64; 17]) {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip,
    ] = *v;
}

/// The filter of a sysmsg thread: the stub code page at `code` may make
/// the calls the handler needs; everything else traps into it. Written by
/// hand: seccompiler's rules match arguments, not the instruction pointer.
fn filter(code: u64) -> Vec<libc::sock_filter> {
    const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let lo = code as u32;
    let hi = (code >> 32) as u32;
    // Offsets in seccomp_data: nr 0, arch 4, ip 8, args 16 + 8i.
    vec![
        ins(LD, 0, 0, 4),
        ins(JEQ, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        ins(LD, 0, 0, 12),
        ins(JEQ, 0, 13, hi),
        ins(LD, 0, 0, 8),
        ins(JGE, 0, 11, lo),
        ins(JGE, 10, 0, lo.wrapping_add(4096)),
        ins(LD, 0, 0, 0),
        ins(JEQ, 9, 0, libc::SYS_rt_sigreturn as u32), // allow
        ins(JEQ, 2, 0, libc::SYS_futex as u32),
        ins(JEQ, 3, 0, libc::SYS_arch_prctl as u32),
        ins(RET, 0, 0, libc::SECCOMP_RET_TRAP),
        // futex: FUTEX_WAIT or FUTEX_WAKE only.
        ins(LD, 0, 0, 24),
        ins(JGE, 3, 4, 2),
        // arch_prctl: ARCH_SET_GS or ARCH_SET_FS only.
        ins(LD, 0, 0, 16),
        ins(JEQ, 2, 0, 0x1001),
        ins(JEQ, 1, 0, 0x1002),
        ins(RET, 0, 0, libc::SECCOMP_RET_TRAP),
        ins(RET, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

fn futex_wait(w: &AtomicU32, val: u32, timeout: Duration) -> nix::Result<()> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a shared (cross-process) futex wait on a live word of the
    // area; the kernel only reads `w` and `ts`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            &ts as *const libc::timespec,
        )
    };
    if r < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: a shared futex wake on a live word of the area.
    unsafe { libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Interrupt thread `tid` of `pid` with SIGURG.
fn urge(pid: Pid, tid: Pid) {
    // SAFETY: tgkill only sends a signal to a stub thread of ours.
    unsafe { libc::syscall(libc::SYS_tgkill, pid.as_raw(), tid.as_raw(), libc::SIGURG) };
}

/// Whether thread `tid` of `pid` still exists.
fn alive(pid: Pid, tid: Pid) -> bool {
    // SAFETY: signal 0 only checks that the thread exists.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid.as_raw(), tid.as_raw(), 0) };
    r == 0 || nix::Error::last() != nix::Error::ESRCH
}
