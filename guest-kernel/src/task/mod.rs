//! Tasks and thread groups: the sentry's threads and processes.
//!
//! Tasks live in the kernel's tables and refer to each other by id, as
//! Linux's pids do; nothing holds a pointer to another task. A blocked
//! system call is not suspended in the middle: the task is parked with its
//! `syscall` instruction rewound (Linux's restart mechanism) and executes
//! the call again when woken. `Restart` carries what must survive that
//! (an absolute deadline), so a retried call continues where it left off.

pub mod exit;
pub mod frame;
pub mod pod;
pub mod signal;
pub mod stop;
pub mod tty;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::abi::linux::RLIM_NLIMITS;
use crate::abi::UserRegs;
use crate::fs::FdTable;
use crate::platform::Platform;
pub use signal::{SigAction, SigHand, SigState};

/// Thread id as the application sees it; a thread group's id is its leader's.
pub type Tid = i32;
/// Identifies an address space in the kernel's table.
pub type MmId = u32;

/// User and group ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
}

/// What a blocked task waits for. Wakers name the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKey {
    /// A futex word: (address space, user address).
    Futex(MmId, u64),
    /// A child of this thread group changed state.
    Child(Tid),
    /// Data or space in a pipe.
    Pipe(u64),
    /// Only a timeout or a signal ends the wait.
    Sleep,
    /// A `vfork` child has exec'd or exited.
    Vfork(Tid),
    /// A signal in the given set arrives (`rt_sigtimedwait`, `sigsuspend`).
    Signal,
    /// Readiness of any polled file (`poll`, `select`).
    Poll,
}

/// Scheduling state of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Runnable,
    /// Parked until `key` is woken, a signal arrives, or the deadline in
    /// `Task::restart` passes. `seq` orders waiters fairly.
    Blocked {
        key: WaitKey,
        seq: u64,
    },
    /// Its thread group is stopped (job control) until SIGCONT.
    Stopped,
}

/// A system call being retried after blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    pub nr: u64,
    /// Absolute monotonic deadline, computed on the first attempt.
    pub deadline: Option<u64>,
    /// The signal mask to restore after `rt_sigsuspend`.
    pub saved_mask: Option<u64>,
    /// Set when a signal woke the task: the retry must end with `EINTR`
    /// (or a restart, by the handler's `SA_RESTART`).
    pub interrupted: bool,
    /// Set when the deadline passed.
    pub timed_out: bool,
}

/// A thread of the application.
#[derive(Debug)]
pub struct Task<P: Platform> {
    pub tid: Tid,
    pub tgid: Tid,
    pub mm: MmId,
    pub regs: UserRegs,
    pub thread: Option<P::Thread>,
    /// `set_tid_address`: cleared (and woken) when the thread exits.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    pub sig: SigState,
    /// Details of thread-directed pending signals.
    pub siginfo: BTreeMap<i32, SigInfo>,
    pub state: TaskState,
    pub restart: Option<Restart>,
    /// Signals `rt_sigtimedwait` waits for: they wake the task even while
    /// blocked.
    pub sigwait: u64,
    /// The parent blocked in `vfork` until this task execs or exits.
    pub vfork_parent: Option<Tid>,
    /// `prctl(PR_SET_NAME)`.
    pub comm: [u8; 16],
    /// The CPU running it in user mode (its `thread` and `regs` are then
    /// that CPU's until it comes back for the kernel lock).
    pub on_cpu: Option<usize>,
}

impl<P: Platform> Task<P> {
    pub fn new(tid: Tid, tgid: Tid, mm: MmId, thread: P::Thread) -> Self {
        Task {
            tid,
            tgid,
            mm,
            regs: UserRegs::default(),
            thread: Some(thread),
            clear_child_tid: 0,
            robust_list: (0, 0),
            sig: SigState::default(),
            siginfo: BTreeMap::new(),
            state: TaskState::Runnable,
            restart: None,
            sigwait: 0,
            vfork_parent: None,
            comm: [0; 16],
            on_cpu: None,
        }
    }
}

/// Why a signal was sent (the parts of `siginfo_t` we fill).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    pub code: i32,
    /// Sender pid (kill, SIGCHLD) or 0.
    pub pid: i32,
    pub uid: u32,
    /// Fault address for SIGSEGV/SIGBUS/SIGILL/SIGFPE.
    pub addr: u64,
    /// `SIGCHLD`: the child's exit code or signal.
    pub status: i32,
    /// `si_value` (POSIX timers, `sigqueue`).
    pub value: u64,
    /// `SI_TIMER`: the kernel timer id and its overrun count.
    pub timerid: i32,
    pub overrun: i32,
}

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TIMER: i32 = -2;
pub const SI_TKILL: i32 = -6;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;

impl SigInfo {
    /// The 128-byte `siginfo_t` image.
    pub fn to_bytes(self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        if self.code == SI_TIMER {
            b[16..20].copy_from_slice(&self.timerid.to_le_bytes());
            b[20..24].copy_from_slice(&self.overrun.to_le_bytes());
            b[24..32].copy_from_slice(&self.value.to_le_bytes());
        } else if self.addr != 0 {
            b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        } else {
            b[16..20].copy_from_slice(&self.pid.to_le_bytes());
            b[20..24].copy_from_slice(&self.uid.to_le_bytes());
            b[24..28].copy_from_slice(&self.status.to_le_bytes());
        }
        b
    }
}

/// How a thread group ended, as `wait` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupExit {
    Exited(i32),
    Signaled(i32),
}

impl GroupExit {
    /// The `wait` status word.
    pub fn wait_status(self) -> i32 {
        match self {
            GroupExit::Exited(c) => (c & 0xff) << 8,
            GroupExit::Signaled(s) => s & 0x7f,
        }
    }
}

/// A process: the threads sharing one id, descriptor table and signal
/// handlers.
#[derive(Debug)]
pub struct ThreadGroup {
    pub tgid: Tid,
    /// The parent's tgid; 0 for the container's init.
    pub parent: Tid,
    pub pgid: Tid,
    pub sid: Tid,
    pub threads: Vec<Tid>,
    pub children: Vec<Tid>,
    pub sighand: SigHand,
    /// Process-directed pending signals, and their details.
    pub pending: u64,
    pub siginfo: BTreeMap<i32, SigInfo>,
    pub creds: Credentials,
    pub fds: FdTable,
    pub cwd: Vec<u8>,
    pub exe_path: Vec<u8>,
    /// `/proc/PID/cmdline`: the arguments, NUL-terminated.
    pub cmdline: Vec<u8>,
    /// `/proc/PID/environ`: the environment it was exec'd with, likewise.
    pub environ: Vec<u8>,
    /// `(soft, hard)` per resource.
    pub rlimits: [(u64, u64); RLIM_NLIMITS as usize],
    pub umask: u32,
    /// Signal sent to the parent on exit (`SIGCHLD` for `fork`).
    pub exit_signal: i32,
    /// Set once the group is exiting (`exit_group`, a fatal signal).
    pub group_exit: Option<GroupExit>,
    /// Set when every thread has exited: the group is a zombie.
    pub zombie: Option<GroupExit>,
    /// Started by the host (`exec`): its exit is reported under this id.
    pub exec_id: Option<u32>,
    /// The pod container it belongs to (0: the sandbox's own), which
    /// selects its file namespace; inherited by children.
    pub root: u32,
    /// Stopped or continued by job-control signals.
    pub job: stop::JobCtl,
}
