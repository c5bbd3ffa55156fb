//! The system-call table. Logic lives in one module per family; this file
//! only maps numbers to handlers and turns errors into `-errno`.

pub mod bindfs;
pub mod cached;
pub mod dir;
pub mod epoll;
pub mod fd;
pub mod futex;
pub mod io;
pub mod lock;
pub mod misc;
pub mod mm;
pub mod namei;
pub mod open;
pub mod poll;
pub mod process;
pub mod procfs;
pub mod resolve;
pub mod signal;
pub mod signalfd;
pub mod socket;
pub mod splice;
pub mod stat;
pub mod sysfs;
pub mod time;
pub mod timer;
pub mod tty;
pub mod wait;

use log::{debug, trace};

use crate::abi::sysno::*;
use crate::abi::{sysno, Errno, KResult};
use crate::kernel::{Kernel, BLOCKED};
use crate::platform::Platform;
use crate::task::TaskState;

/// Arguments of a syscall, in ABI order.
pub type Args = [u64; 6];

/// Handle the syscall the current task trapped with, writing the result
/// into its `rax`, or parking the task to retry the call later.
pub fn dispatch<P: Platform>(k: &mut Kernel<'_, P>) {
    let nr = k.cur().regs.syscall_nr();
    let a = k.cur().regs.syscall_args();
    let r = call(k, nr, a);
    trace!(
        "[{}] {}({:#x}, {:#x}, {:#x}) = {:?}",
        k.cur,
        sysno::name(nr),
        a[0],
        a[1],
        a[2],
        r
    );
    let Some(t) = k.tasks.get_mut(&k.cur) else {
        return; // the task exited
    };
    match r {
        Err(BLOCKED) => {
            // Retry the `syscall` instruction when woken.
            t.regs.rax = nr;
            t.regs.rip -= 2;
        }
        Ok(v) => {
            t.regs.rax = v;
            t.restart = None;
            t.sigwait = 0;
        }
        Err(e) => {
            t.regs.rax = e.as_ret();
            t.restart = None;
            t.sigwait = 0;
        }
    }
    if r != Err(BLOCKED) && !matches!(t.state, TaskState::Runnable) {
        // Parked without a retry (vfork): the result stands.
        t.restart = None;
    }
}

