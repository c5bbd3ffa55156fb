//! The stub's code page and the batch page below it.
//!
//! The code: start-up (unmap all but these two pages, clone the parked
//! threads, stop), the injected-call sequence `syscall; int3`, the batch
//! loop, and the parked threads' `pause()` loop.

use guest_kernel::abi::PAGE_SIZE;
use guest_kernel::platform::Trap;
use guest_kernel::sched::MAX_CPUS;

use crate::sysmsg;
use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};

/// Linux's `TASK_SIZE`: the stub unmaps everything up to here.
const LINUX_TASK_SIZE: u64 = 0x7fff_ffff_f000;

std::arch::global_asm!(
    ".pushsection .text.ringfence_stub,\"ax\",@progbits",
    ".balign 16",
    ".globl ringfence_stub_start",
    "ringfence_stub_start:",
    // r12 = this page, r12 - 4096 the batch page. munmap(0, r12 - 4096)
    "mov eax, 11",
    "xor edi, edi",
    "lea rsi, [r12 - 4096]",
    "syscall",
    // mprotect(r12 - 4096, 4096, PROT_READ): the application, which runs
    // in this process, must never write the batches of other processes.
    "mov eax, 10",
    "lea rdi, [r12 - 4096]",
    "mov esi, 4096",
    "mov edx, 1",
    "syscall",
    // munmap(r12 + 4096, LINUX_TASK_SIZE - r12 - 4096)
    "mov eax, 11",
    "lea rdi, [r12 + 4096]",
    "movabs rsi, 0x7ffffffff000",
    "sub rsi, rdi",
    "syscall",
    // r13 threads to park, for the other CPUs: clone(CLONE_VM | CLONE_FS |
    // CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM, 0), the
    // child's tid kept in the next register of the list (r8 and r10 are
    // clone's tid and tls arguments, unused with these flags). A stub
    // forked from the template stub starts here.
    ".globl ringfence_stub_clones",
    "ringfence_stub_clones:",
    ".irp reg, rbx, rbp, r8, r9, r10, r14, r15",
    "test r13, r13",
    "jz 2f",
    "dec r13",
    "mov eax, 56",
    "mov edi, 0x50f00",
    "xor esi, esi",
    "xor edx, edx",
    "syscall",
    "test rax, rax",
    "jz ringfence_stub_park",
    "mov \\reg, rax",
    ".endr",
    "2:",
    // Hand control to the tracer (a stop of this thread only: no parked
    // thread may start a group stop).
    "int3",
    ".globl ringfence_stub_syscall",
    "ringfence_stub_syscall:",
    "syscall",
    "int3",
    "jmp ringfence_stub_syscall",
    // Run the batch of system calls in the batch page: a count, then
    // entries of a number and six arguments. Stop at the first error
    // (rax), with r13 the entries not run.
    ".globl ringfence_stub_batch",
    "ringfence_stub_batch:",
    "lea r14, [r12 - 4096]",
    "mov r13, [r14]",
    "add r14, 8",
    "3:",
    "test r13, r13",
    "jz 4f",
    "mov rax, [r14]",
    "mov rdi, [r14 + 8]",
    "mov rsi, [r14 + 16]",
    "mov rdx, [r14 + 24]",
    "mov r10, [r14 + 32]",
    "mov r8, [r14 + 40]",
    "mov r9, [r14 + 48]",
    "syscall",
    "cmp rax, -4095",
    "jae 4f",
    "add r14, 56",
    "dec r13",
    "jmp 3b",
    "4:",
    "int3",
    "jmp ringfence_stub_batch",
    // A parked thread waits, untraced, for its CPU to seize it.
    "ringfence_stub_park:",
    "mov eax, 34",
    "syscall",
    "jmp ringfence_stub_park",
    // Start a sysmsg thread (see `sysmsg`): injected with clone's number
    // and arguments in place and r12 its slot, which the child inherits.
    ".globl ringfence_sysmsg_clone",
    "ringfence_sysmsg_clone:",
    "syscall",
    "test rax, rax",
    "jz 5f",
    "int3",
    // The child: sigaltstack(r13, NULL), no new privileges, its filter
    // (r14), and into the handler with a first trap. r13 and r14 point into
    // the batch page, which the application cannot write.
    "5:",
    "mov eax, 131",
    "mov rdi, r13",
    "xor esi, esi",
    "syscall",
    "test rax, rax",
    "jnz 6f",
    "mov eax, 157",
    "mov edi, 38",
    "mov esi, 1",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jnz 6f",
    "mov eax, 317",
    "mov edi, 1",
    "xor esi, esi",
    "mov rdx, r14",
    "syscall",
    "test rax, rax",
    "jnz 6f",
    "int3",
    ".globl ringfence_sysmsg_started",
    "ringfence_sysmsg_started:",
    // Setting up failed (no filter is in place): say so, and end the thread.
    "6:",
    "mov [r12 + {err}], rax",
    "mov dword ptr [r12 + {state}], {failed}",
    "mov eax, 202",
    "lea rdi, [r12 + {state}]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "mov eax, 60",
    "xor edi, edi",
    "syscall",
    // The handler of every signal of a sysmsg thread, on its slot's stack
    // (rdi signo, rsi siginfo, rdx ucontext). A kick (SIGURG) that finds
    // the thread in the patched-call code below is no trap of the
    // application's: before the way out, it is noted for the way out to
    // report; on the way out, the frame gets the registers the way out
    // loads (the FPU is loaded by then), and reports as a kick from there.
    // Otherwise: publish the frame, wait for RUN (see below), set the
    // segment bases it asks for, and return into rt_sigreturn.
    ".globl ringfence_sysmsg_handler",
    "ringfence_sysmsg_handler:",
    "mov r12, rsp",
    "and r12, -{slot}",
    "cmp edi, {sigurg}",
    "jne 50f",
    "mov rax, [rdx + {uc_mc} + 16 * 8]",
    "lea rcx, [rip + ringfence_sysmsg_patched]",
    "cmp rax, rcx",
    "jb 50f",
    "lea rcx, [rip + ringfence_sysmsg_patched_exit]",
    "cmp rax, rcx",
    "jb 51f",
    "lea rcx, [rip + ringfence_sysmsg_patched_end]",
    "cmp rax, rcx",
    "jae 50f",
    "xor ecx, ecx",
    "52:",
    "mov rax, [r12 + {g} + rcx * 8]",
    "mov [rdx + {uc_mc} + rcx * 8], rax",
    "inc ecx",
    "cmp ecx, 18",
    "jb 52b",
    "jmp 50f",
    "51:",
    "mov dword ptr [r12 + {kick}], 1",
    "ret",
    "50:",
    "mov [r12 + {signo}], rdi",
    "mov [r12 + {info}], rsi",
    "mov [r12 + {uctx}], rdx",
    "call ringfence_sysmsg_wait",
    "mov rsi, [r12 + {fs_want}]",
    "cmp rsi, [r12 + {fs_cur}]",
    "je 23f",
    "mov [r12 + {fs_cur}], rsi",
    "mov eax, 158",
    "mov edi, 0x1002",
    "syscall",
    "23:",
    "mov rsi, [r12 + {gs_want}]",
    "cmp rsi, [r12 + {gs_cur}]",
    "je 24f",
    "mov [r12 + {gs_cur}], rsi",
    "mov eax, 158",
    "mov edi, 0x1001",
    "syscall",
    "24:",
    "ret",
    // A patched call site's jump (see the sentry's `mm::usertrap`) comes
    // here, once it has checked that GS is this thread's slot: eax the
    // call's number, rcx its return address, r11 free (the kernel clobbers
    // both), the flags the application's. The registers go into the
    // slot's own frame, laid out as a signal's, and back out of it without
    // a signal: no kernel entry on the way. Nothing changes the flags
    // before they are saved.
    ".globl ringfence_sysmsg_patched",
    "ringfence_sysmsg_patched:",
    "rdgsbase r11",
    "mov [r11 + {g} + 15 * 8], rsp",
    "lea rsp, [r11 + {stack}]",
    "pushfq",
    "pop qword ptr [r11 + {g} + 17 * 8]",
    "mov [r11 + {g} + 0 * 8], r8",
    "mov [r11 + {g} + 1 * 8], r9",
    "mov [r11 + {g} + 2 * 8], r10",
    "mov [r11 + {g} + 4 * 8], r12",
    "mov [r11 + {g} + 5 * 8], r13",
    "mov [r11 + {g} + 6 * 8], r14",
    "mov [r11 + {g} + 7 * 8], r15",
    "mov [r11 + {g} + 8 * 8], rdi",
    "mov [r11 + {g} + 9 * 8], rsi",
    "mov [r11 + {g} + 10 * 8], rbp",
    "mov [r11 + {g} + 11 * 8], rbx",
    "mov [r11 + {g} + 12 * 8], rdx",
    "mov [r11 + {g} + 13 * 8], rax",
    "mov [r11 + {g} + 14 * 8], rcx",
    "mov [r11 + {g} + 16 * 8], rcx",
    "mov r12, r11",
    // r11 as the kernel leaves it: the flags.
    "mov rax, [r12 + {g} + 17 * 8]",
    "mov [r12 + {g} + 3 * 8], rax",
    "mov eax, -1",
    "mov edx, -1",
    "xsave64 [r12 + {fp}]",
    "mov dword ptr [r12 + {fpu_dirty}], 0",
    "lea rax, [r12 + {fp}]",
    "mov [r12 + {g} + 23 * 8], rax",
    "lea rax, [r12 + {fake}]",
    "mov [r12 + {uctx}], rax",
    "mov qword ptr [r12 + {signo}], 0",
    "mov qword ptr [r12 + {info}], 0",
    "mov dword ptr [r12 + {kick}], 0",
    "call ringfence_sysmsg_wait",
    // Back out: the FPU and FS first. A GS of the application's cannot be
    // had here (the way out reads the slot through GS), nor a trap flag
    // (it would trap in here): those take a real signal frame (`convert`),
    // where the handler sets GS and rt_sigreturn the flags.
    "40:",
    "cmp dword ptr [r12 + {fpu_dirty}], 0",
    "je 41f",
    "mov eax, -1",
    "mov edx, -1",
    "xrstor64 [r12 + {fp}]",
    "mov dword ptr [r12 + {fpu_dirty}], 0",
    "41:",
    "mov rsi, [r12 + {fs_want}]",
    "cmp rsi, [r12 + {fs_cur}]",
    "je 42f",
    "wrfsbase rsi",
    "mov [r12 + {fs_cur}], rsi",
    "42:",
    "cmp [r12 + {gs_want}], r12",
    "jne ringfence_sysmsg_convert",
    "test dword ptr [r12 + {g} + 17 * 8], 0x100",
    "jnz ringfence_sysmsg_convert",
    "jmp ringfence_sysmsg_patched_exit",
    // Kicked since the sentry let the thread go: report that, with the
    // registers it wrote.
    "43:",
    "mov dword ptr [r12 + {kick}], 0",
    "mov qword ptr [r12 + {signo}], {sigurg}",
    "call ringfence_sysmsg_wait",
    "jmp 40b",
    ".globl ringfence_sysmsg_convert",
    "ringfence_sysmsg_convert:",
    "ud2",
    // Publish the slot's frame (r12 the slot), wake the sentry if it
    // sleeps, and wait for RUN: spin as long as the sentry says, then
    // sleep on the futex.
    "ringfence_sysmsg_wait:",
    "mov eax, {trapped}",
    "xchg [r12 + {state}], eax",
    "cmp dword ptr [r12 + {sentry_sleeps}], 0",
    "je 7f",
    "mov eax, 202",
    "lea rdi, [r12 + {state}]",
    "mov esi, 1",
    "mov edx, 1",
    "syscall",
    "7:",
    "mov ecx, dword ptr [r12 + {spin_n}]",
    "8:",
    "cmp dword ptr [r12 + {state}], {run}",
    "je 22f",
    "test ecx, ecx",
    "jz 25f",
    "pause",
    "dec ecx",
    "jmp 8b",
    "25:",
    "mov dword ptr [r12 + {stub_sleeps}], 1",
    "mfence",
    "cmp dword ptr [r12 + {state}], {run}",
    "je 9f",
    "mov eax, 202",
    "lea rdi, [r12 + {state}]",
    "xor esi, esi",
    "mov edx, {trapped}",
    "xor r10d, r10d",
    "syscall",
    "9:",
    "mov dword ptr [r12 + {stub_sleeps}], 0",
    "jmp 7b",
    "22:",
    "ret",
    // The way out proper: from its first instruction on, a kick rewrites
    // the handler's frame (see above) instead of being noted.
    ".globl ringfence_sysmsg_patched_exit",
    "ringfence_sysmsg_patched_exit:",
    "cmp dword ptr [r12 + {kick}], 0",
    "jne 43b",
    "push qword ptr [r12 + {g} + 17 * 8]",
    "popfq",
    "mov r8, [r12 + {g} + 0 * 8]",
    "mov r9, [r12 + {g} + 1 * 8]",
    "mov r10, [r12 + {g} + 2 * 8]",
    "mov r13, [r12 + {g} + 5 * 8]",
    "mov r14, [r12 + {g} + 6 * 8]",
    "mov r15, [r12 + {g} + 7 * 8]",
    "mov rdi, [r12 + {g} + 8 * 8]",
    "mov rsi, [r12 + {g} + 9 * 8]",
    "mov rbp, [r12 + {g} + 10 * 8]",
    "mov rbx, [r12 + {g} + 11 * 8]",
    "mov rdx, [r12 + {g} + 12 * 8]",
    "mov rax, [r12 + {g} + 13 * 8]",
    "mov rcx, [r12 + {g} + 14 * 8]",
    "mov rsp, [r12 + {g} + 15 * 8]",
    "mov r11, [r12 + {g} + 3 * 8]",
    "mov r12, gs:[{g} + 4 * 8]",
    "jmp qword ptr gs:[{g} + 16 * 8]",
    ".globl ringfence_sysmsg_patched_end",
    "ringfence_sysmsg_patched_end:",
    ".globl ringfence_sysmsg_restorer",
    "ringfence_sysmsg_restorer:",
    "mov eax, 15",
    "syscall",
    "ud2",
    ".globl ringfence_stub_end",
    "ringfence_stub_end:",
    ".popsection",
    err = const sysmsg::ERR,
    state = const sysmsg::STATE,
    failed = const sysmsg::FAILED,
    slot = const sysmsg::SLOT,
    signo = const sysmsg::SIGNO,
    info = const sysmsg::INFO,
    uctx = const sysmsg::UCTX,
    trapped = const sysmsg::TRAPPED,
    sentry_sleeps = const sysmsg::SENTRY_SLEEPS,
    stub_sleeps = const sysmsg::STUB_SLEEPS,
    spin_n = const sysmsg::SPIN_N,
    run = const sysmsg::RUN,
    fs_want = const sysmsg::FS_WANT,
    fs_cur = const sysmsg::FS_CUR,
    gs_want = const sysmsg::GS_WANT,
    gs_cur = const sysmsg::GS_CUR,
    sigurg = const libc::SIGURG,
    uc_mc = const sysmsg::UC_MCONTEXT,
    g = const sysmsg::FAKE + sysmsg::UC_MCONTEXT,
    kick = const sysmsg::KICK,
    stack = const sysmsg::STACK,
    fp = const sysmsg::FAKE_FP,
    fake = const sysmsg::FAKE,
    fpu_dirty = const sysmsg::FPU_DIRTY,
);

