//! Running a stub thread: taking a parked one over, and SYSEMU until the
//! next trap.

use guest_kernel::abi::UserRegs;
use guest_kernel::platform::{PlatformError, Trap};
use log::debug;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{lost, options};
use crate::fault_signal;
use crate::regs::from_host;

/// Take parked thread `tid` of a stub over: seize it, stop it, and move it
/// to host CPU `pin`, next to its tracer.
pub(super) fn seize(tid: Pid, pin: Option<usize>) -> Result<(), PlatformError> {
    ptrace::seize(tid, options()).map_err(|e| lost("seizing a stub thread", e))?;
    ptrace::interrupt(tid).map_err(|e| lost("stopping a seized stub thread", e))?;
    wait_stopped(tid, "seized stub thread lost")?;
    if let Some(c) = pin {
        let mut set = nix::sched::CpuSet::new();
        if set.set(c).is_ok() {
            // A round trip with a tracee on another host CPU costs several
            // times more; at worst it stays where it is.
            let _ = nix::sched::sched_setaffinity(tid, &set);
        }
    }
    Ok(())
}

/// Wait for traced thread `tid`'s next stop (a signal or ptrace event);
/// `what` names the failure if it ends instead.
pub(super) fn wait_stopped(tid: Pid, what: &'static str) -> Result<(), PlatformError> {
    loop {
        match waitpid(tid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::PtraceEvent(..) | WaitStatus::Stopped(..)) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Ok(other) => {
                debug!("stub thread {tid} did not stop: {other:?}");
                return Err(PlatformError::Lost(what, 0));
            }
            Err(e) => return Err(lost("waiting for a stub thread to stop", e)),
        }
    }
}

/// Resume `tid` under SYSEMU and wait for its next stop.
pub(super) fn run_until_trap(tid: Pid, regs: &mut UserRegs) -> Result<Trap, PlatformError> {
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
                        not_present: code == 1,
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
            WaitStatus::Exited(_, code) => return Err(PlatformError::Lost("stub exited", code)),
            WaitStatus::Signaled(_, sig, _) => {
                return Err(PlatformError::Lost("stub killed by signal", sig as i32))
            }
            _ => continue,
        }
    }
}