fn call<P: Platform>(k: &mut Kernel<'_, P>, nr: u64, a: Args) -> KResult<u64> {
    match nr {
        READ => io::sys_read(k, a),
        WRITE => io::sys_write(k, a),
        READV => io::sys_readv(k, a),
        WRITEV => io::sys_writev(k, a),
        OPEN => open::sys_open(k, a),
        OPENAT => open::sys_openat(k, a),
        OPENAT2 => open::sys_openat2(k, a),
        CREAT => open::sys_creat(k, a),
        LSEEK => open::sys_lseek(k, a),
        PREAD64 => open::sys_pread64(k, a),
        PWRITE64 => open::sys_pwrite64(k, a),
        TRUNCATE => open::sys_truncate(k, a),
        FTRUNCATE => open::sys_ftruncate(k, a),
        FALLOCATE => open::sys_fallocate(k, a),
        FSYNC | FDATASYNC | SYNCFS => open::sys_fsync(k, a),
        SYNC => Ok(0),
        MKDIR => namei::sys_mkdir(k, a),
        MKDIRAT => namei::sys_mkdirat(k, a),
        MKNOD => namei::sys_mknod(k, a),
        MKNODAT => namei::sys_mknodat(k, a),
        UNLINK => namei::sys_unlink(k, a),
        UNLINKAT => namei::sys_unlinkat(k, a),
        RMDIR => namei::sys_rmdir(k, a),
        RENAME => namei::sys_rename(k, a),
        RENAMEAT => namei::sys_renameat(k, a),
        RENAMEAT2 => namei::sys_renameat2(k, a),
        SYMLINK => namei::sys_symlink(k, a),
        SYMLINKAT => namei::sys_symlinkat(k, a),
        LINK => namei::sys_link(k, a),
        LINKAT => namei::sys_linkat(k, a),
        CHMOD => namei::sys_chmod(k, a),
        FCHMOD => namei::sys_fchmod(k, a),
        FCHMODAT => namei::sys_fchmodat(k, a),
        CHOWN => namei::sys_chown(k, a),
        LCHOWN => namei::sys_lchown(k, a),
        FCHOWN => namei::sys_fchown(k, a),
        FCHOWNAT => namei::sys_fchownat(k, a),
        UTIMENSAT => namei::sys_utimensat(k, a),
        FSTAT => io::sys_fstat(k, a),
        NEWFSTATAT => stat::sys_newfstatat(k, a),
        STAT => stat::sys_stat(k, a),
        STATX => stat::sys_statx(k, a),
        STATFS => stat::sys_statfs(k, a),
        FSTATFS => stat::sys_fstatfs(k, a),
        GETXATTR | LGETXATTR | FGETXATTR => Err(Errno::EOPNOTSUPP),
        LISTXATTR | LLISTXATTR | FLISTXATTR => Ok(0),
        LSTAT => stat::sys_lstat(k, a),
        ACCESS => stat::sys_access(k, a),
        FACCESSAT | FACCESSAT2 => stat::sys_faccessat(k, a),
        IOCTL => io::sys_ioctl(k, a),
        READLINK => io::sys_readlink(k, a),
        READLINKAT => io::sys_readlinkat(k, a),
        GETCWD => io::sys_getcwd(k, a),
        GETDENTS64 => dir::sys_getdents64(k, a),
        CHDIR => dir::sys_chdir(k, a),
        FCHDIR => dir::sys_fchdir(k, a),

        CLOSE => fd::sys_close(k, a),
        DUP => fd::sys_dup(k, a),
        DUP2 => fd::sys_dup2(k, a),
        DUP3 => fd::sys_dup3(k, a),
        FCNTL => fd::sys_fcntl(k, a),
        FLOCK => lock::sys_flock(k, a),
        PIPE => fd::sys_pipe2(k, [a[0], 0, 0, 0, 0, 0]),
        PIPE2 => fd::sys_pipe2(k, a),
        EVENTFD2 => fd::sys_eventfd2(k, a),
        TIMERFD_CREATE => fd::sys_timerfd_create(k, a),
        TIMERFD_SETTIME => fd::sys_timerfd_settime(k, a),
        TIMERFD_GETTIME => fd::sys_timerfd_gettime(k, a),
        SOCKET => socket::sys_socket(k, a),
        SOCKETPAIR => socket::sys_socketpair(k, a),
        SENDMSG => socket::sys_sendmsg(k, a),
        RECVMSG => socket::sys_recvmsg(k, a),
        SENDTO => socket::sys_sendto(k, a),
        RECVFROM => socket::sys_recvfrom(k, a),
        SHUTDOWN => socket::sys_shutdown(k, a),
        GETSOCKOPT => socket::sys_getsockopt(k, a),
        SETSOCKOPT => socket::sys_setsockopt(k, a),
        GETSOCKNAME | GETPEERNAME => socket::sys_getsockname(k, a),
        EVENTFD => fd::sys_eventfd2(k, [a[0], 0, 0, 0, 0, 0]),
        SENDFILE => splice::sys_sendfile(k, a),
        SPLICE => splice::sys_splice(k, a),
        TEE => splice::sys_tee(k, a),
        COPY_FILE_RANGE => splice::sys_copy_file_range(k, a),
        SIGNALFD => signalfd::sys_signalfd(k, a),
        SIGNALFD4 => signalfd::sys_signalfd4(k, a),
        CLOSE_RANGE => fd::sys_close_range(k, a),

        BRK => mm::sys_brk(k, a),
        MMAP => mm::sys_mmap(k, a),
        MUNMAP => mm::sys_munmap(k, a),
        MPROTECT => mm::sys_mprotect(k, a),
        MADVISE => mm::sys_madvise(k, a),
        MREMAP => mm::sys_mremap(k, a),
        MSYNC => mm::sys_msync(k, a),
        MINCORE => mm::sys_mincore(k, a),

        CLONE => process::sys_clone(k, a),
        FORK => process::sys_clone(k, [17, 0, 0, 0, 0, 0]),
        VFORK => process::sys_clone(k, [0x4000 | 0x100 | 17, 0, 0, 0, 0, 0]),
        EXECVE => process::sys_execve(k, a),
        EXIT => process::sys_exit(k, a),
        EXIT_GROUP => process::sys_exit_group(k, a),
        WAIT4 => wait::sys_wait4(k, a),
        WAITID => wait::sys_waitid(k, a),
        GETPID => process::sys_getpid(k, a),
        GETPPID => process::sys_getppid(k, a),
        GETTID => process::sys_gettid(k, a),
        GETUID => process::sys_getuid(k, a),
        GETEUID => process::sys_geteuid(k, a),
        GETGID => process::sys_getgid(k, a),
        GETEGID => process::sys_getegid(k, a),
        SETPGID => process::sys_setpgid(k, a),
        GETPGID => process::sys_getpgid(k, a),
        GETPGRP => process::sys_getpgid(k, [0; 6]),
        SETSID => process::sys_setsid(k, a),
        GETSID => process::sys_getsid(k, a),
        SET_TID_ADDRESS => process::sys_set_tid_address(k, a),
        SET_ROBUST_LIST => process::sys_set_robust_list(k, a),
        PRLIMIT64 => process::sys_prlimit64(k, a),
        GETRLIMIT => process::sys_getrlimit(k, a),
        ARCH_PRCTL => process::sys_arch_prctl(k, a),
        PRCTL => process::sys_prctl(k, a),
        UMASK => process::sys_umask(k, a),
        SCHED_YIELD => process::sys_sched_yield(k, a),
        SCHED_GETAFFINITY => process::sys_sched_getaffinity(k, a),
        GETCPU => process::sys_getcpu(k, a),

        RT_SIGACTION => signal::sys_rt_sigaction(k, a),
        RT_SIGPROCMASK => signal::sys_rt_sigprocmask(k, a),
        RT_SIGRETURN => crate::task::frame::sys_rt_sigreturn(k),
        RT_SIGSUSPEND => signal::sys_rt_sigsuspend(k, a),
        RT_SIGPENDING => signal::sys_rt_sigpending(k, a),
        RT_SIGTIMEDWAIT => signal::sys_rt_sigtimedwait(k, a),
        SIGALTSTACK => signal::sys_sigaltstack(k, a),
        KILL => signal::sys_kill(k, a),
        TKILL => signal::sys_tkill(k, a),
        TGKILL => signal::sys_tgkill(k, a),
        PAUSE => signal::sys_pause(k, a),

        CLOCK_GETTIME => time::sys_clock_gettime(k, a),
        CLOCK_GETRES => time::sys_clock_getres(k, a),
        GETTIMEOFDAY => time::sys_gettimeofday(k, a),
        TIME => time::sys_time(k, a),
        NANOSLEEP => time::sys_nanosleep(k, a),
        CLOCK_NANOSLEEP => time::sys_clock_nanosleep(k, a),
        ALARM => time::sys_alarm(k, a),
        SETITIMER => time::sys_setitimer(k, a),
        GETITIMER => time::sys_getitimer(k, a),
        TIMER_CREATE => timer::sys_timer_create(k, a),
        TIMER_SETTIME => timer::sys_timer_settime(k, a),
        TIMER_GETTIME => timer::sys_timer_gettime(k, a),
        TIMER_GETOVERRUN => timer::sys_timer_getoverrun(k, a),
        TIMER_DELETE => timer::sys_timer_delete(k, a),

        FUTEX => futex::sys_futex(k, a),
        POLL => poll::sys_poll(k, a),
        PPOLL => poll::sys_ppoll(k, a),
        SELECT => poll::sys_select(k, a),
        EPOLL_CREATE => epoll::sys_epoll_create(k, a),
        EPOLL_CREATE1 => epoll::sys_epoll_create1(k, a),
        EPOLL_CTL => epoll::sys_epoll_ctl(k, a),
        EPOLL_WAIT => epoll::sys_epoll_wait(k, a),
        EPOLL_PWAIT => epoll::sys_epoll_pwait(k, a),
        PSELECT6 => poll::sys_pselect6(k, a),

        UNAME => misc::sys_uname(k, a),
        GETRANDOM => misc::sys_getrandom(k, a),
        RSEQ => Err(Errno::ENOSYS),

        _ => {
            debug!(
                "unimplemented syscall {} ({nr}) at rip {:#x}",
                sysno::name(nr),
                k.cur().regs.rip
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
