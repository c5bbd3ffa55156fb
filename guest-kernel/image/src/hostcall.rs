//! The sentry's side of the host-call queue (see `abi::hostcall::queue`).
//!
//! Synchronous calls post a request that points at the caller's buffer
//! (zero copy: the VMM reads or writes it in place) and spin until the
//! host marks it done. Writes to the standard streams are asynchronous:
//! the bytes are copied into the queue's arena and the call returns at
//! once, so a burst of small writes costs at most one doorbell, and none
//! while the host thread is still busy.

use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::abi::hostcall::{gpa, port, queue as q};
use crate::abi::{Errno, KResult};
use crate::arch::x86_64::{kva, pvm, virt_to_phys};

/// Give up on the host after this long (the VMM's I/O thread is gone).
const HOST_TIMEOUT_NS: u64 = 30_000_000_000;
/// Spin this long for a completion before halting.
const SPIN_NS: u64 = 30_000;
/// A request still unclaimed after this long: the I/O thread is asleep or
/// waits for a CPU, so the vCPU's own thread serves it (`port::SERVE`).
const SERVE_AFTER_NS: u64 = 10_000;
/// Requests the vCPU threads were asked to serve.
pub static SERVES: AtomicU64 = AtomicU64::new(0);
/// Longest halt while waiting (in case a wake-up interrupt is lost).
const HALT_BACKSTOP_NS: u64 = 10_000_000;

fn qptr(off: u64) -> u64 {
    kva(gpa::QUEUE + off)
}

fn slot_off(seq: u64) -> u64 {
    q::SLOTS + (seq % q::NR_SLOTS) * q::SLOT_SIZE
}

fn a32(off: u64) -> &'static AtomicU32 {
    // SAFETY: the queue area is mapped for the sentry's lifetime; `off` is a
    // 4-byte aligned field inside it.
    unsafe { &*(qptr(off) as *const AtomicU32) }
}

fn a64(off: u64) -> &'static AtomicU64 {
    // SAFETY: as for `a32`, 8-byte aligned.
    unsafe { &*(qptr(off) as *const AtomicU64) }
}

struct State {
    head: u64,
    reclaimed: u64,
    arena_head: u64,
    arena_free: u64,
}

/// The queue. One per sandbox (one vCPU for now).
pub struct HostQueue {
    lock: AtomicBool,
    state: core::cell::UnsafeCell<State>,
}

// SAFETY: `state` is only touched under `lock`.
unsafe impl Sync for HostQueue {}

pub static QUEUE: HostQueue = HostQueue {
    lock: AtomicBool::new(false),
    state: core::cell::UnsafeCell::new(State {
        head: 0,
        reclaimed: 0,
        arena_head: 0,
        arena_free: 0,
    }),
};

/// Statistics: doorbells rung and requests posted.
pub static DOORBELLS: AtomicU64 = AtomicU64::new(0);
pub static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Writes appended to an already posted request.
pub static APPENDS: AtomicU64 = AtomicU64::new(0);
/// Times the sentry waited for the host (synchronous calls, full queue).
pub static WAITS: AtomicU64 = AtomicU64::new(0);
/// Times the sentry halted while waiting.
pub static HALTS: AtomicU64 = AtomicU64::new(0);
/// Halts that ended by the backstop timer, not the host's wake-up.
pub static BACKSTOPS: AtomicU64 = AtomicU64::new(0);
/// Requests posted, by operation (the `OP_*` numbers below 48).
#[allow(clippy::declare_interior_mutable_const)]
static BY_OP: [AtomicU64; 48] = {
    const Z: AtomicU64 = AtomicU64::new(0);
    [Z; 48]
};
/// Nanoseconds spent waiting for the host.
pub static WAIT_NS: AtomicU64 = AtomicU64::new(0);

struct Req {
    op: u32,
    handle: u32,
    addr: u64,
    len: u64,
    offset: u64,
}

