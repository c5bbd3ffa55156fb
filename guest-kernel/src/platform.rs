//! The seam between the sentry and the machine it runs on.
//!
//! The sentry is written once against [`Platform`]. The KVM platform runs it
//! as the guest kernel (ring 0 of a PVM guest); the ptrace platform links it
//! into the sandbox process and runs application threads in stub processes.
//! The interface is deliberately small, after gVisor's `platform.Platform`:
//! switching into the application, editing its address space, reaching
//! "physical" memory, host calls, blocking, and time.
//!
//! Physical memory is a flat range of frames (`phys_range`) owned by the
//! sentry (guest RAM on KVM, a memfd on ptrace). The sentry resolves user
//! virtual addresses to frames itself (it owns the mappings), so copying to
//! and from user memory is a physical copy on both platforms and never
//! faults inside the sentry.

use crate::abi::{Errno, KResult, UserRegs};

/// A guest-physical address inside the platform's memory.
pub type PhysAddr = u64;

/// Access permissions of a user mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
        exec: false,
    };
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };

    /// From `PROT_*` bits.
    pub fn from_bits(bits: u32) -> Prot {
        Prot {
            read: bits & crate::abi::linux::PROT_READ != 0,
            write: bits & crate::abi::linux::PROT_WRITE != 0,
            exec: bits & crate::abi::linux::PROT_EXEC != 0,
        }
    }

    /// As `PROT_*` bits.
    pub fn bits(self) -> u32 {
        (self.read as u32) | (self.write as u32) << 1 | (self.exec as u32) << 2
    }
}

/// Why [`Platform::switch`] returned to the sentry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// The application executed `syscall`; the number is in `orig_rax`.
    Syscall,
    /// A page fault at `addr`. `write` is `None` where the platform cannot
    /// tell. `not_present`: the page had no translation when the access
    /// faulted (with several CPUs another one may have mapped it since: a
    /// spurious fault, retried); `false` where the platform cannot tell.
    /// `exec`: an instruction fetch.
    PageFault {
        addr: u64,
        write: Option<bool>,
        not_present: bool,
        exec: bool,
    },
    /// A synchronous exception that becomes a signal (#GP, #UD, #DE, int3...).
    Exception { signo: i32, code: i32, addr: u64 },
    /// Interrupted (timer, a wakeup, or a host signal): nothing for the task to do.
    Interrupt,
}

/// Failure of the platform itself: the sandbox cannot go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// The application's host-side vessel (stub process, vCPU) died or misbehaved.
    Lost(&'static str, i32),
    /// Out of host resources.
    Resource(&'static str, i32),
}

impl core::fmt::Display for PlatformError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlatformError::Lost(what, e) => write!(f, "{what} (errno {e})"),
            PlatformError::Resource(what, e) => {
                write!(f, "out of host resources: {what} (errno {e})")
            }
        }
    }
}

/// Clocks the platform can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time since the Unix epoch.
    Realtime,
    /// Monotonic time since an arbitrary point before the sandbox started.
    Monotonic,
}

/// How the platform's clocks follow the CPU's time-stamp counter, for the
/// vDSO: at TSC value `tsc_base`, [`Clock::Monotonic`] read `mono_base_ns`
/// and [`Clock::Realtime`] read `realtime_base_ns`, and both advance by
/// `1e9 / tsc_hz` ns per tick. The TSC must be invariant and readable with
/// `rdtsc` in user mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    /// Ticks per second.
    pub tsc_hz: u64,
    pub tsc_base: u64,
    pub mono_base_ns: u64,
    pub realtime_base_ns: u64,
}

/// A host object the sentry may use through host calls. Opaque: on KVM it is
/// an index into the VMM's handle table, on ptrace a host fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostHandle(pub u32);

/// The container's standard streams, opened by the host before boot.
pub const HOST_STDIN: HostHandle = HostHandle(0);
pub const HOST_STDOUT: HostHandle = HostHandle(1);
pub const HOST_STDERR: HostHandle = HostHandle(2);

/// Metadata of a host file, in the guest's `struct stat` terms.
pub type HostStat = crate::abi::linux::Stat;

