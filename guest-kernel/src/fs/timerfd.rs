//! timerfd: a timer read as a count of expirations.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

/// The monotonic time at which readiness is being computed (set by
/// poll/epoll before they look at files).
static NOW: AtomicU64 = AtomicU64::new(0);

pub fn set_now(ns: u64) {
    NOW.store(ns, Ordering::Relaxed);
}

#[derive(Debug, Default, Clone, Copy)]
struct TimerState {
    /// Next expiry on the monotonic clock; `None`: disarmed.
    deadline: Option<u64>,
    interval: u64,
}

/// A timerfd.
#[derive(Debug)]
pub struct TimerFd {
    /// Shares the pipe id space for waiters.
    pub id: u64,
    /// `CLOCK_REALTIME` timers take absolute times on the wall clock.
    pub realtime: bool,
    state: Mutex<TimerState>,
    pub flags: AtomicU32,
    pub generation: AtomicU64,
}

impl TimerFd {
    pub fn new(realtime: bool, flags: u32) -> Self {
        TimerFd {
            id: super::pipe::next_id(),
            realtime,
            state: Mutex::new(TimerState::default()),
            flags: AtomicU32::new(flags),
            generation: AtomicU64::new(0),
        }
    }

    /// Arm (or with `value` 0 disarm) at `now + value`, then every `interval`.
    pub fn arm(&self, now: u64, value: u64, interval: u64) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        s.deadline = (value != 0).then(|| now.saturating_add(value));
        s.interval = interval;
    }

    /// (time to the next expiry, interval), as `timerfd_gettime` reports.
    pub fn get(&self, now: u64) -> (u64, u64) {
        let s = self.state.lock();
        (
            s.deadline
                .map(|d| d.saturating_sub(now).max(1))
                .unwrap_or(0),
            s.interval,
        )
    }

    /// The next expiry, for waiters.
    pub fn deadline(&self) -> Option<u64> {
        self.state.lock().deadline
    }

    /// Take the expirations up to `now` (0: none yet).
    pub fn take(&self, now: u64) -> u64 {
        let mut s = self.state.lock();
        let Some(d) = s.deadline else {
            return 0;
        };
        if now < d {
            return 0;
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        match (now - d).checked_div(s.interval) {
            Some(missed) => {
                s.deadline = Some(d.saturating_add((missed + 1).saturating_mul(s.interval)));
                missed + 1
            }
            None => {
                s.deadline = None;
                1
            }
        }
    }

    /// Readable now (at the time set by [`set_now`]).
    pub fn ready(&self) -> bool {
        self.state
            .lock()
            .deadline
            .is_some_and(|d| d <= NOW.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expirations() {
        let t = TimerFd::new(false, 0);
        assert_eq!(t.take(100), 0);
        t.arm(1000, 50, 0);
        assert_eq!(t.take(1049), 0);
        assert_eq!(t.take(1050), 1);
        assert_eq!(t.take(5000), 0);
        t.arm(0, 10, 10);
        assert_eq!(t.take(35), 3);
        assert_eq!(t.get(35), (5, 10));
        set_now(40);
        assert!(t.ready());
    }
}