impl HostQueue {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: exclusive under the lock.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

fn doorbell() {
    fence(Ordering::SeqCst);
    if a32(q::HOST_WAITING).load(Ordering::SeqCst) != 0 {
        DOORBELLS.fetch_add(1, Ordering::Relaxed);
        a64(q::NOTIFIES).fetch_add(1, Ordering::Relaxed);
        pvm::outl(port::NOTIFY, 1);
    }
}

/// Wait until the slot at offset `s` is done: spin briefly (the usual
/// answer takes tens of microseconds), then halt the vCPU until the host's
/// wake-up interrupt (see `GUEST_WAITING`), with the timer as a backstop.
/// A request the host has claimed may take as long as its host call (a
/// read of stdin); one never claimed for [`HOST_TIMEOUT_NS`] means the
/// VMM's I/O thread is gone.
struct WaitTimer(u64);
impl Drop for WaitTimer {
    fn drop(&mut self) {
        WAIT_NS.fetch_add(crate::arch::x86_64::monotonic_ns() - self.0, Ordering::Relaxed);
    }
}

fn wait_done(s: u64) {
    use crate::arch::x86_64::{halt_until, monotonic_ns};
    WAITS.fetch_add(1, Ordering::Relaxed);
    let state = || a32(s + q::SLOT_STATE).load(Ordering::Acquire);
    let start = monotonic_ns();
    let _t = WaitTimer(start);
    let mut spins = 0u32;
    let mut served = false;
    while state() != q::STATE_DONE {
        core::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            continue;
        }
        let waited = monotonic_ns() - start;
        if !served && waited > SERVE_AFTER_NS && state() == q::STATE_POSTED {
            served = true;
            SERVES.fetch_add(1, Ordering::Relaxed);
            pvm::outl(port::SERVE, 0);
        }
        if waited > SPIN_NS {
            break;
        }
    }
    // GUEST_WAITING is a mask of the vCPUs halted for an answer.
    let me = 1u32 << crate::arch::x86_64::this_cpu();
    while state() != q::STATE_DONE {
        a32(q::GUEST_WAITING).fetch_or(me, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if state() == q::STATE_DONE {
            a32(q::GUEST_WAITING).fetch_and(!me, Ordering::SeqCst);
            return;
        }
        // Make sure a sleeping host has heard of the request.
        doorbell();
        HALTS.fetch_add(1, Ordering::Relaxed);
        let t0 = monotonic_ns();
        halt_until(t0 + HALT_BACKSTOP_NS);
        if monotonic_ns() - t0 >= HALT_BACKSTOP_NS {
            BACKSTOPS.fetch_add(1, Ordering::Relaxed);
        }
        a32(q::GUEST_WAITING).fetch_and(!me, Ordering::SeqCst);
        if state() == q::STATE_POSTED && monotonic_ns() - start > HOST_TIMEOUT_NS {
            crate::console::fatal(format_args!(
                "host call timed out: the VMM's I/O thread does not answer"
            ));
        }
    }
}

impl State {
    /// Free done slots in order, releasing their arena bytes.
    fn reclaim(&mut self) {
        while self.reclaimed < self.head {
            let s = slot_off(self.reclaimed);
            if a32(s + q::SLOT_STATE).load(Ordering::Acquire) != q::STATE_DONE {
                break;
            }
            let arena_end = a64(s + q::SLOT_PRIV).load(Ordering::Relaxed);
            if arena_end != 0 {
                self.arena_free = arena_end;
            }
            a32(s + q::SLOT_STATE).store(q::STATE_FREE, Ordering::Relaxed);
            self.reclaimed += 1;
        }
    }

