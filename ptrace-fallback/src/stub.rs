//! Stub processes: empty address spaces that run application code under
//! `PTRACE_SYSEMU`.
//!
//! A stub is forked from the sandbox process. It unmaps everything but one
//! code page (placed at the top of the user range, which the sentry never
//! hands to the application) and stops itself. From then on the tracer
//! drives it: it injects `mmap`/`munmap`/`mprotect` through the page's
//! `syscall; int3` sequence and runs application registers with SYSEMU.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use guest_kernel::abi::{Errno, KResult, UserRegs, PAGE_SIZE};
use guest_kernel::platform::{PlatformError, Prot, Trap};
use log::debug;
use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};
use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::fault_signal;

/// glibc's rseq signature on x86.
const RSEQ_SIG: u32 = 0x5305_3053;

/// Linux's `TASK_SIZE`: the stub unmaps everything up to here.
const LINUX_TASK_SIZE: u64 = 0x7fff_ffff_f000;

std::arch::global_asm!(
    ".pushsection .text.ringfence_stub,\"ax\",@progbits",
    ".balign 16",
    ".globl ringfence_stub_start",
    "ringfence_stub_start:",
    // r12 = this page. munmap(0, r12)
    "mov eax, 11",
    "xor edi, edi",
    "mov rsi, r12",
    "syscall",
    // munmap(r12 + 4096, LINUX_TASK_SIZE - r12 - 4096)
    "mov eax, 11",
    "lea rdi, [r12 + 4096]",
    "movabs rsi, 0x7ffffffff000",
    "sub rsi, rdi",
    "syscall",
    // kill(getpid(), SIGSTOP): hand control to the tracer.
    "mov eax, 39",
    "syscall",
    "mov edi, eax",
    "mov esi, 19",
    "mov eax, 62",
    "syscall",
    ".globl ringfence_stub_syscall",
    "ringfence_stub_syscall:",
    "syscall",
    "int3",
    "jmp ringfence_stub_syscall",
    ".globl ringfence_stub_end",
    "ringfence_stub_end:",
    ".popsection",
);

extern "C" {
    // glibc's rseq ABI (2.35+): offset of this thread's `struct rseq` from
    // the thread pointer, and its registered size (0 when not registered).
    static __rseq_offset: isize;
    static __rseq_size: u32;
    static ringfence_stub_start: u8;
    static ringfence_stub_syscall: u8;
    static ringfence_stub_end: u8;
}

/// The page holding the stub code, mapped in the sandbox process at the top
/// of the user range so that every stub inherits it at the same address.
#[derive(Debug)]
pub struct StubPage {
    addr: u64,
    syscall_off: u64,
}

impl StubPage {
    pub fn new() -> nix::Result<Self> {
        // Only the addresses of the linker-provided symbols are taken.
        let (start, sys, end) = (
            std::ptr::addr_of!(ringfence_stub_start) as usize,
            std::ptr::addr_of!(ringfence_stub_syscall) as usize,
            std::ptr::addr_of!(ringfence_stub_end) as usize,
        );
        let len = end - start;
        // Highest free page below Linux's TASK_SIZE; the host stack or vDSO
        // may already sit at the very top.
        let mut want = LINUX_TASK_SIZE - 16 * PAGE_SIZE;
        let page = loop {
            let size = std::num::NonZeroUsize::new(PAGE_SIZE as usize).ok_or(nix::Error::EINVAL)?;
            let hint = std::num::NonZeroUsize::new(want as usize);
            // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping;
            // the new anonymous page is ours alone.
            let r = unsafe {
                mmap_anonymous(
                    hint,
                    size,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_PRIVATE | MapFlags::MAP_FIXED_NOREPLACE,
                )
            };
            match r {
                Ok(p) if p.as_ptr() as u64 == want => break p,
                Ok(_) | Err(nix::Error::EEXIST) if want > (1 << 40) => want -= 1 << 30,
                Ok(_) => return Err(nix::Error::ENOMEM),
                Err(e) => return Err(e),
            }
        };
        // SAFETY: the source is our own code (`len` bytes between two
        // symbols of one section) and the destination the fresh page above.
        unsafe {
            std::ptr::copy_nonoverlapping(start as *const u8, page.as_ptr().cast::<u8>(), len);
            mprotect(
                page,
                PAGE_SIZE as usize,
                ProtFlags::PROT_READ | ProtFlags::PROT_EXEC,
            )?;
        }
        Ok(StubPage {
            addr: want,
            syscall_off: (sys - start) as u64,
        })
    }

    pub fn addr(&self) -> u64 {
        self.addr
    }
}

/// Pin the calling thread (and the stubs it forks) to the CPU it is on.
pub fn pin_to_current_cpu() -> nix::Result<()> {
    let cpu = nix::sched::sched_getcpu()?;
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
}

