//! Tasks: the sentry's threads, their credentials and signal state.

pub mod signal;

use crate::abi::UserRegs;
use crate::platform::Platform;
pub use signal::{SigAction, SignalState};

/// Thread id as the application sees it.
pub type Tid = i32;

/// User and group ids of a task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
}

/// A thread of the application.
#[derive(Debug)]
pub struct Task<P: Platform> {
    pub tid: Tid,
    pub regs: UserRegs,
    pub thread: P::Thread,
    /// `set_tid_address`: cleared (and woken) when the thread exits.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    pub signals: SignalState,
    pub creds: Credentials,
    /// Total CPU time charged to the task, in ns.
    pub cpu_ns: u64,
}

impl<P: Platform> Task<P> {
    pub fn new(tid: Tid, thread: P::Thread, creds: Credentials) -> Self {
        Task {
            tid,
            regs: UserRegs::default(),
            thread,
            clear_child_tid: 0,
            robust_list: (0, 0),
            signals: SignalState::default(),
            creds,
            cpu_ns: 0,
        }
    }
}