    /// Append `data` to the newest request if it is an asynchronous write
    /// to `handle` that the host has not claimed yet and whose payload ends
    /// where the arena's free space begins (see the batching rule of
    /// `abi::hostcall::queue`). A burst of small writes then costs the host
    /// one `write(2)`.
    fn try_append(&mut self, handle: u32, data: &[u8]) -> bool {
        if self.head == self.reclaimed {
            return false;
        }
        let s = slot_off(self.head - 1);
        let len = data.len() as u64;
        let old_len = a64(s + q::SLOT_LEN).load(Ordering::Relaxed);
        let pos = self.arena_head % q::ARENA_SIZE;
        if a32(s + q::SLOT_OP).load(Ordering::Relaxed) != q::OP_WRITE
            || a32(s + q::SLOT_HANDLE).load(Ordering::Relaxed) != handle
            || a64(s + q::SLOT_PRIV).load(Ordering::Relaxed) != self.arena_head
            || self.arena_head == 0
            || old_len + len > q::BATCH_MAX
            || pos + len > q::ARENA_SIZE
            || self.arena_head + len - self.arena_free > q::ARENA_SIZE
        {
            return false;
        }
        if a32(s + q::SLOT_STATE)
            .compare_exchange(
                q::STATE_POSTED,
                q::STATE_BUSY,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false; // the host has claimed it (or served it)
        }
        // SAFETY: `[pos, pos+len)` lies inside the arena (checked above) and
        // is free: it starts at `arena_head` and ends within the arena size
        // of `arena_free`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                qptr(q::ARENA + pos) as *mut u8,
                data.len(),
            );
        }
        self.arena_head += len;
        a64(s + q::SLOT_LEN).store(old_len + len, Ordering::Relaxed);
        a64(s + q::SLOT_PRIV).store(self.arena_head, Ordering::Relaxed);
        a32(s + q::SLOT_STATE).store(q::STATE_POSTED, Ordering::Release);
        APPENDS.fetch_add(1, Ordering::Relaxed);
        // No doorbell: the slot was announced when it was posted, and a
        // host cannot fall asleep while a posted slot is waiting.
        true
    }

    /// Post a request; returns its sequence number.
    fn post(&mut self, r: &Req, arena_end: u64) -> u64 {
        if self.head - self.reclaimed >= q::NR_SLOTS {
            self.reclaim();
            if self.head - self.reclaimed >= q::NR_SLOTS {
                doorbell();
                let s = slot_off(self.reclaimed);
                wait_done(s);
                self.reclaim();
            }
        }
        let seq = self.head;
        let s = slot_off(seq);
        a32(s + q::SLOT_OP).store(r.op, Ordering::Relaxed);
        a32(s + q::SLOT_HANDLE).store(r.handle, Ordering::Relaxed);
        a64(s + q::SLOT_ADDR).store(r.addr, Ordering::Relaxed);
        a64(s + q::SLOT_LEN).store(r.len, Ordering::Relaxed);
        a64(s + q::SLOT_OFFSET).store(r.offset, Ordering::Relaxed);
        a64(s + q::SLOT_RESULT).store(0, Ordering::Relaxed);
        a64(s + q::SLOT_PRIV).store(arena_end, Ordering::Relaxed);
        a32(s + q::SLOT_STATE).store(q::STATE_POSTED, Ordering::Release);
        self.head += 1;
        a64(q::HEAD).store(self.head, Ordering::Release);
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = BY_OP.get(r.op as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        doorbell();
        seq
    }
}

/// A synchronous call: post, wait, reclaim. Returns the raw result.
fn call(r: Req) -> i64 {
    let seq = QUEUE.with(|st| st.post(&r, 0));
    let s = slot_off(seq);
    wait_done(s);
    let res = a64(s + q::SLOT_RESULT).load(Ordering::Relaxed) as i64;
    QUEUE.with(|st| st.reclaim());
    res
}

fn to_result(res: i64) -> KResult<usize> {
    if res < 0 {
        Err(Errno((-res) as i32))
    } else {
        Ok(res as usize)
    }
}

/// Queue a write of `data` to `handle` without waiting. `false` if it does
/// not fit in the arena (the caller then writes synchronously).
fn write_async(handle: u32, data: &[u8]) -> bool {
    post_async(q::OP_WRITE, handle, data)
}

/// Forward a log record (`level` 1 error .. 5 trace) to the VMM without
/// waiting. Records that do not fit are dropped.
pub fn log_record(level: u32, text: &[u8]) {
    let _ = post_async(
        q::OP_LOG,
        level,
        &text[..text.len().min(q::LOG_MAX as usize)],
    );
}

