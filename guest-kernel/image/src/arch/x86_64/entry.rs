//! Entry and exit stubs: the boot entry, the LSTAR (SYSCALL) entry, the
//! IDT vectors, and the switch into user mode.
//!
//! Under PVM the sentry runs at hardware CPL 3. A user `syscall` enters at
//! LSTAR with the user RSP, the kernel GS and CR3 already in place; an
//! exception or interrupt from user mode pushes its frame on the IST1 stack
//! (every gate uses an IST). Both paths save the user registers into the
//! `UserRegs` that `pvm_enter_user` was given (found through GS-relative
//! per-CPU data), save the user FPU state, and return from
//! `pvm_enter_user` on the kernel stack it was called on, so to the sentry
//! `switch` is an ordinary function call.
//!
//! Per-CPU offsets (see `PerCpu`): 8 kernel RSP, 16 `*mut UserRegs`,
//! 24 FPU area, 32 scratch, 40 vector, 48 error code, 104 trap kind.
//! `UserRegs` offsets follow Linux's `user_regs_struct`.

use core::arch::global_asm;

/// `pvm_enter_user` returned because of a `syscall`.
pub const KIND_SYSCALL: u64 = 0;
/// `pvm_enter_user` returned because of an exception or interrupt.
pub const KIND_TRAP: u64 = 1;

extern "C" {
    /// Run `regs` in user mode until the next entry into the sentry.
    /// Returns `KIND_*`; vector and error code are left in the per-CPU data.
    pub fn pvm_enter_user(regs: *mut guest_abi::UserRegs, fpu: *mut u8) -> u64;
    /// The SYSCALL entry (LSTAR).
    pub fn pvm_syscall_entry();
    /// 256 vector stubs, 16 bytes apart.
    pub static pvm_vectors: u8;
    /// The image entry point of every vCPU.
    pub fn _start() -> !;
    /// Start and end of the idle window (an interrupt taken there skips the HALT).
    pub static pvm_idle_window_start: u8;
    pub static pvm_idle_window_end: u8;
}

use crate::abi as guest_abi;

