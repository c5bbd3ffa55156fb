//! The sentry's side of the ring of signals from the host (see
//! `abi::hostcall::signals`). The host announces each signal with
//! `SIGNAL_VECTOR`; whatever the interrupt interrupted (a halt, user code),
//! the scheduler then polls [`SignalRing::take`].
//!
//! Everything read from the ring comes from the host: the sentry keeps its
//! own count of taken signals and checks every index and entry.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::abi::hostcall::{gpa, signals as s};
use crate::arch::x86_64::kva;
use guest_kernel::platform::HostSignal;

fn a32(off: u64) -> &'static AtomicU32 {
    // SAFETY: the signal ring area is mapped for the sentry's lifetime at
    // its KERNEL_BASE alias; callers pass 4-byte aligned offsets inside it.
    unsafe { &*(kva(gpa::SIGNALS + off) as *const AtomicU32) }
}

fn a64(off: u64) -> &'static AtomicU64 {
    // SAFETY: as for `a32`, 8-byte aligned.
    unsafe { &*(kva(gpa::SIGNALS + off) as *const AtomicU64) }
}

/// The consumer's state: how many signals the sentry has taken.
#[derive(Debug, Default)]
pub struct SignalRing {
    tail: AtomicU64,
    /// `exec` requests fetched, against the host's `EXEC_POSTED`.
    execs_seen: AtomicU64,
    /// Entries skipped as malformed, and times the host's index was broken.
    rejected: AtomicU64,
}

impl SignalRing {
    pub const fn new() -> SignalRing {
        SignalRing {
            tail: AtomicU64::new(0),
            execs_seen: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Malformed entries skipped, and times the host's index was broken.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The host's count of `exec` requests, when it has posted more than
    /// [`execs_drained`](Self::execs_drained) recorded: one load.
    pub fn exec_posted(&self) -> Option<u64> {
        let posted = a64(s::EXEC_POSTED).load(Ordering::Acquire);
        (posted != self.execs_seen.load(Ordering::Relaxed)).then_some(posted)
    }

    /// The host's queue is empty up to its count `posted`.
    pub fn execs_drained(&self, posted: u64) {
        self.execs_seen.store(posted, Ordering::Relaxed);
    }

    /// The next valid signal from the host, if any. Cheap when the ring is
    /// empty: one load of the host's `HEAD`.
    pub fn take(&self) -> Option<HostSignal> {
        loop {
            let head = a64(s::HEAD).load(Ordering::Acquire);
            let tail = self.tail.load(Ordering::Relaxed);
            if head == tail {
                return None;
            }
            if head < tail || head - tail > s::NR_ENTRIES {
                // The host broke the protocol: forget what it claims is there.
                self.rejected.fetch_add(1, Ordering::Relaxed);
                log::warn!("host signal ring: bad head {head} (taken {tail}); skipping to it");
                self.tail.store(head, Ordering::Relaxed);
                a64(s::TAIL).store(head, Ordering::Release);
                return None;
            }
            let e = s::ENTRIES + (tail % s::NR_ENTRIES) * s::ENTRY_SIZE;
            let pid = a32(e + s::ENTRY_PID).load(Ordering::Relaxed) as i32;
            let sig = a32(e + s::ENTRY_SIG).load(Ordering::Relaxed) as i32;
            let flags = a32(e + s::ENTRY_FLAGS).load(Ordering::Relaxed);
            let container = a32(e + s::ENTRY_CONTAINER).load(Ordering::Relaxed);
            // The entry is copied out: give it back to the host.
            self.tail.store(tail + 1, Ordering::Relaxed);
            a64(s::TAIL).store(tail + 1, Ordering::Release);
            if !(1..=s::MAX_SIGNAL).contains(&sig) || pid < HostSignal::FOREGROUND || flags & !(s::FLAG_ALL | s::FLAG_PGRP | s::FLAG_EXEC) != 0 {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                log::warn!("host signal ring: bad entry pid {pid} sig {sig} flags {flags:#x}");
                continue;
            }
            return Some(HostSignal {
                pid,
                sig,
                all: flags & s::FLAG_ALL != 0,
                pgrp: flags & s::FLAG_PGRP != 0,
                container,
                exec: flags & s::FLAG_EXEC != 0,
            });
        }
    }
}
