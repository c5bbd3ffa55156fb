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

use guest_kernel::abi::Errno as GuestErrno;
use guest_kernel::platform::{HostHandle, HostOps, HOST_STDERR, HOST_STDOUT};
use memory::vm_memory::VolatileSlice;
use memory::GuestRam;
use vmm_sys_util::eventfd::EventFd;

use crate::abi::{gpa, queue as q};

/// A Linux errno.
pub type Errno = i32;

/// The host services behind the queue: the same [`HostOps`] the ptrace
/// platform calls directly (`devices::HostServices` in the VMM). Handles
/// 0, 1 and 2 are the container's stdin, stdout and stderr.
pub type SharedHost = Arc<dyn HostOps + Send + Sync>;

/// How long the I/O thread polls the ring after a request before it
/// sleeps: adaptive, as KVM's halt-polling. Waking a sleeping host thread
/// costs 20-40 us on these machines (a host call then takes ~32 us against
/// ~1.5 us when the thread is polling), so a poll that catches the next
/// request doubles the window, up to `POLL_MAX`; one that times out halves
/// it, down to `POLL_MIN`.
const POLL_MIN: std::time::Duration = std::time::Duration::from_micros(10);
const POLL_MAX: std::time::Duration = std::time::Duration::from_micros(100);

const EFAULT: Errno = 14;
const ENOTTY: Errno = 25;
const EINVAL: Errno = 22;
const ENAMETOOLONG: Errno = 36;
const ENOSYS: Errno = 38;

/// Statistics of the I/O thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueStats {
    /// Requests served.
    pub served: u64,
    /// Times the thread woke up from the doorbell.
    pub wakeups: u64,
    /// Wake-up interrupts sent to a halted sentry.
    pub wakes: u64,
}

/// Wakes the vCPU when the sentry halts waiting for a completion.
pub type Waker = Box<dyn Fn(u32) + Send + Sync>;

/// What the I/O thread and the vCPU threads share: the queue's consumer
/// side. A vCPU whose sentry finds its request still unclaimed after a
/// short spin exits to its thread, which serves the file operations at
/// the head of the queue itself (`serve_files`): on a busy host the I/O
/// thread may wait for a CPU for milliseconds, and a vCPU thread already
/// has one.
struct Shared {
    ram: GuestRam,
    host: SharedHost,
    wake: Waker,
    stop: AtomicBool,
    /// The next slot to serve; whoever holds it serves, in order.
    tail: std::sync::Mutex<u64>,
    /// Requests the vCPU threads served.
    by_vcpus: std::sync::atomic::AtomicU64,
}

/// The running I/O thread.
pub struct HostCallServer {
    shared: Arc<Shared>,
    doorbell: Arc<EventFd>,
    thread: Option<JoinHandle<QueueStats>>,
}

impl std::fmt::Debug for HostCallServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCallServer").finish_non_exhaustive()
    }
}

/// Operations a vCPU thread may serve: they end promptly. A read of the
/// container's stdin, a write to a full pipe or a terminal request can
/// wait indefinitely, and a vCPU thread must stay free to be paused.
fn served_by_vcpus(op: u32) -> bool {
    matches!(
        op,
        q::OP_OPEN
            | q::OP_PREAD
            | q::OP_FSTAT
            | q::OP_CLOSE
            | q::OP_NOP
            | q::OP_GETDENTS64
            | q::OP_READLINK
            | q::OP_LSTAT
            | q::OP_OPEN_RW
            | q::OP_PWRITE
            | q::OP_FTRUNCATE
            | q::OP_PATH
    )
}

impl HostCallServer {
    /// Start serving the queue of `ram`, woken by `doorbell`.
    pub fn start(
        ram: GuestRam,
        doorbell: Arc<EventFd>,
        host: SharedHost,
        wake: Waker,
    ) -> std::io::Result<Self> {
        let tail = ram.load_u64(qa(q::TAIL), Ordering::Acquire).unwrap_or(0);
        let shared = Arc::new(Shared {
            ram,
            host,
            wake,
            stop: AtomicBool::new(false),
            tail: std::sync::Mutex::new(tail),
            by_vcpus: std::sync::atomic::AtomicU64::new(0),
        });
        let (s, d) = (shared.clone(), doorbell.clone());
        let thread = std::thread::Builder::new()
            .name("rf-hostcall".into())
            .spawn(move || serve(&s, &d))?;
        Ok(HostCallServer {
            shared,
            doorbell,
            thread: Some(thread),
        })
    }