/// Services only the host can provide. Every argument crosses a trust
/// boundary on the host side and is validated there.
pub trait HostOps {
    /// Open `path` (absolute, inside the container root) read-only.
    /// The host confines resolution beneath the root.
    fn open(&self, path: &[u8]) -> KResult<HostHandle>;
    /// Read at the current offset.
    fn read(&self, h: HostHandle, buf: &mut [u8]) -> KResult<usize>;
    /// Read at `offset`.
    fn pread(&self, h: HostHandle, buf: &mut [u8], offset: u64) -> KResult<usize>;
    /// Write at the current offset.
    fn write(&self, h: HostHandle, data: &[u8]) -> KResult<usize>;
    /// Metadata of the object.
    fn fstat(&self, h: HostHandle) -> KResult<HostStat>;
    /// The terminal attributes (`TCGETS`), or `ENOTTY`.
    fn tcgets(&self, h: HostHandle) -> KResult<[u8; crate::abi::linux::TERMIOS_SIZE]>;
    /// The target of the symlink at `path` (inside the container root),
    /// written to `buf`; its length.
    fn readlink(&self, _path: &[u8], _buf: &mut [u8]) -> KResult<usize> {
        Err(Errno::ENOSYS)
    }
    /// `lstat` of a path of the container's root: a final symlink is
    /// described, not followed.
    fn lstat(&self, _path: &[u8]) -> KResult<HostStat> {
        Err(Errno::ENOSYS)
    }
    /// A terminal ioctl (one of `queue::TTY_IOCTLS`) with its argument in
    /// `arg`, written back for queries.
    fn tty_ioctl(&self, _h: HostHandle, _cmd: u32, _arg: &mut [u8]) -> KResult<()> {
        Err(Errno::ENOTTY)
    }
    /// The next `exec` request (an encoded `ExecRequest`) written to `buf`;
    /// 0 when none waits.
    fn take_exec(&self, _buf: &mut [u8]) -> KResult<usize> {
        Ok(0)
    }
    /// Report the end of an `exec`'d process.
    fn exec_exited(&self, _id: u32, _code: i32) {}
    /// Directory entries of a directory handle, as `linux_dirent64` records
    /// that fit in `buf`; 0 at the end.
    fn getdents64(&self, _h: HostHandle, _buf: &mut [u8]) -> KResult<usize> {
        Err(Errno::ENOSYS)
    }
    /// Open `path` beneath a read-write bind mount with `flags` (only
    /// `queue::OPEN_RW_FLAGS`) and creation `mode`. The host refuses
    /// (`EROFS`) paths that are not beneath a read-write bind.
    fn open_rw(&self, _path: &[u8], _flags: u32, _mode: u32) -> KResult<HostHandle> {
        Err(Errno::EROFS)
    }
    /// Write at `offset` to a handle from [`open_rw`](Self::open_rw).
    fn pwrite(&self, _h: HostHandle, _data: &[u8], _offset: u64) -> KResult<usize> {
        Err(Errno::EBADF)
    }
    /// Set the size of a file opened with [`open_rw`](Self::open_rw).
    fn ftruncate(&self, _h: HostHandle, _len: u64) -> KResult<()> {
        Err(Errno::EBADF)
    }
    /// Flush a file to the host's storage.
    fn fsync(&self, _h: HostHandle) -> KResult<()> {
        Ok(())
    }
    /// A change of the namespace beneath a read-write bind mount:
    /// `op` is one of `queue::path_op`, `extra` and `arg` its operands.
    fn path_op(&self, _op: u32, _path: &[u8], _extra: &[u8], _arg: u64) -> KResult<()> {
        Err(Errno::EROFS)
    }
    /// Drop the handle.
    fn close(&self, h: HostHandle);
}

/// A signal from outside the sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostSignal {
    /// Container pid of the target; 0 means the container's init, and
    /// [`HostSignal::FOREGROUND`] the foreground process group of init's
    /// terminal (a signal that the terminal generated, as ^C's SIGINT).
    pub pid: i32,
    pub sig: i32,
    /// Signal every process of the container (`kill --all`).
    pub all: bool,
    /// `pid` names a process group (the control API's `pgid`).
    pub pgrp: bool,
    /// The container of a pod whose processes it is for: 0 for the
    /// sandbox's own, N for the one whose `ExecRequest::root` is N. Its
    /// init (`pid` 0) is its first process; `all` and pids outside it
    /// reach none of another container's processes.
    pub container: u32,
    /// `pid` is the host's id of an `exec`'d process: the signal goes to
    /// the foreground process group of that process's terminal (its
    /// session's), as ^C typed on an `exec --tty` terminal.
    pub exec: bool,
}

impl HostSignal {
    /// The `pid` that means init's terminal's foreground process group.
    pub const FOREGROUND: i32 = -1;
}