global_asm!(
    r#"
.section .text.boot, "ax"
.globl _start
_start:
    /* rdi = the vCPU number (the VMM sets it; < MAX_CPUS).
     * Register this vCPU's vIF page first: until then every instruction
     * is emulated. */
    movq %rdi, %rax
    shlq $12, %rax
    addq ${vif_value}, %rax
    movl ${vif_msr}, %ecx
    xorl %edx, %edx
    wrmsr
    /* This vCPU's kernel stack: BOOT_STACK[rdi]. */
    leaq 1(%rdi), %rax
    imulq ${boot_stack_size}, %rax
    leaq {boot_stack}(%rip), %rsp
    addq %rax, %rsp
    xorl %ebp, %ebp
    call {kmain}
    ud2

.text
/* u64 pvm_enter_user(UserRegs *regs (rdi), u8 *fpu (rsi)) */
.balign 64
.globl pvm_enter_user
pvm_enter_user:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %gs:8
    movq %rdi, %gs:16
    movq %rsi, %gs:24
    movl $7, %eax
    xorl %edx, %edx
    xrstor64 (%rsi)
    movq 168(%rdi), %rax
    wrfsbase %rax
    /* SYSRET-style return when rcx == rip and r11 == rflags (after a syscall) */
    movq 88(%rdi), %rax
    cmpq 128(%rdi), %rax
    jne 1f
    movq 48(%rdi), %rax
    cmpq 144(%rdi), %rax
    jne 1f
    movq 0(%rdi), %r15
    movq 8(%rdi), %r14
    movq 16(%rdi), %r13
    movq 24(%rdi), %r12
    movq 32(%rdi), %rbp
    movq 40(%rdi), %rbx
    movq 56(%rdi), %r10
    movq 64(%rdi), %r9
    movq 72(%rdi), %r8
    movq 80(%rdi), %rax
    movq 96(%rdi), %rdx
    movq 104(%rdi), %rsi
    movq 128(%rdi), %rcx
    movq 144(%rdi), %r11
    movq 152(%rdi), %rsp
    movq 112(%rdi), %rdi
    int $0x19
    ud2
1:  /* full frame: ERETU from the iret frame inside UserRegs (rip, cs, rflags, rsp, ss) */
    movq %rdi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rax
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    addq $8, %rsp
    int $0x17
    ud2

/* Common return into the sentry: rax = kind. Saves the user FPU state. */
pvm_return_to_kernel:
    movq %gs:8, %rsp
    movq %rax, %gs:104
    movq %gs:24, %rdi
    movl $7, %eax
    xorl %edx, %edx
    xsave64 (%rdi)
    ldmxcsr {kernel_mxcsr}(%rip)
    movq %gs:104, %rax
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

.balign 64
.globl pvm_syscall_entry
pvm_syscall_entry:
    movq %rsp, %gs:32
    movq %gs:16, %rsp
    movq %r15, 0(%rsp)
    movq %r14, 8(%rsp)
    movq %r13, 16(%rsp)
    movq %r12, 24(%rsp)
    movq %rbp, 32(%rsp)
    movq %rbx, 40(%rsp)
    movq %r11, 48(%rsp)
    movq %r10, 56(%rsp)
    movq %r9, 64(%rsp)
    movq %r8, 72(%rsp)
    movq %rax, 80(%rsp)
    movq %rcx, 88(%rsp)
    movq %rdx, 96(%rsp)
    movq %rsi, 104(%rsp)
    movq %rdi, 112(%rsp)
    movq %rax, 120(%rsp)
    movq %rcx, 128(%rsp)
    movq %r11, 144(%rsp)
    movq %gs:32, %rax
    movq %rax, 152(%rsp)
    rdfsbase %rax
    movq %rax, 168(%rsp)
    xorl %eax, %eax
    jmp pvm_return_to_kernel

/* Vector stubs: [vector][error code] then the hardware frame. */
.balign 16
.globl pvm_vectors
pvm_vectors:
.set vv, 0
.rept 256
.balign 16
.if (vv == 8) || (vv == 10) || (vv == 11) || (vv == 12) || (vv == 13) || (vv == 14) || (vv == 17) || (vv == 21) || (vv == 29) || (vv == 30)
    pushq $vv
    jmp pvm_trap_common
.else
    pushq $0
    pushq $vv
    jmp pvm_trap_common
.endif
.set vv, vv+1
.endr

/* stack: 0 vector, 8 error, 16 rip, 24 cs, 32 rflags, 40 rsp, 48 ss */
.balign 64
pvm_trap_common:
    cld
    testb $3, 24(%rsp)
    jz pvm_trap_kernel
    pushq %rax
    movq %gs:16, %rax
    movq %r15, 0(%rax)
    movq %r14, 8(%rax)
    movq %r13, 16(%rax)
    movq %r12, 24(%rax)
    movq %rbp, 32(%rax)
    movq %rbx, 40(%rax)
    movq %r11, 48(%rax)
    movq %r10, 56(%rax)
    movq %r9, 64(%rax)
    movq %r8, 72(%rax)
    movq %rcx, 88(%rax)
    movq %rdx, 96(%rax)
    movq %rsi, 104(%rax)
    movq %rdi, 112(%rax)
    popq %rcx
    movq %rcx, 80(%rax)
    movq $-1, 120(%rax)
    movq 16(%rsp), %rcx
    movq %rcx, 128(%rax)
    movq 24(%rsp), %rcx
    movq %rcx, 136(%rax)
    movq 32(%rsp), %rcx
    movq %rcx, 144(%rax)
    movq 40(%rsp), %rcx
    movq %rcx, 152(%rax)
    movq 48(%rsp), %rcx
    movq %rcx, 160(%rax)
    rdfsbase %rcx
    movq %rcx, 168(%rax)
    movq 0(%rsp), %rcx
    movq %rcx, %gs:40
    movq 8(%rsp), %rcx
    movq %rcx, %gs:48
    /* the user may have left AC set: the sentry's unaligned accesses must not trap */
    pushfq
    andq $~0x40000, (%rsp)
    popfq
    movl $1, %eax
    jmp pvm_return_to_kernel

pvm_trap_kernel:
    cmpq $32, 0(%rsp)
    jae pvm_irq_kernel
    movq %rsp, %rdi
    andq $-16, %rsp
    call {kernel_fault}
    ud2

/* An interrupt taken in kernel mode (only while vIF.if = 1, i.e. idle):
 * nothing to do but skip a HALT that has not run yet, then iretq. */
pvm_irq_kernel:
    pushq %rax
    pushq %rcx
    movq 32(%rsp), %rax
    leaq pvm_idle_window_start(%rip), %rcx
    cmpq %rcx, %rax
    jb 2f
    leaq pvm_idle_window_end(%rip), %rcx
    cmpq %rcx, %rax
    jae 2f
    movq %rcx, 32(%rsp)
2:  popq %rcx
    popq %rax
    addq $16, %rsp
    iretq

/* void pvm_idle(u8 *vif): vIF.if = 1, HALT, vIF.if = 0 */
.globl pvm_idle
pvm_idle:
    pushq %rbx
    movb $1, (%rdi)
.globl pvm_idle_window_start
pvm_idle_window_start:
    cmpb $0, 1(%rdi)
    je 3f
    outb %al, $0x80
3:
    movl $0x1009, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    int $0x1b
.globl pvm_idle_window_end
pvm_idle_window_end:
    movb $0, (%rdi)
    popq %rbx
    ret
"#,
    vif_msr = const 0x4b56_4d10u32,
    vif_value = const (crate::abi::hostcall::gpa::VIF | super::pvm::VIF_FLAGS) as u32,
    boot_stack = sym super::BOOT_STACK,
    boot_stack_size = const super::BOOT_STACK_SIZE,
    kmain = sym crate::kmain,
    kernel_mxcsr = sym super::KERNEL_MXCSR,
    kernel_fault = sym super::kernel_fault,
    options(att_syntax)
);

extern "C" {
    /// Halt with vIF.if = 1 until an interrupt arrives.
    pub fn pvm_idle(vif: *mut u8);
}