extern "C" {
    static ringfence_stub_start: u8;
    static ringfence_stub_syscall: u8;
    static ringfence_stub_batch: u8;
    static ringfence_stub_clones: u8;
    static ringfence_sysmsg_clone: u8;
    static ringfence_sysmsg_handler: u8;
    static ringfence_sysmsg_started: u8;
    static ringfence_sysmsg_restorer: u8;
    static ringfence_sysmsg_patched: u8;
    static ringfence_sysmsg_convert: u8;
    static ringfence_stub_end: u8;
}

/// The page holding the stub code, mapped in the sandbox process at the top
/// of the user range so that every stub inherits it at the same address;
/// below it, the batch page, shared with every stub (read-only there),
/// through which a stub runs a whole batch of injected calls at once.
#[derive(Debug)]
pub struct StubPage {
    pub(super) addr: u64,
    pub(super) syscall_off: u64,
    pub(super) batch_off: u64,
    pub(super) clones_off: u64,
    pub(super) sysmsg_clone_off: u64,
    pub(super) sysmsg_handler_off: u64,
    pub(super) sysmsg_started_off: u64,
    pub(super) sysmsg_restorer_off: u64,
    /// Where patched calls come in (see `PatchSites`).
    pub(super) patch: PatchSites,
    /// Held while the batch page is written and run (always under the
    /// sentry's kernel lock too; this keeps the page sound on its own).
    batch: std::sync::Mutex<()>,
}

