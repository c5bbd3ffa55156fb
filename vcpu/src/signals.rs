//! Signals from the host into the sentry (see `abi::hostcall::signals`):
//! a fixed ring in guest memory and an MSI that makes the sentry look at it.
//!
//! [`SignalSender`] is what the control server (through the VMM's signal
//! port) holds: cloneable, `Send + Sync`, and it never blocks on the guest.
//! A full ring drops the signal with a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use guest_kernel::platform::HostSignal;
use memory::GuestRam;

use crate::abi::{gpa, signals as s};

/// Sends the announcement interrupt to the sentry.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// The host's side of the ring: its own count of posted signals (the value
/// of `HEAD` it last wrote, never read back from the guest).
#[derive(Debug, Default)]
pub(crate) struct SignalRing {
    head: Mutex<u64>,
}

impl SignalRing {
    /// Empty the ring before a boot: guest memory and the host's count.
    pub(crate) fn reset(&self, ram: &GuestRam) -> Result<(), memory::MemoryError> {
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        *head = 0;
        for off in (0..gpa::SIGNALS_SIZE).step_by(8) {
            ram.store_u64(gpa::SIGNALS + off, 0, Ordering::Relaxed)?;
        }
        Ok(())
    }
}

/// Why a signal was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Not a signal number (`1..=64`), or a negative pid.
    Invalid,
    /// The sentry has not taken the signals already queued.
    Full,
    /// The sentry's count of taken signals is past the host's count, or
    /// the ring is not in guest memory.
    Corrupt,
}

/// A handle that other threads of the sandbox process use to signal the
/// container on the KVM platform (`KvmVm::signal_sender`).
#[derive(Clone)]
pub struct SignalSender {
    ram: GuestRam,
    ring: Arc<SignalRing>,
    notify: Notify,
    dropped: Arc<AtomicU64>,
    /// `exec` requests announced (the host's own count).
    exec_posted: Arc<AtomicU64>,
}

impl std::fmt::Debug for SignalSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalSender")
            .field("ring", &self.ring)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

fn at(off: u64) -> u64 {
    gpa::SIGNALS + off
}

impl SignalSender {
    pub(crate) fn new(ram: GuestRam, ring: Arc<SignalRing>, notify: Notify) -> Self {
        SignalSender {
            ram,
            ring,
            notify,
            dropped: Arc::new(AtomicU64::new(0)),
            exec_posted: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queue `sig` for the container and interrupt the sentry. Never
    /// blocks on the guest: a signal that does not fit is dropped and
    /// logged.
    pub fn send(&self, sig: HostSignal) {
        match self.try_send(sig) {
            Ok(()) => log::debug!("host signal {sig:?} queued for the sentry"),
            Err(why) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = self.ram.store_u64(at(s::DROPPED), n, Ordering::Relaxed);
                log::warn!("host signal {sig:?} dropped ({why:?}; {n} dropped so far)");
            }
        }
    }

    /// Announce one more `exec` request (queued in the host services) and
    /// interrupt the sentry, which fetches it with a host call.
    pub fn notify_exec(&self) {
        {
            let _head = self.ring.head.lock().unwrap_or_else(|e| e.into_inner());
            let posted = self.exec_posted.fetch_add(1, Ordering::Relaxed) + 1;
            let _ = self
                .ram
                .store_u64(at(s::EXEC_POSTED), posted, Ordering::Release);
        }
        (self.notify)();
    }

    /// Queue `sig` and interrupt the sentry, or say why not.
    pub fn try_send(&self, sig: HostSignal) -> Result<(), SendError> {
        if !(1..=s::MAX_SIGNAL).contains(&sig.sig) || sig.pid < HostSignal::FOREGROUND {
            return Err(SendError::Invalid);
        }
        {
            let mut head = self.ring.head.lock().unwrap_or_else(|e| e.into_inner());
            // The guest writes TAIL: any value may be there.
            let tail = self
                .ram
                .load_u64(at(s::TAIL), Ordering::Acquire)
                .map_err(|_| SendError::Corrupt)?;
            if tail > *head {
                return Err(SendError::Corrupt);
            }
            if *head - tail >= s::NR_ENTRIES {
                return Err(SendError::Full);
            }
            let e = at(s::ENTRIES + (*head % s::NR_ENTRIES) * s::ENTRY_SIZE);
            let flags = if sig.all { s::FLAG_ALL } else { 0 }
                | if sig.pgrp { s::FLAG_PGRP } else { 0 }
                | if sig.exec { s::FLAG_EXEC } else { 0 };
            let write = || -> Result<(), memory::MemoryError> {
                self.ram
                    .store_u32(e + s::ENTRY_PID, sig.pid as u32, Ordering::Relaxed)?;
                self.ram
                    .store_u32(e + s::ENTRY_SIG, sig.sig as u32, Ordering::Relaxed)?;
                self.ram
                    .store_u32(e + s::ENTRY_FLAGS, flags, Ordering::Relaxed)?;
                self.ram
                    .store_u32(e + s::ENTRY_CONTAINER, sig.container, Ordering::Relaxed)?;
                self.ram
                    .store_u64(at(s::HEAD), *head + 1, Ordering::Release)
            };
            write().map_err(|_| SendError::Corrupt)?;
            *head += 1;
        }
        (self.notify)();
        Ok(())
    }

    /// Signals dropped by this sender and its clones.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> (SignalSender, GuestRam, Arc<AtomicU64>) {
        let ram = GuestRam::new(64 << 20).unwrap();
        let ring = Arc::new(SignalRing::default());
        ring.reset(&ram).unwrap();
        let kicks = Arc::new(AtomicU64::new(0));
        let k = kicks.clone();
        let notify: Notify = Arc::new(move || {
            k.fetch_add(1, Ordering::SeqCst);
        });
        (SignalSender::new(ram.clone(), ring, notify), ram, kicks)
    }

