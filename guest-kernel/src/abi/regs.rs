//! The user register frame, laid out as Linux's `struct user_regs_struct`.
//!
//! Both platforms use this layout: ptrace reads and writes it with
//! `PTRACE_GETREGS`/`PTRACE_SETREGS`, and the KVM entry path saves into it.

/// General-purpose registers of a user thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

/// User code segment selector (the host's, under both platforms).
pub const USER_CS: u64 = 0x33;
/// User stack segment selector.
pub const USER_SS: u64 = 0x2b;
/// RFLAGS for a fresh user thread: IF set, reserved bit 1 set.
pub const USER_RFLAGS: u64 = 0x202;

impl UserRegs {
    /// Registers for a new thread starting at `rip` with stack `rsp`.
    pub fn new_user(rip: u64, rsp: u64) -> Self {
        UserRegs {
            rip,
            rsp,
            cs: USER_CS,
            ss: USER_SS,
            rflags: USER_RFLAGS,
            ..Default::default()
        }
    }

    /// The syscall number of a syscall trap.
    pub fn syscall_nr(&self) -> u64 {
        self.orig_rax
    }

    /// The six syscall arguments, in ABI order.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}