/// Post `op` on `handle` with a copy of `data` in the arena, without
/// waiting for it. `false` if `data` is empty or too large for the arena.
fn post_async(op: u32, handle: u32, data: &[u8]) -> bool {
    let len = data.len() as u64;
    if len == 0 || len > q::ARENA_SIZE / 4 {
        return false;
    }
    QUEUE.with(|st| {
        if op == q::OP_WRITE && st.try_append(handle, data) {
            return;
        }
        loop {
            let mut start = st.arena_head;
            let pos = start % q::ARENA_SIZE;
            if pos + len > q::ARENA_SIZE {
                start += q::ARENA_SIZE - pos; // skip the tail; never wrap a payload
            }
            if start + len - st.arena_free <= q::ARENA_SIZE {
                let at = start % q::ARENA_SIZE;
                // SAFETY: `[at, at+len)` lies inside the arena and is not in use by
                // any posted request (it is past `arena_free` modulo the size).
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        data.as_ptr(),
                        qptr(q::ARENA + at) as *mut u8,
                        data.len(),
                    );
                }
                st.arena_head = start + len;
                let r = Req {
                    op,
                    handle,
                    addr: gpa::QUEUE + q::ARENA + at,
                    len,
                    offset: 0,
                };
                st.post(&r, start + len);
                return;
            }
            // Wait for the oldest request, then try again.
            st.reclaim();
            if st.reclaimed < st.head && start + len - st.arena_free > q::ARENA_SIZE {
                doorbell();
                let s = slot_off(st.reclaimed);
                wait_done(s);
                st.reclaim();
            } else if st.reclaimed == st.head {
                st.arena_free = st.arena_head;
            }
        }
    });
    true
}

/// Log the queue's counters (at the end of the run).
pub fn log_stats() {
    log::debug!(
        "host-call queue: {} requests posted, {} writes appended to a posted one, {} doorbells, {} waits for the host ({} halted, {} woken by the backstop, {} served by the vCPU's thread), {} us waited",
        REQUESTS.load(Ordering::Relaxed),
        APPENDS.load(Ordering::Relaxed),
        DOORBELLS.load(Ordering::Relaxed),
        WAITS.load(Ordering::Relaxed),
        HALTS.load(Ordering::Relaxed),
        BACKSTOPS.load(Ordering::Relaxed),
        SERVES.load(Ordering::Relaxed),
        WAIT_NS.load(Ordering::Relaxed) / 1000
    );
    let mut by_op = alloc::string::String::new();
    for (op, c) in BY_OP.iter().enumerate() {
        let c = c.load(Ordering::Relaxed);
        if c != 0 {
            let _ = core::fmt::Write::write_fmt(&mut by_op, format_args!(" op{op}:{c}"));
        }
    }
    log::debug!("host-call queue by operation:{by_op}");
}

/// Wait until every posted request is served (before exit or panic). Bounded.
pub fn flush_for_exit() {
    let head = a64(q::HEAD).load(Ordering::Acquire);
    let start = crate::arch::x86_64::monotonic_ns();
    doorbell();
    while a64(q::TAIL).load(Ordering::Acquire) < head {
        core::hint::spin_loop();
        if crate::arch::x86_64::monotonic_ns() - start > 2_000_000_000 {
            return;
        }
    }
}

/// The `HostOps` of the KVM platform.
#[derive(Debug, Default)]
pub struct QueueHost;

fn buf_gpa(p: *const u8) -> u64 {
    virt_to_phys(p as u64)
}

/// A host call on a path that answers in the same buffer (`readlink`,
/// `lstat`): the path in `addr[..offset]`, a `PATH_MAX` buffer for the
/// answer. The call's result and the buffer.
fn path_call(op: u32, path: &[u8]) -> KResult<(usize, alloc::vec::Vec<u8>)> {
    if path.len() > q::PATH_MAX as usize {
        return Err(Errno::ENAMETOOLONG);
    }
    let mut area = alloc::vec![0u8; q::PATH_MAX as usize];
    area[..path.len()].copy_from_slice(path);
    let n = to_result(call(Req {
        op,
        handle: 0,
        addr: buf_gpa(area.as_mut_ptr()),
        len: area.len() as u64,
        offset: path.len() as u64,
    }))?;
    Ok((n, area))
}

/// An open-like call: `path` (at most `PATH_MAX`) in, a handle out.
fn open_call(op: u32, path: &[u8], offset: u64) -> KResult<guest_kernel::platform::HostHandle> {
    if path.len() as u64 > q::PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let r = call(Req {
        op,
        handle: 0,
        addr: buf_gpa(path.as_ptr()),
        len: path.len() as u64,
        offset,
    });
    to_result(r).map(|h| guest_kernel::platform::HostHandle(h as u32))
}