    fn sig(n: i32) -> HostSignal {
        HostSignal {
            pid: 0,
            sig: n,
            all: false,
            pgrp: false,
            container: 0,
            exec: false,
        }
    }

    /// What the sentry does: take the entry at `tail`.
    fn take(ram: &GuestRam, tail: u64) -> (i32, i32, u32) {
        let e = at(s::ENTRIES + (tail % s::NR_ENTRIES) * s::ENTRY_SIZE);
        let r = |o| ram.load_u32(e + o, Ordering::Relaxed).unwrap();
        let v = (
            r(s::ENTRY_PID) as i32,
            r(s::ENTRY_SIG) as i32,
            r(s::ENTRY_FLAGS),
        );
        ram.store_u64(at(s::TAIL), tail + 1, Ordering::Release)
            .unwrap();
        v
    }

    #[test]
    fn signals_are_queued_in_order_and_announced() {
        let (tx, ram, kicks) = sender();
        tx.try_send(sig(15)).unwrap();
        tx.try_send(HostSignal {
            pid: 7,
            sig: 9,
            all: true,
            pgrp: false,
            container: 0,
            exec: false,
        })
        .unwrap();
        assert_eq!(kicks.load(Ordering::SeqCst), 2);
        assert_eq!(ram.load_u64(at(s::HEAD), Ordering::Acquire).unwrap(), 2);
        assert_eq!(take(&ram, 0), (0, 15, 0));
        assert_eq!(take(&ram, 1), (7, 9, s::FLAG_ALL));
    }

    #[test]
    fn a_full_ring_drops_without_blocking() {
        let (tx, ram, kicks) = sender();
        for _ in 0..s::NR_ENTRIES {
            tx.try_send(sig(10)).unwrap();
        }
        assert_eq!(tx.try_send(sig(12)), Err(SendError::Full));
        tx.send(sig(12));
        assert_eq!(tx.dropped(), 1);
        assert_eq!(ram.load_u64(at(s::DROPPED), Ordering::Relaxed).unwrap(), 1);
        assert_eq!(kicks.load(Ordering::SeqCst), s::NR_ENTRIES);
        // Once the sentry takes one, there is room again, and the ring wraps.
        assert_eq!(take(&ram, 0), (0, 10, 0));
        tx.try_send(sig(12)).unwrap();
        for t in 1..s::NR_ENTRIES {
            assert_eq!(take(&ram, t).1, 10);
        }
        assert_eq!(take(&ram, s::NR_ENTRIES), (0, 12, 0));
    }

    #[test]
    fn bad_signals_and_a_bad_guest_tail_are_refused() {
        let (tx, ram, kicks) = sender();
        assert_eq!(tx.try_send(sig(0)), Err(SendError::Invalid));
        assert_eq!(tx.try_send(sig(65)), Err(SendError::Invalid));
        assert_eq!(
            tx.try_send(HostSignal {
                pid: -2,
                sig: 15,
                all: false,
                pgrp: false,
                container: 0,
                exec: false,
            }),
            Err(SendError::Invalid)
        );
        // A guest that claims to have taken more than was sent.
        ram.store_u64(at(s::TAIL), 5, Ordering::Release).unwrap();
        assert_eq!(tx.try_send(sig(15)), Err(SendError::Corrupt));
        ram.store_u64(at(s::TAIL), u64::MAX, Ordering::Release)
            .unwrap();
        assert_eq!(tx.try_send(sig(15)), Err(SendError::Corrupt));
        assert_eq!(kicks.load(Ordering::SeqCst), 0);
        assert_eq!(ram.load_u64(at(s::HEAD), Ordering::Acquire).unwrap(), 0);
    }

    #[test]
    fn concurrent_senders_never_lose_a_queued_signal() {
        let (tx, ram, kicks) = sender();
        std::thread::scope(|sc| {
            for _ in 0..4 {
                let tx = tx.clone();
                sc.spawn(move || {
                    for _ in 0..8 {
                        tx.try_send(sig(10)).unwrap();
                    }
                });
            }
        });
        assert_eq!(kicks.load(Ordering::SeqCst), 32);
        assert_eq!(ram.load_u64(at(s::HEAD), Ordering::Acquire).unwrap(), 32);
        assert_eq!(tx.try_send(sig(10)), Err(SendError::Full));
    }

    #[test]
    fn reset_empties_the_ring() {
        let (tx, ram, _) = sender();
        tx.try_send(sig(15)).unwrap();
        tx.ring.reset(&ram).unwrap();
        assert_eq!(ram.load_u64(at(s::HEAD), Ordering::Acquire).unwrap(), 0);
        tx.try_send(sig(2)).unwrap();
        assert_eq!(take(&ram, 0), (0, 2, 0));
    }
}