    /// On a vCPU thread whose sentry asked (`port::SERVE`): serve the file
    /// operations at the head of the queue, unless the I/O thread is
    /// serving already. Never blocks for long.
    pub fn serve_files(&self) {
        let sh = &*self.shared;
        let Ok(mut tail) = sh.tail.try_lock() else {
            return; // the I/O thread is at it
        };
        let mut stats = QueueStats::default();
        *tail = drain(
            &sh.ram, &*sh.host, &sh.wake, *tail, &sh.stop, true, &mut stats,
        );
        sh.by_vcpus.fetch_add(stats.served, Ordering::Relaxed);
    }

    /// Serve what is left, stop the thread and return its statistics.
    pub fn stop(mut self) -> QueueStats {
        self.shutdown()
    }

    fn shutdown(&mut self) -> QueueStats {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.doorbell.write(1);
        let mut stats = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        stats.served += self.shared.by_vcpus.load(Ordering::Relaxed);
        stats
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

fn serve(sh: &Shared, doorbell: &EventFd) -> QueueStats {
    let (ram, stop) = (&sh.ram, &sh.stop);
    let mut stats = QueueStats::default();
    let mut poll = POLL_MIN;
    // The tail as it is now (a vCPU thread may have served some), and
    // whether a request waits there; "yes" while a vCPU thread serves.
    let waiting = || match sh.tail.try_lock() {
        Ok(t) => posted(ram, *t),
        Err(std::sync::TryLockError::WouldBlock) => true,
        Err(std::sync::TryLockError::Poisoned(t)) => posted(ram, *t.into_inner()),
    };
    loop {
        {
            let mut t = sh.tail.lock().unwrap_or_else(|e| e.into_inner());
            *t = drain(ram, &*sh.host, &sh.wake, *t, stop, false, &mut stats);
        }
        if stop.load(Ordering::SeqCst) {
            return stats;
        }
        // Poll a little before sleeping: a sentry in the middle of a burst
        // (or waiting for a synchronous answer) posts again within
        // microseconds, and waking a sleeping thread costs tens of them.
        let poll_until = std::time::Instant::now() + poll;
        let mut found = false;
        while std::time::Instant::now() < poll_until {
            if waiting() {
                found = true;
                break;
            }
            std::hint::spin_loop();
        }
        if found {
            poll = (poll * 2).min(POLL_MAX);
            continue;
        }
        poll = (poll / 2).max(POLL_MIN);
        // Announce that we sleep, then look again before sleeping.
        let _ = ram.store_u32(qa(q::HOST_WAITING), 1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if waiting() || stop.load(Ordering::SeqCst) {
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
        Ok(q::STATE_POSTED | q::STATE_BUSY)
    )
}

/// Claim the posted slot `s` (POSTED -> TAKEN), waiting out a sentry that
/// is appending to it. `false` if the slot holds no request, or if it is
/// still busy once `stop` is set: the vCPU has stopped by then, so a slot
/// left busy (by a broken guest) would otherwise hang the shutdown.
fn claim(ram: &GuestRam, s: u64, stop: &AtomicBool) -> bool {
    let mut spins = 0u32;
    loop {
        match ram.cas_u32(
            s + q::SLOT_STATE,
            q::STATE_POSTED,
            q::STATE_TAKEN,
            Ordering::AcqRel,
        ) {
            Ok(Ok(_)) => return true,
            Ok(Err(q::STATE_BUSY)) if stop.load(Ordering::SeqCst) => return false,
            Ok(Err(q::STATE_BUSY)) => {
                // The sentry holds it for a few instructions, unless its
                // vCPU thread was preempted in between.
                spins += 1;
                if spins < 1000 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            _ => return false,
        }
    }
}

/// Serve posted slots in order from `tail`; returns the new tail. With
/// `files_only`, stop at the first that is not [`served_by_vcpus`].
fn drain(
    ram: &GuestRam,
    host: &dyn HostOps,
    wake: &Waker,
    mut tail: u64,
    stop: &AtomicBool,
    files_only: bool,
    stats: &mut QueueStats,
) -> u64 {
    while posted(ram, tail) {
        let s = slot(tail);
        if files_only
            && !ram
                .load_u32(s + q::SLOT_OP, Ordering::Relaxed)
                .is_ok_and(served_by_vcpus)
        {
            break;
        }
        if !claim(ram, s, stop) {
            break;
        }
        let res = match serve_one(ram, host, s) {
            Ok(n) => n,
            Err(e) => -i64::from(e),
        };
        let _ = ram.store_u64(s + q::SLOT_RESULT, res as u64, Ordering::Relaxed);
        let _ = ram.store_u32(s + q::SLOT_STATE, q::STATE_DONE, Ordering::Release);
        // The initial tail was read from guest memory: any value.
        tail = tail.wrapping_add(1);
        let _ = ram.store_u64(qa(q::TAIL), tail, Ordering::Release);
        stats.served += 1;
        // Pairs with the sentry's fence between setting GUEST_WAITING and
        // its last look at the slot before it halts.
        std::sync::atomic::fence(Ordering::SeqCst);
        if let Ok(w) = ram.load_u32(qa(q::GUEST_WAITING), Ordering::SeqCst) {
            if w != 0 {
                stats.wakes += 1;
                wake(w);
            }
        }
    }
    tail
}

/// Serve the requests posted in the queue of `ram`, from the `TAIL` found
/// there, as the I/O thread does at shutdown (a slot left busy is not
/// waited for); returns how many were served. The entry point of the
/// fuzz target `hostcall_decoder` (`fuzz/`): every byte of `ram` is the
/// guest's.
#[doc(hidden)]
pub fn serve_posted(ram: &GuestRam, host: &dyn HostOps) -> u64 {
    let stop = AtomicBool::new(true);
    let wake: Waker = Box::new(|_| {});
    let mut stats = QueueStats::default();
    let tail = ram.load_u64(qa(q::TAIL), Ordering::Acquire).unwrap_or(0);
    drain(ram, host, &wake, tail, &stop, false, &mut stats);
    stats.served
}

/// A guest buffer as a byte slice for the host call.
///
/// The range was bounds-checked by vm-memory (`GuestRam::slice`). Handing
/// it to `HostOps` in place is the zero-copy path of the architecture: the
/// host services only pass these bytes to host syscalls (`read`, `pread`,
/// `write`) and never interpret them, so a guest that changes them
/// concurrently can only change what is read or written.
fn guest_bytes<'a>(v: &'a VolatileSlice<'a, ()>) -> &'a mut [u8] {
    let guard = v.ptr_guard_mut();
    // SAFETY: `v` is a bounds-checked view of `v.len()` bytes inside the
    // guest RAM mapping, which lives as long as `GuestRam` (borrowed for
    // 'a); any byte value is valid for u8. The sentry does not touch the
    // buffer until the request is marked done (see the module doc).
    unsafe { std::slice::from_raw_parts_mut(guard.as_ptr(), v.len()) }
}

fn result_of(r: Result<usize, GuestErrno>) -> Result<i64, Errno> {
    match r {
        Ok(n) => i64::try_from(n).map_err(|_| EINVAL),
        Err(e) => Err(e.0),
    }
}

/// Write all of `data` (asynchronous stdout/stderr writes have already been
/// reported as complete to the application, so a short write must not lose
/// the rest).
fn write_all(host: &dyn HostOps, h: HostHandle, data: &[u8]) -> Result<i64, Errno> {
    let mut done = 0;
    while done < data.len() {
        match host.write(h, &data[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if done == 0 => return Err(e.0),
            Err(_) => break,
        }
    }
    i64::try_from(done).map_err(|_| EINVAL)
}

/// Print a sentry log record through the VMM's logger.
fn log_record(level: u32, text: &[u8]) {
    let level = match level {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    };
    log::log!(target: "sentry", level, "{}", String::from_utf8_lossy(text).trim_end());
}

fn serve_one(ram: &GuestRam, host: &dyn HostOps, s: u64) -> Result<i64, Errno> {
    let rd32 = |o: u64| ram.load_u32(s + o, Ordering::Relaxed).map_err(|_| EFAULT);
    let rd64 = |o: u64| ram.load_u64(s + o, Ordering::Relaxed).map_err(|_| EFAULT);
    let op = rd32(q::SLOT_OP)?;
    let h = HostHandle(rd32(q::SLOT_HANDLE)?);
    let addr = rd64(q::SLOT_ADDR)?;
    let len = rd64(q::SLOT_LEN)?;
    let offset = rd64(q::SLOT_OFFSET)?;
    let buf = |max: u64| {
        if len > max {
            return Err(EINVAL);
        }
        ram.slice(addr, len).map_err(|_| EFAULT)
    };
    match op {
        q::OP_NOP => Ok(0),
        q::OP_OPEN => {
            if len > q::PATH_MAX {
                return Err(ENAMETOOLONG);
            }
            let mut path = vec![0u8; usize::try_from(len).map_err(|_| EINVAL)?];
            ram.read_bytes(addr, &mut path).map_err(|_| EFAULT)?;
            host.open(&path).map(|h| i64::from(h.0)).map_err(|e| e.0)
        }
        q::OP_READ => result_of(host.read(h, guest_bytes(&buf(q::IO_MAX)?))),
        q::OP_PREAD => result_of(host.pread(h, guest_bytes(&buf(q::IO_MAX)?), offset)),
        q::OP_GETDENTS64 => result_of(host.getdents64(h, guest_bytes(&buf(q::IO_MAX)?))),
        q::OP_TTY_IOCTL => {
            let cmd = u32::try_from(offset).map_err(|_| EINVAL)?;
            let want = q::tty_ioctl_size(cmd).ok_or(ENOTTY)?;
            if len != want {
                return Err(EINVAL);
            }
            let mut arg = vec![0u8; want as usize];
            ram.read_bytes(addr, &mut arg).map_err(|_| EFAULT)?;
            host.tty_ioctl(h, cmd, &mut arg).map_err(|e| e.0)?;
            ram.write_bytes(addr, &arg).map_err(|_| EFAULT)?;
            Ok(0)
        }
        q::OP_TAKE_EXEC => result_of(host.take_exec(guest_bytes(&buf(q::IO_MAX)?))),
        q::OP_EXEC_EXIT => {
            host.exec_exited(h.0, offset as u32 as i32);
            Ok(0)
        }
        q::OP_LSTAT => {
            if !(144..=q::PATH_MAX).contains(&len) || offset > len {
                return Err(EINVAL);
            }
            let mut path = vec![0u8; usize::try_from(offset).map_err(|_| EINVAL)?];
            ram.read_bytes(addr, &mut path).map_err(|_| EFAULT)?;
            let st = host.lstat(&path).map_err(|e| e.0)?;
            ram.write_bytes(addr, &st.to_bytes()).map_err(|_| EFAULT)?;
            Ok(0)
        }
        q::OP_READLINK => {
            if len > q::PATH_MAX || offset > len {
                return Err(EINVAL);
            }
            let mut path = vec![0u8; usize::try_from(offset).map_err(|_| EINVAL)?];
            ram.read_bytes(addr, &mut path).map_err(|_| EFAULT)?;
            let mut out = vec![0u8; usize::try_from(len).map_err(|_| EINVAL)?];
            let n = host.readlink(&path, &mut out).map_err(|e| e.0)?;
            ram.write_bytes(addr, &out[..n]).map_err(|_| EFAULT)?;
            Ok(n as i64)
        }
        q::OP_OPEN_RW => {
            if len > q::PATH_MAX {
                return Err(ENAMETOOLONG);
            }
            let mut path = vec![0u8; usize::try_from(len).map_err(|_| EINVAL)?];
            ram.read_bytes(addr, &mut path).map_err(|_| EFAULT)?;
            let (flags, mode) = (offset as u32, (offset >> 32) as u32);
            host.open_rw(&path, flags, mode)
                .map(|h| i64::from(h.0))
                .map_err(|e| e.0)
        }
        q::OP_PWRITE => result_of(host.pwrite(h, guest_bytes(&buf(q::IO_MAX)?), offset)),
        q::OP_FTRUNCATE => host.ftruncate(h, offset).map(|_| 0).map_err(|e| e.0),
        q::OP_FSYNC => host.fsync(h).map(|_| 0).map_err(|e| e.0),
        q::OP_PATH => {
            // Two paths at most (a rename), or a path and a symlink target.
            if len > 2 * q::PATH_MAX + 1 {
                return Err(EINVAL);
            }
            let mut payload = vec![0u8; usize::try_from(len).map_err(|_| EINVAL)?];
            ram.read_bytes(addr, &mut payload).map_err(|_| EFAULT)?;
            let (path, extra) = q::split_path_payload(&payload).ok_or(EINVAL)?;
            host.path_op(h.0, path, extra, offset)
                .map(|_| 0)
                .map_err(|e| e.0)
        }
        q::OP_WRITE if h == HOST_STDOUT || h == HOST_STDERR => {
            write_all(host, h, guest_bytes(&buf(q::IO_MAX)?))
        }
        q::OP_WRITE => result_of(host.write(h, guest_bytes(&buf(q::IO_MAX)?))),
        q::OP_FSTAT => {
            if len < 144 {
                return Err(EINVAL);
            }
            let st = host.fstat(h).map_err(|e| e.0)?;
            ram.write_bytes(addr, &st.to_bytes()).map_err(|_| EFAULT)?;
            Ok(0)
        }
        q::OP_TCGETS => {
            let t = host.tcgets(h).map_err(|e| e.0)?;
            if len < t.len() as u64 {
                return Err(EINVAL);
            }
            ram.write_bytes(addr, &t).map_err(|_| EFAULT)?;
            Ok(0)
        }
        q::OP_CLOSE => {
            host.close(h);
            Ok(0)
        }
        q::OP_LOG => {
            if len > q::LOG_MAX {
                return Err(EINVAL);
            }
            let mut text = vec![0u8; usize::try_from(len).map_err(|_| EINVAL)?];
            ram.read_bytes(addr, &mut text).map_err(|_| EFAULT)?;
            log_record(h.0, &text);
            Ok(0)
        }
        _ => Err(ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_kernel::abi::linux::TERMIOS_SIZE;
    use guest_kernel::abi::KResult;
    use guest_kernel::platform::HostStat;
    use std::sync::Mutex;

    /// Records what reaches the host.
    #[derive(Debug, Default)]
    struct Recorder {
        out: Mutex<Vec<u8>>,
        writes: Mutex<u32>,
    }

    impl HostOps for Recorder {
        fn open(&self, path: &[u8]) -> KResult<HostHandle> {
            if path == b"/ok" {
                Ok(HostHandle(7))
            } else {
                Err(GuestErrno::ENOENT)
            }
        }
        fn read(&self, _h: HostHandle, buf: &mut [u8]) -> KResult<usize> {
            buf.fill(b'r');
            Ok(buf.len())
        }
        fn pread(&self, h: HostHandle, buf: &mut [u8], _offset: u64) -> KResult<usize> {
            self.read(h, buf)
        }
        fn write(&self, _h: HostHandle, data: &[u8]) -> KResult<usize> {
            *self.writes.lock().unwrap() += 1;
            self.out.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn fstat(&self, _h: HostHandle) -> KResult<HostStat> {
            Err(GuestErrno::EBADF)
        }
        fn tcgets(&self, _h: HostHandle) -> KResult<[u8; TERMIOS_SIZE]> {
            Err(GuestErrno::ENOTTY)
        }
        fn close(&self, _h: HostHandle) {}
    }

    /// Post a request in slot `seq` as the sentry does.
    fn post(ram: &GuestRam, seq: u64, op: u32, h: u32, addr: u64, len: u64) {
        let s = slot(seq);
        ram.store_u32(s + q::SLOT_OP, op, Ordering::Relaxed)
            .unwrap();
        ram.store_u32(s + q::SLOT_HANDLE, h, Ordering::Relaxed)
            .unwrap();
        ram.store_u64(s + q::SLOT_ADDR, addr, Ordering::Relaxed)
            .unwrap();
        ram.store_u64(s + q::SLOT_LEN, len, Ordering::Relaxed)
            .unwrap();
        ram.store_u32(s + q::SLOT_STATE, q::STATE_POSTED, Ordering::Release)
            .unwrap();
    }

    /// What the I/O thread does: serve everything posted from slot 0.
    fn drain_all(ram: &GuestRam, host: &dyn HostOps, wake: &Waker, stats: &mut QueueStats) -> u64 {
        drain(ram, host, wake, 0, &AtomicBool::new(false), false, stats)
    }

    fn result(ram: &GuestRam, seq: u64) -> i64 {
        assert_eq!(
            ram.load_u32(slot(seq) + q::SLOT_STATE, Ordering::Acquire)
                .unwrap(),
            q::STATE_DONE
        );
        ram.load_u64(slot(seq) + q::SLOT_RESULT, Ordering::Acquire)
            .unwrap() as i64
    }

    /// A vCPU thread serves the file operations at the head of the queue,
    /// in order, and stops at the first that could block (a read of the
    /// container's stdin), which the I/O thread then serves.
    #[test]
    fn vcpu_threads_serve_file_operations_only() {
        let ram = GuestRam::new(64 << 20).unwrap();
        let host = Recorder::default();
        let wake: Waker = Box::new(|_| {});
        ram.write_bytes(0x30_0000, b"/ok").unwrap();
        post(&ram, 0, q::OP_OPEN, 0, 0x30_0000, 3);
        post(&ram, 1, q::OP_NOP, 0, 0, 0);
        post(&ram, 2, q::OP_READ, 0, 0x31_0000, 4);
        post(&ram, 3, q::OP_OPEN, 0, 0x30_0000, 3);
        let mut stats = QueueStats::default();
        let stop = AtomicBool::new(false);
        let tail = drain(&ram, &host, &wake, 0, &stop, true, &mut stats);
        assert_eq!((tail, stats.served), (2, 2));
        assert_eq!(result(&ram, 0), 7);
        assert_eq!(result(&ram, 1), 0);
        assert_eq!(
            ram.load_u32(slot(2) + q::SLOT_STATE, Ordering::Acquire)
                .unwrap(),
            q::STATE_POSTED
        );
        let tail = drain(&ram, &host, &wake, tail, &stop, false, &mut stats);
        assert_eq!(tail, 4);
        assert_eq!(result(&ram, 2), 4);
        assert_eq!(result(&ram, 3), 7);
    }

    #[test]
    fn requests_are_validated_and_served_in_order() {
        let ram = GuestRam::new(64 << 20).unwrap();
        let host = Recorder::default();
        let woken = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let w = woken.clone();
        let wake: Waker = Box::new(move |_| {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let arena = gpa::QUEUE + q::ARENA;
        ram.write_bytes(arena, b"hello, ").unwrap();
        ram.write_bytes(arena + 7, b"world\n").unwrap();
        ram.write_bytes(0x30_0000, b"/ok").unwrap();
        let size = ram.size();
        post(&ram, 0, q::OP_WRITE, 1, arena, 7);
        post(&ram, 1, q::OP_WRITE, 1, arena + 7, 6);
        post(&ram, 2, q::OP_WRITE, 1, size - 4, 8); // past the end of RAM
        post(&ram, 3, q::OP_READ, 0, u64::MAX - 2, 16); // wraps
        post(&ram, 4, q::OP_READ, 0, 0x30_0000, q::IO_MAX + 1); // too long
        post(&ram, 5, q::OP_OPEN, 0, 0x30_0000, 3);
        post(&ram, 6, q::OP_OPEN, 0, 0x30_0000, q::PATH_MAX + 1);
        post(&ram, 7, 999, 0, 0, 0);
        post(&ram, 8, q::OP_LOG, 3, arena, q::LOG_MAX + 1);
        post(&ram, 9, q::OP_READ, 0, 0x30_0000, 4);
        ram.store_u32(qa(q::GUEST_WAITING), 1, Ordering::SeqCst)
            .unwrap();
        let mut stats = QueueStats::default();
        let tail = drain_all(&ram, &host, &wake, &mut stats);
        assert_eq!(tail, 10);
        assert_eq!(stats.served, 10);
        assert_eq!(result(&ram, 0), 7);
        assert_eq!(result(&ram, 1), 6);
        assert_eq!(result(&ram, 2), -i64::from(EFAULT));
        assert_eq!(result(&ram, 3), -i64::from(EFAULT));
        assert_eq!(result(&ram, 4), -i64::from(EINVAL));
        assert_eq!(result(&ram, 5), 7);
        assert_eq!(result(&ram, 6), -i64::from(ENAMETOOLONG));
        assert_eq!(result(&ram, 7), -i64::from(ENOSYS));
        assert_eq!(result(&ram, 8), -i64::from(EINVAL));
        assert_eq!(result(&ram, 9), 4);
        let mut back = [0u8; 4];
        ram.read_bytes(0x30_0000, &mut back).unwrap();
        assert_eq!(&back, b"rrrr");
        assert_eq!(&*host.out.lock().unwrap(), b"hello, world\n");
        assert_eq!(
            woken.load(Ordering::SeqCst),
            10,
            "a waiting sentry is woken after each completion"
        );
        assert_eq!(ram.load_u64(qa(q::TAIL), Ordering::Acquire).unwrap(), 10);
    }

    /// One recorded call: (op, path, extra, argument).
    type PathCall = (u32, Vec<u8>, Vec<u8>, u64);

    /// Records the `OP_PATH` calls that reach the host.
    #[derive(Debug, Default)]
    struct PathRecorder {
        calls: Mutex<Vec<PathCall>>,
    }

    impl HostOps for PathRecorder {
        fn open(&self, _path: &[u8]) -> KResult<HostHandle> {
            Err(GuestErrno::ENOENT)
        }
        fn read(&self, _h: HostHandle, _buf: &mut [u8]) -> KResult<usize> {
            Ok(0)
        }
        fn pread(&self, _h: HostHandle, _buf: &mut [u8], _offset: u64) -> KResult<usize> {
            Ok(0)
        }
        fn write(&self, _h: HostHandle, data: &[u8]) -> KResult<usize> {
            Ok(data.len())
        }
        fn fstat(&self, _h: HostHandle) -> KResult<HostStat> {
            Err(GuestErrno::EBADF)
        }
        fn tcgets(&self, _h: HostHandle) -> KResult<[u8; TERMIOS_SIZE]> {
            Err(GuestErrno::ENOTTY)
        }
        fn path_op(&self, op: u32, path: &[u8], extra: &[u8], arg: u64) -> KResult<()> {
            self.calls
                .lock()
                .unwrap()
                .push((op, path.to_vec(), extra.to_vec(), arg));
            Ok(())
        }
        fn open_rw(&self, path: &[u8], flags: u32, mode: u32) -> KResult<HostHandle> {
            self.calls.lock().unwrap().push((
                0,
                path.to_vec(),
                Vec::new(),
                u64::from(flags) << 16 | u64::from(mode),
            ));
            Ok(HostHandle(9))
        }
        fn close(&self, _h: HostHandle) {}
    }

    #[test]
    fn path_requests_are_bounded_and_split() {
        let ram = GuestRam::new(64 << 20).unwrap();
        let host = PathRecorder::default();
        let wake: Waker = Box::new(|_| {});
        let at = 0x30_0000;
        ram.write_bytes(at, b"/rw/a\0/rw/b").unwrap();
        post(&ram, 0, q::OP_PATH, q::path_op::RENAME, at, 11);
        post(&ram, 1, q::OP_PATH, q::path_op::UNLINK, at, 5); // no NUL
        post(
            &ram,
            2,
            q::OP_PATH,
            q::path_op::UNLINK,
            at,
            2 * q::PATH_MAX + 2,
        );
        post(&ram, 3, q::OP_OPEN_RW, 0, at, 5);
        ram.store_u64(
            slot(3) + q::SLOT_OFFSET,
            0o101 | 0o640 << 32,
            Ordering::Relaxed,
        )
        .unwrap();
        post(&ram, 4, q::OP_OPEN_RW, 0, at, q::PATH_MAX + 1);
        post(&ram, 5, q::OP_PWRITE, 3, u64::MAX - 2, 16); // wraps
        let mut stats = QueueStats::default();
        assert_eq!(drain_all(&ram, &host, &wake, &mut stats), 6);
        assert_eq!(result(&ram, 0), 0);
        assert_eq!(result(&ram, 1), -i64::from(EINVAL));
        assert_eq!(result(&ram, 2), -i64::from(EINVAL));
        assert_eq!(result(&ram, 3), 9);
        assert_eq!(result(&ram, 4), -i64::from(ENAMETOOLONG));
        assert_eq!(result(&ram, 5), -i64::from(EFAULT));
        assert_eq!(
            *host.calls.lock().unwrap(),
            vec![
                (q::path_op::RENAME, b"/rw/a".to_vec(), b"/rw/b".to_vec(), 0),
                (0, b"/rw/a".to_vec(), Vec::new(), 0o101 << 16 | 0o640),
            ]
        );
    }

    #[test]
    fn a_slot_being_appended_to_is_waited_for() {
        let ram = Arc::new(GuestRam::new(64 << 20).unwrap());
        let host = Recorder::default();
        let wake: Waker = Box::new(|_| {});
        let arena = gpa::QUEUE + q::ARENA;
        ram.write_bytes(arena, b"ab").unwrap();
        post(&ram, 0, q::OP_WRITE, 1, arena, 1);
        // The sentry is appending "b": the host must not serve the slot yet.
        ram.store_u32(slot(0) + q::SLOT_STATE, q::STATE_BUSY, Ordering::SeqCst)
            .unwrap();
        let r = ram.clone();
        let appender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            r.store_u64(slot(0) + q::SLOT_LEN, 2, Ordering::Relaxed)
                .unwrap();
            r.store_u32(slot(0) + q::SLOT_STATE, q::STATE_POSTED, Ordering::Release)
                .unwrap();
        });
        let mut stats = QueueStats::default();
        assert!(
            posted(&ram, 0),
            "a busy slot counts as posted, so the host does not sleep"
        );
        assert_eq!(drain_all(&ram, &host, &wake, &mut stats), 1);
        appender.join().unwrap();
        assert_eq!(result(&ram, 0), 2);
        assert_eq!(&*host.out.lock().unwrap(), b"ab");
        assert_eq!(
            *host.writes.lock().unwrap(),
            1,
            "one host write for the batch"
        );
    }

    #[test]
    fn a_slot_left_busy_does_not_hang_shutdown_and_any_tail_is_served() {
        let ram = GuestRam::new(64 << 20).unwrap();
        let host = Recorder::default();
        // A guest that stopped in the middle of an append, with a TAIL
        // about to wrap.
        let seq = u64::MAX;
        ram.store_u64(qa(q::TAIL), seq, Ordering::Relaxed).unwrap();
        post(&ram, seq, q::OP_NOP, 0, 0, 0);
        post(&ram, seq.wrapping_add(1), q::OP_NOP, 0, 0, 0);
        ram.store_u32(
            slot(seq.wrapping_add(1)) + q::SLOT_STATE,
            q::STATE_BUSY,
            Ordering::SeqCst,
        )
        .unwrap();
        assert_eq!(serve_posted(&ram, &host), 1);
        assert_eq!(result(&ram, seq), 0);
        assert_eq!(ram.load_u64(qa(q::TAIL), Ordering::Acquire).unwrap(), 0);
    }
}
