//! The VMM side of the host-call queue: an I/O thread that serves the
//! sentry's requests in guest memory (see `abi::hostcall::queue`).
//!
//! The thread sleeps on the doorbell eventfd (a `KVM_IOEVENTFD` on
//! `port::NOTIFY`, so ringing it never exits to this process), and before
//! sleeping it sets `HOST_WAITING` and re-checks the ring, so a sentry that
//! posts while the thread is busy does not ring at all. Every guest address
//! and length in a request is validated through vm-memory; buffers are
//! read and written in place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use memory::vm_memory::VolatileSlice;
use memory::GuestRam;
use vmm_sys_util::eventfd::EventFd;

use crate::abi::{gpa, queue as q};

/// A Linux errno.
pub type Errno = i32;

/// The host operations behind the queue. Handles are small integers the
/// backend owns; 0, 1 and 2 are the container's stdin, stdout and stderr.
/// Each guest buffer arrives as a bounds-checked `VolatileSlice`.
pub trait HostBackend: Send {
    /// Open `path` read-only, confined beneath the container root.
    fn open(&mut self, path: &[u8]) -> Result<u32, Errno>;
    /// Read into `dst` at the current offset.
    fn read(&mut self, h: u32, dst: &VolatileSlice<'_, ()>) -> Result<usize, Errno>;
    /// Read into `dst` at `offset`.
    fn pread(&mut self, h: u32, dst: &VolatileSlice<'_, ()>, offset: u64) -> Result<usize, Errno>;
    /// Write `src` at the current offset.
    fn write(&mut self, h: u32, src: &VolatileSlice<'_, ()>) -> Result<usize, Errno>;
    /// Linux x86-64 `struct stat` of the handle.
    fn fstat(&mut self, h: u32) -> Result<[u8; 144], Errno>;
    /// Kernel `struct termios` (36 bytes) of the handle, or `ENOTTY`.
    fn tcgets(&mut self, h: u32) -> Result<[u8; 36], Errno>;
    /// Drop the handle.
    fn close(&mut self, h: u32) -> Result<(), Errno>;
}

/// How long the I/O thread polls the ring after its last request.
const POLL: std::time::Duration = std::time::Duration::from_micros(0);

const EFAULT: Errno = 14;
const EINVAL: Errno = 22;
const ENOSYS: Errno = 38;

/// Statistics of the I/O thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueStats {
    /// Requests served.
    pub served: u64,
    /// Times the thread woke up from the doorbell.
    pub wakeups: u64,
}

/// The running I/O thread.
#[derive(Debug)]
pub struct HostCallServer {
    stop: Arc<AtomicBool>,
    doorbell: Arc<EventFd>,
    thread: Option<JoinHandle<QueueStats>>,
}

impl HostCallServer {
    /// Start serving the queue of `ram`, woken by `doorbell`.
    pub fn start(
        ram: GuestRam,
        doorbell: Arc<EventFd>,
        mut backend: Box<dyn HostBackend>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, d) = (stop.clone(), doorbell.clone());
        let thread = std::thread::Builder::new()
            .name("rf-hostcall".into())
            .spawn(move || serve(&ram, &d, &s, backend.as_mut()))?;
        Ok(HostCallServer {
            stop,
            doorbell,
            thread: Some(thread),
        })
    }

    /// Serve what is left, stop the thread and return its statistics.
    pub fn stop(mut self) -> QueueStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> QueueStats {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.doorbell.write(1);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for HostCallServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

fn qa(off: u64) -> u64 {
    gpa::QUEUE + off
}

fn serve(
    ram: &GuestRam,
    doorbell: &EventFd,
    stop: &AtomicBool,
    backend: &mut dyn HostBackend,
) -> QueueStats {
    let mut stats = QueueStats::default();
    let mut tail = ram.load_u64(qa(q::TAIL), Ordering::Acquire).unwrap_or(0);
    loop {
        tail = drain(ram, backend, tail, &mut stats);
        if stop.load(Ordering::SeqCst) {
            return stats;
        }
        // Poll a little before sleeping: a sentry in the middle of a burst
        // (or waiting for a synchronous answer) posts again within
        // microseconds, and waking a sleeping thread costs tens of them.
        let poll_until = std::time::Instant::now() + POLL;
        let mut found = false;
        while std::time::Instant::now() < poll_until {
            if posted(ram, tail) {
                found = true;
                break;
            }
            std::hint::spin_loop();
        }
        if found {
            continue;
        }
        // Announce that we sleep, then look again before sleeping.
        let _ = ram.store_u32(qa(q::HOST_WAITING), 1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if posted(ram, tail) || stop.load(Ordering::SeqCst) {
            let _ = ram.store_u32(qa(q::HOST_WAITING), 0, Ordering::SeqCst);
            continue;
        }
        let _ = doorbell.read();
        let _ = ram.store_u32(qa(q::HOST_WAITING), 0, Ordering::SeqCst);
        stats.wakeups += 1;
    }
}

fn slot(seq: u64) -> u64 {
    qa(q::SLOTS + (seq % q::NR_SLOTS) * q::SLOT_SIZE)
}

fn posted(ram: &GuestRam, tail: u64) -> bool {
    matches!(
        ram.load_u32(slot(tail) + q::SLOT_STATE, Ordering::Acquire),
        Ok(q::STATE_POSTED)
    )
}

/// Serve posted slots in order from `tail`; returns the new tail.
fn drain(
    ram: &GuestRam,
    backend: &mut dyn HostBackend,
    mut tail: u64,
    stats: &mut QueueStats,
) -> u64 {
    while posted(ram, tail) {
        let s = slot(tail);
        let res = match serve_one(ram, backend, s) {
            Ok(n) => n,
            Err(e) => -i64::from(e),
        };
        let _ = ram.store_u64(s + q::SLOT_RESULT, res as u64, Ordering::Relaxed);
        let _ = ram.store_u32(s + q::SLOT_STATE, q::STATE_DONE, Ordering::Release);
        tail += 1;
        let _ = ram.store_u64(qa(q::TAIL), tail, Ordering::Release);
        stats.served += 1;
    }
    tail
}

fn serve_one(ram: &GuestRam, backend: &mut dyn HostBackend, s: u64) -> Result<i64, Errno> {
    let rd32 = |o: u64| ram.load_u32(s + o, Ordering::Relaxed).map_err(|_| EFAULT);
    let rd64 = |o: u64| ram.load_u64(s + o, Ordering::Relaxed).map_err(|_| EFAULT);
    let op = rd32(q::SLOT_OP)?;
    let h = rd32(q::SLOT_HANDLE)?;
    let addr = rd64(q::SLOT_ADDR)?;
    let len = rd64(q::SLOT_LEN)?;
    let offset = rd64(q::SLOT_OFFSET)?;
    let buf = |max: u64| {
        if len > max {
            return Err(EINVAL);
        }
        ram.slice(addr, len).map_err(|_| EFAULT)
    };
    let count = |n: usize| i64::try_from(n).map_err(|_| EINVAL);
    match op {
        q::OP_NOP => Ok(0),
        q::OP_OPEN => {
            let mut path = vec![0u8; usize::try_from(len.min(q::PATH_MAX)).map_err(|_| EINVAL)?];
            if len > q::PATH_MAX {
                return Err(36); // ENAMETOOLONG
            }
            ram.read_bytes(addr, &mut path).map_err(|_| EFAULT)?;
            backend.open(&path).map(i64::from)
        }
        q::OP_READ => count(backend.read(h, &buf(q::IO_MAX)?)?),
        q::OP_PREAD => count(backend.pread(h, &buf(q::IO_MAX)?, offset)?),
        q::OP_WRITE => count(backend.write(h, &buf(q::IO_MAX)?)?),
        q::OP_FSTAT => {
            let st = backend.fstat(h)?;
            if len < 144 {
                return Err(EINVAL);
            }
            ram.write_bytes(addr, &st).map_err(|_| EFAULT)?;
            Ok(0)
        }
        q::OP_TCGETS => {
            let t = backend.tcgets(h)?;
            if len < 36 {
                return Err(EINVAL);
            }
            ram.write_bytes(addr, &t).map_err(|_| EFAULT)?;
            Ok(0)
        }
        q::OP_CLOSE => backend.close(h).map(|()| 0),
        _ => Err(ENOSYS),
    }
}