/// Where patched calls enter the stub code (see the sentry's
/// `mm::usertrap`), and where their way out asks for a real signal frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchSites {
    /// The entry a patched site jumps to.
    pub entry: u64,
    /// The way out's `ud2` for a real frame.
    convert: u64,
}

impl PatchSites {
    /// Whether `trap` at `rip` is the way out of a patched call asking for
    /// a real signal frame: the registers are to be written again, there.
    pub fn converts(&self, trap: &Trap, rip: u64) -> bool {
        rip == self.convert
            && matches!(trap, Trap::Exception { signo, .. } if *signo == libc::SIGILL)
    }
}

/// Entries of the batch page: a count, then 7 words each.
pub const BATCH_MAX: usize = (PAGE_SIZE as usize - 8) / 56;
/// Where data goes in the batch page, and the entries that fit before it.
const DATA_OFF: usize = 2048;
const DATA_OPS: usize = (DATA_OFF - 8) / 56;

impl StubPage {
    pub fn new() -> nix::Result<Self> {
        // Only the addresses of the linker-provided symbols are taken.
        let (start, sys, batch, clones, end) = (
            std::ptr::addr_of!(ringfence_stub_start) as usize,
            std::ptr::addr_of!(ringfence_stub_syscall) as usize,
            std::ptr::addr_of!(ringfence_stub_batch) as usize,
            std::ptr::addr_of!(ringfence_stub_clones) as usize,
            std::ptr::addr_of!(ringfence_stub_end) as usize,
        );
        let (sm_clone, sm_handler, sm_started, sm_restorer) = (
            std::ptr::addr_of!(ringfence_sysmsg_clone) as usize,
            std::ptr::addr_of!(ringfence_sysmsg_handler) as usize,
            std::ptr::addr_of!(ringfence_sysmsg_started) as usize,
            std::ptr::addr_of!(ringfence_sysmsg_restorer) as usize,
        );
        let off = |p: *const u8| p as u64 - start as u64;
        let patch = PatchSites {
            entry: off(std::ptr::addr_of!(ringfence_sysmsg_patched)),
            convert: off(std::ptr::addr_of!(ringfence_sysmsg_convert)),
        };
        assert!(
            end - start <= PAGE_SIZE as usize,
            "the stub code outgrew its page"
        );
        let len = end - start;
        // Highest free pair of pages below Linux's TASK_SIZE; the host
        // stack or vDSO may already sit at the very top.
        let mut want = LINUX_TASK_SIZE - 16 * PAGE_SIZE;
        let pages = loop {
            let size =
                std::num::NonZeroUsize::new(2 * PAGE_SIZE as usize).ok_or(nix::Error::EINVAL)?;
            let hint = std::num::NonZeroUsize::new((want - PAGE_SIZE) as usize);
            // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping;
            // the new anonymous pages are ours alone (shared only with the
            // stubs forked later).
            let r = unsafe {
                mmap_anonymous(
                    hint,
                    size,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED | MapFlags::MAP_FIXED_NOREPLACE,
                )
            };
            match r {
                Ok(p) if p.as_ptr() as u64 == want - PAGE_SIZE => break p,
                Ok(_) | Err(nix::Error::EEXIST) if want > (1 << 40) => want -= 1 << 30,
                Ok(_) => return Err(nix::Error::ENOMEM),
                Err(e) => return Err(e),
            }
        };
        // SAFETY: the source is our own code (`len` bytes between two
        // symbols of one section, less than a page) and the destination the
        // upper one of the fresh pages above.
        unsafe {
            let code = pages.byte_add(PAGE_SIZE as usize);
            std::ptr::copy_nonoverlapping(start as *const u8, code.as_ptr().cast::<u8>(), len);
            mprotect(
                code,
                PAGE_SIZE as usize,
                ProtFlags::PROT_READ | ProtFlags::PROT_EXEC,
            )?;
        }
        Ok(StubPage {
            addr: want,
            syscall_off: (sys - start) as u64,
            batch_off: (batch - start) as u64,
            clones_off: (clones - start) as u64,
            sysmsg_clone_off: (sm_clone - start) as u64,
            sysmsg_handler_off: (sm_handler - start) as u64,
            sysmsg_started_off: (sm_started - start) as u64,
            sysmsg_restorer_off: (sm_restorer - start) as u64,
            patch: PatchSites {
                entry: want + patch.entry,
                convert: want + patch.convert,
            },
            batch: std::sync::Mutex::new(()),
        })
    }