/// A platform's entry for patched system call sites (`mm::usertrap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallPatch {
    /// The code a patched site jumps to, with the call's number in `eax`,
    /// its return address in `rcx`, and every other register the
    /// application's (flags included).
    pub entry: u64,
    /// The entry may be taken only by a thread whose GS base holds its own
    /// address at this offset; others trap the call as before.
    pub gs_self: u32,
}

/// What the sentry needs from the machine.
pub trait Platform: Sync {
    /// A user address space (page tables on KVM, a stub process on ptrace).
    type AddressSpace: core::fmt::Debug + Send;
    /// Per-thread platform state (the stub thread on ptrace).
    type Thread: core::fmt::Debug + Send;
    /// Host calls.
    type Host: HostOps;
    /// What [`switch`](Self::switch) needs of an address space, taken by
    /// [`activate`](Self::activate) while the kernel lock is held: the task
    /// then runs with the lock released, so it cannot borrow the space.
    type SpaceRef: Copy + core::fmt::Debug;

    /// How many CPUs run tasks (see [`run_cpus`](Self::run_cpus)).
    fn cpus(&self) -> usize {
        1
    }
    /// Run `cpu_loop(cpu)` on every CPU, this one being CPU 0; return when
    /// all have returned. CPU 0 returns first, when the sentry is done, and
    /// the platform then [`kick`](Self::kick_cpu)s the others out of user
    /// mode or idle until they return too.
    fn run_cpus(&self, cpu_loop: &(dyn Fn(usize) + Sync)) {
        cpu_loop(0);
    }
    /// Make CPU `cpu` (not the caller) leave user mode or idle soon, so it
    /// looks at the kernel's state again.
    fn kick_cpu(&self, _cpu: usize) {}
    /// Bring up the CPUs other than the first, which a platform may hold
    /// back until the sentry first has work for them (see `sched`).
    fn start_cpus(&self) {}
    /// The CPU this code runs on.
    fn this_cpu(&self) -> usize {
        0
    }

    /// The physical range `(base, len)` whose frames the sentry allocates
    /// for user memory. The platform keeps whatever it needs elsewhere.
    fn phys_range(&self) -> (PhysAddr, u64);
    /// Read host file `h` at `off` into physical memory `[pa, pa+len)`.
    /// A platform whose host calls can name physical memory reads straight
    /// into it (no copy in the sentry); this default bounces.
    fn host_pread_phys(&self, h: HostHandle, pa: PhysAddr, len: usize, off: u64) -> KResult<usize> {
        let mut buf = alloc::vec![0u8; len.min(256 * 1024)];
        let n = self.host().pread(h, &mut buf, off)?;
        self.phys_write(pa, &buf[..n]);
        Ok(n)
    }

    /// Most processes the sandbox's memory carries, when RLIMIT_NPROC does
    /// not bound them lower: each costs at least a few frames (stack, page
    /// tables, on ptrace a host stub process), so one per 32 frames.
    fn process_limit(&self) -> u64 {
        (self.phys_range().1 / (32 * 4096)).clamp(64, 1 << 15)
    }

    /// Bytes all tmpfs contents together may hold. They live in the
    /// sentry's heap; by default half the sandbox's memory, as Linux's
    /// tmpfs.
    fn tmpfs_limit(&self) -> u64 {
        self.phys_range().1 / 2
    }
    /// One past the highest address the application may map. At most
    /// Linux's `TASK_SIZE`; a platform may keep the top for itself (the
    /// ptrace stub's code page).
    fn max_user_address(&self) -> u64;
    /// Where a patched system call site jumps (see `mm::usertrap`), for
    /// a call trapped just now. `None`: calls are not worth patching here
    /// (on KVM a `syscall` reaches the sentry without leaving the guest).
    fn syscall_patch(&self) -> Option<SyscallPatch> {
        None
    }
    /// Copy out of physical memory. `pa..pa+buf.len()` lies within `phys_range`.
    fn phys_read(&self, pa: PhysAddr, buf: &mut [u8]);
    /// Copy into physical memory.
    fn phys_write(&self, pa: PhysAddr, data: &[u8]);
    /// Zero a page-aligned physical range.
    fn phys_zero(&self, pa: PhysAddr, len: u64);

