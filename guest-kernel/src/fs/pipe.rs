//! Pipes: a bounded byte queue with reader and writer counts.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;

/// Linux's default pipe capacity.
pub const PIPE_CAPACITY: usize = 65536;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;

static NEXT_PIPE: AtomicU64 = AtomicU64::new(1);

/// The memory all pipe buffers together may hold before each pipe is cut
/// to one page (Linux's `pipe-user-pages-soft`, sandbox-wide): they live
/// in the sentry's heap with every other kernel object, and a program
/// filling thousands of pipes must not run it dry and end the sandbox.
#[derive(Debug)]
pub struct PipeBudget {
    limit: AtomicUsize,
    held: AtomicUsize,
}

impl PipeBudget {
    pub const fn new(limit: usize) -> Self {
        PipeBudget {
            limit: AtomicUsize::new(limit),
            held: AtomicUsize::new(0),
        }
    }

    /// Set the limit (at boot, from the platform's memory).
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub(crate) fn over(&self) -> bool {
        self.held.load(Ordering::Relaxed) >= self.limit.load(Ordering::Relaxed)
    }

    /// Account a buffer's change of capacity from `before` to `after`.
    pub(crate) fn moved(&self, before: usize, after: usize) {
        if after > before {
            self.held.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(before - after, Ordering::Relaxed);
        }
    }
}

/// The budget of the sandbox's pipes, and of its sockets' queues.
pub static PIPE_BUDGET: PipeBudget = PipeBudget::new(usize::MAX);

/// A fresh id in the pipe wait-key space.
pub fn next_id() -> u64 {
    NEXT_PIPE.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
struct PipeState {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
    budget: &'static PipeBudget,
}

impl Drop for PipeState {
    fn drop(&mut self) {
        self.budget.moved(self.buf.capacity(), 0);
    }
}

/// The shared part of a pipe.
#[derive(Debug)]
pub struct Pipe {
    pub id: u64,
    state: Mutex<PipeState>,
    /// Bumped on every change, so edge-triggered epoll sees new events.
    pub generation: AtomicU64,
}

/// What a read or write could do right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipeIo {
    /// Moved this many bytes.
    Done(usize),
    /// Nothing possible yet: the caller blocks (or gets EAGAIN).
    WouldBlock,
    /// Read: no writers left and nothing buffered. Write: no readers left.
    Closed,
}

impl Pipe {
    pub fn new() -> Self {
        Self::with_budget(&PIPE_BUDGET)
    }

    /// A pipe whose buffer counts against `budget`.
    pub fn with_budget(budget: &'static PipeBudget) -> Self {
        Pipe {
            id: next_id(),
            generation: AtomicU64::new(0),
            state: Mutex::new(PipeState {
                buf: VecDeque::new(),
                readers: 0,
                writers: 0,
                budget,
            }),
        }
    }

    pub fn open_end(&self, write: bool) {
        let mut s = self.state.lock();
        if write {
            s.writers += 1;
        } else {
            s.readers += 1;
        }
    }

