//! signalfd: pending signals read as `struct signalfd_siginfo` records.
//!
//! The file holds only a mask. As on Linux, a read dequeues from the
//! *reader's* pending sets (its thread's, then its process's), so
//! readiness depends on who asks: poll and epoll record the asking task's
//! pending set with [`set_pending`] before they look at files.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::abi::linux::SIGCHLD;
use crate::task::{SigInfo, SI_KERNEL, SI_TIMER};

/// Size of `struct signalfd_siginfo`.
pub const RECORD_SIZE: usize = 128;

/// Pending signals of the task whose readiness is being computed.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Bumped whenever any signal is queued or taken (edge-triggered epoll).
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Live signalfds: with none, queuing a signal need not wake pollers.
static LIVE: AtomicUsize = AtomicUsize::new(0);

pub fn set_pending(set: u64) {
    PENDING.store(set, Ordering::Relaxed);
}

/// Note that a pending set changed.
pub fn signals_changed() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Whether some signalfd exists whose pollers a new signal may concern.
pub fn any_live() -> bool {
    LIVE.load(Ordering::Relaxed) != 0
}

/// A signalfd.
#[derive(Debug)]
pub struct SignalFd {
    pub id: u64,
    /// The signals it reads (never SIGKILL or SIGSTOP).
    pub mask: AtomicU64,
    pub flags: AtomicU32,
}

impl SignalFd {
    pub fn new(mask: u64, flags: u32) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        SignalFd {
            id: super::pipe::next_id(),
            mask: AtomicU64::new(mask),
            flags: AtomicU32::new(flags),
        }
    }

    pub fn mask(&self) -> u64 {
        self.mask.load(Ordering::Relaxed)
    }

    /// Readable now, for the task recorded by [`set_pending`].
    pub fn ready(&self) -> bool {
        PENDING.load(Ordering::Relaxed) & self.mask() != 0
    }

    pub fn generation(&self) -> u64 {
        GENERATION.load(Ordering::Relaxed)
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The `signalfd_siginfo` record for `info`, filled by its `siginfo_t`
/// layout as Linux's `signalfd_copyinfo` does.
pub fn record(info: &SigInfo) -> [u8; RECORD_SIZE] {
    let mut b = [0u8; RECORD_SIZE];
    let mut put32 = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    put32(0, info.signo as u32);
    put32(8, info.code as u32);
    let fault = matches!(info.signo, 4 | 7 | 8 | 11) && info.code > 0 && info.code < SI_KERNEL;
    if info.code == SI_TIMER {
        put32(24, info.timerid as u32); // ssi_tid
        put32(32, info.overrun as u32); // ssi_overrun
        put32(44, info.value as u32); // ssi_int
    } else if fault {
        // ssi_addr, below.
    } else {
        put32(12, info.pid as u32);
        put32(16, info.uid);
        if info.signo == SIGCHLD && info.code > 0 && info.code < SI_KERNEL {
            put32(40, info.status as u32);
        } else if info.code < 0 {
            put32(44, info.value as u32); // queued: ssi_int
        }
    }
    if info.code == SI_TIMER || (info.code < 0 && !fault) {
        b[48..56].copy_from_slice(&info.value.to_le_bytes()); // ssi_ptr
    }
    if fault {
        b[72..80].copy_from_slice(&info.addr.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let t = SigInfo {
            signo: 34,
            code: SI_TIMER,
            timerid: 3,
            overrun: 2,
            value: 0x1_0000_0007,
            ..Default::default()
        };
        let r = record(&t);
        assert_eq!(r[0], 34);
        assert_eq!(r[24], 3);
        assert_eq!(r[32], 2);
        assert_eq!(r[44], 7);
        assert_eq!(
            u64::from_le_bytes(r[48..56].try_into().unwrap()),
            0x1_0000_0007
        );
        let k = SigInfo {
            signo: 10,
            pid: 5,
            uid: 1000,
            ..Default::default()
        };
        let r = record(&k);
        assert_eq!((r[12], r[16], r[17]), (5, 0xe8, 3));
        let f = SignalFd::new(1 << 9, 0);
        set_pending(1 << 9);
        assert!(f.ready());
        set_pending(1);
        assert!(!f.ready());
    }
}