/// Fill `buf` from the host's entropy pool.
pub fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the kernel writes at most `len - done` bytes into `buf`.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n > 0 {
            done += n as usize;
        }
    }
}

/// A thread of a stub.
#[derive(Debug, Clone, Copy)]
pub struct StubThread {
    tid: Pid,
}

impl StubThread {
    /// The x87/SSE state (`user_fpregs_struct`, the 512-byte fxsave image).
    pub fn fpu_state(&self) -> Option<[u8; 512]> {
        let mut st = [0u8; 512];
        // SAFETY: PTRACE_GETFPREGS writes exactly `sizeof(user_fpregs_struct)`
        // = 512 bytes into the buffer, which lives across the call.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_GETFPREGS,
                self.tid.as_raw(),
                0,
                st.as_mut_ptr(),
            )
        };
        (r == 0).then_some(st)
    }

    /// Restore state saved by [`fpu_state`](Self::fpu_state).
    pub fn set_fpu_state(&self, st: &[u8; 512]) {
        let mut copy = *st;
        // The kernel rejects reserved MXCSR bits; keep only the defined ones.
        let mxcsr = u32::from_le_bytes([copy[24], copy[25], copy[26], copy[27]]) & 0xffff;
        copy[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        // SAFETY: PTRACE_SETFPREGS reads 512 bytes from the buffer.
        let _ =
            unsafe { libc::ptrace(libc::PTRACE_SETFPREGS, self.tid.as_raw(), 0, copy.as_ptr()) };
    }
}

/// A stub process: one application address space.
#[derive(Debug)]
pub struct Stub {
    pid: Pid,
    syscall_addr: u64,
    memfd: RawFd,
    /// Registers used as the base for injected syscalls.
    inject_regs: libc::user_regs_struct,
    /// Whether the main thread is handed out to a task.
    main_in_use: bool,
    /// Threads released by their tasks, kept for reuse.
    spare: Vec<Pid>,
    /// Every thread but the main one, for reaping.
    others: Vec<Pid>,
}

fn lost(what: &'static str, e: nix::Error) -> PlatformError {
    PlatformError::Lost(what, e as i32)
}

fn to_host(r: &UserRegs) -> libc::user_regs_struct {
    libc::user_regs_struct {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax: r.orig_rax,
        rip: r.rip,
        cs: r.cs,
        eflags: r.rflags,
        rsp: r.rsp,
        ss: r.ss,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
    }
}

fn from_host(r: &libc::user_regs_struct) -> UserRegs {
    UserRegs {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax: r.orig_rax,
        rip: r.rip,
        cs: r.cs,
        rflags: r.eflags,
        rsp: r.rsp,
        ss: r.ss,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
    }
}

/// `PTRACE_GET_RSEQ_CONFIGURATION`'s result.
#[repr(C)]
#[derive(Default)]
struct RseqConfiguration {
    rseq_abi_pointer: u64,
    rseq_abi_size: u32,
    signature: u32,
    flags: u32,
    pad: u32,
}

/// Verify that the stub has no rseq area registered.
fn check_no_rseq(pid: Pid) -> Result<(), PlatformError> {
    const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
    let mut conf = RseqConfiguration::default();
    // SAFETY: the kernel writes at most `size_of::<RseqConfiguration>()`
    // bytes (the size we pass) into `conf`, which lives across the call.
    let r = unsafe {
        libc::ptrace(
            PTRACE_GET_RSEQ_CONFIGURATION,
            pid.as_raw(),
            std::mem::size_of::<RseqConfiguration>(),
            &mut conf as *mut RseqConfiguration,
        )
    };
    if r >= 0 && conf.rseq_abi_pointer != 0 {
        return Err(PlatformError::Lost("the stub kept an rseq registration", 0));
    }
    Ok(())
}

fn prot_bits(p: Prot) -> u64 {
    u64::from(p.bits())
}