    pub fn close_end(&self, write: bool) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        if write {
            s.writers = s.writers.saturating_sub(1);
        } else {
            s.readers = s.readers.saturating_sub(1);
        }
    }

    /// Take up to `max` bytes.
    pub fn read(&self, max: usize, out: &mut alloc::vec::Vec<u8>) -> PipeIo {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        if s.buf.is_empty() {
            return if s.writers == 0 {
                PipeIo::Closed
            } else {
                PipeIo::WouldBlock
            };
        }
        let n = max.min(s.buf.len());
        out.extend(s.buf.drain(..n));
        // An emptied buffer gives back what it grew to beyond a page.
        if s.buf.is_empty() && s.buf.capacity() > PIPE_BUF {
            let before = s.buf.capacity();
            s.buf.shrink_to(PIPE_BUF);
            let after = s.buf.capacity();
            s.budget.moved(before, after);
        }
        PipeIo::Done(n)
    }

    /// Append from `data`; writes of at most `PIPE_BUF` are all-or-nothing.
    pub fn write(&self, data: &[u8]) -> PipeIo {
        self.generation.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        if s.readers == 0 {
            return PipeIo::Closed;
        }
        // Over the budget, a pipe holds one page at most.
        let capacity = if s.budget.over() {
            PIPE_BUF
        } else {
            PIPE_CAPACITY
        };
        let room = capacity.saturating_sub(s.buf.len());
        if room == 0 || (data.len() <= PIPE_BUF && room < data.len()) {
            return PipeIo::WouldBlock;
        }
        let n = room.min(data.len());
        let before = s.buf.capacity();
        // The heap itself may be short: the writer waits, as for a full
        // pipe, rather than the sentry failing.
        if s.buf.try_reserve(n).is_err() {
            return PipeIo::WouldBlock;
        }
        s.buf.extend(&data[..n]);
        let after = s.buf.capacity();
        s.budget.moved(before, after);
        PipeIo::Done(n)
    }

    /// Bytes buffered, and how many ends of the other kind are open
    /// (writers, for a read end; readers, for a write end).
    pub fn status(&self, write_end: bool) -> (usize, usize) {
        let s = self.state.lock();
        (s.buf.len(), if write_end { s.readers } else { s.writers })
    }

    /// A copy of up to `max` buffered bytes, left in place (`tee`).
    pub fn peek(&self, max: usize) -> alloc::vec::Vec<u8> {
        let s = self.state.lock();
        s.buf.iter().take(max).copied().collect()
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Pipe {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Past the budget, new data fits in one page per pipe; what readers
    /// take frees the budget again.
    #[test]
    fn pipes_share_a_memory_budget() {
        static BUDGET: PipeBudget = PipeBudget::new(2 * PIPE_CAPACITY);
        let pipes: Vec<Pipe> = (0..4).map(|_| Pipe::with_budget(&BUDGET)).collect();
        let big = vec![7u8; PIPE_CAPACITY];
        for p in &pipes {
            p.open_end(false);
            p.open_end(true);
        }
        assert_eq!(pipes[0].write(&big), PipeIo::Done(PIPE_CAPACITY));
        assert_eq!(pipes[1].write(&big), PipeIo::Done(PIPE_CAPACITY));
        assert_eq!(pipes[2].write(&big), PipeIo::Done(PIPE_BUF));
        assert_eq!(pipes[2].write(&big), PipeIo::WouldBlock);
        let mut out = Vec::new();
        assert_eq!(
            pipes[0].read(usize::MAX, &mut out),
            PipeIo::Done(PIPE_CAPACITY)
        );
        assert!(!BUDGET.over());
        assert_eq!(pipes[3].write(&big), PipeIo::Done(PIPE_CAPACITY));
        drop(pipes);
        assert_eq!(BUDGET.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn pipe_semantics() {
        let p = Pipe::new();
        p.open_end(false);
        p.open_end(true);
        let mut out = Vec::new();
        assert_eq!(p.read(10, &mut out), PipeIo::WouldBlock);
        assert_eq!(p.write(b"hello"), PipeIo::Done(5));
        assert_eq!(p.read(3, &mut out), PipeIo::Done(3));
        assert_eq!(out, b"hel");
        let big = vec![0u8; PIPE_CAPACITY];
        assert_eq!(p.write(&big), PipeIo::Done(PIPE_CAPACITY - 2));
        assert_eq!(p.write(b"x"), PipeIo::WouldBlock);
        p.close_end(true);
        out.clear();
        assert_eq!(p.read(usize::MAX, &mut out), PipeIo::Done(PIPE_CAPACITY));
        assert_eq!(p.read(1, &mut out), PipeIo::Closed);
        p.close_end(false);
        p.open_end(true);
        assert_eq!(p.write(b"x"), PipeIo::Closed);
    }
}