    /// A new, empty user address space.
    fn new_address_space(&self) -> Result<Self::AddressSpace, PlatformError>;
    /// Map `len` bytes of physical memory at `pa` to user address `va`.
    /// Both are page-aligned; any earlier mapping of the range is replaced.
    fn map(
        &self,
        space: &mut Self::AddressSpace,
        va: u64,
        pa: PhysAddr,
        len: u64,
        prot: Prot,
    ) -> KResult<()>;
    /// Remove any mapping of `[va, va+len)`.
    fn unmap(&self, space: &mut Self::AddressSpace, va: u64, len: u64) -> KResult<()>;
    /// Change the permissions of mapped pages in `[va, va+len)`.
    fn protect(&self, space: &mut Self::AddressSpace, va: u64, len: u64, prot: Prot)
        -> KResult<()>;

    /// From now on the platform may queue the [`map`](Self::map),
    /// [`unmap`](Self::unmap) and [`protect`](Self::protect) calls on
    /// `space` (they then return `Ok` at once) until
    /// [`end_batch`](Self::end_batch), which applies them in order and
    /// reports the first failure (ptrace: one injection instead of one per
    /// call). Only for changes that nothing needs to see before the batch
    /// ends, as `fork`'s copy of a whole address space or `execve`'s new
    /// one; a batch never stays open past the kernel lock.
    fn begin_batch(&self, _space: &mut Self::AddressSpace) {}
    /// Apply what [`begin_batch`](Self::begin_batch) queued.
    fn end_batch(&self, _space: &mut Self::AddressSpace) -> KResult<()> {
        Ok(())
    }

    /// A thread able to run in `space`.
    fn new_thread(&self, space: &mut Self::AddressSpace) -> Result<Self::Thread, PlatformError>;
    /// Make `space` this CPU's current address space, under the kernel
    /// lock, and name it for [`switch`](Self::switch). The platform keeps
    /// every CPU that has a space loaded coherent with later changes of it
    /// (TLB shootdown) until the CPU loads another one or
    /// [`unload_space`](Self::unload_space)s.
    fn activate(&self, space: &mut Self::AddressSpace) -> Self::SpaceRef;
    /// Drop this CPU's current address space (its own tables only remain).
    fn unload_space(&self) {}
    /// The task that owns `thread` leaves this CPU for now (it may run on
    /// another one next): bring home any state of it that only this CPU
    /// can reach (on ptrace, the FPU state in a stub thread it traces).
    fn unload_thread(&self, _thread: &mut Self::Thread) {}
    /// Run `regs` in user mode in the space [`activate`](Self::activate)
    /// named, until a syscall, fault or interrupt. Called without the
    /// kernel lock.
    fn switch(
        &self,
        space: Self::SpaceRef,
        thread: &mut Self::Thread,
        regs: &mut UserRegs,
    ) -> Result<Trap, PlatformError>;
    /// The thread's x87/SSE state in `fxsave` layout (512 bytes), saved in
    /// signal frames. `None` where the platform does not provide it yet:
    /// the frame then carries no FPU state, as Linux allows.
    fn fpu_state(&self, _thread: &Self::Thread) -> Option<[u8; 512]> {
        None
    }
    /// Restore state saved by [`fpu_state`](Self::fpu_state).
    fn set_fpu_state(&self, _thread: &mut Self::Thread, _state: &[u8; 512]) {}
    /// A process the host wants started in the container (`exec`).
    fn take_exec(&self) -> Option<crate::boot::ExecRequest> {
        None
    }
    /// An `exec`'d process ended (or could not start) with `code`, as a
    /// runtime reports it (128+N for signal N).
    fn exec_exited(&self, _id: u32, _code: i32) {}
    /// A signal the host wants delivered to the container (from `kill`, or
    /// forwarded from the sandbox process), if one is waiting.
    fn take_host_signal(&self) -> Option<HostSignal> {
        None
    }
    /// Tear down a thread (it will never run again).
    fn release_thread(&self, space: &mut Self::AddressSpace, thread: Self::Thread);

    /// Host calls.
    fn host(&self) -> &Self::Host;
    /// Read a clock, in nanoseconds.
    fn now(&self, clock: Clock) -> u64;
    /// Block the CPU until `deadline` (monotonic ns) or until woken.
    fn idle(&self, deadline: Option<u64>);
    /// Fill `buf` with random bytes from the host's entropy.
    fn random(&self, buf: &mut [u8]);
    /// The TSC's relation to [`now`](Self::now), if the application may
    /// read time with `rdtsc` (the vDSO); `None`: no vDSO, the clocks stay
    /// system calls.
    fn tsc_clock(&self) -> Option<TscClock> {
        None
    }
}

/// Errno for a platform failure seen by a syscall.
impl From<PlatformError> for Errno {
    fn from(_: PlatformError) -> Errno {
        Errno::EFAULT
    }
}