impl Stub {
    /// Fork a stub that keeps only the stub page and `memfd`.
    pub fn spawn(page: &StubPage, memfd: BorrowedFd<'_>) -> Result<Stub, PlatformError> {
        let memfd = memfd.as_raw_fd();
        let parent = nix::unistd::getpid();
        let base = page.addr;
        // A forked child inherits the parent's rseq registration, and the
        // kernel would fault on the (soon unmapped) rseq area at the next
        // preemption. The child unregisters it first.
        // SAFETY: plain reads of glibc's exported constants.
        let (rseq_off, rseq_size) = unsafe { (__rseq_offset, __rseq_size) };
        let mut tp: u64;
        // SAFETY: reads this thread's FS base, the thread pointer.
        unsafe {
            std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        let rseq_addr = tp.wrapping_add(rseq_off as u64);
        // SAFETY: the child only makes raw system calls (async-signal-safe)
        // and then jumps to the stub code, never returning into Rust.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(PlatformError::Resource(
                "fork of the stub",
                nix::errno::Errno::last_raw(),
            ));
        }
        if pid == 0 {
            // SAFETY: raw syscalls in the forked child; see above.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent.as_raw() {
                    libc::_exit(1);
                }
                libc::setsid();
                if rseq_size != 0 {
                    for len in [rseq_size, 32] {
                        libc::syscall(libc::SYS_rseq, rseq_addr, len, 1i32, RSEQ_SIG);
                    }
                }
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                    libc::_exit(2);
                }
                if memfd > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, (memfd - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (memfd + 1) as u32, u32::MAX, 0u32);
                std::arch::asm!("jmp {0}", in(reg) base, in("r12") base, options(noreturn));
            }
        }
        let pid = Pid::from_raw(pid);
        let mut stub = Stub {
            pid,
            syscall_addr: base + page.syscall_off,
            memfd,
            inject_regs: to_host(&UserRegs::default()),
            main_in_use: false,
            spare: Vec::new(),
            others: Vec::new(),
        };
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
            Ok(other) => {
                debug!("stub {pid} did not stop: {other:?}");
                return Err(PlatformError::Lost("stub failed to start", 0));
            }
            Err(e) => return Err(lost("waiting for the stub", e)),
        }
        ptrace::setoptions(
            pid,
            ptrace::Options::PTRACE_O_EXITKILL | ptrace::Options::PTRACE_O_TRACESYSGOOD,
        )
        .map_err(|e| lost("ptrace options", e))?;
        stub.inject_regs = ptrace::getregs(pid).map_err(|e| lost("stub registers", e))?;
        check_no_rseq(pid)?;
        Ok(stub)
    }

    /// A thread for a new task: the main thread first, then spare or new
    /// threads cloned inside the stub.
    pub fn new_thread(&mut self) -> Result<StubThread, PlatformError> {
        if !self.main_in_use {
            self.main_in_use = true;
            return Ok(StubThread { tid: self.pid });
        }
        if let Some(tid) = self.spare.pop() {
            return Ok(StubThread { tid });
        }
        // The new thread shares everything and is traced by us from birth;
        // it stops at the `int3` after the `syscall`.
        let flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_PTRACE) as u64;
        let r = self.inject(libc::SYS_clone, [flags, 0, 0, 0, 0, 0])?;
        if r <= 0 {
            return Err(PlatformError::Resource("clone of a stub thread", -r as i32));
        }
        let tid = Pid::from_raw(r as i32);
        loop {
            match waitpid(tid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(..)) => break,
                Err(nix::Error::EINTR) => continue,
                Ok(other) => {
                    debug!("stub thread {tid} did not stop: {other:?}");
                    return Err(PlatformError::Lost("stub thread failed to start", 0));
                }
                Err(e) => return Err(lost("waiting for a stub thread", e)),
            }
        }
        self.others.push(tid);
        ptrace::setoptions(
            tid,
            ptrace::Options::PTRACE_O_EXITKILL | ptrace::Options::PTRACE_O_TRACESYSGOOD,
        )
        .map_err(|e| lost("ptrace options", e))?;
        Ok(StubThread { tid })
    }

    /// A task is done with `thread`; keep it for the next one.
    pub fn release_thread(&mut self, thread: StubThread) {
        if thread.tid == self.pid {
            self.main_in_use = false;
        } else {
            self.spare.push(thread.tid);
        }
    }

    /// Run one host syscall inside the stub.
    fn inject(&mut self, nr: i64, args: [u64; 6]) -> Result<i64, PlatformError> {
        let mut r = self.inject_regs;
        r.rip = self.syscall_addr;
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) =
            (args[0], args[1], args[2], args[3], args[4], args[5]);
        ptrace::setregs(self.pid, r).map_err(|e| lost("inject setregs", e))?;
        ptrace::cont(self.pid, None).map_err(|e| lost("inject cont", e))?;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => break,
                Ok(WaitStatus::Stopped(_, sig)) if fault_signal(sig) => {
                    let r = ptrace::getregs(self.pid).map_err(|e| lost("inject getregs", e))?;
                    let si = ptrace::getsiginfo(self.pid).map_err(|e| lost("inject siginfo", e))?;
                    // SAFETY: fault signals fill `si_addr`.
                    let addr = unsafe { si.si_addr() } as u64;
                    debug!(
                        "stub {} faulted with {sig:?} (code {}, addr {addr:#x}) during syscall {nr} at rip {:#x}",
                        self.pid, si.si_code, r.rip
                    );
                    return Err(PlatformError::Lost(
                        "stub faulted during a host call",
                        sig as i32,
                    ));
                }
                // An unrelated signal arrived first: drop it and go on.
                Ok(WaitStatus::Stopped(_, _)) => {
                    ptrace::cont(self.pid, None).map_err(|e| lost("inject cont", e))?
                }
                Ok(other) => {
                    debug!("stub {} lost during injection: {other:?}", self.pid);
                    return Err(PlatformError::Lost("stub exited", 0));
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(lost("inject wait", e)),
            }
        }
        let out = ptrace::getregs(self.pid).map_err(|e| lost("inject getregs", e))?;
        log::trace!(
            "stub {}: syscall {nr}({:#x}, {:#x}, {:#x}, ..) = {:#x}",
            self.pid,
            args[0],
            args[1],
            args[2],
            out.rax
        );
        Ok(out.rax as i64)
    }

    fn inject_checked(&mut self, nr: i64, args: [u64; 6]) -> KResult<()> {
        match self.inject(nr, args) {
            Ok(r) if r < 0 && r > -4096 => Err(Errno(-r as i32)),
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub fn map(&mut self, va: u64, pa: u64, len: u64, prot: Prot, memfd: RawFd) -> KResult<()> {
        debug_assert_eq!(memfd, self.memfd);
        let flags = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
        self.inject_checked(
            libc::SYS_mmap,
            [va, len, prot_bits(prot), flags, self.memfd as u64, pa],
        )
    }

    pub fn unmap(&mut self, va: u64, len: u64) -> KResult<()> {
        self.inject_checked(libc::SYS_munmap, [va, len, 0, 0, 0, 0])
    }

    pub fn protect(&mut self, va: u64, len: u64, prot: Prot) -> KResult<()> {
        self.inject_checked(libc::SYS_mprotect, [va, len, prot_bits(prot), 0, 0, 0])
    }

    /// The stub's process id: what running one of its threads needs.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Run `regs` on `thread` of stub `pid` until the next syscall, fault
    /// or interruption.
    pub fn switch(
        pid: Pid,
        thread: &mut StubThread,
        regs: &mut UserRegs,
        running: &crate::ticker::Running,
    ) -> Result<Trap, PlatformError> {
        let tid = thread.tid;
        ptrace::setregs(tid, to_host(regs)).map_err(|e| lost("setregs", e))?;
        running.enter(pid.as_raw(), tid.as_raw());
        let r = Self::run_until_trap(tid, regs);
        running.leave();
        r
    }

    fn run_until_trap(tid: Pid, regs: &mut UserRegs) -> Result<Trap, PlatformError> {
        ptrace::sysemu(tid, None).map_err(|e| lost("sysemu", e))?;
        loop {
            let status = match waitpid(tid, Some(WaitPidFlag::__WALL)) {
                Ok(s) => s,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(lost("wait for the stub", e)),
            };
            match status {
                WaitStatus::PtraceSyscall(_) => {
                    *regs = from_host(&ptrace::getregs(tid).map_err(|e| lost("getregs", e))?);
                    return Ok(Trap::Syscall);
                }
                WaitStatus::Stopped(_, sig) if fault_signal(sig) => {
                    *regs = from_host(&ptrace::getregs(tid).map_err(|e| lost("getregs", e))?);
                    let info = ptrace::getsiginfo(tid).map_err(|e| lost("getsiginfo", e))?;
                    // SAFETY: for fault signals the kernel fills the `si_addr` union member.
                    let addr = unsafe { info.si_addr() } as u64;
                    let code = info.si_code;
                    // SEGV_MAPERR/SEGV_ACCERR are page faults; SI_KERNEL is a #GP.
                    if sig == Signal::SIGSEGV && (code == 1 || code == 2) {
                        return Ok(Trap::PageFault {
                            addr,
                            write: None,
                            not_present: false,
                            exec: false,
                        });
                    }
                    return Ok(Trap::Exception {
                        signo: sig as i32,
                        code,
                        addr,
                    });
                }
                WaitStatus::Stopped(_, _) | WaitStatus::PtraceEvent(..) => {
                    // The thread ran on since `setregs`: its registers now
                    // are where it resumes (a task preempted in user mode,
                    // e.g. in a vDSO loop, must not be rewound).
                    *regs = from_host(&ptrace::getregs(tid).map_err(|e| lost("getregs", e))?);
                    return Ok(Trap::Interrupt);
                }
                WaitStatus::Exited(_, code) => {
                    return Err(PlatformError::Lost("stub exited", code))
                }
                WaitStatus::Signaled(_, sig, _) => {
                    return Err(PlatformError::Lost("stub killed by signal", sig as i32))
                }
                _ => continue,
            }
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        // The leader is reported only after every other traced thread has
        // been reaped.
        for tid in &self.others {
            let _ = waitpid(*tid, Some(WaitPidFlag::__WALL));
        }
        let _ = waitpid(self.pid, Some(WaitPidFlag::__WALL));
    }
}