impl guest_kernel::platform::HostOps for QueueHost {
    fn open(&self, path: &[u8]) -> KResult<guest_kernel::platform::HostHandle> {
        open_call(q::OP_OPEN, path, 0)
    }

    fn read(&self, h: guest_kernel::platform::HostHandle, buf: &mut [u8]) -> KResult<usize> {
        to_result(call(Req {
            op: q::OP_READ,
            handle: h.0,
            addr: buf_gpa(buf.as_mut_ptr()),
            len: buf.len() as u64,
            offset: 0,
        }))
    }

    fn pread(
        &self,
        h: guest_kernel::platform::HostHandle,
        buf: &mut [u8],
        offset: u64,
    ) -> KResult<usize> {
        to_result(call(Req {
            op: q::OP_PREAD,
            handle: h.0,
            addr: buf_gpa(buf.as_mut_ptr()),
            len: buf.len() as u64,
            offset,
        }))
    }

    fn write(&self, h: guest_kernel::platform::HostHandle, data: &[u8]) -> KResult<usize> {
        if (h == guest_kernel::platform::HOST_STDOUT || h == guest_kernel::platform::HOST_STDERR)
            && write_async(h.0, data)
        {
            return Ok(data.len());
        }
        to_result(call(Req {
            op: q::OP_WRITE,
            handle: h.0,
            addr: buf_gpa(data.as_ptr()),
            len: data.len() as u64,
            offset: 0,
        }))
    }

    fn fstat(
        &self,
        h: guest_kernel::platform::HostHandle,
    ) -> KResult<guest_kernel::platform::HostStat> {
        // `mut`: the host writes it behind the compiler's back.
        let mut raw = [0u8; 144];
        to_result(call(Req {
            op: q::OP_FSTAT,
            handle: h.0,
            addr: buf_gpa(raw.as_mut_ptr()),
            len: 144,
            offset: 0,
        }))?;
        Ok(stat_from_bytes(&raw))
    }

    fn tcgets(
        &self,
        h: guest_kernel::platform::HostHandle,
    ) -> KResult<[u8; crate::abi::linux::TERMIOS_SIZE]> {
        let mut t = [0u8; crate::abi::linux::TERMIOS_SIZE];
        to_result(call(Req {
            op: q::OP_TCGETS,
            handle: h.0,
            addr: buf_gpa(t.as_mut_ptr()),
            len: t.len() as u64,
            offset: 0,
        }))?;
        Ok(t)
    }

    fn getdents64(&self, h: guest_kernel::platform::HostHandle, buf: &mut [u8]) -> KResult<usize> {
        to_result(call(Req {
            op: q::OP_GETDENTS64,
            handle: h.0,
            addr: buf_gpa(buf.as_mut_ptr()),
            len: buf.len() as u64,
            offset: 0,
        }))
    }

    fn readlink(&self, path: &[u8], buf: &mut [u8]) -> KResult<usize> {
        let (n, area) = path_call(q::OP_READLINK, path)?;
        let n = n.min(buf.len()).min(area.len());
        buf[..n].copy_from_slice(&area[..n]);
        Ok(n)
    }

    fn lstat(&self, path: &[u8]) -> KResult<guest_kernel::platform::HostStat> {
        let (_, area) = path_call(q::OP_LSTAT, path)?;
        let mut raw = [0u8; 144];
        raw.copy_from_slice(&area[..144]);
        Ok(stat_from_bytes(&raw))
    }

    fn tty_ioctl(
        &self,
        h: guest_kernel::platform::HostHandle,
        cmd: u32,
        arg: &mut [u8],
    ) -> KResult<()> {
        to_result(call(Req {
            op: q::OP_TTY_IOCTL,
            handle: h.0,
            addr: buf_gpa(arg.as_mut_ptr()),
            len: arg.len() as u64,
            offset: u64::from(cmd),
        }))?;
        Ok(())
    }