    /// Where patched system call sites jump.
    pub fn patch_entry(&self) -> u64 {
        self.patch.entry
    }

    /// The first address the application may not map: the stubs' sysmsg
    /// regions lie between it and the batch page.
    pub fn user_top(&self) -> u64 {
        self.sysmsg_va()
    }

    /// Where each stub maps its sysmsg region (slot-aligned, room for
    /// every CPU).
    pub fn sysmsg_va(&self) -> u64 {
        (self.addr - PAGE_SIZE - MAX_CPUS as u64 * sysmsg::SLOT) & !(sysmsg::SLOT - 1)
    }

    /// Write `ops` (at most [`BATCH_MAX`]) into the batch page and call
    /// `run` while they stay there; the page is wiped afterwards, so that
    /// other processes' stubs see a batch only while it runs.
    pub(super) fn with_batch<T>(&self, ops: &[[u64; 7]], run: impl FnOnce() -> T) -> T {
        self.with_page(ops, &[], run)
    }

    /// Where [`with_page`](Self::with_page) puts its data, in the stubs.
    pub(super) fn data_va(&self) -> u64 {
        self.addr - PAGE_SIZE + DATA_OFF as u64
    }

    /// [`with_batch`](Self::with_batch) with `data` too, at
    /// [`data_va`](Self::data_va): what a stub's kernel calls read must be
    /// where the application cannot change it. At most `DATA_OPS` ops.
    pub(super) fn with_page<T>(&self, ops: &[[u64; 7]], data: &[u8], run: impl FnOnce() -> T) -> T {
        let _g = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        let n = ops
            .len()
            .min(if data.is_empty() { BATCH_MAX } else { DATA_OPS });
        let data = &data[..data.len().min(PAGE_SIZE as usize - DATA_OFF)];
        let page = (self.addr - PAGE_SIZE) as *mut u64;
        // SAFETY: the batch page is ours, mapped read-write here for the
        // platform's life; `1 + 7 * n` words fit in it (n <= BATCH_MAX), and
        // below DATA_OFF when there is data (n <= DATA_OPS), which fits
        // after DATA_OFF (clamped above). Only this function writes it,
        // under `batch`; stubs only read it.
        unsafe {
            page.write_volatile(n as u64);
            for (i, op) in ops[..n].iter().enumerate() {
                for (j, w) in op.iter().enumerate() {
                    page.add(1 + 7 * i + j).write_volatile(*w);
                }
            }
            let bytes = page.cast::<u8>().add(DATA_OFF);
            for (i, b) in data.iter().enumerate() {
                bytes.add(i).write_volatile(*b);
            }
        }
        let r = run();
        // SAFETY: as above.
        unsafe {
            for i in 0..1 + 7 * n {
                page.add(i).write_volatile(0);
            }
            let bytes = page.cast::<u8>().add(DATA_OFF);
            for i in 0..data.len() {
                bytes.add(i).write_volatile(0);
            }
        }
        r
    }
}
