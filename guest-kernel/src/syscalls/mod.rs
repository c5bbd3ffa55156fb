//! The system-call table. Logic lives in one module per family; this file
//! only maps numbers to handlers and turns errors into `-errno`.

pub mod futex;
pub mod io;
pub mod misc;
pub mod mm;
pub mod process;
pub mod signal;
pub mod time;

use log::{debug, trace};

use crate::abi::sysno::*;
use crate::abi::{sysno, Errno, KResult};
use crate::kernel::Kernel;
use crate::platform::Platform;

/// Arguments of a syscall, in ABI order.
pub type Args = [u64; 6];

/// Handle the syscall the current task trapped with, writing the result
/// into its `rax`.
pub fn dispatch<P: Platform>(k: &mut Kernel<'_, P>) {
    let nr = k.task.regs.syscall_nr();
    let a = k.task.regs.syscall_args();
    let r = call(k, nr, a);
    trace!(
        "{}({:#x}, {:#x}, {:#x}) = {:?}",
        sysno::name(nr),
        a[0],
        a[1],
        a[2],
        r
    );
    k.task.regs.rax = match r {
        Ok(v) => v,
        Err(e) => e.as_ret(),
    };
}

fn call<P: Platform>(k: &mut Kernel<'_, P>, nr: u64, a: Args) -> KResult<u64> {
    match nr {
        READ => io::sys_read(k, a),
        WRITE => io::sys_write(k, a),
        READV => io::sys_readv(k, a),
        WRITEV => io::sys_writev(k, a),
        CLOSE => io::sys_close(k, a),
        OPEN => io::sys_open(k, a),
        OPENAT => io::sys_openat(k, a),
        LSEEK => io::sys_lseek(k, a),
        PREAD64 => io::sys_pread64(k, a),
        FSTAT => io::sys_fstat(k, a),
        NEWFSTATAT => io::sys_newfstatat(k, a),
        IOCTL => io::sys_ioctl(k, a),
        READLINK => io::sys_readlink(k, a),
        READLINKAT => io::sys_readlinkat(k, a),

        BRK => mm::sys_brk(k, a),
        MMAP => mm::sys_mmap(k, a),
        MUNMAP => mm::sys_munmap(k, a),
        MPROTECT => mm::sys_mprotect(k, a),
        MADVISE => mm::sys_madvise(k, a),

        EXIT => process::sys_exit(k, a),
        EXIT_GROUP => process::sys_exit_group(k, a),
        GETPID => process::sys_getpid(k, a),
        GETPPID => process::sys_getppid(k, a),
        GETTID => process::sys_gettid(k, a),
        GETUID => process::sys_getuid(k, a),
        GETEUID => process::sys_geteuid(k, a),
        GETGID => process::sys_getgid(k, a),
        GETEGID => process::sys_getegid(k, a),
        SET_TID_ADDRESS => process::sys_set_tid_address(k, a),
        SET_ROBUST_LIST => process::sys_set_robust_list(k, a),
        PRLIMIT64 => process::sys_prlimit64(k, a),
        GETRLIMIT => process::sys_getrlimit(k, a),
        ARCH_PRCTL => process::sys_arch_prctl(k, a),
        SCHED_YIELD => Ok(0),

        RT_SIGACTION => signal::sys_rt_sigaction(k, a),
        RT_SIGPROCMASK => signal::sys_rt_sigprocmask(k, a),
        SIGALTSTACK => signal::sys_sigaltstack(k, a),
        KILL => signal::sys_kill(k, a),
        TKILL => signal::sys_tkill(k, a),
        TGKILL => signal::sys_tgkill(k, a),

        CLOCK_GETTIME => time::sys_clock_gettime(k, a),
        CLOCK_GETRES => time::sys_clock_getres(k, a),
        GETTIMEOFDAY => time::sys_gettimeofday(k, a),
        TIME => time::sys_time(k, a),
        NANOSLEEP => time::sys_nanosleep(k, a),
        CLOCK_NANOSLEEP => time::sys_clock_nanosleep(k, a),

        FUTEX => futex::sys_futex(k, a),

        UNAME => misc::sys_uname(k, a),
        GETRANDOM => misc::sys_getrandom(k, a),
        RSEQ => Err(Errno::ENOSYS),

        _ => {
            debug!(
                "unimplemented syscall {} ({nr}) at rip {:#x}",
                sysno::name(nr),
                k.task.regs.rip
            );
            Err(Errno::ENOSYS)
        }
    }
}

/// Narrow a syscall argument to an fd (`int`), as the kernel does.
pub fn arg_fd(v: u64) -> i32 {
    v as u32 as i32
}

/// Narrow a syscall argument to an `int`.
pub fn arg_i32(v: u64) -> i32 {
    v as u32 as i32
}