    fn take_exec(&self, buf: &mut [u8]) -> KResult<usize> {
        let n = to_result(call(Req {
            op: q::OP_TAKE_EXEC,
            handle: 0,
            addr: buf_gpa(buf.as_mut_ptr()),
            len: buf.len() as u64,
            offset: 0,
        }))?;
        Ok(n.min(buf.len()))
    }

    fn exec_exited(&self, id: u32, code: i32) {
        let _ = call(Req {
            op: q::OP_EXEC_EXIT,
            handle: id,
            addr: 0,
            len: 0,
            offset: code as u32 as u64,
        });
    }

    fn open_rw(
        &self,
        path: &[u8],
        flags: u32,
        mode: u32,
    ) -> KResult<guest_kernel::platform::HostHandle> {
        open_call(
            q::OP_OPEN_RW,
            path,
            u64::from(flags) | u64::from(mode) << 32,
        )
    }

    fn pwrite(
        &self,
        h: guest_kernel::platform::HostHandle,
        data: &[u8],
        offset: u64,
    ) -> KResult<usize> {
        to_result(call(Req {
            op: q::OP_PWRITE,
            handle: h.0,
            addr: buf_gpa(data.as_ptr()),
            len: data.len() as u64,
            offset,
        }))
    }

    fn ftruncate(&self, h: guest_kernel::platform::HostHandle, len: u64) -> KResult<()> {
        to_result(call(Req {
            op: q::OP_FTRUNCATE,
            handle: h.0,
            addr: 0,
            len: 0,
            offset: len,
        }))
        .map(|_| ())
    }

    fn fsync(&self, h: guest_kernel::platform::HostHandle) -> KResult<()> {
        to_result(call(Req {
            op: q::OP_FSYNC,
            handle: h.0,
            addr: 0,
            len: 0,
            offset: 0,
        }))
        .map(|_| ())
    }

    fn path_op(&self, op: u32, path: &[u8], extra: &[u8], arg: u64) -> KResult<()> {
        if path.len() as u64 > q::PATH_MAX || extra.len() as u64 > q::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let payload = q::path_payload(path, extra);
        to_result(call(Req {
            op: q::OP_PATH,
            handle: op,
            addr: buf_gpa(payload.as_ptr()),
            len: payload.len() as u64,
            offset: arg,
        }))
        .map(|_| ())
    }

    fn close(&self, h: guest_kernel::platform::HostHandle) {
        // Nothing waits on a close: post it and go on. The host serves the
        // queue in order, so no later request can see the handle open.
        QUEUE.with(|st| {
            st.post(
                &Req {
                    op: q::OP_CLOSE,
                    handle: h.0,
                    addr: 0,
                    len: 0,
                    offset: 0,
                },
                0,
            );
        });
    }
}

/// A nop round trip (latency probe for the self-test).
/// `pread` into guest-physical memory `[gpa, gpa+len)` (the caller checked
/// that it is the sentry's RAM).
pub fn pread_gpa(h: guest_kernel::platform::HostHandle, gpa: u64, len: u64, offset: u64) -> KResult<usize> {
    to_result(call(Req {
        op: q::OP_PREAD,
        handle: h.0,
        addr: gpa,
        len: len.min(q::IO_MAX),
        offset,
    }))
}

pub fn nop() -> i64 {
    call(Req {
        op: q::OP_NOP,
        handle: 0,
        addr: 0,
        len: 0,
        offset: 0,
    })
}

fn stat_from_bytes(b: &[u8; 144]) -> guest_kernel::platform::HostStat {
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    crate::abi::linux::Stat {
        st_dev: u64_at(0),
        st_ino: u64_at(8),
        st_nlink: u64_at(16),
        st_mode: u32_at(24),
        st_uid: u32_at(28),
        st_gid: u32_at(32),
        pad0: 0,
        st_rdev: u64_at(40),
        st_size: u64_at(48) as i64,
        st_blksize: u64_at(56) as i64,
        st_blocks: u64_at(64) as i64,
        st_atime: u64_at(72) as i64,
        st_atime_nsec: u64_at(80) as i64,
        st_mtime: u64_at(88) as i64,
        st_mtime_nsec: u64_at(96) as i64,
        st_ctime: u64_at(104) as i64,
        st_ctime_nsec: u64_at(112) as i64,
        reserved: [0; 3],
    }
}
