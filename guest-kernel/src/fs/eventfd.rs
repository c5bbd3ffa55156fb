//! eventfd: a 64-bit counter that readers drain and writers add to.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

/// The largest value the counter may hold.
pub const EVENTFD_MAX: u64 = u64::MAX - 1;

/// An eventfd object.
#[derive(Debug)]
pub struct EventFd {
    /// Shares the pipe id space: waiters block on `WaitKey::Pipe(id)`.
    pub id: u64,
    counter: Mutex<u64>,
    /// `EFD_SEMAPHORE`: each read takes 1.
    pub semaphore: bool,
    pub flags: AtomicU32,
    /// Bumped on every change (edge-triggered epoll).
    pub generation: AtomicU64,
}

impl EventFd {
    pub fn new(init: u64, semaphore: bool, flags: u32) -> Self {
        EventFd {
            id: super::pipe::next_id(),
            counter: Mutex::new(init),
            semaphore,
            flags: AtomicU32::new(flags),
            generation: AtomicU64::new(0),
        }
    }

    /// Take the value a read returns, or `None` if it must wait.
    pub fn take(&self) -> Option<u64> {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut c = self.counter.lock();
        if *c == 0 {
            return None;
        }
        let v = if self.semaphore { 1 } else { *c };
        *c -= v;
        Some(v)
    }

    /// Add `v`; false if it must wait for room.
    pub fn add(&self, v: u64) -> bool {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut c = self.counter.lock();
        match c.checked_add(v) {
            Some(n) if n <= EVENTFD_MAX => {
                *c = n;
                true
            }
            _ => false,
        }
    }

    pub fn value(&self) -> u64 {
        *self.counter.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_semantics() {
        let e = EventFd::new(0, false, 0);
        assert_eq!(e.take(), None);
        assert!(e.add(3));
        assert!(e.add(4));
        assert_eq!(e.take(), Some(7));
        assert!(!e.add(u64::MAX));
        let s = EventFd::new(2, true, 0);
        assert_eq!(s.take(), Some(1));
        assert_eq!(s.take(), Some(1));
        assert_eq!(s.take(), None);
    }
}
